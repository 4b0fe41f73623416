//! An entry as it leaves the process: one JSON object, used by snapshots and the shared tier.
//!
//! The embedding travels as base64 little-endian `f32` (unit-normalised), so a record of a
//! 384-d entry is about 2 KB plus its answer. Records hold the guard's features, never the
//! prompt.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::answer::CachedAnswer;
use super::exact::ExactKey;
use super::guard::GuardFeatures;
use super::scope::ScopeId;

/// A portable cache entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryRecord {
    /// The exact key (the same on every replica for the same request).
    pub key: ExactKey,
    /// The scope id.
    pub scope: ScopeId,
    /// The scope's model.
    pub model: String,
    /// The scope's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The category that chose its TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Stored at, Unix ms.
    pub created_ms: u64,
    /// Never served from this time on, Unix ms.
    pub expires_ms: u64,
    /// The guard's features of the stored prompt.
    #[serde(default)]
    pub guard: GuardFeatures,
    /// The answer.
    pub answer: CachedAnswer,
    /// The unit-normalised embedding; absent for an exact-only entry.
    #[serde(default, with = "vector", skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

mod vector {
    use super::*;

    pub fn serialize<S: Serializer>(
        v: &Option<Vec<f32>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            None => serializer.serialize_none(),
            Some(v) => {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                serializer.serialize_str(&STANDARD.encode(bytes))
            }
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<f32>>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        let bytes = STANDARD.decode(text).map_err(serde::de::Error::custom)?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom(
                "the embedding's byte length is not a multiple of 4",
            ));
        }
        Ok(Some(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::scope::Digest;

    #[test]
    fn records_round_trip_with_the_exact_vector() {
        let record = EntryRecord {
            key: Digest([7; 16]),
            scope: Digest([8; 16]),
            model: "m".into(),
            tenant: Some("t".into()),
            category: None,
            created_ms: 1,
            expires_ms: 2,
            guard: GuardFeatures::extract("Is 5 prime in Rome?"),
            answer: CachedAnswer {
                content: "yes".into(),
                reasoning_content: None,
                upstream_model: Some("u".into()),
                usage: None,
            },
            embedding: Some(vec![0.1, -0.25, 1e-7, f32::MIN_POSITIVE]),
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(!text.contains("Is 5 prime"), "no prompt text in records");
        assert_eq!(serde_json::from_str::<EntryRecord>(&text).unwrap(), record);
        let exact_only = EntryRecord {
            embedding: None,
            ..record
        };
        let text = serde_json::to_string(&exact_only).unwrap();
        assert!(!text.contains("embedding"));
        assert_eq!(
            serde_json::from_str::<EntryRecord>(&text).unwrap(),
            exact_only
        );
    }
}
