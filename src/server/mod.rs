//! The HTTP front end: the actix-web server, its shared state, and start-up and shutdown.
//!
//! The listener starts at once so `/health` and `/ready` answer while models load; the engine
//! is assembled on a blocking thread and swapped in when warm. SIGTERM stops accepting and
//! lets in-flight requests finish within `server.shutdown_timeout_s`.

mod admin;
mod admission;
mod body;
mod cache;
mod dashboard;
mod error;
mod extproc;
mod http;
mod metrics;
mod pii_screen;
mod proxy;
mod reload;
mod routing;
mod tls;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::middleware::from_fn;
use actix_web::web::{self, Data};
use actix_web::{App, HttpServer};
use arc_swap::{ArcSwap, ArcSwapOption};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::assemble::assemble;
use crate::config::{Config, DecisionHeader};
use crate::engine::Router;
pub use error::ApiError;
pub use http::MAX_EMBEDDING_INPUTS;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The metrics recorder could not be installed.
    #[error("metrics: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    /// The listen address is unusable.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    /// The proxy's upstreams could not be set up (a missing token, the HTTP client).
    #[error("proxy: {0}")]
    Upstream(#[from] upstream::UpstreamSetupError),
    /// The ext_proc gRPC server could not start.
    #[error("{0}")]
    ExtProc(#[from] extproc::ExtProcError),
    /// The TLS certificate or key could not be used.
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    /// The engine could not be built from the configuration.
    #[error("{0}")]
    Load(String),
}

/// State shared by all workers.
pub struct AppState {
    engine: ArcSwapOption<Router>,
    /// The semantic cache, once the engine is loaded and when `cache.enabled`.
    cache: ArcSwapOption<cache::CacheService>,
    metrics: PrometheusHandle,
    max_body_bytes: usize,
    tenant_header: String,
    started_unix: u64,
    /// The proxy's upstreams (`models[].upstream`) and its timeouts; swapped on reload.
    upstreams: ArcSwap<upstream::Upstreams>,
    /// Which decision headers the proxy emits (`server.decision_headers`).
    decision_headers: Vec<DecisionHeader>,
    /// The admin endpoints' token check.
    admin: admin::AdminAuth,
    /// The config file and the config serving now, for reloads.
    reloader: reload::Reloader,
    /// `server.log_prompts`: prompt text may be logged at debug level.
    log_prompts: bool,
    /// `server.max_in_flight`: the front door every request that does work passes.
    admission: admission::Admission,
    /// Recent decisions for the dashboard; `None` with `dashboard.enabled: false`.
    feed: Option<dashboard::DecisionFeed>,
}

impl AppState {
    /// The engine, or 503 while it is loading.
    fn engine(&self) -> Result<Arc<Router>, ApiError> {
        self.engine.load_full().ok_or_else(ApiError::not_ready)
    }
}

/// Runs the HTTP server on `addr` until SIGTERM/SIGINT, loading the engine in the background.
/// `config` was loaded from `config_path` (the built-in default when `None`), which
/// `POST /admin/reload` and the file watcher re-read.
pub async fn serve(
    config: Config,
    addr: SocketAddr,
    config_path: Option<PathBuf>,
) -> Result<(), ServeError> {
    let upstreams = upstream::Upstreams::new(&config.models, &config.proxy)?;
    let metrics_handle = metrics::install()?;
    metrics::describe();
    // 0 from the first scrape: a replica stuck loading shows as not ready, not as missing.
    ::metrics::gauge!("semrouter_ready").set(0.0);
    let state = Data::new(AppState {
        engine: ArcSwapOption::empty(),
        cache: ArcSwapOption::empty(),
        metrics: metrics_handle.clone(),
        max_body_bytes: config.server.max_body_bytes,
        tenant_header: config.routing.tenant_header.clone(),
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        upstreams: ArcSwap::from_pointee(upstreams),
        decision_headers: config.server.decision_headers.clone(),
        admin: admin::AdminAuth::from_env(&config.server.admin),
        reloader: reload::Reloader::new(&config, config_path.clone()),
        log_prompts: config.server.log_prompts,
        admission: admission::Admission::new(config.server.max_in_flight),
        feed: config
            .dashboard
            .enabled
            .then(|| dashboard::DecisionFeed::new(&config.dashboard)),
    });
    if !state.admin.enabled() {
        tracing::info!(token_env = %config.server.admin.token_env, "no admin token configured: admin endpoints (reload, cache store and flush) are off");
    }
    let watch = (config.server.reload.watch && config_path.is_some())
        .then(|| Duration::from_millis(config.server.reload.poll_interval_ms));
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .wrap(from_fn(metrics::record_requests))
            .configure(http::routes)
            .default_service(web::to(http::unknown_path))
    })
    .workers(workers)
    // Streamed answers go out chunk by chunk as the upstream sends them: with Nagle's
    // algorithm each chunk after the first waited for the client's delayed ACK (about 40 ms).
    .tcp_nodelay(true)
    .shutdown_timeout(config.server.shutdown_timeout_s);
    let server = match &config.server.tls {
        Some(tls) => {
            server.bind_rustls_0_23(addr, tls::server_config(&tls.cert_file, &tls.key_file)?)
        }
        None => server.bind(addr),
    }
    .map_err(|source| ServeError::Bind { addr, source })?
    .run();
    tracing::info!(%addr, workers, tls = config.server.tls.is_some(), "listening; loading models");
    let extproc = if config.extproc.enabled {
        Some(extproc::ExtProcServer::start(&config, state.clone())?)
    } else {
        None
    };

    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(metrics::UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            metrics_handle.run_upkeep();
        }
    });

    let load_failure: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let handle = server.handle();
    let failure = Arc::clone(&load_failure);
    let cache_config = config.cache.clone();
    let pii_settings = config
        .signals
        .pii
        .as_ref()
        .map(|p| p.detector.clone())
        .unwrap_or_default();
    let loaded = state.clone();
    actix_web::rt::spawn(async move {
        let started = std::time::Instant::now();
        // Loading blocks (ONNX sessions), so it runs on a blocking thread; the remote backend's
        // start-up calls and its dispatcher run on this runtime, which keeps serving meanwhile.
        let built = tokio::task::spawn_blocking(move || {
            tokio::runtime::Handle::current().block_on(assemble(&config))
        })
        .await;
        match built {
            Ok(Ok(router)) => {
                let service =
                    pii_screen::PiiScreen::new(router.pii_detector().cloned(), &pii_settings)
                        .map_err(cache::CacheStartError::from)
                        .and_then(|screen| {
                            cache::CacheService::start(
                                &cache_config,
                                router.embedder().info(),
                                screen,
                            )
                        });
                match service {
                    Ok(service) => state.cache.store(service.map(Arc::new)),
                    Err(error) => {
                        let _ = failure.set(error.to_string());
                        handle.stop(false).await;
                        return;
                    }
                }
                let info = router.embedder().info();
                ::metrics::gauge!("semrouter_build_info", "version" => env!("CARGO_PKG_VERSION"),
                    "embedding_model" => info.model_id.clone(), "execution_provider" => info.execution_provider.clone())
                .set(1.0);
                ::metrics::gauge!("semrouter_ready").set(1.0);
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "models loaded and warmed; ready"
                );
                state.engine.store(Some(Arc::new(router)));
                if let Some(interval) = watch {
                    actix_web::rt::spawn(reload::watch(state.clone(), interval));
                }
            }
            Ok(Err(error)) => {
                let _ = failure.set(error.to_string());
                handle.stop(false).await;
            }
            Err(join) => {
                let _ = failure.set(format!("model loading panicked: {join}"));
                handle.stop(false).await;
            }
        }
    });

    let served = server.await;
    if let Some(extproc) = extproc {
        extproc.stop();
    }
    served?;
    if let Some(service) = loaded.cache.swap(None) {
        service.shutdown();
    }
    match load_failure.get() {
        Some(reason) => Err(ServeError::Load(reason.clone())),
        None => Ok(()),
    }
}
