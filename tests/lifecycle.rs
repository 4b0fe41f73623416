//! Start-up and shutdown: bad configs and missing files stop start-up with a message that
//! names the key or file; execution providers fall back or refuse as configured; SIGTERM
//! lets in-flight requests finish.

mod common;

use std::time::Duration;

use common::{abs, chat, default_config_with, run_cli, serve_expecting_failure, Launch, Server};
use serde_json::Value;

fn assert_one_line_naming(stderr: &str, needles: &[&str]) {
    let line = stderr
        .lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no line names {needles:?}; stderr:\n{stderr}"));
    assert!(
        line.len() < 400,
        "the message should be one short line: {line}"
    );
}

#[test]
fn missing_runtime_and_model_files_name_the_file_and_the_fetch_command() {
    let (status, stderr) = serve_expecting_failure(
        None,
        &[(
            "SEMROUTER__RUNTIME__ONNXRUNTIME_LIBRARY",
            "/opt/none/libonnxruntime.so",
        )],
    );
    assert!(!status.success());
    assert_one_line_naming(&stderr, &["/opt/none/libonnxruntime.so", "make setup"]);

    let (status, stderr) = serve_expecting_failure(
        None,
        &[("SEMROUTER__EMBEDDING__ONNX__MODEL", "/opt/none/model.onnx")],
    );
    assert!(!status.success());
    assert_one_line_naming(&stderr, &["/opt/none/model.onnx", "make setup"]);

    let (status, stderr) = serve_expecting_failure(
        None,
        &[("SEMROUTER__CLASSIFIER__HEAD", "/opt/none/head.json")],
    );
    assert!(!status.success());
    assert_one_line_naming(&stderr, &["/opt/none/head.json", "semrouter train domain"]);
}

#[test]
fn bad_configs_stop_start_up_naming_the_key() {
    let cases: Vec<(String, &[&str])> = vec![
        (
            default_config_with(&[("  workers: 0", "  workers: many")]),
            &["server.workers"],
        ),
        (
            default_config_with(&[("    sessions: 1", "    sessions: 0")]),
            &["embedding.onnx.sessions"],
        ),
        (
            default_config_with(&[("      math: 0.95", "      astrology: 0.95")]),
            &["models[2].quality.astrology", "not a category"],
        ),
        (
            default_config_with(&[("      other: 0.84", "      other: 1.7")]),
            &["models[1].quality.other"],
        ),
        (
            default_config_with(&[(
                "  auto_models: [auto]",
                "  auto_models: [auto]\n  colour: blue",
            )]),
            &["routing", "colour"],
        ),
        (
            default_config_with(&[("  - name: gpt-oss-120b", "  - name: qwen3-8b")]),
            &["models[1].name", "twice"],
        ),
        (
            default_config_with(&[("  backend: onnx", "  backend: carrier-pigeon")]),
            &["embedding.backend", "carrier-pigeon"],
        ),
        (
            default_config_with(&[("  kind: linear", "  kind: onnx")]),
            &["classifier.onnx"],
        ),
    ];
    for (config, needles) in cases {
        let (status, stderr) = serve_expecting_failure(Some(&config), &[]);
        assert!(!status.success(), "{needles:?} should fail");
        assert_one_line_naming(&stderr, needles);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, &config).unwrap();
        let (status, _, stderr) = run_cli(&["check-config", path.to_str().unwrap()], &[]);
        assert!(!status.success(), "check-config accepts {needles:?}");
        assert_one_line_naming(&stderr, needles);
    }
    let (status, stdout, _) = run_cli(&["check-config", "config/semrouter.yaml"], &[]);
    assert!(status.success() && stdout.contains("ok"));
}

#[test]
fn a_head_trained_on_another_embedding_model_is_refused() {
    // The tiny ModernBERT is a 32-d encoder; the default head belongs to 384-d MiniLM.
    let config = default_config_with(&[
        (
            "model: onnx/fetched/all-MiniLM-L6-v2-int8/model.onnx",
            &format!("model: {}", abs("onnx/tiny/modernbert/model.onnx")),
        ),
        (
            "tokenizer: onnx/fetched/all-MiniLM-L6-v2-int8/tokenizer.json",
            &format!("tokenizer: {}", abs("onnx/tiny/modernbert/tokenizer.json")),
        ),
        (
            "model_id: all-MiniLM-L6-v2-int8",
            "model_id: tiny-modernbert",
        ),
    ]);
    let (status, stderr) = serve_expecting_failure(Some(&config), &[]);
    assert!(!status.success());
    assert_one_line_naming(
        &stderr,
        &["all-MiniLM-L6-v2-int8", "tiny-modernbert", "retrain"],
    );
}

#[test]
fn a_required_gpu_provider_stops_start_up_and_a_preferred_one_falls_back() {
    let (status, stderr) = serve_expecting_failure(
        None,
        &[
            ("SEMROUTER__EMBEDDING__ONNX__EXECUTION_PROVIDER", "cuda"),
            ("SEMROUTER__EMBEDDING__ONNX__PROVIDER_POLICY", "required"),
        ],
    );
    assert!(!status.success());
    assert_one_line_naming(&stderr, &["cuda", "required"]);
}

#[tokio::test]
async fn a_preferred_gpu_provider_falls_back_to_cpu_and_says_so() {
    let server = Server::start(Launch {
        env: vec![(
            "SEMROUTER__EMBEDDING__ONNX__EXECUTION_PROVIDER",
            "cuda".into(),
        )],
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let models: Value = client
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let embedding = &models["data"].as_array().unwrap().last().unwrap()["semrouter"];
    assert_eq!(embedding["execution_provider"], "cpu");
    assert_eq!(embedding["requested_provider"], "cuda");
    let ready: Value = client
        .get(server.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["embedding"]["health"]["state"], "degraded");
    assert!(
        server.stderr().contains("running on cpu"),
        "the fallback is logged"
    );
    let r = client
        .post(server.url("/v1/route"))
        .json(&chat("auto", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn a_busy_port_is_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (status, _, stderr) = run_cli(&["serve", "--http-addr", &addr], &[]);
    assert!(!status.success());
    assert_one_line_naming(&stderr, &["cannot listen on", &addr]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_in_flight_requests_finish() {
    // One thread and one text per pass make 40 long prompts take a few hundred milliseconds,
    // so SIGTERM arrives while most are still queued or running.
    let mut server = Server::start(Launch {
        env: vec![
            ("SEMROUTER__EMBEDDING__ONNX__INTRA_THREADS", "1".into()),
            ("SEMROUTER__EMBEDDING__ONNX__MAX_BATCH_SIZE", "1".into()),
        ],
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let prompt =
        "Explain how the separation of powers limits each branch of government. ".repeat(12);
    let requests: Vec<_> = (0..40)
        .map(|_| {
            let client = client.clone();
            let url = server.url("/v1/route");
            let body = chat("auto", &prompt);
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let pid = server.pid();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    let mut finished = 0;
    for request in requests {
        let outcome = request.await.unwrap();
        assert_eq!(
            outcome.as_ref().ok(),
            Some(&200),
            "an in-flight request was dropped: {outcome:?}"
        );
        finished += 1;
    }
    assert_eq!(finished, 40);
    assert!(status.success(), "semrouter {pid} exited with {status}");
}
