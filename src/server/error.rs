//! Every HTTP error, rendered in OpenAI's envelope with the right status.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use semrouter_embedder::BackendError;

use crate::engine::EngineError;
use crate::openai::{ErrorBody, ErrorEnvelope, InvalidRequest};

/// Seconds a client is told to wait after a 429 or a 503 while loading.
const RETRY_AFTER_S: u64 = 1;

/// The error code of a response, kept in its extensions so request metrics can count it.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// An HTTP error: status, OpenAI error type and code, message and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
    param: Option<String>,
    retry_after: Option<u64>,
    /// Whether the reply carries `www-authenticate: Bearer` (a 401).
    bearer_challenge: bool,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            bearer_challenge: false,
        }
    }

    fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    fn with_retry_after(mut self) -> Self {
        self.retry_after = Some(RETRY_AFTER_S);
        self
    }

    /// 400 for a request the router cannot read.
    pub fn invalid(request: InvalidRequest) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            request.message,
        );
        e.param = request.param;
        e
    }

    /// 400 about one field.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            message,
        )
        .with_param(param)
    }

    /// 404 for a path that does not exist.
    pub fn unknown_path(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!("Invalid URL ({method} {path})"),
        )
    }

    /// 404 for a model that does not exist.
    pub fn unknown_model(message: String) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            message,
        )
        .with_param("model")
    }

    /// 405 for a known path with the wrong method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        )
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 415 for a body that is not JSON.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "unsupported_media_type",
            format!("content type `{content_type}` is not supported; send application/json"),
        )
    }

    /// 429 when `server.max_in_flight` requests are already being worked on: refused at once,
    /// not queued.
    pub fn overloaded(limit: usize) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "overloaded",
            format!("the router is at its limit of {limit} requests in flight (config key `server.max_in_flight`); retry shortly"),
        )
        .with_retry_after()
    }

    /// 503 while the models are loading.
    pub fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "not_ready",
            "the router is loading its models; retry shortly",
        )
        .with_retry_after()
    }

    /// 404 for a cache endpoint when `cache.enabled` is off.
    pub fn cache_disabled() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "cache_disabled",
            "the semantic cache is not enabled (config key `cache.enabled`)",
        )
    }

    /// 503 from `/ready` while the embedding backend cannot serve.
    pub fn embedding_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "embedding_unavailable",
            message,
        )
        .with_retry_after()
    }

    /// 403 for a prompt a policy blocks (the proxy and ext_proc paths); `reason` names the
    /// policy, never the prompt.
    pub fn blocked(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "blocked_by_policy",
            reason,
        )
    }

    /// 502 when no upstream could be reached for the chosen model or its fallbacks.
    pub fn upstream_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            "upstream_unavailable",
            message,
        )
    }

    /// 502 when the chosen model has no `models[].upstream` configured for the proxy.
    pub fn upstream_not_configured(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            "upstream_not_configured",
            message,
        )
    }

    /// 504 when the upstream sent nothing within `proxy.first_byte_timeout_ms`.
    pub fn upstream_timeout(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "upstream_timeout",
            message,
        )
    }

    /// 401 for an admin request without a bearer token.
    pub fn admin_unauthorized() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "missing_admin_token",
            "this admin endpoint needs `Authorization: Bearer <token>`",
        );
        e.bearer_challenge = true;
        e
    }

    /// 403 for an admin request whose token is wrong.
    pub fn admin_forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "invalid_admin_token",
            "the admin token is not valid",
        )
    }

    /// 403 for any admin request while no token is configured: the endpoints are off, not open.
    pub fn admin_disabled(token_env: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "admin_disabled",
            format!("admin endpoints are disabled: set the environment variable `{token_env}` (config key `server.admin.token_env`) to a token"),
        )
    }

    /// 400 for a reload whose config does not validate; `key` names the key at fault.
    pub fn invalid_config(key: Option<&str>, message: impl Into<String>) -> Self {
        let e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_config",
            message,
        );
        match key {
            Some(key) => e.with_param(key),
            None => e,
        }
    }

    /// 422 for a reload whose config validates but cannot be built (a missing head file, a
    /// model that does not load); the old config keeps serving.
    pub fn reload_failed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            "reload_failed",
            message,
        )
    }

    /// 409 for a reload of a router that runs on the built-in default (no file to re-read).
    pub fn no_config_file() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "no_config_file",
            "the router runs on the built-in default config; start it with `--config FILE` to reload",
        )
    }

    /// 500 for a failure that is not the client's.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            message,
        )
    }
}

/// What a front end that does not answer through actix (the ext_proc callout) needs to render
/// an error itself.
impl ApiError {
    /// The OpenAI envelope this error renders as.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                message: self.message.clone(),
                kind: self.kind.to_string(),
                param: self.param.clone(),
                code: Some(self.code.to_string()),
            },
        }
    }

    /// Seconds a client should wait before retrying (429, 503), when set.
    pub fn retry_after_s(&self) -> Option<u64> {
        self.retry_after
    }

    /// The error code (`invalid_request`, `queue_full`, ...), as metrics label it.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<InvalidRequest> for ApiError {
    fn from(request: InvalidRequest) -> Self {
        Self::invalid(request)
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        let message = error.to_string();
        match error {
            EngineError::NoText => Self::invalid_param("messages", message),
            EngineError::UnknownModel { .. } => Self::unknown_model(message),
            EngineError::NoEligibleModel(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "no_eligible_model",
                message,
            ),
            EngineError::Backend(backend) => match backend {
                BackendError::Overloaded { .. } => Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "queue_full",
                    message,
                )
                .with_retry_after(),
                BackendError::EmptyInput { index } => {
                    Self::invalid_param(&format!("input[{index}]"), message)
                }
                BackendError::ShuttingDown => Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    "shutting_down",
                    message,
                )
                .with_retry_after(),
                BackendError::Unavailable(_) => Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    "backend_unavailable",
                    message,
                )
                .with_retry_after(),
                BackendError::Inference(_) => Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "inference_failed",
                    message,
                ),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                message: self.message.clone(),
                kind: self.kind.to_string(),
                param: self.param.clone(),
                code: Some(self.code.to_string()),
            },
        };
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        if self.bearer_challenge {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        let mut response = response.json(envelope);
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_is_429_with_retry_after() {
        let e = ApiError::from(EngineError::Backend(BackendError::Overloaded {
            capacity: 4,
        }));
        let r = e.error_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }

    #[test]
    fn engine_errors_map_to_statuses() {
        let cases = [
            (EngineError::NoText, StatusCode::BAD_REQUEST),
            (
                EngineError::UnknownModel {
                    model: "x".into(),
                    known: vec!["auto".into()],
                },
                StatusCode::NOT_FOUND,
            ),
            (
                EngineError::Backend(BackendError::ShuttingDown),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                EngineError::Backend(BackendError::Inference("boom".into())),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::from(error).status_code(), status);
        }
    }
}
