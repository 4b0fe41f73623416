//! The admin endpoints: their bearer-token check and `POST /admin/reload`.
//!
//! Everything that changes the router's state from outside (reload, cache store and flush)
//! asks [`AdminAuth::check`] first. The token comes from the environment variable that
//! `server.admin.token_env` names, read once at start-up; without it the endpoints are off
//! (403 `admin_disabled`), never open.

use actix_web::http::header::AUTHORIZATION;
use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::reload::{reload, Trigger};
use super::AppState;
use crate::config::AdminConfig;

/// The configured admin token, kept only as its SHA-256 so that comparing it takes the same
/// time whatever the length or content of the token presented.
pub(super) struct AdminAuth {
    token_digest: Option<[u8; 32]>,
    token_env: String,
}

impl AdminAuth {
    /// Reads the token from the environment variable `config.token_env` (surrounding
    /// whitespace dropped: a token mounted from a file often ends in a newline).
    pub fn from_env(config: &AdminConfig) -> Self {
        let token = std::env::var(&config.token_env)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Self {
            token_digest: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            token_env: config.token_env.clone(),
        }
    }

    /// Whether admin endpoints are on.
    pub fn enabled(&self) -> bool {
        self.token_digest.is_some()
    }

    /// `Ok` when `request` carries the admin token; 403 while no token is configured, 401
    /// without a bearer token, 403 with a wrong one.
    pub fn check(&self, request: &HttpRequest) -> Result<(), ApiError> {
        let Some(expected) = &self.token_digest else {
            return Err(ApiError::admin_disabled(&self.token_env));
        };
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(ApiError::admin_unauthorized)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if bool::from(digest.ct_eq(expected)) {
            Ok(())
        } else {
            Err(ApiError::admin_forbidden())
        }
    }
}

/// Registers `/admin/reload`.
pub(super) fn routes(config: &mut ServiceConfig) {
    config.service(
        web::resource("/admin/reload")
            .route(web::post().to(reload_endpoint))
            .default_service(web::to(super::http::method_not_allowed)),
    );
}

/// `POST /admin/reload`: re-reads the config file, validates it, builds the new engine beside
/// the old one and swaps it in. 200 with what changed; 400 `invalid_config` naming the key, or
/// 422 `reload_failed`, and the old config keeps serving.
async fn reload_endpoint(
    request: HttpRequest,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.admin.check(&request)?;
    let report = reload(&state, Trigger::Endpoint).await?;
    Ok(HttpResponse::Ok().json(report))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn auth(token: Option<&str>) -> AdminAuth {
        AdminAuth {
            token_digest: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            token_env: "SEMROUTER_ADMIN_TOKEN".into(),
        }
    }

    fn code(result: Result<(), ApiError>) -> &'static str {
        result.err().map_or("ok", |e| e.code())
    }

    #[test]
    fn tokens_are_checked_and_a_missing_token_turns_admin_off() {
        let with = |value: &str| {
            TestRequest::default()
                .insert_header((AUTHORIZATION, value))
                .to_http_request()
        };
        let on = auth(Some("s3cret"));
        assert_eq!(code(on.check(&with("Bearer s3cret"))), "ok");
        assert_eq!(code(on.check(&with("bearer s3cret"))), "ok");
        assert_eq!(code(on.check(&with("Bearer s3cre"))), "invalid_admin_token");
        assert_eq!(
            code(on.check(&with("Bearer s3cret2"))),
            "invalid_admin_token"
        );
        assert_eq!(code(on.check(&with("Basic s3cret"))), "missing_admin_token");
        assert_eq!(code(on.check(&with("Bearer "))), "missing_admin_token");
        assert_eq!(
            code(on.check(&TestRequest::default().to_http_request())),
            "missing_admin_token"
        );
        assert_eq!(
            code(auth(None).check(&with("Bearer s3cret"))),
            "admin_disabled"
        );
    }
}
