//! The dashboard's page, script and style sheet, compiled into the binary so that it works
//! with no network and no files beside the binary.

use actix_web::http::header;
use actix_web::HttpResponse;

const INDEX_HTML: &str = include_str!("assets/index.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

/// Only this origin: a page that loaded anything from elsewhere would break here first (and
/// show a console error in the browser test).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub enum Asset {
    /// `/dashboard`.
    Index,
    /// `/dashboard/dashboard.js`.
    Script,
    /// `/dashboard/dashboard.css`.
    Style,
}

impl Asset {
    /// The file as a response; `no-cache` so that a new binary's assets are picked up at once.
    pub fn response(self) -> HttpResponse {
        let (content_type, body) = match self {
            Asset::Index => ("text/html; charset=utf-8", INDEX_HTML),
            Asset::Script => ("text/javascript; charset=utf-8", DASHBOARD_JS),
            Asset::Style => ("text/css; charset=utf-8", DASHBOARD_CSS),
        };
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, content_type))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(body)
    }
}
