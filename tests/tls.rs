//! TLS on the REST listener (`server.tls`) against the real binary, with a self-signed
//! certificate made in the test: HTTPS answers with a client that trusts it, a plain HTTP
//! request gets no answer, and a missing key file stops start-up naming the key.

mod common;

use std::time::{Duration, Instant};

use common::{chat, serve_expecting_failure, Launch, Server};
use serde_json::Value;

#[tokio::test]
async fn the_rest_listener_serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = common::self_signed(dir.path(), &["localhost", "127.0.0.1"]);

    let server = Server::spawn(Launch {
        env: vec![
            (
                "SEMROUTER__SERVER__TLS__CERT_FILE",
                cert.display().to_string(),
            ),
            (
                "SEMROUTER__SERVER__TLS__KEY_FILE",
                key.display().to_string(),
            ),
        ],
        ..Launch::default()
    });
    let https = server.base.replacen("http://", "https://", 1);
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let started = Instant::now();
    loop {
        match client.get(format!("{https}/ready")).send().await {
            Ok(r) if r.status() == 200 => break,
            _ => {
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "not ready over https; stderr:\n{}",
                    server.stderr()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let reply = client
        .post(format!("{https}/v1/route"))
        .json(&chat("auto", "What is the capital of Australia?"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    assert!(body["model"].is_string(), "{body}");

    // A client that does not trust the certificate is refused; plain HTTP gets no HTTP answer.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(untrusting
        .get(format!("{https}/health"))
        .send()
        .await
        .is_err());
    assert_eq!(
        common::get_status(server.base.trim_start_matches("http://"), "/health"),
        None
    );
}

#[test]
fn an_unusable_key_file_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = common::self_signed(dir.path(), &["localhost"]);
    // A certificate where the key should be.
    std::fs::write(&key, pem).unwrap();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let (status, stderr) = serve_expecting_failure(
        None,
        &[
            ("SEMROUTER__SERVER__TLS__CERT_FILE", &cert),
            ("SEMROUTER__SERVER__TLS__KEY_FILE", &key),
        ],
    );
    assert!(!status.success());
    assert!(stderr.contains("server.tls.key_file"), "{stderr}");
    let missing = dir.path().join("absent.pem").display().to_string();
    let (status, stderr) = serve_expecting_failure(
        None,
        &[
            ("SEMROUTER__SERVER__TLS__CERT_FILE", &cert),
            ("SEMROUTER__SERVER__TLS__KEY_FILE", &missing),
        ],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("server.tls.key_file") && stderr.contains("not a file"),
        "{stderr}"
    );
}
