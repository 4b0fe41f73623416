//! Hot reload: re-reading the config file, building the new engine beside the old one, and
//! swapping it in.
//!
//! A reload (from `POST /admin/reload` or the file watcher) loads and validates the file with
//! the same `config::load_str` as start-up, then assembles a new [`Router`] on a blocking
//! thread around the running embedding backend (the encoder is never loaded twice) and swaps
//! it and the proxy's upstreams in. Requests that already hold the old `Arc<Router>` finish on
//! it. Keys that only take effect at start-up are reported, not applied. A config that does not
//! validate or build leaves the old one serving. Reloads run one at a time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::upstream::Upstreams;
use super::AppState;
use crate::assemble::{assemble_with, runtime, AssembleError};
use crate::config::{self, Config, ConfigError};
use crate::engine::Router;

/// The config file a reload re-reads, and the config that is serving now.
pub(super) struct Reloader {
    /// `None` when the router runs on the built-in default.
    path: Option<PathBuf>,
    /// Held for the whole of a reload, which serialises them.
    applied: tokio::sync::Mutex<Applied>,
}

struct Applied {
    config: Config,
    /// SHA-256 of the text `config` was loaded from.
    hash: [u8; 32],
    /// SHA-256 of the text the watcher saw last (valid or not), so that it tries a broken
    /// file once, not every poll.
    seen: [u8; 32],
}

/// What asked for a reload (a metric label and a log field).
#[derive(Debug, Clone, Copy)]
pub(super) enum Trigger {
    /// `POST /admin/reload`.
    Endpoint,
    /// The file watcher saw new content.
    Watch,
}

impl Trigger {
    fn label(self) -> &'static str {
        match self {
            Trigger::Endpoint => "endpoint",
            Trigger::Watch => "watch",
        }
    }
}

/// A reload that was applied.
#[derive(Debug, Serialize)]
pub(super) struct ReloadReport {
    /// Always true: refused reloads are errors.
    reloaded: bool,
    /// SHA-256 (hex) of the file now serving.
    config_hash: String,
    /// Whether the file differed from the one serving before.
    changed: bool,
    /// Keys that changed but take effect only after a restart (the old values stay).
    restart_required: Vec<&'static str>,
    /// Time to validate and build the new engine.
    elapsed_ms: u64,
}

/// Why a reload was refused; the old config keeps serving.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReloadError {
    /// Started on the built-in default: there is no file to re-read.
    #[error("no config file")]
    NoFile,
    /// The engine is still loading at start-up.
    #[error("the engine is still loading")]
    NotReady,
    /// The file does not parse or validate.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The file validates but the engine or the upstreams cannot be built from it.
    #[error("{0}")]
    Failed(String),
}

impl ReloadError {
    fn label(&self) -> &'static str {
        match self {
            ReloadError::Invalid(_) | ReloadError::NoFile => "invalid",
            ReloadError::NotReady | ReloadError::Failed(_) => "failed",
        }
    }
}

impl From<ReloadError> for ApiError {
    fn from(error: ReloadError) -> Self {
        match &error {
            ReloadError::NoFile => ApiError::no_config_file(),
            ReloadError::NotReady => ApiError::not_ready(),
            ReloadError::Invalid(e) => ApiError::invalid_config(
                e.key(),
                format!("config rejected, the old one keeps serving: {e}"),
            ),
            ReloadError::Failed(reason) => ApiError::reload_failed(format!(
                "config not applied, the old one keeps serving: {reason}"
            )),
        }
    }
}

impl Reloader {
    /// Remembers `config`, loaded from `path` (or the built-in default when `None`), as the
    /// one serving.
    pub fn new(config: &Config, path: Option<PathBuf>) -> Self {
        let text = match &path {
            Some(path) => std::fs::read_to_string(path).unwrap_or_default(),
            None => config::DEFAULT_CONFIG.to_string(),
        };
        let hash = Sha256::digest(text.as_bytes()).into();
        publish_loaded(&hash);
        Self {
            path,
            applied: tokio::sync::Mutex::new(Applied {
                config: config.clone(),
                hash,
                seen: hash,
            }),
        }
    }
}

/// Reloads the config file now (the endpoint), even if its content did not change.
pub(super) async fn reload(
    state: &AppState,
    trigger: Trigger,
) -> Result<ReloadReport, ReloadError> {
    let path = state.reloader.path.as_ref().ok_or(ReloadError::NoFile)?;
    let mut applied = state.reloader.applied.lock().await;
    let text = read(path).await?;
    let result = apply(state, path, &text, &mut applied).await;
    record(trigger, &result);
    result
}

/// Polls the config file every `interval` and reloads when its content changes. Reading
/// through the path each time follows a swapped symlink (a ConfigMap update), and comparing
/// content rather than mtime catches rewrites within the same second.
pub(super) async fn watch(state: actix_web::web::Data<AppState>, interval: Duration) {
    let Some(path) = state.reloader.path.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(text) = tokio::fs::read_to_string(&path).await else {
            // Mid-swap or briefly absent: the next poll sees the new file.
            continue;
        };
        let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let mut applied = state.reloader.applied.lock().await;
        if hash == applied.seen || hash == applied.hash {
            applied.seen = hash;
            continue;
        }
        if state.engine.load().is_none() {
            // Still loading at start-up: try again once it is ready.
            continue;
        }
        applied.seen = hash;
        tracing::info!(path = %path.display(), "config file changed; reloading");
        let result = apply(&state, &path, &text, &mut applied).await;
        record(Trigger::Watch, &result);
    }
}

