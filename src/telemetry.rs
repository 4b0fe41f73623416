//! OpenTelemetry traces (`telemetry`): the `tracing` spans of the request path exported over
//! OTLP/HTTP, and W3C trace context taken from callers and handed on to upstreams.
//!
//! The stage spans are `debug`-level `tracing` spans under one `request` span. With
//! `telemetry.enabled: false` no exporter runs and nothing here is installed, so those spans
//! are disabled callsites (the log filter stops at `info`). With it on, a second layer sees only
//! this crate's spans (never log events, so nothing a log line carries is exported); spans
//! record stage names, models and outcomes, never prompt text or credentials.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use semrouter_embedder::StageTiming;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;

use crate::config::TelemetryConfig;

/// The tracer of the running exporter; unset while tracing is off.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Why the exporter could not start (start-up stops; the message names the key).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter's own runtime could not start.
    #[error("telemetry: cannot start the exporter's runtime: {0}")]
    Runtime(std::io::Error),
    /// The HTTP client or the exporter could not be built.
    #[error("config key `telemetry.otlp_endpoint`: {0}")]
    Exporter(String),
    /// `start` ran twice in one process.
    #[error("telemetry: the exporter is already running")]
    AlreadyRunning,
}

/// The running exporter; [`Telemetry::shutdown`] sends what is still buffered.
pub struct Telemetry {
    provider: SdkTracerProvider,
    /// Runs the export calls: the SDK's batch thread blocks on them outside any runtime.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// Starts the OTLP exporter when `config.enabled` (`None` otherwise). Sampling is
    /// parent-based: a caller's sampled flag is followed, new traces keep `sample_ratio`.
    pub fn start(config: &TelemetryConfig) -> Result<Option<Self>, TelemetryError> {
        if !config.enabled {
            return Ok(None);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .map_err(TelemetryError::Runtime)?;
        let timeout = Duration::from_millis(config.export_timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let client = ExportClient {
            http,
            runtime: runtime.handle().clone(),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.otlp_endpoint.clone())
            .with_timeout(timeout)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        TRACER
            .set(provider.tracer("semrouter"))
            .map_err(|_| TelemetryError::AlreadyRunning)?;
        Ok(Some(Self {
            provider,
            runtime: Some(runtime),
        }))
    }

    /// The `tracing` layer that turns this crate's spans (only spans, only `semrouter*`
    /// targets) into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let tracer = self.provider.tracer("semrouter");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_level(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() && meta.target().starts_with("semrouter")
            }))
    }

    /// Exports what is buffered and stops the exporter.
    pub fn shutdown(mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("telemetry: spans lost at shutdown: {error}");
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Whether spans are exported (the exporter started).
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

/// The `request` span of one API call, joined to the caller's trace when `headers` carry a
/// W3C `traceparent` (and `tracestate`). `route` names the endpoint.
pub fn request_span<'a>(
    route: &'static str,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> tracing::Span {
    let span = tracing::debug_span!(target: "semrouter::request", "request", http.route = route);
    if enabled() && !span.is_disabled() {
        let carrier = Carrier(
            headers
                .filter(|(name, _)| {
                    name.eq_ignore_ascii_case("traceparent")
                        || name.eq_ignore_ascii_case("tracestate")
                })
                .collect(),
        );
        if !carrier.0.is_empty() {
            // A malformed traceparent gives an empty context: the span starts a new trace.
            let _ = span.set_parent(TraceContextPropagator::new().extract(&carrier));
        }
    }
    span
}

/// Writes the current span's `traceparent` (and `tracestate`) into an outgoing request's
/// headers, so the upstream's spans join this trace. Nothing while tracing is off.
pub fn inject(headers: &mut reqwest::header::HeaderMap) {
    if !enabled() {
        return;
    }
    let context = tracing::Span::current().context();
    TraceContextPropagator::new()
        .inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers));
}

/// The `queue`, `tokenise` and `infer` spans of one encoder call that started at `started`,
/// from the times its worker measured (the worker serves a batch of many requests, so the
/// spans are written here, in the request's context, with the measured boundaries).
pub fn record_backend_stages(started: SystemTime, timing: &StageTiming) {
    let Some(tracer) = TRACER.get() else {
        return;
    };
    let parent = tracing::Span::current().context();
    let mut at = started;
    for (name, took) in [
        ("queue", timing.queue),
        ("tokenise", timing.tokenize),
        ("infer", timing.infer),
    ] {
        let mut span = tracer
            .span_builder(name)
            .with_start_time(at)
            .start_with_context(tracer, &parent);
        at += took;
        span.end_with_timestamp(at);
    }
}

/// `traceparent` and `tracestate` of an incoming request.
struct Carrier<'a>(Vec<(&'a str, &'a str)>);

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| *value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| *name).collect()
    }
}

/// The exporter's HTTP client: the proxy's reqwest, its calls run on the exporter's runtime.
#[derive(Debug)]
struct ExportClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let http = self.http.clone();
        let call = async move {
            let request = reqwest::Request::try_from(request)?;
            let response = http.execute(request).await?;
            let mut reply = Response::builder().status(response.status().as_u16());
            for (name, value) in response.headers() {
                reply = reply.header(name, value);
            }
            let body = response.bytes().await?;
            Ok::<_, HttpError>(reply.body(body)?)
        };
        self.runtime.spawn(call).await?
    }
}
