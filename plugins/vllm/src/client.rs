//! HTTP calls to the endpoint: one pooled keep-alive client, each call bounded by the timeout,
//! retried with jittered exponential backoff only where another attempt can help.

use std::time::{Duration, Instant};

use rand::Rng as _;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use crate::breaker::Breaker;
use crate::config::VllmConfig;
use crate::error::{CallError, VllmError};
use crate::reply::{self, EmbeddingsRequest, Parsed};
use crate::stats::Stats;

/// The pooled HTTP client and the two URLs it calls.
pub(crate) struct Client {
    http: reqwest::Client,
    embeddings_url: String,
    models_url: String,
    model: String,
    encoding_format: &'static str,
    dimensions: Option<usize>,
    truncate_prompt_tokens: Option<usize>,
    timeout: Duration,
    retries: u32,
    config: VllmConfig,
}

// No Debug derive: reqwest's default headers hold the token (marked sensitive, but keep it
// out of every formatter anyway).
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("embeddings_url", &self.embeddings_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the client; reads the bearer token from the environment variable the config names.
    pub(crate) fn new(config: &VllmConfig) -> Result<Self, VllmError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(var) = &config.api_key_env {
            let token = std::env::var(var)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| VllmError::MissingToken { var: var.clone() })?;
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .map_err(|_| VllmError::BadToken { var: var.clone() })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(config.timeout())
            .pool_max_idle_per_host(config.max_in_flight.saturating_mul(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            // An in-cluster endpoint is called directly: an HTTP(S)_PROXY meant for other
            // traffic must not silently sit between the router and its embeddings.
            .no_proxy()
            .build()
            .map_err(|e| VllmError::Client(e.to_string()))?;
        let root = config.root();
        Ok(Self {
            http,
            embeddings_url: format!("{root}/v1/embeddings"),
            models_url: format!("{root}/v1/models"),
            model: config.model.clone(),
            encoding_format: config.encoding_format.as_str(),
            dimensions: config.dimensions,
            truncate_prompt_tokens: config.truncate.then_some(config.max_tokens),
            timeout: config.timeout(),
            retries: config.retries,
            config: config.clone(),
        })
    }

    pub(crate) fn models_url(&self) -> &str {
        &self.models_url
    }

    pub(crate) fn embeddings_url(&self) -> &str {
        &self.embeddings_url
    }

    /// `GET /v1/models`: the served model ids.
    pub(crate) async fn models(&self) -> Result<Vec<String>, CallError> {
        let body = self.send(self.http.get(&self.models_url)).await?;
        reply::parse_models(&body).map_err(CallError::Malformed)
    }

    /// One `POST /v1/embeddings` attempt for `texts`, checked against `dimension`.
    pub(crate) async fn embed_once(
        &self,
        texts: &[&str],
        dimension: Option<usize>,
    ) -> Result<Parsed, CallError> {
        let request = EmbeddingsRequest {
            model: &self.model,
            input: texts.to_vec(),
            encoding_format: self.encoding_format,
            dimensions: self.dimensions,
            truncate_prompt_tokens: self.truncate_prompt_tokens,
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| CallError::Malformed(format!("cannot encode the request: {e}")))?;
        let reply = self
            .send(self.http.post(&self.embeddings_url).body(body))
            .await?;
        reply::parse_embeddings(&reply, texts.len(), dimension)
    }

    /// Embeds `texts`, retrying connect errors, 429 and 5xx with jittered exponential backoff;
    /// stops retrying once the breaker has opened (other calls saw the endpoint fail).
    pub(crate) async fn embed(
        &self,
        texts: &[&str],
        dimension: Option<usize>,
        breaker: &Breaker,
        stats: &Stats,
    ) -> Result<Parsed, CallError> {
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let result = self.embed_once(texts, dimension).await;
            stats.attempt(
                &self.model,
                texts.len(),
                started.elapsed(),
                result.as_ref().err(),
            );
            match result {
                Err(e) if e.retryable() && attempt < self.retries && !breaker.rejects_now() => {
                    let ceiling = self.config.max_backoff(attempt);
                    let backoff = rand::rng().random_range(ceiling / 2..=ceiling);
                    tracing::debug!(model = %self.model, attempt, reason = e.reason(), backoff_ms = backoff.as_millis() as u64, "retrying the embeddings call");
                    stats.retry(&self.model, e.reason());
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Sends a request and reads the whole body, within the timeout; non-2xx becomes
    /// [`CallError::Status`] with the server's message.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, CallError> {
        let call = async {
            let response = request.send().await.map_err(|e| self.transport(e))?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| self.transport(e))?;
            if status.is_success() {
                Ok(body.to_vec())
            } else {
                Err(CallError::Status {
                    status: status.as_u16(),
                    message: reply::error_message(&body),
                })
            }
        };
        // reqwest's own timeout covers the same span; this one makes the bound independent of it.
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(self.timeout.as_millis() as u64)),
        }
    }

    /// Classifies a transport error. Everything that is not a timeout (refused, reset, closed
    /// mid-reply) is a connection failure, which a retry on a fresh connection may fix.
    fn transport(&self, e: reqwest::Error) -> CallError {
        if e.is_timeout() {
            CallError::Timeout(self.timeout.as_millis() as u64)
        } else {
            // The URL is ours; reqwest's message may repeat it, never a text or the token.
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            CallError::Connect(message)
        }
    }
}