async fn read(path: &std::path::Path) -> Result<String, ReloadError> {
    tokio::fs::read_to_string(path).await.map_err(|e| {
        ReloadError::Invalid(ConfigError::Parse {
            origin: path.display().to_string(),
            key: None,
            line: None,
            message: format!("cannot read: {e}"),
        })
    })
}

async fn apply(
    state: &AppState,
    path: &std::path::Path,
    text: &str,
    applied: &mut Applied,
) -> Result<ReloadReport, ReloadError> {
    let started = Instant::now();
    let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    let new = config::load_str(text, &path.display().to_string())?;
    let old = state.engine.load_full().ok_or(ReloadError::NotReady)?;
    let restart_required = restart_required(&applied.config, &new);
    let embedder = Arc::clone(old.embedder());
    // The runtime library is a start-up key: the running one is reused.
    let running = applied.config.clone();
    let build = new.clone();
    let router: Router = tokio::task::spawn_blocking(move || -> Result<Router, AssembleError> {
        assemble_with(&build, &runtime(&running)?, embedder)
    })
    .await
    .map_err(|e| ReloadError::Failed(format!("building the engine panicked: {e}")))?
    .map_err(|e| ReloadError::Failed(e.to_string()))?;
    let upstreams =
        Upstreams::new(&new.models, &new.proxy).map_err(|e| ReloadError::Failed(e.to_string()))?;
    // Upstreams first: a request that picks a newly added model finds its upstream.
    state.upstreams.store(Arc::new(upstreams));
    state.engine.store(Some(Arc::new(router)));
    let changed = hash != applied.hash;
    applied.config = new;
    applied.hash = hash;
    applied.seen = hash;
    publish_loaded(&hash);
    for key in &restart_required {
        tracing::warn!(
            key,
            "config key changed but takes effect only after a restart; the old value stays"
        );
    }
    Ok(ReloadReport {
        reloaded: true,
        config_hash: hex(&hash),
        changed,
        restart_required,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Counts and logs the outcome of a reload.
fn record(trigger: Trigger, result: &Result<ReloadReport, ReloadError>) {
    let label = match result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    ::metrics::counter!("semrouter_config_reloads_total", "result" => label, "trigger" => trigger.label()).increment(1);
    match result {
        Ok(report) => tracing::info!(
            trigger = trigger.label(),
            config_hash = %report.config_hash,
            changed = report.changed,
            restart_required = ?report.restart_required,
            elapsed_ms = report.elapsed_ms,
            "config reloaded"
        ),
        Err(error) => {
            tracing::error!(trigger = trigger.label(), %error, "config reload refused; the old config keeps serving")
        }
    }
}

/// Sets the gauges that identify the config serving now.
fn publish_loaded(hash: &[u8; 32]) {
    // The first 48 bits: exact in an f64, and enough to tell configs apart on a dashboard.
    let short = hash[..6]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    ::metrics::gauge!("semrouter_config_hash").set(short as f64);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    ::metrics::gauge!("semrouter_config_loaded_timestamp_seconds").set(now);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The keys whose change a reload cannot apply: the listeners, the worker pool, the request
/// limits and headers read at start-up, the embedding backend (kept so the encoder is not
/// loaded twice), the cache (its index is bound to the encoder), and the ext_proc server.
fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
    // Every config type derives Debug from plain data (BTreeMaps, no HashMaps), so equal
    // values render equal text.
    fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    let (o, n) = (&old.server, &new.server);
    let mut keys = Vec::new();
    let mut check = |key: &'static str, changed: bool| {
        if changed {
            keys.push(key);
        }
    };
    check("server.http_addr", o.http_addr != n.http_addr);
    check("server.workers", o.workers != n.workers);
    check(
        "server.max_body_bytes",
        o.max_body_bytes != n.max_body_bytes,
    );
    check(
        "server.shutdown_timeout_s",
        o.shutdown_timeout_s != n.shutdown_timeout_s,
    );
    check("server.max_in_flight", o.max_in_flight != n.max_in_flight);
    check("server.log_format", o.log_format != n.log_format);
    check(
        "server.decision_headers",
        o.decision_headers != n.decision_headers,
    );
    check("server.admin", o.admin != n.admin);
    check("server.reload", o.reload != n.reload);
    check("server.log_prompts", o.log_prompts != n.log_prompts);
    check("server.tls", o.tls != n.tls);
    check("runtime", differs(&old.runtime, &new.runtime));
    check("embedding", differs(&old.embedding, &new.embedding));
    check(
        "routing.tenant_header",
        old.routing.tenant_header != new.routing.tenant_header,
    );
    check("cache", differs(&old.cache, &new.cache));
    // The cache screens writes with the detector it started with.
    check(
        "signals.pii",
        old.cache.enabled && differs(&old.signals.pii, &new.signals.pii),
    );
    check("extproc", differs(&old.extproc, &new.extproc));
    check("telemetry", old.telemetry != new.telemetry);
    check("dashboard", old.dashboard != new.dashboard);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_keys_are_reported_and_engine_keys_are_not() {
        let old = config::load_str(config::DEFAULT_CONFIG, "test").unwrap();
        let mut new = old.clone();
        assert!(restart_required(&old, &new).is_empty());
        new.server.workers = 3;
        new.scoring.expected_completion_tokens += 1;
        new.models[0].quality.insert("law".into(), 0.01);
        new.cache.max_entries += 1;
        assert_eq!(
            restart_required(&old, &new),
            vec!["server.workers", "cache"]
        );
    }
}
