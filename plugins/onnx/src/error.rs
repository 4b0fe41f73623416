//! Errors raised while loading a model. Request-time errors are `BackendError`s.

use std::path::PathBuf;

/// Why an ONNX model could not be loaded. Each message is one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// A file the configuration names does not exist.
    #[error("{what} not found at {path}; {hint}")]
    MissingFile {
        /// What the file is (e.g. "ONNX Runtime library").
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
    /// The ONNX Runtime library could not be loaded or initialised.
    #[error("ONNX Runtime could not start from {path}: {reason}")]
    Runtime {
        /// Library path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A required execution provider could not be registered.
    #[error("execution provider `{provider}` is required but could not be loaded: {reason}")]
    ProviderUnavailable {
        /// Provider name.
        provider: String,
        /// ONNX Runtime's reason.
        reason: String,
    },
    /// The tokenizer file is unusable.
    #[error("tokenizer {path}: {reason}")]
    Tokenizer {
        /// Tokenizer path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The model file is unusable or not a model of the expected shape.
    #[error("model {path}: {reason}")]
    Model {
        /// Model path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}
