//! TLS on the ext_proc gRPC listener (`extproc.tls`) against the real binary, with a
//! self-signed certificate made as tests/tls.rs makes its own: a tonic client that trusts it
//! passes the health check and completes a routed ext_proc exchange, a plaintext client gets
//! nothing, and an unusable key stops start-up naming the key.

mod common;
#[path = "support/extproc.rs"]
mod extproc;

use std::time::{Duration, Instant};

use common::{free_port, serve_expecting_failure, Launch, Server};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

fn chat_body() -> Vec<u8> {
    serde_json::to_vec(&common::chat("auto", "What is the capital of Australia?")).unwrap()
}

async fn serving(channel: Channel) -> Result<i32, tonic::Status> {
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(reply.into_inner().status)
}

#[tokio::test]
async fn the_grpc_listener_serves_ext_proc_and_health_over_tls_only() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = common::self_signed(dir.path(), &["localhost", "127.0.0.1"]);
    let port = free_port();
    let server = Server::start(Launch {
        env: vec![
            ("SEMROUTER__EXTPROC__ENABLED", "true".to_string()),
            ("SEMROUTER__EXTPROC__ADDR", format!("127.0.0.1:{port}")),
            (
                "SEMROUTER__EXTPROC__TLS__CERT_FILE",
                cert.display().to_string(),
            ),
            (
                "SEMROUTER__EXTPROC__TLS__KEY_FILE",
                key.display().to_string(),
            ),
        ],
        ..Launch::default()
    });

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pem))
        .domain_name("localhost");
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
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gRPC health never turned SERVING"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut client = ExternalProcessorClient::new(channel);
    let mut replies = client
        .process(tokio_stream::iter(extproc::buffered_chat(chat_body())))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(reply) = tokio::time::timeout(Duration::from_secs(10), replies.message())
        .await
        .expect("an ext_proc reply in time")
        .unwrap()
    {
        seen.push(format!("{reply:?}"));
        if seen.last().is_some_and(|r| r.contains("RequestBody")) {
            break;
        }
    }
    let all = seen.join("\n");
    assert!(
        all.contains("x-selected-model"),
        "the routed exchange sets the model header: {all}"
    );

    // A plaintext HTTP/2 client gets no gRPC answer from the TLS listener.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .timeout(Duration::from_secs(5));
    let refused = match plain.connect().await {
        Err(_) => true,
        Ok(channel) => serving(channel).await.is_err(),
    };
    assert!(
        refused,
        "a plaintext client was answered by the TLS listener"
    );
}

#[test]
fn an_unusable_grpc_key_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = common::self_signed(dir.path(), &["localhost"]);
    // A certificate where the key should be.
    std::fs::write(&key, pem).unwrap();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let addr = format!("127.0.0.1:{}", free_port());
    let env = |key_file: &str| {
        vec![
            (
                "SEMROUTER__EXTPROC__ENABLED".to_string(),
                "true".to_string(),
            ),
            ("SEMROUTER__EXTPROC__ADDR".to_string(), addr.clone()),
            (
                "SEMROUTER__EXTPROC__TLS__CERT_FILE".to_string(),
                cert.clone(),
            ),
            (
                "SEMROUTER__EXTPROC__TLS__KEY_FILE".to_string(),
                key_file.to_string(),
            ),
        ]
    };
    let run = |pairs: Vec<(String, String)>| {
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        serve_expecting_failure(None, &pairs)
    };
    let (status, stderr) = run(env(&key));
    assert!(!status.success());
    assert!(stderr.contains("extproc.tls.key_file"), "{stderr}");
    let missing = dir.path().join("absent.pem").display().to_string();
    let (status, stderr) = run(env(&missing));
    assert!(!status.success());
    assert!(
        stderr.contains("extproc.tls.key_file") && stderr.contains("not a file"),
        "{stderr}"
    );
}
