//! ONNX Runtime backend for semrouter.
//!
//! Runs BERT-family encoders (BERT and MiniLM with `token_type_ids`, ModernBERT without, found
//! from the model's declared inputs) as an [`Embedder`](semrouter_embedder::Embedder),
//! sequence-classification models as a [`TextClassifier`](semrouter_embedder::TextClassifier),
//! and token-classification models (BIO taggers such as a PII model) as a
//! [`TokenClassifier`](semrouter_embedder::TokenClassifier).
//! Each model has one or more sessions, each owned by a worker thread that takes length-grouped
//! batches from a bounded queue, so no lock serialises inference; an optional wide "solo"
//! session serves a request that arrives alone.

mod classifier;
mod config;
mod encoder;
mod error;
mod model;
mod pooling;
mod provider;
mod queue;
mod runtime;
mod session;
mod token_classifier;
mod tokenize;
mod worker;

use std::path::Path;

pub use classifier::OnnxClassifier;
pub use config::{InvalidSetting, OnnxModelConfig, Pooling, ProviderKind, ProviderPolicy};
pub use encoder::OnnxEncoder;
pub use error::OnnxError;
pub use token_classifier::OnnxTokenClassifier;
pub use tokenize::{TextTokenizer, Tokens};

/// The loaded ONNX Runtime library, plus the advice given when a file is missing.
#[derive(Clone)]
pub struct OnnxRuntime {
    environment: &'static ort::environment::Environment,
    fetch_hint: String,
}

impl OnnxRuntime {
    /// Opens the ONNX Runtime shared library at `library`. `fetch_hint` says how to fetch
    /// missing files (e.g. "run `make setup`") and ends every missing-file error.
    pub fn load(library: &Path, fetch_hint: &str) -> Result<Self, OnnxError> {
        Ok(Self {
            environment: runtime::environment(library, fetch_hint)?,
            fetch_hint: fetch_hint.to_string(),
        })
    }

    pub(crate) fn environment(&self) -> &'static ort::environment::Environment {
        self.environment
    }

    /// A one-line error naming `path` and how to fetch it, unless the file exists.
    pub(crate) fn require_file(&self, what: &'static str, path: &Path) -> Result<(), OnnxError> {
        if path.is_file() {
            Ok(())
        } else {
            Err(OnnxError::MissingFile {
                what,
                path: path.to_path_buf(),
                hint: self.fetch_hint.clone(),
            })
        }
    }
}
