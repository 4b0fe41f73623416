//! Typed configuration of the remote embeddings backend, as it appears in semrouter's config
//! file (under `embedding.vllm`). Defaults suit a vLLM server on the same network; every
//! duration is explicit so that nothing waits without a bound.

use std::time::Duration;

use serde::Deserialize;

/// How the endpoint encodes embeddings in its reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// Little-endian f32 bytes in base64: a third of the size of JSON floats and exact.
    #[default]
    Base64,
    /// JSON numbers.
    Float,
}

impl EncodingFormat {
    /// The value sent as `encoding_format`.
    pub fn as_str(self) -> &'static str {
        match self {
            EncodingFormat::Base64 => "base64",
            EncodingFormat::Float => "float",
        }
    }
}

/// What serves embeddings while the endpoint is unavailable (circuit breaker open, or a call
/// that failed after its retries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FallbackMode {
    /// A local backend of the same model, passed to
    /// [`VllmEmbedder::connect_with_fallback`](crate::VllmEmbedder::connect_with_fallback):
    /// decisions continue unchanged.
    Onnx,
    /// `embed` fails with `BackendError::Unavailable`; the service routes without semantic
    /// signals (the default route).
    #[default]
    Degraded,
    /// `embed` fails with `BackendError::Unavailable`; the service answers 503.
    Error,
}

impl FallbackMode {
    /// The name used in config, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackMode::Onnx => "onnx",
            FallbackMode::Degraded => "degraded",
            FallbackMode::Error => "error",
        }
    }
}

/// A remote OpenAI-compatible embeddings endpoint (vLLM's `/v1/embeddings`) and how to call it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VllmConfig {
    /// Server root, e.g. `http://vllm-embed:8000` (`/v1/embeddings` and `/v1/models` are appended).
    pub base_url: String,
    /// The served model name, as `GET /v1/models` lists it; also the model id heads are bound to.
    pub model: String,
    /// Embedding dimension to ask for (Matryoshka models) and to expect; when unset, whatever
    /// the model returns at start-up.
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// `base64` (default) or `float`.
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Name of an environment variable holding a bearer token. The token itself is never read
    /// from the config file, logged or printed.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Time one HTTP call may take, connecting included (default 1000 ms).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Time to open a TCP (and TLS) connection (default 200 ms).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Most texts in one call (default 32).
    #[serde(default = "default_max_batch_size")]
    pub max_batch_size: usize,
    /// How long a call waits for more texts to fill its batch while other calls are in flight
    /// (default 500 µs). A text arriving when no call is in flight is sent at once.
    #[serde(default = "default_max_wait_us")]
    pub max_wait_us: u64,
    /// Most calls outstanding at once (default 4); texts wait in the queue beyond it.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Texts waiting for a call; beyond it requests are refused at once (default 512).
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Extra attempts after a connect error, a 429 or a 5xx (default 2). Timeouts, other 4xx
    /// and malformed replies are never retried.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Backoff before retry `n` is drawn uniformly from `[b/2, b]` with `b = backoff_ms * 2^n`
    /// (default 25 ms).
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// Consecutive failed calls that open the circuit breaker (default 5).
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// How long the breaker stays open before one probe call may close it (default 5000 ms).
    #[serde(default = "default_open_ms")]
    pub open_ms: u64,
    /// Inputs are truncated to this many tokens by the server (vLLM's `truncate_prompt_tokens`)
    /// and this is the `max_tokens` the backend reports (default 256, the shipped MiniLM's limit).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Send `truncate_prompt_tokens: max_tokens`, so a long prompt is cut rather than failing its
    /// whole batch with a 400 (default true). Turn off for servers that reject the field.
    #[serde(default = "default_true")]
    pub truncate: bool,
    /// `onnx`, `degraded` (default) or `error`: see [`FallbackMode`].
    #[serde(default)]
    pub fallback: FallbackMode,
    /// Model ids of the same model under other names, accepted for the `onnx` fallback (e.g.
    /// `all-MiniLM-L6-v2-int8` for a server serving `sentence-transformers/all-MiniLM-L6-v2`).
    #[serde(default)]
    pub same_model_ids: Vec<String>,
}

