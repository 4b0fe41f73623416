//! The other endpoints: classify, embeddings, models, health, ready and metrics.

mod common;

use base64::Engine as _;
use common::{chat, metric, Server};
use serde_json::{json, Value};

#[tokio::test]
async fn classify_returns_a_distribution_over_the_14_categories() {
    let server = Server::start_default();
    let client = reqwest::Client::new();
    let reply: Value = client
        .post(server.url("/v1/classify"))
        .json(&json!({"text": "What is the derivative of sin(x) * x^2?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["category"]["name"], "math");
    let probabilities = reply["probabilities"].as_object().unwrap();
    assert_eq!(probabilities.len(), 14);
    let total: f64 = probabilities.values().map(|p| p.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4, "probabilities sum to {total}");
    assert_eq!(probabilities["math"], reply["category"]["confidence"]);
    assert!(reply["tokens"].as_u64().unwrap() > 5);

    // Messages are classified like /v1/route classifies them.
    let messages = json!({"messages": [{"role": "user", "content": "Is it legal to break a lease early in California?"}]});
    let by_messages: Value = client
        .post(server.url("/v1/classify"))
        .json(&messages)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let routed: Value = client
        .post(server.url("/v1/route"))
        .json(&chat(
            "auto",
            "Is it legal to break a lease early in California?",
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_messages["category"], routed["category"]);
}

#[tokio::test]
async fn embeddings_are_openai_compatible_in_float_and_base64() {
    let server = Server::start_default();
    let client = reqwest::Client::new();
    let inputs = [
        "the cat sat on the mat",
        "a feline rested on the rug",
        "quarterly tax filing deadlines",
    ];
    let reply: Value = client
        .post(server.url("/v1/embeddings"))
        .json(&json!({"input": inputs, "model": "all-MiniLM-L6-v2-int8"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["object"], "list");
    assert_eq!(reply["model"], "all-MiniLM-L6-v2-int8");
    let data = reply["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let vectors: Vec<Vec<f32>> = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["object"], "embedding");
            assert_eq!(d["index"], i);
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for v in &vectors {
        assert_eq!(v.len(), 384);
        assert!((dot(v, v) - 1.0).abs() < 1e-3, "unit length");
    }
    assert!(
        dot(&vectors[0], &vectors[1]) > dot(&vectors[0], &vectors[2]),
        "similar sentences are closer"
    );
    assert!(reply["usage"]["prompt_tokens"].as_u64().unwrap() >= 15);

    let single: Value = client
        .post(server.url("/v1/embeddings"))
        .json(&json!({"input": inputs[0], "encoding_format": "base64"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(single["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(decoded.len(), 384);
    assert!(
        dot(&decoded, &vectors[0]) > 0.999,
        "base64 carries the same vector"
    );
}

#[tokio::test]
async fn models_health_ready_and_metrics() {
    let server = Server::start_default();
    let client = reqwest::Client::new();
    let models: Value = client
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "auto",
            "qwen3-8b",
            "gpt-oss-120b",
            "deepseek-v3.1",
            "all-MiniLM-L6-v2-int8"
        ]
    );
    let embedding = &models["data"][4]["semrouter"];
    assert_eq!(embedding["execution_provider"], "cpu");
    assert_eq!(embedding["requested_provider"], "cpu");
    assert_eq!(embedding["dimension"], 384);
    assert_eq!(
        models["data"][3]["semrouter"]["reasoning_family"],
        "deepseek"
    );

    let health: Value = client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready: Value = client
        .get(server.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["embedding"]["health"]["state"], "ready");

    for prompt in [
        "Solve 3x + 5 = 20 for x",
        "Can you recommend a movie for tonight?",
    ] {
        let r = client
            .post(server.url("/v1/route"))
            .json(&chat("auto", prompt))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let response = client.get(server.url("/metrics")).send().await.unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert_eq!(
        metric(
            &text,
            "semrouter_http_requests_total",
            &["endpoint=\"/v1/route\"", "status=\"200\""]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "semrouter_decisions_total",
            &[
                "model=\"deepseek-v3.1\"",
                "category=\"math\"",
                "reasoning=\"on\""
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "semrouter_decisions_total",
            &[
                "model=\"qwen3-8b\"",
                "category=\"other\"",
                "reasoning=\"off\""
            ]
        ),
        Some(1.0)
    );
    for stage in ["tokenize", "queue", "infer", "decide"] {
        let count = metric(
            &text,
            "semrouter_stage_duration_seconds_count",
            &[&format!("stage=\"{stage}\"")],
        );
        assert!(count.is_some_and(|c| c >= 2.0), "stage {stage} histogram");
    }
    assert!(metric(
        &text,
        "semrouter_http_request_duration_seconds_bucket",
        &["endpoint=\"/v1/route\"", "le=\"0.1\""]
    )
    .is_some());
    assert_eq!(metric(&text, "semrouter_ready", &[]), Some(1.0));
    assert!(text.contains("semrouter_build_info{") && text.contains("execution_provider=\"cpu\""));
    assert!(
        !text.contains("movie") && !text.contains("Solve"),
        "prompt text never reaches metrics"
    );
}
