//! The built-in dashboard (`/dashboard`): the page and its assets, embedded in the binary, and
//! the read-only JSON views it polls. Live decisions come from the [`DecisionFeed`] every
//! front end records into; the try-it box calls `POST /v1/route?explain=true` and the reload
//! button `POST /admin/reload` with the admin token, so the dashboard adds no way to change
//! state of its own.

mod assets;
mod feed;

use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::http::method_not_allowed;
use super::AppState;
use assets::Asset;
pub use feed::{now_ms, DecisionFeed, DecisionRecord};

/// Registers `/dashboard`, its assets and `/dashboard/api/*`.
pub fn routes(config: &mut ServiceConfig) {
    let page = |path: &'static str, asset: Asset| {
        web::resource(path)
            .route(web::get().to(
                move |request: HttpRequest, state: Data<AppState>| async move {
                    serve_asset(&request, &state, asset)
                },
            ))
            .default_service(web::to(method_not_allowed))
    };
    config
        .service(page("/dashboard", Asset::Index))
        .service(page("/dashboard/", Asset::Index))
        .service(page("/dashboard/dashboard.js", Asset::Script))
        .service(page("/dashboard/dashboard.css", Asset::Style))
        .service(
            web::resource("/dashboard/api/overview")
                .route(web::get().to(overview))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/dashboard/api/decisions")
                .route(web::get().to(decisions))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/dashboard/api/policy")
                .route(web::get().to(policy))
                .default_service(web::to(method_not_allowed)),
        );
}

/// The feed, or 404 as for any unknown path when `dashboard.enabled` is off.
fn feed<'a>(request: &HttpRequest, state: &'a AppState) -> Result<&'a DecisionFeed, ApiError> {
    state
        .feed
        .as_ref()
        .ok_or_else(|| ApiError::unknown_path(request.method().as_str(), request.path()))
}

fn serve_asset(
    request: &HttpRequest,
    state: &AppState,
    asset: Asset,
) -> Result<HttpResponse, ApiError> {
    feed(request, state)?;
    Ok(asset.response())
}

/// `GET /dashboard/api/decisions`: the newest decisions and the distribution over the window.
async fn decisions(request: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let feed = feed(&request, &state)?;
    Ok(HttpResponse::Ok().json(json!({
        "window_s": feed.window().as_secs(),
        "show_prompts": feed.shows_prompts(),
        "distribution": feed.distribution(now_ms()),
        "recent": feed.recent(),
    })))
}

/// `GET /dashboard/api/overview`: readiness, the embedding backend's health and fallbacks, the
/// cache, each model's latency EWMA and load, and admission.
async fn overview(request: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    feed(&request, &state)?;
    let metrics = state.metrics.render();
    let admission = json!({
        "max_in_flight": state.admission.limit(),
        "in_flight": state.admission.in_flight(),
        "rejections": counter_sum(&metrics, "semrouter_admission_rejections_total"),
    });
    let uptime_s = (now_ms() / 1000).saturating_sub(state.started_unix);
    let Some(engine) = state.engine.load_full() else {
        return Ok(HttpResponse::Ok().json(json!({
            "version": env!("CARGO_PKG_VERSION"), "ready": false, "uptime_s": uptime_s, "admission": admission,
        })));
    };
    let info = engine.embedder().info();
    let health = engine.embedder().health().await;
    let upstreams = state.upstreams.load();
    let models: Vec<_> = engine
        .fleet()
        .models()
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "latency_ewma_ms": engine.stats().latency_ms(&m.name),
                "latency_p95_ms": engine.stats().latency_p95_ms(&m.name),
                "in_flight": engine.stats().in_flight(&m.name),
                "proxied": upstreams.has(&m.name),
            })
        })
        .collect();
    let cache = state
        .cache
        .load_full()
        .map(|service| service.cache().stats());
    Ok(HttpResponse::Ok().json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "ready": true,
        "uptime_s": uptime_s,
        "embedding": {
            "backend": info.backend,
            "model": info.model_id,
            "execution_provider": info.execution_provider,
            "health": super::http::health_json(&health),
            "fallbacks": counter_sum(&metrics, "semrouter_embedding_fallbacks_total"),
        },
        "cache": cache,
        "models": models,
        "admission": admission,
    })))
}

/// `GET /dashboard/api/policy`: the loaded policy as the picture's data
/// ([`crate::engine::map::PolicyMap`]), and the header that names the tenant
/// (`routing.tenant_header`), which the try-it box sends.
async fn policy(request: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    feed(&request, &state)?;
    let engine = state.engine()?;
    Ok(HttpResponse::Ok().json(PolicyView {
        map: engine.policy_map(),
        tenant_header: &state.tenant_header,
    }))
}

/// What `GET /dashboard/api/policy` answers.
#[derive(serde::Serialize)]
struct PolicyView<'a, M: serde::Serialize> {
    #[serde(flatten)]
    map: M,
    tenant_header: &'a str,
}

/// The sum of every series of counter `name` in Prometheus text (0 when it has none yet).
fn counter_sum(text: &str, name: &str) -> u64 {
    let total: f64 = text
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, v| sum + v);
    total.round() as u64
}

#[cfg(test)]
mod tests {
    use super::counter_sum;

    #[test]
    fn counters_sum_over_their_series_and_not_over_similar_names() {
        let text = "# TYPE x_total counter\nx_total{a=\"1\"} 2\nx_total{a=\"2 b\"} 3\nx_total_other 100\nx_total 1\n";
        assert_eq!(counter_sum(text, "x_total"), 6);
        assert_eq!(counter_sum(text, "missing_total"), 0);
    }
}