fn default_timeout_ms() -> u64 {
    1000
}
fn default_connect_timeout_ms() -> u64 {
    200
}
fn default_max_batch_size() -> usize {
    32
}
fn default_max_wait_us() -> u64 {
    500
}
fn default_max_in_flight() -> usize {
    4
}
fn default_queue_capacity() -> usize {
    512
}
fn default_retries() -> u32 {
    2
}
fn default_backoff_ms() -> u64 {
    25
}
fn default_failure_threshold() -> u32 {
    5
}
fn default_open_ms() -> u64 {
    5000
}
fn default_max_tokens() -> usize {
    256
}
fn default_true() -> bool {
    true
}

/// A setting with an unacceptable value: the full key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidSetting {
    /// Dotted key, e.g. `embedding.vllm.timeout_ms`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl VllmConfig {
    /// A config with every default, for `base_url` and `model`.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            dimensions: None,
            encoding_format: EncodingFormat::default(),
            api_key_env: None,
            timeout_ms: default_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            max_batch_size: default_max_batch_size(),
            max_wait_us: default_max_wait_us(),
            max_in_flight: default_max_in_flight(),
            queue_capacity: default_queue_capacity(),
            retries: default_retries(),
            backoff_ms: default_backoff_ms(),
            failure_threshold: default_failure_threshold(),
            open_ms: default_open_ms(),
            max_tokens: default_max_tokens(),
            truncate: default_true(),
            fallback: FallbackMode::default(),
            same_model_ids: Vec::new(),
        }
    }

    /// Checks values that serde cannot; errors name the offending key under `prefix`
    /// (e.g. `embedding.vllm`).
    pub fn validate(&self, prefix: &str) -> Result<(), InvalidSetting> {
        let invalid = |key: &str, message: String| InvalidSetting {
            key: format!("{prefix}.{key}"),
            message,
        };
        let url = self.base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.len() <= "https://".len()
        {
            return Err(invalid(
                "base_url",
                format!("`{url}` must be an http:// or https:// URL"),
            ));
        }
        if let Err(e) = reqwest::Url::parse(url) {
            return Err(invalid(
                "base_url",
                format!("`{url}` is not a valid URL: {e}"),
            ));
        }
        if url.trim_end_matches('/').ends_with("/v1") {
            return Err(invalid(
                "base_url",
                "is the server root; leave out `/v1` (it is appended)".into(),
            ));
        }
        #[cfg(not(feature = "tls"))]
        if url.starts_with("https://") {
            return Err(invalid(
                "base_url",
                "https needs semrouter-vllm built with its `tls` feature".into(),
            ));
        }
        if self.model.trim().is_empty() {
            return Err(invalid("model", "must not be empty".into()));
        }
        if self.dimensions == Some(0) {
            return Err(invalid(
                "dimensions",
                "must be at least 1 (or left out)".into(),
            ));
        }
        if let Some(var) = &self.api_key_env {
            let ok = !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(invalid(
                    "api_key_env",
                    "must name an environment variable (letters, digits, `_`), not hold the token"
                        .into(),
                ));
            }
        }
        let positive = [
            ("timeout_ms", self.timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("max_batch_size", self.max_batch_size as u64),
            ("max_in_flight", self.max_in_flight as u64),
            ("queue_capacity", self.queue_capacity as u64),
            ("failure_threshold", u64::from(self.failure_threshold)),
            ("open_ms", self.open_ms),
            ("max_tokens", self.max_tokens as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        if self.retries > 10 {
            return Err(invalid(
                "retries",
                format!("({}) must be at most 10", self.retries),
            ));
        }
        if self.backoff_ms > 60_000 {
            return Err(invalid("backoff_ms", "must be at most 60000".into()));
        }
        if self.max_wait_us >= self.timeout_ms.saturating_mul(1000) {
            return Err(invalid(
                "max_wait_us",
                format!(
                    "must be shorter than {prefix}.timeout_ms ({} ms)",
                    self.timeout_ms
                ),
            ));
        }
        if let Some(id) = self.same_model_ids.iter().find(|id| id.trim().is_empty()) {
            return Err(invalid(
                "same_model_ids",
                format!("`{id}` must not be empty"),
            ));
        }
        Ok(())
    }

    /// The server root without a trailing slash.
    pub(crate) fn root(&self) -> &str {
        self.base_url.trim().trim_end_matches('/')
    }

    /// Per-call timeout.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The longest backoff before retry `attempt` (0-based).
    pub(crate) fn max_backoff(&self, attempt: u32) -> Duration {
        Duration::from_millis(self.backoff_ms.saturating_mul(1u64 << attempt.min(16)))
    }

    /// The most a caller waits for its texts: one timeout in the queue behind calls in flight,
    /// every attempt, every backoff and the batching window. Past it the caller gives up
    /// (and the fallback applies), so no request waits without a bound.
    pub fn request_budget(&self) -> Duration {
        let attempts = self.timeout() * (self.retries + 2);
        let backoffs: Duration = (0..self.retries).map(|a| self.max_backoff(a)).sum();
        attempts + backoffs + Duration::from_micros(self.max_wait_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml_like_json: serde_json::Value) -> Result<VllmConfig, serde_json::Error> {
        serde_json::from_value(yaml_like_json)
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = parse(serde_json::json!({"base_url": "http://h:8000", "model": "m"})).unwrap();
        assert_eq!(c, VllmConfig::new("http://h:8000", "m"));
        assert_eq!(c.encoding_format, EncodingFormat::Base64);
        assert_eq!(c.fallback, FallbackMode::Degraded);
        assert_eq!(
            (
                c.timeout_ms,
                c.connect_timeout_ms,
                c.max_batch_size,
                c.max_wait_us
            ),
            (1000, 200, 32, 500)
        );
        assert_eq!(
            (c.max_in_flight, c.queue_capacity, c.retries, c.backoff_ms),
            (4, 512, 2, 25)
        );
        assert_eq!(
            (c.failure_threshold, c.open_ms, c.max_tokens, c.truncate),
            (5, 5000, 256, true)
        );
        c.validate("embedding.vllm").unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_enums_are_refused() {
        let err =
            parse(serde_json::json!({"base_url": "http://h", "model": "m", "api_key": "secret"}))
                .unwrap_err();
        assert!(err.to_string().contains("unknown field `api_key`"), "{err}");
        let err =
            parse(serde_json::json!({"base_url": "http://h", "model": "m", "fallback": "retry"}))
                .unwrap_err();
        assert!(err.to_string().contains("unknown variant `retry`"), "{err}");
        let c = parse(serde_json::json!({"base_url": "http://h", "model": "m", "fallback": "onnx", "encoding_format": "float"})).unwrap();
        assert_eq!(
            (c.fallback, c.encoding_format),
            (FallbackMode::Onnx, EncodingFormat::Float)
        );
    }

    #[test]
    fn validation_names_the_key() {
        let base = VllmConfig::new("http://h:8000", "m");
        let key = |c: VllmConfig| c.validate("embedding.vllm").unwrap_err().key;
        assert_eq!(
            key(VllmConfig {
                base_url: "h:8000".into(),
                ..base.clone()
            }),
            "embedding.vllm.base_url"
        );
        assert_eq!(
            key(VllmConfig {
                base_url: "http://h:8000/v1".into(),
                ..base.clone()
            }),
            "embedding.vllm.base_url"
        );
        assert_eq!(
            key(VllmConfig {
                model: " ".into(),
                ..base.clone()
            }),
            "embedding.vllm.model"
        );
        assert_eq!(
            key(VllmConfig {
                timeout_ms: 0,
                ..base.clone()
            }),
            "embedding.vllm.timeout_ms"
        );
        assert_eq!(
            key(VllmConfig {
                max_in_flight: 0,
                ..base.clone()
            }),
            "embedding.vllm.max_in_flight"
        );
        assert_eq!(
            key(VllmConfig {
                dimensions: Some(0),
                ..base.clone()
            }),
            "embedding.vllm.dimensions"
        );
        assert_eq!(
            key(VllmConfig {
                max_wait_us: 2_000_000,
                ..base.clone()
            }),
            "embedding.vllm.max_wait_us"
        );
        assert_eq!(
            key(VllmConfig {
                retries: 11,
                ..base.clone()
            }),
            "embedding.vllm.retries"
        );
        let token_in_config = VllmConfig {
            api_key_env: Some("sk-abc.def".into()),
            ..base.clone()
        };
        assert_eq!(key(token_in_config), "embedding.vllm.api_key_env");
        VllmConfig {
            api_key_env: Some("VLLM_API_KEY".into()),
            ..base
        }
        .validate("x")
        .unwrap();
    }

    #[test]
    fn request_budget_covers_every_attempt() {
        let c = VllmConfig {
            timeout_ms: 100,
            retries: 2,
            backoff_ms: 10,
            max_wait_us: 1000,
            ..VllmConfig::new("http://h", "m")
        };
        // Queue wait + 3 attempts = 4 timeouts, backoffs 10 + 20 ms, the 1 ms window.
        assert_eq!(c.request_budget(), Duration::from_millis(400 + 30 + 1));
    }
}
