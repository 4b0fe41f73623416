//! Bad input never panics or hangs: every case gets the right status in OpenAI's envelope,
//! and the server keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{chat, expect_error, metric, Server};
use serde_json::json;

async fn post_raw(
    client: &reqwest::Client,
    server: &Server,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    client
        .post(server.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("response")
}

#[tokio::test]
async fn malformed_requests_get_400_naming_the_field() {
    let server = Server::start_default();
    let client = reqwest::Client::new();
    let json_ct = "application/json";

    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("malformed JSON", b"{\"model\": \"auto\", \"messages\": [".to_vec(), None),
        ("empty body", Vec::new(), None),
        ("not an object", b"[1, 2, 3]".to_vec(), None),
        ("invalid UTF-8", b"{\"model\": \"auto\", \"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}".to_vec(), None),
        ("no model", br#"{"messages": [{"role": "user", "content": "hi"}]}"#.to_vec(), Some("model")),
        ("model not a string", br#"{"model": 7, "messages": [{"role": "user", "content": "hi"}]}"#.to_vec(), Some("model")),
        ("no messages", br#"{"model": "auto"}"#.to_vec(), Some("messages")),
        ("messages not a list", br#"{"model": "auto", "messages": "hi"}"#.to_vec(), Some("messages")),
        ("empty messages", br#"{"model": "auto", "messages": []}"#.to_vec(), Some("messages")),
        ("unknown role", br#"{"model": "auto", "messages": [{"role": "wizard", "content": "hi"}]}"#.to_vec(), Some("messages[0].role")),
        ("content a number", br#"{"model": "auto", "messages": [{"role": "user", "content": 42}]}"#.to_vec(), Some("messages[0].content")),
        ("stream not a bool", br#"{"model": "auto", "stream": "yes", "messages": [{"role": "user", "content": "hi"}]}"#.to_vec(), Some("stream")),
        ("negative max_tokens", br#"{"model": "auto", "max_tokens": -1, "messages": [{"role": "user", "content": "hi"}]}"#.to_vec(), Some("max_tokens")),
        ("no user text", br#"{"model": "auto", "messages": [{"role": "system", "content": "be brief"}]}"#.to_vec(), Some("messages")),
        ("blank user text", br#"{"model": "auto", "messages": [{"role": "user", "content": "   "}]}"#.to_vec(), Some("messages")),
        ("only an image", br#"{"model": "auto", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}"#.to_vec(), Some("messages")),
    ];
    for (name, body, param) in cases {
        let response = post_raw(&client, &server, "/v1/route", json_ct, body).await;
        let error = expect_error(response, 400).await;
        assert_eq!(error["type"], "invalid_request_error", "{name}");
        if let Some(param) = param {
            assert_eq!(error["param"], param, "{name}: {error}");
        }
    }

    // The same rules hold on the other JSON endpoints.
    let other_cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "both text and messages",
            json!({"text": "a", "messages": []}),
            "/v1/classify",
        ),
        ("empty text", json!({"text": ""}), "/v1/classify"),
        ("unknown field", json!({"txt": "a"}), "/v1/classify"),
        ("empty input list", json!({"input": []}), "/v1/embeddings"),
        (
            "blank input",
            json!({"input": ["ok", " "]}),
            "/v1/embeddings",
        ),
        (
            "token arrays",
            json!({"input": [[1, 2, 3]]}),
            "/v1/embeddings",
        ),
        (
            "wrong dimensions",
            json!({"input": "x", "dimensions": 64}),
            "/v1/embeddings",
        ),
        (
            "bad encoding",
            json!({"input": "x", "encoding_format": "hex"}),
            "/v1/embeddings",
        ),
    ];
    for (name, body, path) in other_cases {
        let response = client
            .post(server.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{name}");
        expect_error(response, 400).await;
    }
    let response = client
        .post(server.url("/v1/embeddings"))
        .json(&json!({"input": "x", "model": "text-embedding-3-large"}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(response, 404).await["code"], "model_not_found");

    assert_eq!(
        client
            .get(server.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn size_type_path_and_method_errors() {
    let server = Server::start_default();
    let client = reqwest::Client::new();

    // 413 from Content-Length, before the body is read.
    let big = vec![b' '; (1 << 20) + 1];
    let response = post_raw(&client, &server, "/v1/route", "application/json", big).await;
    assert_eq!(
        expect_error(response, 413).await["code"],
        "request_too_large"
    );

    // 413 for a chunked body that grows past the limit.
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "POST /v1/route HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..20 {
        if write!(stream, "{:x}\r\n", chunk.len()).is_err()
            || stream.write_all(&chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break; // the server may stop reading once the limit is passed
        }
    }
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 413"),
        "chunked oversize body: {reply}"
    );
    assert!(reply.contains("request_too_large"));

    // A prompt longer than every model's context window is refused, naming the limit.
    let prompt = "tell me about the history of Rome ".repeat(25_000);
    let response = client
        .post(server.url("/v1/route"))
        .json(&chat("auto", &prompt))
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 400).await;
    assert_eq!(error["code"], "no_eligible_model");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("context window"),
        "{error}"
    );

    // A long prompt that fits is truncated for the encoder, never refused.
    let prompt = "tell me about the history of Rome ".repeat(2_000);
    let response = client
        .post(server.url("/v1/route"))
        .json(&chat("auto", &prompt))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let decision: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        decision["tokens"], 256,
        "truncated to embedding.onnx.max_tokens"
    );

    // 415 for a body that is not JSON.
    let response = post_raw(&client, &server, "/v1/route", "text/plain", b"{}".to_vec()).await;
    assert_eq!(
        expect_error(response, 415).await["code"],
        "unsupported_media_type"
    );
    let response = post_raw(
        &client,
        &server,
        "/v1/route",
        "application/x-www-form-urlencoded",
        b"a=b".to_vec(),
    )
    .await;
    expect_error(response, 415).await;

    // 404 and 405 in the same envelope.
    let response = client
        .get(server.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(response, 404).await["code"], "unknown_url");
    let response = client.get(server.url("/v1/route")).send().await.unwrap();
    assert_eq!(
        expect_error(response, 405).await["code"],
        "method_not_allowed"
    );
    let response = client
        .delete(server.url("/v1/models"))
        .send()
        .await
        .unwrap();
    expect_error(response, 405).await;

    // Still serving, and every error was counted by code.
    let ok = client
        .post(server.url("/v1/route"))
        .json(&chat("auto", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (status, code) in [
        ("413", "request_too_large"),
        ("415", "unsupported_media_type"),
        ("405", "method_not_allowed"),
    ] {
        let count = metric(
            &metrics,
            "semrouter_http_errors_total",
            &[&format!("status=\"{status}\""), &format!("code=\"{code}\"")],
        );
        assert!(
            count.is_some_and(|c| c >= 1.0),
            "no {status} {code} in metrics"
        );
    }
    assert!(metric(
        &metrics,
        "semrouter_http_requests_total",
        &["endpoint=\"unmatched\"", "status=\"404\""]
    )
    .is_some());
    assert!(
        !metrics.contains("nothing-here"),
        "raw paths never become labels"
    );
}
