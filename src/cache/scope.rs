//! Scope: which requests may share an answer.
//!
//! Two requests share an answer only when everything besides the last user text that shapes
//! the answer is the same: the model, the tenant, the conversation before the last user turn
//! (system prompt included), the tools, `response_format` and a few generation parameters.
//! Each part is a SHA-256 digest of canonical JSON (object keys sorted), so scopes are stable
//! across processes, replicas, snapshots and releases, and no prompt text is kept in them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// A 128-bit digest: the first half of a SHA-256. Collisions need about 2^64 tries, far out of
/// reach of a client trying to read another scope's answers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 16]);

impl Digest {
    /// Lowercase hex, as used in snapshots and Redis keys.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 32 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 32 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Digest(out))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::from_hex(&text).ok_or_else(|| serde::de::Error::custom("expected 32 hex digits"))
    }
}

/// Incremental hashing of tagged fields into a [`Digest`]. Every field is length-prefixed and
/// tagged, so `("ab", "c")` and `("a", "bc")` never collide.
pub(crate) struct Hasher(Sha256);

impl Hasher {
    /// A hasher for one purpose; the domain separates digests of different kinds.
    pub(crate) fn new(domain: &str) -> Self {
        let mut hasher = Hasher(Sha256::new());
        hasher.bytes(domain.as_bytes());
        hasher
    }

    /// Adds a length-prefixed byte string.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    /// Adds an optional string (absent and empty differ).
    pub(crate) fn opt_str(&mut self, value: Option<&str>) {
        match value {
            None => self.0.update([0u8]),
            Some(text) => {
                self.0.update([1u8]);
                self.bytes(text.as_bytes());
            }
        }
    }

    /// Adds a JSON value in canonical form: object keys sorted, numbers by their JSON text.
    pub(crate) fn json(&mut self, value: &Value) {
        match value {
            Value::Null => self.0.update([b'n']),
            Value::Bool(b) => self.0.update([b'b', u8::from(*b)]),
            Value::Number(n) => {
                self.0.update([b'#']);
                self.bytes(n.to_string().as_bytes());
            }
            Value::String(s) => {
                self.0.update([b's']);
                self.bytes(s.as_bytes());
            }
            Value::Array(items) => {
                self.0.update([b'[']);
                self.0.update((items.len() as u64).to_le_bytes());
                for item in items {
                    self.json(item);
                }
            }
            Value::Object(map) => {
                self.0.update([b'{']);
                self.0.update((map.len() as u64).to_le_bytes());
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for key in keys {
                    self.bytes(key.as_bytes());
                    self.json(&map[key]);
                }
            }
        }
    }

    /// Adds an optional JSON value (absent and `null` differ).
    pub(crate) fn opt_json(&mut self, value: Option<&Value>) {
        match value {
            None => self.0.update([0u8]),
            Some(v) => {
                self.0.update([1u8]);
                self.json(v);
            }
        }
    }

    /// The digest.
    pub(crate) fn finish(self) -> Digest {
        let full = self.0.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        Digest(out)
    }
}

/// The identity of a scope: entries match only requests with the same id.
pub type ScopeId = Digest;

/// Everything besides the last user text that decides whether two requests may share an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheScope {
    /// The model the answer is for: the selected model, or the requested one (e.g. `auto`)
    /// when the exact path must run before the decision. Callers must pass the same kind of
    /// value on lookup and insert.
    pub model: String,
    /// The tenant (from the configured header); tenants never share entries.
    pub tenant: Option<String>,
    /// Digest of the conversation before the last user turn (system prompt included) and of
    /// any non-text parts (images, audio) of the last user turn.
    pub context: Digest,
    /// Digest of `tools`, `tool_choice`, `parallel_tool_calls`, `functions`, `function_call`.
    pub tools: Digest,
    /// Digest of `response_format`.
    pub response_format: Digest,
    /// Digest of other answer-shaping parameters: `stop`, `seed`, `reasoning_effort`,
    /// `chat_template_kwargs`, `modalities`, `audio`, `prediction`.
    pub params: Digest,
    /// Digest of all of the above.
    pub id: ScopeId,
}

