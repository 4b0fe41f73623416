//! The `cache:` section of the service configuration: typed, with defaults, unknown keys refused.
//!
//! Every field has a default, so `cache: {enabled: true}` is a working cache. [`CacheConfig::validate`]
//! checks what serde cannot (ranges, cross-field rules) and names the offending key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// A config failure: the full key (e.g. `cache.index.ef_search`) and what is wrong with it.
pub type Invalid = (String, String);

/// Default similarity threshold: the lowest cosine similarity served as a semantic hit.
///
/// Chosen with `cargo test --release --test cache_false_hits -- --ignored --nocapture` on the
/// project's labelled near-duplicate set (docs/performance.md, False hits): at 0.90 with the
/// guard on, false hits stay under 1% while most paraphrases still hit.
pub const DEFAULT_SIMILARITY_THRESHOLD: f32 = 0.90;

/// Default upper edge of the guard's grey band: 1, so every semantic match is checked. The
/// labelled set shows why: a changed number leaves the embedding at 0.996 similarity at the
/// median and at 0.999 or more for one pair in five (docs/performance.md, False hits).
pub const DEFAULT_GUARD_BAND_UPPER: f32 = 1.0;

/// The semantic cache: exact fast path, HNSW lookup, TTL, bounds, guard, snapshot, shared tier.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Master switch. Off by default: a cache changes what clients receive, so it is opt-in.
    pub enabled: bool,
    /// Answer exact repeats (same scope, same normalised last user text) without the encoder.
    pub exact: bool,
    /// Answer near-duplicates by nearest-neighbour search over the request embedding.
    pub semantic: bool,
    /// Most entries held; the least recently used is evicted beyond it.
    pub max_entries: usize,
    /// Most bytes held (answers, metadata, vectors and index links, estimated); LRU eviction.
    pub max_bytes: u64,
    /// Largest single entry accepted, in bytes; bigger answers are not stored.
    pub max_entry_bytes: u64,
    /// Absolute lifetime of an entry in seconds: it is never served after it.
    pub ttl_s: u64,
    /// Per-category lifetimes (category name as the caller passes it) overriding `ttl_s`.
    pub category_ttl_s: BTreeMap<String, u64>,
    /// Lowest cosine similarity that counts as a semantic hit.
    pub similarity_threshold: f32,
    /// Per-category thresholds overriding `similarity_threshold` (stricter for, say, `law`).
    pub category_thresholds: BTreeMap<String, f32>,
    /// Requests with a `temperature` above this are neither served nor stored (an absent
    /// temperature counts as cacheable).
    pub max_temperature: f64,
    /// The false-hit guard for matches in the grey band.
    pub guard: GuardConfig,
    /// The HNSW index and its segments.
    pub index: IndexConfig,
    /// Snapshot to disk on shutdown, load on start.
    pub snapshot: SnapshotConfig,
    /// The shared tier on Redis, for many replicas.
    pub shared: SharedConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            exact: true,
            semantic: true,
            max_entries: 100_000,
            max_bytes: 1 << 30,
            max_entry_bytes: 1 << 20,
            ttl_s: 3600,
            category_ttl_s: BTreeMap::new(),
            similarity_threshold: DEFAULT_SIMILARITY_THRESHOLD,
            category_thresholds: BTreeMap::new(),
            max_temperature: 1.0,
            guard: GuardConfig::default(),
            index: IndexConfig::default(),
            snapshot: SnapshotConfig::default(),
            shared: SharedConfig::default(),
        }
    }
}

/// Lexical checks applied to semantic matches whose similarity lies in
/// `[threshold, band_upper)`: embeddings place a question close to its own negation, or to
/// the same question about another number or name, or to another question under the same
/// instructions, so those differences veto the match.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Run the guard at all.
    pub enabled: bool,
    /// Matches at or above this similarity are served without the lexical checks; at 1 (the
    /// default) every semantic match is checked.
    pub band_upper: f32,
    /// Reject when the prompts differ in negation words (`not`, `never`, `no`, `n't`, ...).
    pub negation: bool,
    /// Reject when the prompts differ in the numbers they contain.
    pub numbers: bool,
    /// Reject when the prompts differ in named entities (capitalised names, acronyms, quotes).
    pub entities: bool,
    /// Reject when many content words of one prompt stand in place of the other's (at least
    /// three and a sixth of the longer prompt's, or eight): a different question behind a
    /// shared preamble.
    pub content: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            band_upper: DEFAULT_GUARD_BAND_UPPER,
            negation: true,
            numbers: true,
            entities: true,
            content: true,
        }
    }
}

