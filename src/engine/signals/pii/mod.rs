//! The PII signal: which personal data a text contains, where, and the text with it masked.
//!
//! Two detectors run over the text: validated regular expressions for data with a fixed shape
//! ([`Recognizer`]: e-mail, phone, payment card, IBAN, US SSN, IP address, URL), and an optional
//! token classifier (the Rampart model through the ONNX backend) for names, addresses and other
//! identifiers. Where both claim a span the validated regex wins ([`resolve`]). Findings carry
//! types and byte spans, never values, and the detector logs nothing about the text, so what
//! was found cannot leak into logs or metric labels.
//!
//! ```text
//! text -> recognizers (regex + validation) --\
//!      -> token classifier -> model (BIO) ----> resolve -> entities -> mask
//! ```
//!
//! Running the model costs a forward pass per 480-byte window, so the caller decides when to
//! detect (only when a policy needs it) and [`PiiFindings::elapsed`] reports what it cost.

mod mask;
mod model;
pub(crate) mod recognizers;
mod resolve;
mod score;
mod types;

use std::sync::Arc;
use std::time::{Duration, Instant};

use semrouter_embedder::{BackendError, StageTiming, TokenClassifier};
use serde::{Deserialize, Serialize};

pub use mask::mask;
pub use recognizers::Recognizer;
pub use score::{score, Counts, Matching, Scoreboard};
pub use types::{PiiEntity, PiiSource, PiiSpan, PiiType, UnknownPiiType};

use model::LabelMap;
use recognizers::Recognizers;

/// What the detector runs, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiSettings {
    /// A word the model labels with a probability below this counts as not PII (0 < t <= 1).
    /// Higher trades recall for precision.
    pub model_threshold: f32,
    /// The regex recognisers that run; all of them by default.
    pub recognizers: Vec<Recognizer>,
    /// The model reads at most this many bytes of a text (cut between words), so one huge
    /// prompt cannot hold the model for seconds; the regexes always read all of it. About 34
    /// windows of 480 bytes by default.
    pub model_max_bytes: usize,
}

impl Default for PiiSettings {
    fn default() -> Self {
        Self {
            model_threshold: 0.5,
            recognizers: Recognizer::ALL.to_vec(),
            model_max_bytes: 16 * 1024,
        }
    }
}

/// Why a [`PiiDetector`] could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PiiConfigError {
    /// The model threshold is not in (0, 1].
    #[error("model_threshold must be in (0, 1], not {0}")]
    Threshold(String),
    /// The model would read nothing.
    #[error("model_max_bytes must be at least 1")]
    ModelMaxBytes,
    /// The token classifier's labels are not a BIO scheme over PII types this detector knows.
    #[error("the token classifier `{model}` cannot be used for PII: {reason}")]
    ModelLabels {
        /// Model id.
        model: String,
        /// What is wrong with its labels.
        reason: String,
    },
    /// A recogniser's pattern did not compile (a bug, caught when the detector is built).
    #[error("PII recogniser pattern: {0}")]
    Pattern(String),
}

/// What the detector found in one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PiiFindings {
    /// Entities in text order, never overlapping.
    pub entities: Vec<PiiEntity>,
    /// The text with every entity replaced by `<TYPE>`.
    pub masked: String,
    /// Wall-clock time of the whole detection (regexes, model, decoding, masking).
    pub elapsed: Duration,
    /// The model's share: tokenise, queue and infer (the slowest window's), when it ran.
    #[serde(skip)]
    pub model_timing: Option<StageTiming>,
    /// Tokens the model ran over (special tokens and window overlaps included); 0 without it.
    pub model_tokens: usize,
    /// True when the text was longer than `model_max_bytes` and the model read only its start
    /// (the regexes read all of it).
    pub model_truncated: bool,
}

impl PiiFindings {
    /// The distinct types found, in canonical order.
    pub fn types(&self) -> Vec<PiiType> {
        let mut types: Vec<PiiType> = self.entities.iter().map(|e| e.kind).collect();
        types.sort();
        types.dedup();
        types
    }

