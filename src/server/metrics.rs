//! Prometheus metrics: the recorder, request counting middleware, and the `/metrics` page.
//!
//! Label values are bounded: endpoints are route patterns (never raw paths), and nothing a
//! client sends (prompt text, header values) becomes a label.

use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::Error;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use super::error::ErrorCode;

/// Latency buckets in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    2.5, 10.0,
];
/// Texts per forward pass.
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
/// How often histograms are compacted.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the global Prometheus recorder; the handle renders `/metrics`.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full("semrouter_onnx_batch_size".into()),
            &BATCH_BUCKETS,
        )?
        .install_recorder()
}

/// Counts every request by endpoint and status, and errors by code; times every request.
pub async fn record_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let response = next.call(request).await?;
    let endpoint = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = response.status();
    let status_label = status.as_str().to_string();
    metrics::counter!("semrouter_http_requests_total", "endpoint" => endpoint.clone(), "status" => status_label.clone()).increment(1);
    metrics::histogram!("semrouter_http_request_duration_seconds", "endpoint" => endpoint.clone())
        .record(started.elapsed().as_secs_f64());
    if status.is_client_error() || status.is_server_error() {
        let code = response
            .response()
            .extensions()
            .get::<ErrorCode>()
            .map_or("other", |c| c.0);
        metrics::counter!("semrouter_http_errors_total", "endpoint" => endpoint, "status" => status_label, "code" => code).increment(1);
    }
    Ok(response)
}

/// Registers help text for every metric semrouter emits.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "semrouter_http_requests_total",
        "HTTP requests by endpoint pattern and status"
    );
    describe_counter!("semrouter_admission_rejections_total", "Requests refused with 429 because server.max_in_flight were in flight, by front end (rest, proxy, extproc)");
    describe_counter!(
        "semrouter_http_errors_total",
        "HTTP error replies by endpoint pattern, status and error code"
    );
    describe_histogram!(
        "semrouter_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by endpoint pattern"
    );
    describe_histogram!(
        "semrouter_stage_duration_seconds",
        Unit::Seconds,
        "Latency per pipeline stage: tokenize, queue, infer, signals, pii, decide"
    );
    describe_counter!(
        "semrouter_decisions_total",
        "Routing decisions by chosen model, category and reasoning"
    );
    describe_gauge!("semrouter_ready", "1 once models are loaded and warmed");
    describe_gauge!(
        "semrouter_build_info",
        "Version, embedding model and the execution provider that really runs"
    );
    describe_gauge!(
        "semrouter_onnx_queue_depth",
        "Texts waiting for an ONNX forward pass, per model"
    );
    describe_histogram!(
        "semrouter_onnx_batch_size",
        "Texts per ONNX forward pass, per model"
    );
    describe_counter!(
        "semrouter_onnx_queue_rejections_total",
        "Requests refused because the ONNX queue was full"
    );
    describe_gauge!(
        "semrouter_model_latency_ewma_seconds",
        "Latency EWMA of each model's complete answers, as the scorer reads it"
    );
    describe_counter!(
        "semrouter_model_tokens_total",
        "Tokens each model's answers reported in `usage`, by kind (prompt, completion)"
    );
    describe_counter!("semrouter_proxy_upstream_attempts_total", "Proxy calls to upstreams by model and outcome (2xx, 4xx, 5xx, connect_error, timeout, ...)");
    describe_counter!(
        "semrouter_proxy_stream_errors_total",
        "Streamed answers that ended in error after their first byte, by model and reason"
    );
    describe_counter!(
        "semrouter_config_reloads_total",
        "Config reloads by result (ok, invalid, failed) and trigger (endpoint, watch)"
    );
    describe_gauge!(
        "semrouter_config_hash",
        "First 48 bits of the SHA-256 of the config file serving now"
    );
    describe_gauge!(
        "semrouter_config_loaded_timestamp_seconds",
        "Unix time the serving config was loaded"
    );
    describe_counter!(
        "semrouter_proxy_cancelled_total",
        "Streamed answers abandoned by their client (the upstream call was cancelled)"
    );
    describe_counter!(
        "semrouter_policy_matches_total",
        "Requests each policy matched, by policy"
    );
    describe_counter!(
        "semrouter_jailbreak_detected_total",
        "Prompts the jailbreak signal flagged, by the policy that acted on it"
    );
    describe_counter!(
        "semrouter_pii_detections_total",
        "Personal data found in prompts, by type"
    );
    describe_counter!(
        "semrouter_scoring_fallbacks_total",
        "Decisions that fell back to scoring.default_model (no candidate scored)"
    );
    describe_counter!(
        "semrouter_degraded_decisions_total",
        "Decisions made without an embedding (the embedding backend unavailable)"
    );
    describe_counter!(
        "semrouter_tools_removed_total",
        "Tools removed from requests as irrelevant to the prompt"
    );
    crate::cache::metrics::describe();
}
