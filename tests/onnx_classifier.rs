//! The second classifier kind through the whole service: an ONNX ModernBERT sequence
//! classifier (the committed tiny one), with an encoder that takes no token_type_ids.
//! Its logits are labelled from config.json's id2label by name, in shuffled order.

mod common;

use common::{abs, chat, repo, Launch, Server};
use serde_json::{json, Value};

fn tiny_modernbert_config() -> String {
    format!(
        r#"
embedding:
  backend: onnx
  onnx:
    model: {enc}/model.onnx
    tokenizer: {enc}/tokenizer.json
    model_id: tiny-modernbert
    intra_threads: 1
classifier:
  kind: onnx
  onnx:
    model: {cls}/model.onnx
    tokenizer: {cls}/tokenizer.json
    model_id: tiny-modernbert-cls
    intra_threads: 1
  labels: {cls}/config.json
models:
  - name: only-model
    reasoning_family: qwen3
    quality: {{ default: 0.5 }}
"#,
        enc = abs("onnx/tiny/modernbert"),
        cls = abs("onnx/tiny/modernbert-cls"),
    )
}

#[tokio::test]
async fn sequence_classifier_probabilities_follow_its_labels_by_name() {
    let server = Server::start(Launch {
        config: Some(tiny_modernbert_config()),
        ..Launch::default()
    });
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("onnx/tiny/reference.json")).unwrap(),
    )
    .unwrap();
    let client = reqwest::Client::new();
    for record in reference["texts"].as_array().unwrap() {
        let text = record["text"].as_str().unwrap();
        let reply: Value = client
            .post(server.url("/v1/classify"))
            .json(&json!({"text": text}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let logits = record["logits"].as_object().unwrap();
        let max = logits
            .values()
            .map(|v| v.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        let total: f64 = logits
            .values()
            .map(|v| (v.as_f64().unwrap() - max).exp())
            .sum();
        for (label, logit) in logits {
            let want = (logit.as_f64().unwrap() - max).exp() / total;
            let got = reply["probabilities"][label].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-4,
                "{text:?} `{label}`: {got} vs {want}"
            );
        }
    }

    let decision: Value = client
        .post(server.url("/v1/route"))
        .json(&chat("auto", "hello"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(decision["model"], "only-model");
    assert_eq!(
        decision["request"]["chat_template_kwargs"]["enable_thinking"],
        false
    );

    // The encoder is ModernBERT (no token_type_ids) and serves embeddings too.
    let embeddings: Value = client
        .post(server.url("/v1/embeddings"))
        .json(&json!({"input": "hello"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(embeddings["model"], "tiny-modernbert");
    assert_eq!(
        embeddings["data"][0]["embedding"].as_array().unwrap().len(),
        32
    );
}
