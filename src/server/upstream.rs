//! The proxy's upstreams: one pooled keep-alive HTTP client, each model's chat URL and bearer
//! token (read once at start-up from the variable `models[].upstream.api_key_env` names), and
//! the call that waits, bounded, for an upstream's response head.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use crate::config::{ModelConfig, ProxyConfig};

use super::error::ApiError;

/// Why the upstreams could not be set up (start-up stops; the message names the key).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    /// `api_key_env` names a variable that is unset or empty.
    #[error("the environment variable `{var}` ({key}) is unset or empty; export the upstream's bearer token in it")]
    MissingToken {
        /// The variable's name.
        var: String,
        /// The config key that names it.
        key: String,
    },
    /// The variable's value cannot be sent as a header.
    #[error("the environment variable `{var}` ({key}) does not hold a valid bearer token")]
    BadToken {
        /// The variable's name.
        var: String,
        /// The config key that names it.
        key: String,
    },
    /// The HTTP client could not be built.
    #[error("the proxy's HTTP client: {0}")]
    Client(String),
}

/// Why one upstream call produced no response head.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The model has no `models[].upstream`.
    #[error("the model `{model}` has no upstream configured (models[].upstream.base_url)")]
    NotConfigured {
        /// The model.
        model: String,
    },
    /// No connection could be made.
    #[error("cannot connect to the upstream of `{model}`: {detail}")]
    Connect {
        /// The model.
        model: String,
        /// What the client reported (without the URL).
        detail: String,
    },
    /// The connection failed before a response head arrived.
    #[error("the upstream of `{model}` failed before answering: {detail}")]
    Failed {
        /// The model.
        model: String,
        /// What the client reported (without the URL).
        detail: String,
    },
    /// Nothing arrived within `proxy.first_byte_timeout_ms` (or the total budget ran out).
    #[error("the upstream of `{model}` sent no answer within {waited_ms} ms")]
    Timeout {
        /// The model.
        model: String,
        /// How long the proxy waited.
        waited_ms: u64,
    },
}

impl CallError {
    /// Whether the next-ranked candidate should be tried: the request never reached a model
    /// that could answer it. A timeout is not retried: the model may still be working on it,
    /// and a second attempt would double the client's wait.
    pub fn retryable(&self) -> bool {
        !matches!(self, CallError::Timeout { .. })
    }

    /// The metric label of the outcome.
    pub fn label(&self) -> &'static str {
        match self {
            CallError::NotConfigured { .. } => "not_configured",
            CallError::Connect { .. } => "connect_error",
            CallError::Failed { .. } => "error",
            CallError::Timeout { .. } => "timeout",
        }
    }
}

impl From<CallError> for ApiError {
    fn from(error: CallError) -> Self {
        let message = error.to_string();
        match error {
            CallError::NotConfigured { .. } => ApiError::upstream_not_configured(message),
            CallError::Connect { .. } | CallError::Failed { .. } => {
                ApiError::upstream_unavailable(message)
            }
            CallError::Timeout { .. } => ApiError::upstream_timeout(message),
        }
    }
}

/// One model's endpoint.
struct Target {
    url: String,
    /// `Bearer <token>`, marked sensitive so no formatter prints it.
    auth: Option<HeaderValue>,
}

/// Every configured upstream behind one connection pool.
pub struct Upstreams {
    http: reqwest::Client,
    targets: HashMap<String, Target>,
    config: ProxyConfig,
}

// No Debug derive: the targets hold tokens.
impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("models", &self.targets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Upstreams {
    /// The upstreams of `models` (those with `upstream` set), with their tokens read from the
    /// environment now, so a missing token stops start-up instead of failing requests.
    pub fn new(models: &[ModelConfig], config: &ProxyConfig) -> Result<Self, UpstreamSetupError> {
        let mut targets = HashMap::new();
        for (i, model) in models.iter().enumerate() {
            let Some(upstream) = &model.upstream else {
                continue;
            };
            let auth = match &upstream.api_key_env {
                None => None,
                Some(var) => {
                    let key = format!("models[{i}].upstream.api_key_env");
                    let token = std::env::var(var)
                        .ok()
                        .filter(|t| !t.trim().is_empty())
                        .ok_or_else(|| UpstreamSetupError::MissingToken {
                            var: var.clone(),
                            key: key.clone(),
                        })?;
                    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                        .map_err(|_| UpstreamSetupError::BadToken {
                            var: var.clone(),
                            key,
                        })?;
                    value.set_sensitive(true);
                    Some(value)
                }
            };
            targets.insert(
                model.name.clone(),
                Target {
                    url: upstream.chat_url(),
                    auth,
                },
            );
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            // Upstreams are called directly: an HTTP(S)_PROXY meant for other traffic must not
            // silently sit between the router and its models.
            .no_proxy()
            .build()
            .map_err(|e| UpstreamSetupError::Client(e.to_string()))?;
        Ok(Self {
            http,
            targets,
            config: config.clone(),
        })
    }

    /// The proxy's timeouts and retries.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Whether `model` has an upstream.
    pub fn has(&self, model: &str) -> bool {
        self.targets.contains_key(model)
    }

    /// Sends `body` to `model`'s upstream and waits for the response head, at most
    /// `proxy.first_byte_timeout_ms` and never past `deadline`.
    pub async fn send(
        &self,
        model: &str,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Result<reqwest::Response, CallError> {
        let target = self
            .targets
            .get(model)
            .ok_or_else(|| CallError::NotConfigured {
                model: model.to_string(),
            })?;
        let mut trace_headers = reqwest::header::HeaderMap::new();
        crate::telemetry::inject(&mut trace_headers);
        let mut request = self
            .http
            .post(&target.url)
            .header(CONTENT_TYPE, "application/json")
            .headers(trace_headers)
            .body(body);
        if let Some(auth) = &target.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let wait = Duration::from_millis(self.config.first_byte_timeout_ms)
            .min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, request.send()).await {
            Err(_) => Err(CallError::Timeout {
                model: model.to_string(),
                waited_ms: wait.as_millis() as u64,
            }),
            Ok(Err(error)) => {
                let connect = error.is_connect();
                let detail = describe(error);
                Err(if connect {
                    CallError::Connect {
                        model: model.to_string(),
                        detail,
                    }
                } else {
                    CallError::Failed {
                        model: model.to_string(),
                        detail,
                    }
                })
            }
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// A client error in words, without the URL (the upstream's address is not the client's
/// business) but with its causes.
pub fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
