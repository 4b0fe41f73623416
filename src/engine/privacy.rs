//! Personal data in a whole request: every message's text is scanned (a model sees the whole
//! conversation, not only the classified turn), and the body can be masked in place.
//!
//! Only types, counts and masked texts leave this module; the values found are never kept,
//! logged or counted by value.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use semrouter_embedder::BackendError;
use serde_json::{Map, Value};

use crate::config::PiiViolation;
use crate::engine::signals::pii::PiiDetector;
use crate::engine::signals::PiiSignal;

/// Where a text sits in the body: a message's string content, or one text part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Location {
    message: usize,
    part: Option<usize>,
}

/// A text that held personal data, and its masked form.
#[derive(Debug, Clone, PartialEq)]
struct Hit {
    at: Location,
    masked: String,
}

/// What a scan of one request found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PiiScan {
    hits: Vec<Hit>,
    /// Types, count and cost, as signals report them.
    pub signal: PiiSignal,
}

impl PiiScan {
    /// Whether anything was found.
    pub fn found(&self) -> bool {
        !self.hits.is_empty()
    }

    /// Replaces every text that held personal data with its masked form.
    pub fn mask(&self, body: &mut Map<String, Value>) {
        let Some(Value::Array(messages)) = body.get_mut("messages") else {
            return;
        };
        for hit in &self.hits {
            let Some(message) = messages.get_mut(hit.at.message) else {
                continue;
            };
            let slot = match hit.at.part {
                None => message.get_mut("content"),
                Some(p) => message
                    .get_mut("content")
                    .and_then(|c| c.get_mut(p))
                    .and_then(|part| part.get_mut("text")),
            };
            if let Some(slot) = slot {
                *slot = Value::String(hit.masked.clone());
            }
        }
    }
}

/// The configured detector and what to do when no candidate may see what it finds.
pub struct PrivacyGuard {
    detector: Arc<PiiDetector>,
    /// When no candidate may see the detected types and no policy masks.
    pub on_violation: PiiViolation,
}

/// Every text of `body`'s messages with its location.
fn texts(body: &Map<String, Value>) -> Vec<(Location, &str)> {
    let Some(Value::Array(messages)) = body.get("messages") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (m, message) in messages.iter().enumerate() {
        match message.get("content") {
            Some(Value::String(text)) => out.push((
                Location {
                    message: m,
                    part: None,
                },
                text.as_str(),
            )),
            Some(Value::Array(parts)) => {
                for (p, part) in parts.iter().enumerate() {
                    if part.get("type").and_then(Value::as_str) == Some("text") {
                        if let Some(text) = part.get("text").and_then(Value::as_str) {
                            out.push((
                                Location {
                                    message: m,
                                    part: Some(p),
                                },
                                text,
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

impl PrivacyGuard {
    /// A guard around a built detector.
    pub fn new(detector: PiiDetector, on_violation: PiiViolation) -> Self {
        Self {
            detector: Arc::new(detector),
            on_violation,
        }
    }

    /// The detector, shared with the cache, which screens answers with it before storing them.
    pub fn detector(&self) -> &Arc<PiiDetector> {
        &self.detector
    }

    /// Scans every message text of `body` (concurrently: the model's queue batches them).
    pub async fn scan(&self, body: &Map<String, Value>) -> Result<PiiScan, BackendError> {
        let started = Instant::now();
        let texts: Vec<(Location, &str)> = texts(body)
            .into_iter()
            .filter(|(_, t)| !t.trim().is_empty())
            .collect();
        let findings =
            try_join_all(texts.iter().map(|(_, text)| self.detector.detect(text))).await?;
        let mut types: Vec<String> = Vec::new();
        let mut entities = 0;
        let mut hits = Vec::new();
        for ((at, _), found) in texts.iter().zip(findings) {
            if found.entities.is_empty() {
                continue;
            }
            entities += found.entities.len();
            types.extend(found.types().into_iter().map(|t| t.as_str().to_string()));
            hits.push(Hit {
                at: *at,
                masked: found.masked,
            });
        }
        types.sort();
        types.dedup();
        for t in &types {
            metrics::counter!("semrouter_pii_detections_total", "type" => t.clone()).increment(1);
        }
        let elapsed: Duration = started.elapsed();
        metrics::histogram!("semrouter_stage_duration_seconds", "stage" => "pii")
            .record(elapsed.as_secs_f64());
        Ok(PiiScan {
            hits,
            signal: PiiSignal {
                types,
                entities,
                elapsed,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::signals::pii::PiiSettings;

    #[tokio::test]
    async fn every_message_and_text_part_is_scanned_and_masked() {
        let guard = PrivacyGuard::new(
            PiiDetector::new(None, PiiSettings::default()).unwrap(),
            PiiViolation::Mask,
        );
        let mut body: Map<String, Value> = json!({"messages": [
            {"role": "system", "content": "Escalate to ops@example.com."},
            {"role": "user", "content": "hello"},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "x"}},
                {"type": "text", "text": "My SSN is 123-45-6789"}
            ]}
        ]})
        .as_object()
        .cloned()
        .unwrap_or_default();
        let scan = guard.scan(&body).await.unwrap();
        assert!(scan.found());
        assert_eq!(scan.signal.types, ["EMAIL", "US_SSN"]);
        assert_eq!(scan.signal.entities, 2);
        scan.mask(&mut body);
        assert_eq!(body["messages"][0]["content"], "Escalate to <EMAIL>.");
        assert_eq!(body["messages"][1]["content"], "hello");
        assert_eq!(
            body["messages"][2]["content"][1]["text"],
            "My SSN is <US_SSN>"
        );
        assert_eq!(body["messages"][2]["content"][0]["image_url"]["url"], "x");
        let text = serde_json::to_string(&body).unwrap();
        assert!(!text.contains("123-45-6789") && !text.contains("ops@example.com"));
    }
}