/// The HNSW index. It is split into segments because `hnsw_rs` cannot delete: a segment whose
/// points are all dead is dropped whole, and when dead points pile up the sealed segment with
/// the fewest live points is compacted (its live points move to the newest segment), so
/// memory and search time stay bounded (docs/cache.md, Eviction).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Links per point and layer (HNSW `M`); layer 0 keeps twice as many.
    pub max_connections: usize,
    /// Candidate list size while inserting (HNSW `efConstruction`).
    pub ef_construction: usize,
    /// Candidate list size while searching (HNSW `ef`); recall rises with it, so does latency.
    pub ef_search: usize,
    /// Points found on layer 1 that all start the layer-0 search (0: only the one the
    /// greedy descent reaches). Near-duplicates fill a point's layer-0 links, so a search
    /// entering the wrong cluster seldom leaves it; more entry points recover the nearest.
    pub entry_beam: usize,
    /// Points per segment before a new one starts; 0 means `max_entries`, so that in steady
    /// state a lookup searches two graphs: the generation that is filling and the one dying.
    pub segment_points: usize,
    /// Dead points (evicted, expired, flushed, replaced) allowed, as a fraction of the live
    /// ones (counted as at least 1024), before compaction. Beyond this plus one segment, new
    /// vectors are refused (exact path only) until compaction catches up: a hard bound.
    pub max_dead_fraction: f32,
    /// How often the background task sweeps expired entries and compacts, in milliseconds.
    pub maintenance_interval_ms: u64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            ef_construction: 100,
            ef_search: 48,
            entry_beam: 16,
            segment_points: 0,
            max_dead_fraction: 1.0,
            maintenance_interval_ms: 1000,
        }
    }
}

impl IndexConfig {
    /// The segment size in points for a cache of `max_entries`.
    pub fn segment_size(&self, max_entries: usize) -> usize {
        if self.segment_points > 0 {
            self.segment_points
        } else {
            max_entries.max(64)
        }
    }
}

/// Optional snapshot of the local tier to one file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// The snapshot file; no snapshot when absent.
    pub path: Option<PathBuf>,
    /// Load the snapshot on start (a corrupt or incompatible one is reported and skipped).
    pub load_on_start: bool,
    /// Write the snapshot on shutdown (to a temporary file renamed into place).
    pub save_on_shutdown: bool,
}

/// The shared tier: entries live in Redis with their TTL, and every replica tails a Redis
/// stream to keep its local index in step. Redis is never on the request path.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedConfig {
    /// Join the shared tier.
    pub enabled: bool,
    /// Redis URL, e.g. `redis://127.0.0.1:6379/0` (`rediss://` is not built in).
    pub url: String,
    /// Prefix of every key this cache writes; replicas sharing entries use the same prefix.
    pub key_prefix: String,
    /// Approximate length the stream of changes is trimmed to (`XADD MAXLEN ~`).
    pub stream_max_len: usize,
    /// Connect timeout in milliseconds.
    pub connect_timeout_ms: u64,
    /// Timeout of one Redis command in milliseconds.
    pub command_timeout_ms: u64,
    /// First reconnect delay in milliseconds; doubles after each failure.
    pub backoff_initial_ms: u64,
    /// Longest reconnect delay in milliseconds.
    pub backoff_max_ms: u64,
    /// Writes waiting for Redis; beyond it writes are dropped from the shared tier (and
    /// counted), never waited for.
    pub write_queue: usize,
    /// Load every entry in Redis when the tier starts (a new replica starts warm).
    pub warm_on_start: bool,
}

impl Default for SharedConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: "redis://127.0.0.1:6379/0".to_string(),
            key_prefix: "semrouter:cache".to_string(),
            stream_max_len: 100_000,
            connect_timeout_ms: 1000,
            command_timeout_ms: 1000,
            backoff_initial_ms: 100,
            backoff_max_ms: 5000,
            write_queue: 4096,
            warm_on_start: true,
        }
    }
}

fn invalid(prefix: &str, key: &str, message: impl Into<String>) -> Invalid {
    (format!("{prefix}.{key}"), message.into())
}

