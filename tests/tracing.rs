//! OpenTelemetry traces (`telemetry`) against the real binary: an in-process OTLP/HTTP
//! receiver on 127.0.0.1 decodes what the exporter sends (`ExportTraceServiceRequest`), a stub
//! upstream records the `traceparent` the proxy hands on. The ext_proc path is driven as Envoy
//! drives it, over gRPC.

mod common;
#[path = "support/extproc.rs"]
mod extproc;
#[path = "support/upstream.rs"]
mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes, Data};
use actix_web::{App, HttpResponse, HttpServer};
use common::{chat, free_port, Launch, Server};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use upstream::Upstream;

/// A prompt no span may carry (it would only be there if prompt text leaked into attributes).
const PROMPT: &str = "Solve 3x + 5 = 20 for x, my locker code is zebra-7731";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP traces receiver: keeps every span it is sent, with its resource's attributes.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<(Vec<(String, String)>, Span)>>>,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&spans);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let kept = Data::new(kept);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(kept.clone())
                        .route("/v1/traces", web::post().to(export))
                })
                .workers(1)
                .bind(("127.0.0.1", 0))
                .expect("bind the receiver");
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).expect("report the port");
                let _ = server.await;
            });
        });
        let (port, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver started");
        Self {
            url: format!("http://127.0.0.1:{port}/v1/traces"),
            spans,
            handle,
            thread: Some(thread),
        }
    }

    fn spans(&self) -> Vec<(Vec<(String, String)>, Span)> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until spans named `names` have all arrived (or `timeout` passes).
    fn wait_for(&self, names: &[&str], timeout: Duration) -> Vec<(Vec<(String, String)>, Span)> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if names
                .iter()
                .all(|n| spans.iter().any(|(_, s)| s.name == *n))
                || Instant::now() > deadline
            {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let _ =
            std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)))
                .join();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Kept = Arc<Mutex<Vec<(Vec<(String, String)>, Span)>>>;

async fn export(request: actix_web::HttpRequest, body: Bytes, kept: Data<Kept>) -> HttpResponse {
    assert_eq!(
        request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-protobuf")
    );
    let Ok(export) = ExportTraceServiceRequest::decode(body) else {
        return HttpResponse::BadRequest().finish();
    };
    let mut kept = kept.lock().unwrap();
    for resource_spans in export.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                kept.push((resource.clone(), span));
            }
        }
    }
    // An empty ExportTraceServiceResponse: everything accepted.
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .body(Vec::new())
}

