//! Remote embeddings for semrouter: an OpenAI-compatible embeddings endpoint, as vLLM serves it
//! (`POST {base_url}/v1/embeddings`, `GET {base_url}/v1/models`), behind the
//! [`Embedder`](semrouter_embedder::Embedder) trait.
//!
//! Large deployments already run an embedding model on their vLLM fleet; this backend lets the
//! router use it instead of its own CPU. Concurrent requests are coalesced into batched calls
//! with a bound on calls in flight and a bounded queue; each call has a timeout, connect errors,
//! 429 and 5xx are retried with jittered backoff, and a circuit breaker stops calling an
//! endpoint that keeps failing. While it is unavailable the configured [`FallbackMode`] applies:
//! a local embedder of the same model (`onnx`), or `BackendError::Unavailable` for the service
//! to route without semantic signals (`degraded`) or answer 503 (`error`). Malformed replies are
//! errors, never used.
//!
//! ```no_run
//! # async fn example(local: std::sync::Arc<dyn semrouter_embedder::Embedder>) -> Result<(), semrouter_vllm::VllmError> {
//! use semrouter_embedder::Embedder;
//! use semrouter_vllm::{FallbackMode, VllmConfig, VllmEmbedder};
//!
//! let mut config = VllmConfig::new("http://vllm-embed:8000", "sentence-transformers/all-MiniLM-L6-v2");
//! config.fallback = FallbackMode::Onnx;
//! config.same_model_ids = vec!["all-MiniLM-L6-v2-int8".into()];
//! let embedder = VllmEmbedder::connect_with_fallback(config, local).await?;
//! let rows = embedder.embed(vec!["Solve 3x + 5 = 20 for x".into()]).await;
//! # Ok(()) }
//! ```

mod breaker;
mod client;
mod config;
mod embedder;
mod error;
mod queue;
mod reply;
mod stats;

pub use breaker::BreakerState;
pub use config::{EncodingFormat, FallbackMode, InvalidSetting, VllmConfig};
pub use embedder::VllmEmbedder;
pub use error::{CallError, VllmError};
pub use stats::VllmStats;