fn check_similarity(prefix: &str, key: &str, value: f32) -> Result<(), Invalid> {
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(invalid(
            prefix,
            key,
            format!("must be a cosine similarity in (0, 1], got {value}"),
        ))
    }
}

impl CacheConfig {
    /// The TTL in seconds for entries of `category`.
    pub fn ttl_for(&self, category: Option<&str>) -> u64 {
        category
            .and_then(|c| self.category_ttl_s.get(c))
            .copied()
            .unwrap_or(self.ttl_s)
    }

    /// The similarity threshold for `category`.
    pub fn threshold_for(&self, category: Option<&str>) -> f32 {
        category
            .and_then(|c| self.category_thresholds.get(c))
            .copied()
            .unwrap_or(self.similarity_threshold)
    }

    /// Checks ranges and cross-field rules; `prefix` is where the section sits (`cache`), so
    /// the error names the full key.
    pub fn validate(&self, prefix: &str) -> Result<(), Invalid> {
        if self.max_entries == 0 {
            return Err(invalid(prefix, "max_entries", "must be at least 1"));
        }
        if self.max_entries > 100_000_000 {
            return Err(invalid(prefix, "max_entries", "must be at most 100000000"));
        }
        if self.max_bytes < 1 << 20 {
            return Err(invalid(
                prefix,
                "max_bytes",
                "must be at least 1048576 (1 MiB)",
            ));
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes > self.max_bytes {
            return Err(invalid(
                prefix,
                "max_entry_bytes",
                "must be at least 1 and at most max_bytes",
            ));
        }
        if self.ttl_s == 0 {
            return Err(invalid(prefix, "ttl_s", "must be at least 1 second"));
        }
        for (category, ttl) in &self.category_ttl_s {
            if category.trim().is_empty() {
                return Err(invalid(
                    prefix,
                    "category_ttl_s",
                    "category names must not be empty",
                ));
            }
            if *ttl == 0 {
                return Err(invalid(
                    prefix,
                    &format!("category_ttl_s.{category}"),
                    "must be at least 1 second",
                ));
            }
        }
        check_similarity(prefix, "similarity_threshold", self.similarity_threshold)?;
        for (category, threshold) in &self.category_thresholds {
            if category.trim().is_empty() {
                return Err(invalid(
                    prefix,
                    "category_thresholds",
                    "category names must not be empty",
                ));
            }
            check_similarity(
                prefix,
                &format!("category_thresholds.{category}"),
                *threshold,
            )?;
        }
        if !self.max_temperature.is_finite() || self.max_temperature < 0.0 {
            return Err(invalid(
                prefix,
                "max_temperature",
                "must be a number at least 0",
            ));
        }
        check_similarity(prefix, "guard.band_upper", self.guard.band_upper)?;

        let index = &self.index;
        if !(2..=255).contains(&index.max_connections) {
            return Err(invalid(
                prefix,
                "index.max_connections",
                "must be between 2 and 255",
            ));
        }
        if !(8..=4096).contains(&index.ef_construction) {
            return Err(invalid(
                prefix,
                "index.ef_construction",
                "must be between 8 and 4096",
            ));
        }
        if !(1..=4096).contains(&index.ef_search) {
            return Err(invalid(
                prefix,
                "index.ef_search",
                "must be between 1 and 4096",
            ));
        }
        if index.entry_beam > 4096 {
            return Err(invalid(
                prefix,
                "index.entry_beam",
                "must be between 0 and 4096",
            ));
        }
        if index.segment_points != 0 && index.segment_points < 64 {
            return Err(invalid(
                prefix,
                "index.segment_points",
                "must be 0 (automatic) or at least 64",
            ));
        }
        if !(index.max_dead_fraction.is_finite()
            && index.max_dead_fraction > 0.0
            && index.max_dead_fraction <= 4.0)
        {
            return Err(invalid(
                prefix,
                "index.max_dead_fraction",
                "must be in (0, 4]",
            ));
        }
        if index.maintenance_interval_ms == 0 {
            return Err(invalid(
                prefix,
                "index.maintenance_interval_ms",
                "must be at least 1",
            ));
        }

        if self.snapshot.path.is_none()
            && (self.snapshot.load_on_start || self.snapshot.save_on_shutdown)
        {
            return Err(invalid(
                prefix,
                "snapshot.path",
                "is required when load_on_start or save_on_shutdown is set",
            ));
        }

        let shared = &self.shared;
        if shared.enabled {
            if !(shared.url.starts_with("redis://")
                || shared.url.starts_with("redis+unix://")
                || shared.url.starts_with("unix://"))
            {
                return Err(invalid(
                    prefix,
                    "shared.url",
                    "must be a redis:// or unix:// URL",
                ));
            }
            if redis::Client::open(shared.url.as_str()).is_err() {
                return Err(invalid(prefix, "shared.url", "is not a valid Redis URL"));
            }
        }
        if shared.key_prefix.trim().is_empty() || shared.key_prefix.contains(char::is_whitespace) {
            return Err(invalid(
                prefix,
                "shared.key_prefix",
                "must be non-empty without whitespace",
            ));
        }
        if shared.stream_max_len < 100 {
            return Err(invalid(
                prefix,
                "shared.stream_max_len",
                "must be at least 100",
            ));
        }
        if shared.connect_timeout_ms == 0 || shared.command_timeout_ms == 0 {
            let key = if shared.connect_timeout_ms == 0 {
                "shared.connect_timeout_ms"
            } else {
                "shared.command_timeout_ms"
            };
            return Err(invalid(prefix, key, "must be at least 1"));
        }
        if shared.backoff_initial_ms == 0 || shared.backoff_initial_ms > shared.backoff_max_ms {
            return Err(invalid(
                prefix,
                "shared.backoff_initial_ms",
                "must be at least 1 and at most backoff_max_ms",
            ));
        }
        if shared.write_queue == 0 {
            return Err(invalid(prefix, "shared.write_queue", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<CacheConfig, serde_json::Error> {
        // serde_json over a JSON rendering keeps the test free of a YAML dependency.
        serde_json::from_str(yaml)
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let config = CacheConfig::default();
        config.validate("cache").unwrap();
        assert!(!config.enabled);
        assert_eq!(config.max_entries, 100_000);
        assert_eq!(config.index.segment_size(config.max_entries), 100_000);
        assert_eq!(config.index.segment_size(10), 64);
        assert_eq!(parse("{}").unwrap(), config);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse(r#"{"enabled": true, "max_entrys": 5}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_entrys"), "{err}");
        let err = parse(r#"{"guard": {"band": 0.9}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("band"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let config = CacheConfig {
            similarity_threshold: 1.5,
            ..CacheConfig::default()
        };
        assert_eq!(
            config.validate("cache").unwrap_err().0,
            "cache.similarity_threshold"
        );

        let mut config = CacheConfig::default();
        config.category_thresholds.insert("law".into(), 0.0);
        assert_eq!(
            config.validate("cache").unwrap_err().0,
            "cache.category_thresholds.law"
        );

        let mut config = CacheConfig::default();
        config.index.ef_search = 0;
        assert_eq!(
            config.validate("cache").unwrap_err().0,
            "cache.index.ef_search"
        );
        config.index.ef_search = 48;
        config.index.entry_beam = 5000;
        assert_eq!(
            config.validate("cache").unwrap_err().0,
            "cache.index.entry_beam"
        );

        let mut config = CacheConfig::default();
        config.snapshot.save_on_shutdown = true;
        assert_eq!(
            config.validate("x.cache").unwrap_err().0,
            "x.cache.snapshot.path"
        );

        let mut config = CacheConfig::default();
        config.shared.enabled = true;
        config.shared.url = "http://localhost".into();
        assert_eq!(config.validate("cache").unwrap_err().0, "cache.shared.url");
    }

    #[test]
    fn category_overrides_apply() {
        let config = parse(
            r#"{"ttl_s": 60, "category_ttl_s": {"law": 5}, "category_thresholds": {"law": 0.97}}"#,
        )
        .unwrap();
        config.validate("cache").unwrap();
        assert_eq!(config.ttl_for(Some("law")), 5);
        assert_eq!(config.ttl_for(Some("math")), 60);
        assert_eq!(config.ttl_for(None), 60);
        assert_eq!(config.threshold_for(Some("law")), 0.97);
        assert_eq!(
            config.threshold_for(Some("math")),
            DEFAULT_SIMILARITY_THRESHOLD
        );
    }
}