fn attributes(pairs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// Waits until spans named `stages` have arrived, stops the receiver, and asserts each came.
async fn arrived(
    receiver: Receiver,
    stages: &'static [&'static str],
) -> Vec<(Vec<(String, String)>, Span)> {
    let spans = tokio::task::spawn_blocking(move || {
        let spans = receiver.wait_for(stages, Duration::from_secs(15));
        drop(receiver);
        spans
    })
    .await
    .unwrap();
    let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
    for stage in stages {
        assert!(
            spans.iter().any(|(_, s)| s.name == *stage),
            "no `{stage}` span; got {names:?}"
        );
    }
    spans
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The default config with the two-model proxy fleet of tests/proxy.rs (one upstream for
/// both, only the jailbreak block policy), the cache on and `telemetry` appended.
fn config(upstream: &str, telemetry: &str) -> String {
    let text = std::fs::read_to_string(common::repo().join("config/semrouter.yaml"))
        .expect("default config");
    let policies = text.find("\npolicies:\n").expect("policies section");
    let scoring = text.find("\n# Scoring:").expect("scoring section");
    let models = text.find("\nmodels:\n").expect("models section");
    format!(
        "{}\npolicies:\n  - {{name: block-jailbreak, priority: 100, when: {{jailbreak: {{min: 0.9}}}}, action: block}}\n{}
models:
  - name: qwen3-8b
    reasoning_family: qwen3
    quality: {{ default: 0.70, other: 0.88, math: 0.60 }}
    upstream: {{ base_url: \"{upstream}\" }}
  - name: deepseek-v3.1
    reasoning_family: deepseek
    quality: {{ default: 0.82, math: 0.95 }}
    upstream: {{ base_url: \"{upstream}\" }}
cache: {{ enabled: true }}
{telemetry}
",
        &text[..policies],
        &text[scoring..models],
    )
}

fn launch(config: String) -> Launch<'static> {
    // Export every 100 ms instead of the SDK's 5 s, so the test does not wait.
    Launch {
        config: Some(config),
        env: vec![("OTEL_BSP_SCHEDULE_DELAY", "100".to_string())],
    }
}

#[tokio::test]
async fn the_proxy_joins_the_callers_trace_exports_each_stage_and_hands_the_trace_on() {
    let receiver = Receiver::start();
    let model = Upstream::start("model");
    let telemetry = format!("telemetry: {{ enabled: true, otlp_endpoint: \"{}\", sample_ratio: 1.0, service_name: semrouter-test }}", receiver.url);
    let server = Server::start(launch(config(&model.base, &telemetry)));

    let response = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&chat("auto", PROMPT))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    assert_eq!(
        response
            .headers()
            .get("x-semrouter-cache")
            .and_then(|v| v.to_str().ok()),
        Some("miss")
    );

    let stages: &[&str] = &[
        "request",
        "cache_lookup",
        "queue",
        "tokenise",
        "infer",
        "signals",
        "decide",
        "upstream",
    ];
    let spans = arrived(receiver, stages).await;
    let by_name: HashMap<&str, &Span> = spans.iter().map(|(_, s)| (s.name.as_str(), s)).collect();

    // One trace, the caller's: the request span's parent is the caller's span, every stage
    // is a child of the request span.
    for (resource, span) in &spans {
        assert_eq!(
            hex(&span.trace_id),
            TRACE_ID,
            "span `{}` is in another trace",
            span.name
        );
        assert!(
            resource.contains(&("service.name".to_string(), "semrouter-test".to_string())),
            "resource: {resource:?}"
        );
    }
    let request = by_name["request"];
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    for stage in &stages[1..] {
        assert_eq!(
            by_name[stage].parent_span_id, request.span_id,
            "`{stage}` is not a child of `request`"
        );
    }
    let lookups: Vec<&str> = spans
        .iter()
        .filter(|(_, s)| s.name == "cache_lookup")
        .flat_map(|(_, s)| {
            attributes(&s.attributes)
                .into_iter()
                .filter(|(k, _)| k == "kind")
                .map(|(_, v)| v)
        })
        .map(|v| if v == "exact" { "exact" } else { "semantic" })
        .collect();
    assert!(
        lookups.contains(&"exact") && lookups.contains(&"semantic"),
        "cache lookups: {lookups:?}"
    );
    let upstream_span = by_name["upstream"];
    let upstream_attributes = attributes(&upstream_span.attributes);
    assert!(
        upstream_attributes
            .iter()
            .any(|(k, v)| k == "model" && (v == "deepseek-v3.1" || v == "qwen3-8b")),
        "{upstream_attributes:?}"
    );
    assert!(upstream_span.end_time_unix_nano >= upstream_span.start_time_unix_nano);

    // The upstream was called inside the same trace, from the upstream span.
    let traceparents = model.traceparents();
    assert_eq!(traceparents.len(), 1);
    let sent = traceparents[0]
        .clone()
        .expect("the upstream got a traceparent");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[1], TRACE_ID, "{sent}");
    assert_eq!(parts[2], hex(&upstream_span.span_id), "{sent}");
    assert_eq!(parts[3], "01", "{sent}");

    // No attribute, event or status carries the prompt or any part of it.
    for (_, span) in &spans {
        let text = format!("{:?}", span);
        for needle in [PROMPT, "zebra-7731", "Solve 3x"] {
            assert!(
                !text.contains(needle),
                "span `{}` carries prompt text: {text}",
                span.name
            );
        }
    }
    drop(server);
}

#[tokio::test]
async fn an_ext_proc_decision_joins_the_trace_envoy_forwards() {
    let receiver = Receiver::start();
    let model = Upstream::start("model");
    let telemetry = format!(
        "telemetry: {{ enabled: true, otlp_endpoint: \"{}\", sample_ratio: 1.0 }}",
        receiver.url
    );
    let port = free_port();
    let mut launch = launch(config(&model.base, &telemetry));
    launch
        .env
        .push(("SEMROUTER__EXTPROC__ENABLED", "true".into()));
    launch
        .env
        .push(("SEMROUTER__EXTPROC__ADDR", format!("127.0.0.1:{port}")));
    let server = Server::start(launch);

    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let messages = extproc::buffered_chat_with(
        &[("traceparent", &traceparent)],
        serde_json::to_vec(&chat("auto", PROMPT)).unwrap(),
    );
    let mut client = ExternalProcessorClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("ext_proc reachable");
    let mut replies = client
        .process(futures_util::stream::iter(messages))
        .await
        .expect("the stream opens")
        .into_inner();
    // The header reply, then the body's: the routed request, released with its model.
    let mut selected = None;
    while selected.is_none() {
        let reply = tokio::time::timeout(Duration::from_secs(30), replies.message())
            .await
            .expect("a reply in time")
            .expect("no stream error")
            .expect("the body's reply before the stream ends");
        if let Some(Response::RequestBody(body)) = reply.response {
            let mutation = body
                .response
                .and_then(|r| r.header_mutation)
                .expect("the body's reply sets headers");
            selected = mutation
                .set_headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .find(|h| h.key == "x-selected-model")
                .map(|h| String::from_utf8_lossy(&h.raw_value).into_owned());
            assert!(selected.is_some(), "no x-selected-model in {mutation:?}");
        }
    }

    let stages: &[&str] = &[
        "request",
        "cache_lookup",
        "queue",
        "tokenise",
        "infer",
        "signals",
        "decide",
    ];
    let spans = arrived(receiver, stages).await;
    let by_name: HashMap<&str, &Span> = spans.iter().map(|(_, s)| (s.name.as_str(), s)).collect();
    // The decision is part of the trace Envoy carried in: the request span is the caller's
    // child, named for the ext_proc front end, and every stage is under it.
    for (_, span) in &spans {
        assert_eq!(
            hex(&span.trace_id),
            TRACE_ID,
            "span `{}` is in another trace",
            span.name
        );
        let text = format!("{span:?}");
        assert!(
            !text.contains("zebra-7731") && !text.contains("Solve 3x"),
            "span `{}` carries prompt text: {text}",
            span.name
        );
    }
    let request = by_name["request"];
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    assert!(
        attributes(&request.attributes)
            .contains(&("http.route".to_string(), "ext_proc".to_string())),
        "{:?}",
        attributes(&request.attributes)
    );
    for stage in &stages[1..] {
        assert_eq!(
            by_name[stage].parent_span_id, request.span_id,
            "`{stage}` is not a child of `request`"
        );
    }
    // Envoy, not semrouter, calls the upstream on this path.
    assert!(model.traceparents().is_empty());
    drop(server);
}

#[tokio::test]
async fn sample_ratio_0_exports_no_new_or_unsampled_traces() {
    let receiver = Receiver::start();
    let model = Upstream::start("model");
    let telemetry = format!(
        "telemetry: {{ enabled: true, otlp_endpoint: \"{}\", sample_ratio: 0 }}",
        receiver.url
    );
    let mut server = Server::start(launch(config(&model.base, &telemetry)));
    let client = reqwest::Client::new();
    let fresh = client
        .post(server.url("/v1/chat/completions"))
        .json(&chat("auto", PROMPT))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);
    let unsampled = client
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-00"))
        .json(&chat("auto", "What is the capital of France?"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsampled.status(), 200);
    // SIGTERM flushes the exporter: whatever it held has been sent once the process is gone.
    assert!(server.terminate().success());
    assert_eq!(
        receiver.spans().len(),
        0,
        "spans exported at sample_ratio 0: {:?}",
        receiver
            .spans()
            .iter()
            .map(|(_, s)| &s.name)
            .collect::<Vec<_>>()
    );
    // The context still travels: the upstream sees the caller's trace, marked not sampled.
    let traceparents = model.traceparents();
    assert_eq!(traceparents.len(), 2);
    let handed_on = traceparents[1].clone().expect("traceparent handed on");
    assert!(
        handed_on.starts_with(&format!("00-{TRACE_ID}-")) && handed_on.ends_with("-00"),
        "{handed_on}"
    );
}

#[test]
fn telemetry_keys_are_checked_at_load() {
    let (status, stderr) = common::serve_expecting_failure(
        Some(&common::default_config_with(&[(
            "  sample_ratio: 0.1",
            "  sample_ratio: 1.5",
        )])),
        &[],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("telemetry.sample_ratio") && stderr.contains("must be from 0 to 1"),
        "{stderr}"
    );
    let (status, stderr) = common::serve_expecting_failure(
        Some(&common::default_config_with(&[(
            "otlp_endpoint: http://127.0.0.1:4318/v1/traces",
            "otlp_endpoint: collector:4318",
        )])),
        &[],
    );
    assert!(!status.success());
    assert!(stderr.contains("telemetry.otlp_endpoint"), "{stderr}");
}