    /// Whether any entity of `kind` was found.
    pub fn contains(&self, kind: PiiType) -> bool {
        self.entities.iter().any(|e| e.kind == kind)
    }

    /// The entities as typed spans (for scoring).
    pub fn spans(&self) -> Vec<PiiSpan> {
        self.entities.iter().map(PiiEntity::span).collect()
    }
}

/// Finds PII in texts: validated regexes plus an optional token classifier. Built once per
/// config; `detect` is cheap to call concurrently (the model's queue batches the work).
pub struct PiiDetector {
    model: Option<(Arc<dyn TokenClassifier>, LabelMap)>,
    recognizers: Recognizers,
    settings: PiiSettings,
}

impl std::fmt::Debug for PiiDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiiDetector")
            .field(
                "model",
                &self.model.as_ref().map(|(m, _)| m.info().model_id.clone()),
            )
            .field("settings", &self.settings)
            .finish()
    }
}

impl PiiDetector {
    /// A detector running `settings.recognizers` and, when given, the token classifier `model`
    /// (its labels must be BIO tags over types [`PiiType::from_model_label`] knows; labels it
    /// does not know are ignored and named once in the log).
    pub fn new(
        model: Option<Arc<dyn TokenClassifier>>,
        settings: PiiSettings,
    ) -> Result<Self, PiiConfigError> {
        if !(settings.model_threshold > 0.0 && settings.model_threshold <= 1.0) {
            return Err(PiiConfigError::Threshold(
                settings.model_threshold.to_string(),
            ));
        }
        if settings.model_max_bytes == 0 {
            return Err(PiiConfigError::ModelMaxBytes);
        }
        let recognizers = Recognizers::new(&settings.recognizers)
            .map_err(|e| PiiConfigError::Pattern(e.to_string()))?;
        let model = match model {
            None => None,
            Some(model) => {
                let id = model.info().model_id.clone();
                let error = |reason: String| PiiConfigError::ModelLabels {
                    model: id.clone(),
                    reason,
                };
                let (labels, ignored) = LabelMap::new(model.labels()).map_err(error)?;
                if labels.len() != model.info().dimension {
                    return Err(error(format!(
                        "it names {} labels but outputs {} per token",
                        labels.len(),
                        model.info().dimension
                    )));
                }
                if !ignored.is_empty() {
                    // Label names come from the model's config, never from a text.
                    tracing::info!(model = %id, ignored = ?ignored, "PII detector ignores model labels it does not report");
                }
                Some((model, labels))
            }
        };
        Ok(Self {
            model,
            recognizers,
            settings,
        })
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &PiiSettings {
        &self.settings
    }

    /// Whether a token classifier runs besides the regexes.
    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// What the regex recognisers alone find in `text`: synchronous and cheap, for callers
    /// that cannot wait for the model (the cache's write path screens answers with it).
    pub fn detect_patterns(&self, text: &str) -> Vec<PiiEntity> {
        self.recognizers.find(text)
    }

    /// Finds the PII in `text`. Errors only when the model's backend fails or refuses (a full
    /// queue is [`BackendError::Overloaded`]); a text without PII, or an empty one, is not an error.
    pub async fn detect(&self, text: &str) -> Result<PiiFindings, BackendError> {
        let started = Instant::now();
        let regex = self.recognizers.find(text);
        let scanned = prefix_between_words(text, self.settings.model_max_bytes);
        let (found_by_model, model_timing, model_tokens) = match &self.model {
            Some((model, labels)) if !scanned.trim().is_empty() => {
                let predictions = model
                    .classify_tokens(vec![scanned.to_string()])
                    .await?
                    .pop()
                    .ok_or_else(|| {
                        BackendError::Inference(
                            "the token classifier returned no predictions".into(),
                        )
                    })?;
                let entities =
                    model::decode(scanned, &predictions, labels, self.settings.model_threshold);
                (entities, Some(predictions.timing), predictions.tokens)
            }
            _ => (Vec::new(), None, 0),
        };
        let entities = resolve::resolve(regex, found_by_model);
        let masked = mask(text, &entities);
        Ok(PiiFindings {
            entities,
            masked,
            elapsed: started.elapsed(),
            model_timing,
            model_tokens,
            model_truncated: self.model.is_some() && scanned.len() < text.len(),
        })
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends at whitespace (or, with no
/// whitespace in reach, at a character boundary).
fn prefix_between_words(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text[..end]
        .rfind(char::is_whitespace)
        .filter(|&i| i > 0)
        .unwrap_or(end);
    &text[..cut]
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use semrouter_embedder::{BackendInfo, TokenPredictions};

    use super::*;

    /// A token classifier that labels every whitespace-separated word by a fixed rule.
    struct Fake {
        labels: Vec<String>,
        info: BackendInfo,
    }

    impl Fake {
        fn new(labels: &[&str]) -> Self {
            Self {
                labels: labels.iter().map(|s| s.to_string()).collect(),
                info: BackendInfo {
                    backend: "fake".into(),
                    model_id: "fake-ner".into(),
                    dimension: labels.len(),
                    max_tokens: 512,
                    execution_provider: "cpu".into(),
                    requested_provider: "cpu".into(),
                },
            }
        }
    }

    #[async_trait]
    impl TokenClassifier for Fake {
        async fn classify_tokens(
            &self,
            texts: Vec<String>,
        ) -> Result<Vec<TokenPredictions>, BackendError> {
            Ok(texts
                .iter()
                .map(|text| {
                    let mut offsets = Vec::new();
                    let mut probabilities = Vec::new();
                    let mut at = 0;
                    for word in text.split(' ') {
                        let label = match word {
                            "Anna" => 1,                    // B-GIVEN_NAME
                            "Smith" | "4111" | "1111" => 2, // B-SURNAME; the card misread
                            w if w.contains('@') => 1,      // misreads the e-mail as a name
                            _ => 0,
                        };
                        offsets.push((at, at + word.len()));
                        probabilities.extend((0..self.labels.len()).map(|i| {
                            if i == label {
                                0.9
                            } else {
                                0.1 / (self.labels.len() - 1) as f32
                            }
                        }));
                        at += word.len() + 1;
                    }
                    TokenPredictions {
                        offsets,
                        probabilities,
                        labels: self.labels.len(),
                        tokens: at,
                        timing: StageTiming::default(),
                    }
                })
                .collect())
        }

        fn labels(&self) -> &[String] {
            &self.labels
        }

        fn info(&self) -> &BackendInfo {
            &self.info
        }
    }

    fn detector(settings: PiiSettings) -> PiiDetector {
        let model: Arc<dyn TokenClassifier> =
            Arc::new(Fake::new(&["O", "B-GIVEN_NAME", "B-SURNAME"]));
        PiiDetector::new(Some(model), settings).unwrap()
    }

    #[tokio::test]
    async fn regexes_and_model_together_with_the_regex_winning_overlaps() {
        let text = "Anna Smith paid with 4111 1111 1111 1111 from anna@example.com";
        let found = detector(PiiSettings::default()).detect(text).await.unwrap();
        let got: Vec<(PiiType, &str, PiiSource)> = found
            .entities
            .iter()
            .map(|e| (e.kind, &text[e.start..e.end], e.source))
            .collect();
        assert_eq!(
            got,
            [
                (PiiType::Person, "Anna Smith", PiiSource::Model),
                (PiiType::CreditCard, "4111 1111 1111 1111", PiiSource::Regex),
                (PiiType::Email, "anna@example.com", PiiSource::Regex),
            ]
        );
        assert_eq!(
            found.masked,
            "<PERSON> paid with <CREDIT_CARD> from <EMAIL>"
        );
        assert_eq!(
            found.types(),
            [PiiType::Person, PiiType::Email, PiiType::CreditCard]
        );
        assert!(found.contains(PiiType::Email) && !found.contains(PiiType::Phone));
        assert!(found.model_timing.is_some() && found.model_tokens > 0);
    }

    #[tokio::test]
    async fn switched_off_recognisers_and_no_model() {
        let settings = PiiSettings {
            recognizers: vec![Recognizer::Email],
            ..PiiSettings::default()
        };
        let text = "Anna Smith paid with 4111 1111 1111 1111 from anna@example.com";
        let regex_only = PiiDetector::new(None, settings.clone()).unwrap();
        assert!(!regex_only.has_model());
        let found = regex_only.detect(text).await.unwrap();
        assert_eq!(
            found.masked,
            "Anna Smith paid with 4111 1111 1111 1111 from <EMAIL>"
        );
        assert_eq!(found.model_tokens, 0);
        // With the card recogniser off, the model's misreading of the card stands.
        let found = detector(settings).detect(text).await.unwrap();
        assert_eq!(found.masked, "<PERSON> paid with <PERSON> from <EMAIL>");
    }

    #[tokio::test]
    async fn empty_text_finds_nothing_without_calling_the_model() {
        let found = detector(PiiSettings::default())
            .detect("   ")
            .await
            .unwrap();
        assert!(found.entities.is_empty() && found.model_timing.is_none());
        assert_eq!(found.masked, "   ");
    }

    #[tokio::test]
    async fn the_model_reads_at_most_model_max_bytes_and_the_regexes_all() {
        let settings = PiiSettings {
            model_max_bytes: 14,
            ..PiiSettings::default()
        };
        let text = "Anna Smith and Anna Smith wrote anna@example.com";
        let found = detector(settings).detect(text).await.unwrap();
        assert_eq!(found.masked, "<PERSON> and Anna Smith wrote <EMAIL>");
        assert!(found.model_truncated);
        assert!(
            !detector(PiiSettings::default())
                .detect(text)
                .await
                .unwrap()
                .model_truncated
        );
        assert_eq!(prefix_between_words("ab cd ef", 7), "ab cd");
        assert_eq!(
            prefix_between_words("abcdéf", 5),
            "abcd",
            "never inside a character"
        );
        assert_eq!(prefix_between_words("ab", 7), "ab");
    }

    #[test]
    fn bad_settings_and_unusable_models_are_config_errors() {
        for threshold in [0.0, -1.0, 1.5, f32::NAN] {
            let settings = PiiSettings {
                model_threshold: threshold,
                ..PiiSettings::default()
            };
            assert!(
                matches!(
                    PiiDetector::new(None, settings),
                    Err(PiiConfigError::Threshold(_))
                ),
                "{threshold}"
            );
        }
        let zero = PiiSettings {
            model_max_bytes: 0,
            ..PiiSettings::default()
        };
        assert_eq!(
            PiiDetector::new(None, zero).unwrap_err(),
            PiiConfigError::ModelMaxBytes
        );
        let model: Arc<dyn TokenClassifier> = Arc::new(Fake::new(&["O", "B-MISC", "I-MISC"]));
        let err = PiiDetector::new(Some(model), PiiSettings::default()).unwrap_err();
        assert!(err.to_string().contains("fake-ner"), "{err}");
    }

    #[test]
    fn settings_read_from_config_with_defaults() {
        let s: PiiSettings =
            serde_json::from_str(r#"{"recognizers": ["EMAIL", "US_SSN"]}"#).unwrap();
        assert_eq!(s.recognizers, [Recognizer::Email, Recognizer::UsSsn]);
        assert_eq!(s.model_threshold, 0.5);
        assert!(
            serde_json::from_str::<PiiSettings>(r#"{"threshold": 0.5}"#).is_err(),
            "unknown keys are refused"
        );
        assert!(
            serde_json::from_str::<PiiSettings>(r#"{"recognizers": ["PERSON"]}"#).is_err(),
            "PERSON has no regex"
        );
    }
}