impl CacheScope {
    /// Builds a scope from its parts; `id` is derived.
    pub fn new(
        model: &str,
        tenant: Option<&str>,
        context: Digest,
        tools: Digest,
        response_format: Digest,
        params: Digest,
    ) -> Self {
        let mut hasher = Hasher::new("semrouter-cache-scope-v1");
        hasher.bytes(model.as_bytes());
        hasher.opt_str(tenant);
        for part in [&context, &tools, &response_format, &params] {
            hasher.bytes(&part.0);
        }
        Self {
            model: model.to_string(),
            tenant: tenant.map(str::to_string),
            context,
            tools,
            response_format,
            params,
            id: hasher.finish(),
        }
    }
}

/// Which entries a flush removes. Every field given must match; all `None` flushes everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlushFilter {
    /// One exact scope.
    #[serde(default)]
    pub scope: Option<ScopeId>,
    /// Entries for this model.
    #[serde(default)]
    pub model: Option<String>,
    /// Entries of this tenant.
    #[serde(default)]
    pub tenant: Option<String>,
}

impl FlushFilter {
    /// Flushes everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Flushes one scope.
    pub fn scope(scope: ScopeId) -> Self {
        Self {
            scope: Some(scope),
            ..Self::default()
        }
    }

    /// Whether an entry with this scope id, model and tenant is flushed.
    pub fn matches(&self, scope: &ScopeId, model: &str, tenant: Option<&str>) -> bool {
        self.scope.as_ref().is_none_or(|s| s == scope)
            && self.model.as_deref().is_none_or(|m| m == model)
            && self.tenant.as_deref().is_none_or(|t| Some(t) == tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest_of(value: &Value) -> Digest {
        let mut h = Hasher::new("t");
        h.json(value);
        h.finish()
    }

    #[test]
    fn canonical_json_ignores_key_order_but_not_values() {
        let a = json!({"a": 1, "b": [1, {"x": "y", "z": null}]});
        let b: Value =
            serde_json::from_str(r#"{"b": [1, {"z": null, "x": "y"}], "a": 1}"#).unwrap();
        assert_eq!(digest_of(&a), digest_of(&b));
        assert_ne!(
            digest_of(&a),
            digest_of(&json!({"a": 2, "b": [1, {"x": "y", "z": null}]}))
        );
        assert_ne!(
            digest_of(&json!(["ab", "c"])),
            digest_of(&json!(["a", "bc"]))
        );
        assert_ne!(digest_of(&json!("1")), digest_of(&json!(1)));
    }

    #[test]
    fn scope_id_covers_every_part() {
        let d = |s: &str| digest_of(&json!(s));
        let base = CacheScope::new("m", Some("t"), d("c"), d("tools"), d("rf"), d("p"));
        let variants = [
            CacheScope::new("m2", Some("t"), d("c"), d("tools"), d("rf"), d("p")),
            CacheScope::new("m", None, d("c"), d("tools"), d("rf"), d("p")),
            CacheScope::new("m", Some("t2"), d("c"), d("tools"), d("rf"), d("p")),
            CacheScope::new("m", Some("t"), d("c2"), d("tools"), d("rf"), d("p")),
            CacheScope::new("m", Some("t"), d("c"), d("tools2"), d("rf"), d("p")),
            CacheScope::new("m", Some("t"), d("c"), d("tools"), d("rf2"), d("p")),
            CacheScope::new("m", Some("t"), d("c"), d("tools"), d("rf"), d("p2")),
        ];
        for v in &variants {
            assert_ne!(v.id, base.id, "{v:?}");
        }
        assert_eq!(
            CacheScope::new("m", Some("t"), d("c"), d("tools"), d("rf"), d("p")).id,
            base.id
        );
    }

    #[test]
    fn digest_hex_round_trips() {
        let d = digest_of(&json!({"k": "v"}));
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex("zz"), None);
        let encoded = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&encoded).unwrap(), d);
    }

    #[test]
    fn flush_filter_matches_given_fields_only() {
        let s = digest_of(&json!(1));
        assert!(FlushFilter::all().matches(&s, "m", None));
        assert!(FlushFilter::scope(s).matches(&s, "m", Some("t")));
        assert!(!FlushFilter::scope(digest_of(&json!(2))).matches(&s, "m", None));
        let tenant = FlushFilter {
            tenant: Some("t".into()),
            ..FlushFilter::default()
        };
        assert!(tenant.matches(&s, "m", Some("t")));
        assert!(!tenant.matches(&s, "m", None));
        let model = FlushFilter {
            model: Some("m".into()),
            ..FlushFilter::default()
        };
        assert!(!model.matches(&s, "other", Some("t")));
    }
}
