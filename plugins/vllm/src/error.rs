//! Errors: [`VllmError`] stops start-up; [`CallError`] is why one HTTP call failed, which decides
//! whether it is retried, whether it counts against the circuit breaker and what the caller sees.

use crate::config::InvalidSetting;

/// Why the backend could not start. Each message is one line that says what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum VllmError {
    /// A setting has an unacceptable value.
    #[error("invalid setting {0}")]
    InvalidSetting(#[from] InvalidSetting),
    /// `api_key_env` names a variable that is unset or empty.
    #[error("the environment variable `{var}` (embedding.vllm.api_key_env) is unset or empty; export the endpoint's bearer token in it")]
    MissingToken {
        /// The variable's name (never its value).
        var: String,
    },
    /// The token cannot be sent as an HTTP header (e.g. it holds a newline).
    #[error("the token in `{var}` is not a valid HTTP header value")]
    BadToken {
        /// The variable's name.
        var: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The endpoint did not answer a start-up call properly.
    #[error("vLLM endpoint {url}: {reason}")]
    Endpoint {
        /// The URL called.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// `GET /v1/models` does not list the configured model.
    #[error("vLLM endpoint {url} does not serve model `{model}` (it serves: {served}); set embedding.vllm.model to the served name")]
    ModelNotServed {
        /// `/v1/models` URL.
        url: String,
        /// The configured model.
        model: String,
        /// The ids it lists.
        served: String,
    },
    /// The model's embeddings do not have the configured dimension.
    #[error("model `{model}` returns {served}-dimensional embeddings, embedding.vllm.dimensions asks for {configured}")]
    DimensionMismatch {
        /// The model.
        model: String,
        /// Configured `dimensions`.
        configured: usize,
        /// What the endpoint returned.
        served: usize,
    },
    /// The fallback embedder is not the same model.
    #[error("the fallback embedder ({fallback_model}, {fallback_dimension}-d) is not the remote model ({model}, {dimension}-d): {reason}")]
    FallbackMismatch {
        /// The remote model.
        model: String,
        /// Its dimension.
        dimension: usize,
        /// The fallback's model id.
        fallback_model: String,
        /// Its dimension.
        fallback_dimension: usize,
        /// What differs and what to do.
        reason: String,
    },
    /// `fallback: onnx` without a fallback embedder, or a fallback given for another mode.
    #[error("{0}")]
    FallbackSetup(String),
}

/// Why one call to the endpoint failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No connection could be made (refused, reset before a reply, DNS, connect timeout).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The call took longer than `timeout_ms`.
    #[error("no reply within {0} ms")]
    Timeout(u64),
    /// A non-2xx status; `message` is the server's own (from its error envelope) when it sent one.
    #[error("HTTP {status}: {message}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// A 2xx reply that cannot be used: bad JSON, wrong count, index or dimension, bad base64,
    /// NaN or infinite values.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// The circuit breaker is open; no call was made.
    #[error("circuit breaker open after repeated failures")]
    BreakerOpen,
}

impl CallError {
    /// Connect errors, 429 and 5xx may succeed on another attempt; nothing else is retried
    /// (a timeout means the server is already slow, and a bad reply would come back the same).
    pub(crate) fn retryable(&self) -> bool {
        match self {
            CallError::Connect(_) => true,
            CallError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// Whether the failure says the endpoint is unwell (it counts towards opening the breaker).
    /// 400, 413 and 422 are about one request's input, and prove the server is up.
    pub(crate) fn counts_against_endpoint(&self) -> bool {
        !matches!(
            self,
            CallError::Status {
                status: 400 | 413 | 422,
                ..
            } | CallError::BreakerOpen
        )
    }

    /// A short label for metrics.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            CallError::Connect(_) => "connect",
            CallError::Timeout(_) => "timeout",
            CallError::Status { status: 429, .. } => "status_429",
            CallError::Status { status, .. } if *status >= 500 => "status_5xx",
            CallError::Status { .. } => "status_4xx",
            CallError::Malformed(_) => "malformed",
            CallError::BreakerOpen => "breaker_open",
        }
    }
}
