//! The seam between semrouter and the models it runs.
//!
//! The service knows models only through these traits: [`Embedder`] turns texts into vectors
//! (ONNX Runtime in process, or a remote vLLM embeddings endpoint), [`TextClassifier`] turns
//! texts into one logit per label, and [`TokenClassifier`] labels every token of a text (for
//! named-entity and PII tagging). Nothing here depends on a runtime, a model format or HTTP.

use std::time::Duration;

use async_trait::async_trait;

/// The result of running one text through a model: a pooled embedding or a row of logits.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The embedding (for an [`Embedder`]) or the logits in label order (for a [`TextClassifier`]).
    pub values: Vec<f32>,
    /// Tokens the model actually saw, after truncation.
    pub tokens: usize,
    /// Where the time went, so the service can report per-stage latency.
    pub timing: StageTiming,
}

/// Time spent per stage for one text. Stages a backend does not have stay zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTiming {
    /// Turning text into token ids.
    pub tokenize: Duration,
    /// Waiting for a place in a batch.
    pub queue: Duration,
    /// The forward pass of the batch this text ran in.
    pub infer: Duration,
}

/// What a backend is, reported at start-up, in `/v1/models` and used to bind trained heads
/// to the model that produced their training embeddings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// Backend kind, e.g. `onnx` or `vllm`.
    pub backend: String,
    /// Model identity; heads and cache entries are only valid for the model id they were made with.
    pub model_id: String,
    /// Length of each [`Encoded::values`] row: embedding dimension or number of labels.
    pub dimension: usize,
    /// Inputs longer than this many tokens are truncated, never rejected.
    pub max_tokens: usize,
    /// The execution provider that really runs (`cpu`, `cuda`, `tensorrt`, or `remote`).
    pub execution_provider: String,
    /// The execution provider the configuration asked for.
    pub requested_provider: String,
}

/// Whether a backend can serve requests now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Serving normally.
    Ready,
    /// Serving, but not as configured (for example fallen back to a slower path).
    Degraded(String),
    /// Not serving.
    Unavailable(String),
}

/// Why a backend could not produce an output. Each variant maps to one client-visible status.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    /// The bounded queue is full; the caller should shed load (HTTP 429) rather than wait.
    #[error("the inference queue is full ({capacity} texts waiting); retry shortly")]
    Overloaded {
        /// Configured queue capacity.
        capacity: usize,
    },
    /// An input had no text to encode.
    #[error("input {index} is empty")]
    EmptyInput {
        /// Position of the offending text in the batch.
        index: usize,
    },
    /// The backend is stopping and accepts no new work.
    #[error("the inference backend is shutting down")]
    ShuttingDown,
    /// The backend cannot serve at all (for example a remote endpoint is down).
    #[error("the inference backend is unavailable: {0}")]
    Unavailable(String),
    /// The model failed while running.
    #[error("inference failed: {0}")]
    Inference(String),
}

/// An embedding backend: texts in, one vector per text out, in order.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Embeds a batch of texts. The reply has exactly one [`Encoded`] per input, in input order.
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Encoded>, BackendError>;

    /// Identity, dimension and execution provider of the backend.
    fn info(&self) -> &BackendInfo;

    /// Whether the backend can serve now.
    async fn health(&self) -> Health;
}

/// A sequence-classification backend: texts in, one row of logits per text out.
#[async_trait]
pub trait TextClassifier: Send + Sync {
    /// Classifies a batch of texts; each reply row holds one logit per entry of [`Self::labels`].
    async fn classify(&self, texts: Vec<String>) -> Result<Vec<Encoded>, BackendError>;

    /// Label names in logit order, as the model declares them.
    fn labels(&self) -> &[String];

    /// Identity and execution provider of the backend.
    fn info(&self) -> &BackendInfo;
}

/// The label probabilities of every token of one text, from a [`TokenClassifier`].
///
/// Special tokens ([CLS], [SEP], padding) are left out; every entry is a real token of the
/// text, in text order, with the byte range of the text it came from. Offsets are byte offsets
/// into the text as given (so `&text[start..end]` is the token's source), because Rust strings
/// are indexed by byte.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPredictions {
    /// Byte range `(start, end)` of each token in the original text.
    pub offsets: Vec<(usize, usize)>,
    /// Row-major `[offsets.len(), labels]` probabilities (a softmax over the labels per token).
    pub probabilities: Vec<f32>,
    /// Number of labels per token (the width of each row of [`Self::probabilities`]).
    pub labels: usize,
    /// Tokens the model ran over, special tokens and overlapping windows included: the cost.
    pub tokens: usize,
    /// Where the time went; for a text run in several windows, each stage is the slowest
    /// window's (windows may share a forward pass).
    pub timing: StageTiming,
}

impl TokenPredictions {
    /// Number of tokens with predictions.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when the text produced no tokens.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The label probabilities of token `index` (one per label, in label order), or an empty
    /// slice when `index` is out of range.
    pub fn token(&self, index: usize) -> &[f32] {
        let start = index.saturating_mul(self.labels);
        self.probabilities
            .get(start..start.saturating_add(self.labels))
            .unwrap_or(&[])
    }
}

/// A token-classification backend (e.g. a BIO-tagging NER or PII model): texts in, the label
/// probabilities of every token with its byte offsets out. Texts longer than the model's
/// window are covered whole by the backend (in overlapping windows), not cut.
#[async_trait]
pub trait TokenClassifier: Send + Sync {
    /// Labels every token of each text; exactly one [`TokenPredictions`] per input, in order.
    async fn classify_tokens(
        &self,
        texts: Vec<String>,
    ) -> Result<Vec<TokenPredictions>, BackendError>;

    /// Label names in probability order, as the model declares them (e.g. `O`, `B-EMAIL`).
    fn labels(&self) -> &[String];

    /// Identity and execution provider of the backend.
    fn info(&self) -> &BackendInfo;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rows_follow_the_label_count() {
        let p = TokenPredictions {
            offsets: vec![(0, 2), (3, 5)],
            probabilities: vec![0.9, 0.1, 0.2, 0.8],
            labels: 2,
            tokens: 4,
            timing: StageTiming::default(),
        };
        assert_eq!(p.len(), 2);
        assert_eq!(p.token(0), &[0.9, 0.1]);
        assert_eq!(p.token(1), &[0.2, 0.8]);
        assert!(p.token(2).is_empty());
    }
}
