//! TLS on the ext_proc gRPC listener (`extproc.tls`) against the real binary, with a
//! self-signed certificate made as tests/tls.rs makes its own: a tonic client that trusts it
//! passes the health check and completes a routed ext_proc exchange, a plaintext client gets
//! nothing, and an unusable key stops start-up naming the key.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, serve_expecting_failure, Launch, Server};
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
use envoy_types::pb::envoy::service::ext_proc::v3::{HttpBody, HttpHeaders, ProcessingRequest};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

fn header(key: &str, value: &str) -> HeaderValue {
    HeaderValue {
        key: key.to_string(),
        raw_value: value.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// A chat request as Envoy sends it in the default (buffered) mode: headers, then the body.
fn chat_request() -> Vec<ProcessingRequest> {
    let headers = HttpHeaders {
        headers: Some(HeaderMap {
            headers: vec![header(":method", "POST"), header(":path", "/v1/chat/completions"), header("content-type", "application/json")],
        }),
        end_of_stream: false,
        ..Default::default()
    };
    let body = serde_json::to_vec(&common::chat("auto", "What is the capital of Australia?")).unwrap();
    vec![
        ProcessingRequest {
            request: Some(Request::RequestHeaders(headers)),
            ..Default::default()
        },
        ProcessingRequest {
            request: Some(Request::RequestBody(HttpBody {
                body,
                end_of_stream: true,
                ..Default::default()
            })),
            ..Default::default()
        },
    ]
}

async fn serving(channel: Channel) -> Result<i32, tonic::Status> {
    let reply = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await?;
    Ok(reply.into_inner().status)
}

#[tokio::test]
async fn the_grpc_listener_serves_ext_proc_and_health_over_tls_only() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let port = free_port();
    let server = Server::start(Launch {
        env: vec![
            ("SEMROUTER__EXTPROC__ENABLED", "true".to_string()),
            ("SEMROUTER__EXTPROC__ADDR", format!("127.0.0.1:{port}")),
            ("SEMROUTER__EXTPROC__TLS__CERT_FILE", cert.display().to_string()),
            ("SEMROUTER__EXTPROC__TLS__KEY_FILE", key.display().to_string()),
        ],
        ..Launch::default()
    });

    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(certified.cert.pem())).domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("TLS connect failed: {e}; stderr:\n{}", server.stderr()));
    // SERVING once the engine is warm (the REST /ready already is).
    let started = Instant::now();
    while serving(channel.clone()).await.unwrap() != ServingStatus::Serving as i32 {
        assert!(started.elapsed() < Duration::from_secs(30), "gRPC health never turned SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut client = ExternalProcessorClient::new(channel);
    let mut replies = client.process(tokio_stream::iter(chat_request())).await.unwrap().into_inner();
    let mut seen = Vec::new();
    while let Some(reply) = tokio::time::timeout(Duration::from_secs(10), replies.message()).await.expect("an ext_proc reply in time").unwrap() {
        seen.push(format!("{reply:?}"));
        if seen.last().is_some_and(|r| r.contains("RequestBody")) {
            break;
        }
    }
    let all = seen.join("\n");
    assert!(all.contains("x-selected-model"), "the routed exchange sets the model header: {all}");

    // A plaintext HTTP/2 client gets no gRPC answer from the TLS listener.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap().timeout(Duration::from_secs(5));
    let refused = match plain.connect().await {
        Err(_) => true,
        Ok(channel) => serving(channel).await.is_err(),
    };
    assert!(refused, "a plaintext client was answered by the TLS listener");
}

#[test]
fn an_unusable_grpc_key_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    // A certificate where the key should be.
    std::fs::write(&key, certified.cert.pem()).unwrap();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let addr = format!("127.0.0.1:{}", free_port());
    let env = |key_file: &str| {
        vec![
            ("SEMROUTER__EXTPROC__ENABLED".to_string(), "true".to_string()),
            ("SEMROUTER__EXTPROC__ADDR".to_string(), addr.clone()),
            ("SEMROUTER__EXTPROC__TLS__CERT_FILE".to_string(), cert.clone()),
            ("SEMROUTER__EXTPROC__TLS__KEY_FILE".to_string(), key_file.to_string()),
        ]
    };
    let run = |pairs: Vec<(String, String)>| {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        serve_expecting_failure(None, &pairs)
    };
    let (status, stderr) = run(env(&key));
    assert!(!status.success());
    assert!(stderr.contains("extproc.tls.key_file"), "{stderr}");
    let missing = dir.path().join("absent.pem").display().to_string();
    let (status, stderr) = run(env(&missing));
    assert!(!status.success());
    assert!(stderr.contains("extproc.tls.key_file") && stderr.contains("not a file"), "{stderr}");
}
