//! The ONNX backend against the real ONNX Runtime library and real models: the default
//! MiniLM encoder (BERT inputs, with token_type_ids) against Python onnxruntime's embeddings,
//! the tiny ModernBERT encoder and classifier (no token_type_ids) against PyTorch, and the
//! Rampart PII token classifier against Python onnxruntime's per-token probabilities.
//! Needs `make setup` (the runtime library, MiniLM, Rampart); the tiny models are committed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use semrouter_embedder::{BackendError, Embedder, Health, TextClassifier, TokenClassifier};
use semrouter_onnx::{
    OnnxClassifier, OnnxEncoder, OnnxError, OnnxModelConfig, OnnxRuntime, OnnxTokenClassifier,
    Pooling, ProviderKind, ProviderPolicy,
};
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn runtime() -> OnnxRuntime {
    OnnxRuntime::load(
        &repo().join("onnx/fetched/onnxruntime/libonnxruntime.so.1.31.1"),
        "run `make setup` to fetch it",
    )
    .expect("ONNX Runtime library (run `make setup`)")
}

fn model_config(dir: &str) -> OnnxModelConfig {
    let dir = repo().join(dir);
    serde_json::from_value(json!({
        "model": dir.join("model.onnx"),
        "tokenizer": dir.join("tokenizer.json"),
        "intra_threads": 1,
    }))
    .expect("valid model config")
}

fn reference(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(path)).expect("reference file");
    serde_json::from_str(&text).expect("reference JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn texts(reference: &Value) -> Vec<(String, &Value)> {
    reference["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .map(|r| (r["text"].as_str().expect("text").to_string(), r))
        .collect()
}

#[tokio::test]
async fn minilm_matches_python_onnxruntime() {
    let reference = reference("onnx/reference/all-MiniLM-L6-v2-int8.json");
    let encoder = OnnxEncoder::load(
        &runtime(),
        &model_config("onnx/fetched/all-MiniLM-L6-v2-int8"),
    )
    .unwrap();
    assert!(
        encoder.uses_token_type_ids(),
        "MiniLM declares token_type_ids"
    );
    assert_eq!(encoder.info().dimension, 384);
    for (text, expected) in texts(&reference) {
        // One text per call: int8 activations are quantised per batch, so only an unpadded
        // run is bit-comparable with the reference.
        let out = encoder.embed(vec![text.clone()]).await.unwrap();
        let ids = expected["ids"].as_array().unwrap().len();
        assert_eq!(out[0].tokens, ids, "token count of {text:?}");
        let diff = max_diff(&out[0].values, &floats(&expected["embedding"]));
        assert!(diff < 1e-4, "{text:?}: max |diff| {diff}");
    }
}

#[tokio::test]
async fn minilm_batched_texts_stay_close_to_single_runs() {
    let reference = reference("onnx/reference/all-MiniLM-L6-v2-int8.json");
    let encoder = OnnxEncoder::load(
        &runtime(),
        &model_config("onnx/fetched/all-MiniLM-L6-v2-int8"),
    )
    .unwrap();
    let all = texts(&reference);
    let out = encoder
        .embed(all.iter().map(|(t, _)| t.clone()).collect())
        .await
        .unwrap();
    assert_eq!(out.len(), all.len());
    for ((text, expected), got) in all.iter().zip(&out) {
        let want = floats(&expected["embedding"]);
        let cosine: f32 = got.values.iter().zip(&want).map(|(a, b)| a * b).sum();
        assert!(
            cosine > 0.999,
            "{text:?}: cosine {cosine} with the unbatched reference"
        );
    }
}

#[tokio::test]
async fn tiny_modernbert_encoder_matches_pytorch_in_both_poolings() {
    let reference = reference("onnx/tiny/reference.json");
    let rt = runtime();
    let mut config = model_config("onnx/tiny/modernbert");
    config.normalize = false;
    for (pooling, key) in [(Pooling::Mean, "mean"), (Pooling::Cls, "cls")] {
        config.pooling = pooling;
        let encoder = OnnxEncoder::load(&rt, &config).unwrap();
        assert!(
            !encoder.uses_token_type_ids(),
            "ModernBERT takes no token_type_ids"
        );
        let all = texts(&reference);
        // Batched, so padding and the attention mask are exercised too.
        let out = encoder
            .embed(all.iter().map(|(t, _)| t.clone()).collect())
            .await
            .unwrap();
        for ((text, expected), got) in all.iter().zip(&out) {
            assert_eq!(
                got.tokens,
                expected["ids"].as_array().unwrap().len(),
                "token count of {text:?}"
            );
            let diff = max_diff(&got.values, &floats(&expected[key]));
            assert!(diff < 1e-4, "{key} pooling of {text:?}: max |diff| {diff}");
        }
    }
}

#[tokio::test]
async fn tiny_modernbert_classifier_labels_logits_by_name() {
    let reference = reference("onnx/tiny/reference.json");
    let dir = repo().join("onnx/tiny/modernbert-cls");
    let classifier = OnnxClassifier::load(
        &runtime(),
        &model_config("onnx/tiny/modernbert-cls"),
        &dir.join("config.json"),
    )
    .unwrap();
    let labels = classifier.labels().to_vec();
    assert_eq!(labels.len(), 14);
    assert_ne!(
        labels[0], "biology",
        "the tiny classifier's labels are shuffled on purpose"
    );
    let all = texts(&reference);
    let out = classifier
        .classify(all.iter().map(|(t, _)| t.clone()).collect())
        .await
        .unwrap();
    for ((text, expected), got) in all.iter().zip(&out) {
        for (label, value) in labels.iter().zip(&got.values) {
            let want = expected["logits"][label].as_f64().unwrap() as f32;
            assert!(
                (value - want).abs() < 1e-4,
                "{text:?} logit `{label}`: {value} vs {want}"
            );
        }
    }
}

#[tokio::test]
async fn long_inputs_are_truncated_not_rejected() {
    let mut config = model_config("onnx/fetched/all-MiniLM-L6-v2-int8");
    config.max_tokens = 32;
    config.max_batch_tokens = 512;
    let encoder = OnnxEncoder::load(&runtime(), &config).unwrap();
    let long = "word ".repeat(100_000);
    let out = encoder.embed(vec![long]).await.unwrap();
    assert_eq!(out[0].tokens, 32);
}

#[tokio::test]
async fn empty_text_is_refused() {
    let encoder = OnnxEncoder::load(&runtime(), &model_config("onnx/tiny/modernbert")).unwrap();
    let err = encoder
        .embed(vec!["ok".into(), "  ".into()])
        .await
        .unwrap_err();
    assert_eq!(err, BackendError::EmptyInput { index: 1 });
}

#[tokio::test]
async fn preferred_gpu_falls_back_to_cpu_and_required_gpu_refuses() {
    let rt = runtime();
    let mut config = model_config("onnx/tiny/modernbert");
    config.execution_provider = ProviderKind::Cuda;
    config.provider_policy = ProviderPolicy::Preferred;
    let encoder = OnnxEncoder::load(&rt, &config).expect("preferred CUDA falls back");
    assert_eq!(encoder.info().execution_provider, "cpu");
    assert_eq!(encoder.info().requested_provider, "cuda");
    assert!(matches!(encoder.health().await, Health::Degraded(_)));
    assert!(encoder.embed(vec!["still serves".into()]).await.is_ok());

    for provider in [ProviderKind::Cuda, ProviderKind::Tensorrt] {
        config.execution_provider = provider;
        config.provider_policy = ProviderPolicy::Required;
        match OnnxEncoder::load(&rt, &config) {
            Err(OnnxError::ProviderUnavailable { provider: p, .. }) => {
                assert_eq!(p, provider.as_str())
            }
            Err(other) => panic!("expected ProviderUnavailable, got {other}"),
            Ok(_) => panic!("{provider:?} cannot load without a GPU library"),
        }
    }
}

#[tokio::test]
async fn missing_files_name_the_path_and_the_fix() {
    let rt = runtime();
    let mut config = model_config("onnx/tiny/modernbert");
    config.model = PathBuf::from("/nonexistent/model.onnx");
    let message = OnnxEncoder::load(&rt, &config)
        .err()
        .expect("missing model")
        .to_string();
    assert!(
        message.contains("/nonexistent/model.onnx") && message.contains("make setup"),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
    let message = OnnxRuntime::load(
        Path::new("/nonexistent/libonnxruntime.so"),
        "run `make setup` to fetch it",
    )
    .err()
    .expect("missing library")
    .to_string();
    assert!(
        message.contains("/nonexistent/libonnxruntime.so") && message.contains("make setup"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_at_once_and_nothing_hangs() {
    let mut config = model_config("onnx/fetched/all-MiniLM-L6-v2-int8");
    config.queue_capacity = 2;
    config.max_batch_size = 1;
    let encoder = Arc::new(OnnxEncoder::load(&runtime(), &config).unwrap());
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let encoder = Arc::clone(&encoder);
            tokio::spawn(async move {
                encoder
                    .embed(vec![format!("request number {i} about the weather")])
                    .await
            })
        })
        .collect();
    let mut overloaded = 0;
    let mut served = 0;
    for call in calls {
        match tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .expect("no request hangs")
            .unwrap()
        {
            Ok(_) => served += 1,
            Err(BackendError::Overloaded { capacity: 2 }) => overloaded += 1,
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert!(
        overloaded > 0,
        "64 concurrent requests into a queue of 2 must shed some"
    );
    assert!(served > 0);
    // Abandoned and refused requests leave the encoder healthy.
    assert!(encoder.embed(vec!["after the storm".into()]).await.is_ok());
}

fn rampart() -> OnnxTokenClassifier {
    let dir = repo().join("onnx/fetched/rampart");
    let config: OnnxModelConfig = serde_json::from_value(json!({
        "model": dir.join("model_q4.onnx"),
        "tokenizer": dir.join("tokenizer.json"),
        "max_tokens": 512,
        "intra_threads": 1,
        "max_batch_size": 8,
    }))
    .expect("valid model config");
    OnnxTokenClassifier::load(&runtime(), &config, &dir.join("config.json"))
        .expect("Rampart (run `make setup`)")
}

/// The label each token of `predictions` argmaxes to.
fn argmax_labels<'a>(
    labels: &'a [String],
    p: &semrouter_embedder::TokenPredictions,
) -> Vec<&'a str> {
    (0..p.len())
        .map(|i| {
            let row = p.token(i);
            let best = (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            labels[best].as_str()
        })
        .collect()
}

#[tokio::test]
async fn rampart_token_probabilities_and_byte_offsets_match_python_onnxruntime() {
    let reference = reference("onnx/reference/rampart.json");
    let classifier = rampart();
    let labels: Vec<String> = reference["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        classifier.labels(),
        labels.as_slice(),
        "labels by id2label index"
    );
    assert_eq!(classifier.info().dimension, 35);
    let all = texts(&reference);
    // Batched, so padding positions must be dropped per text.
    let out = classifier
        .classify_tokens(all.iter().map(|(t, _)| t.clone()).collect())
        .await
        .unwrap();
    for ((text, expected), got) in all.iter().zip(&out) {
        let tokens = expected["tokens"].as_array().unwrap();
        assert_eq!(got.len(), tokens.len(), "tokens of {text:?}");
        assert_eq!(
            got.tokens,
            tokens.len() + 2,
            "[CLS] and [SEP] are run but not reported"
        );
        for (i, token) in tokens.iter().enumerate() {
            let want = (
                token["start"].as_u64().unwrap() as usize,
                token["end"].as_u64().unwrap() as usize,
            );
            assert_eq!(
                got.offsets[i], want,
                "byte offsets of token {i} of {text:?}"
            );
            assert!(
                text.get(want.0..want.1).is_some(),
                "offsets fall on character boundaries"
            );
            let diff = max_diff(got.token(i), &floats(&token["probabilities"]));
            assert!(diff < 1e-4, "token {i} of {text:?}: max |diff| {diff}");
        }
    }
}

#[tokio::test]
async fn rampart_covers_long_texts_in_windows() {
    let classifier = rampart();
    let labels = classifier.labels().to_vec();
    // A sentence the model labels with certainty in any context.
    let sentence = "My name is Marie Hamanova and you can call me at (727) 538-7059 after lunch.";
    let single = classifier
        .classify_tokens(vec![sentence.to_string()])
        .await
        .unwrap()
        .remove(0);
    let single_labels = argmax_labels(&labels, &single);
    assert!(
        single_labels.contains(&"B-PHONE") && single_labels.contains(&"B-GIVEN_NAME"),
        "{single_labels:?}"
    );

    // About 3.9 kB: nine windows or so, far beyond the model's 512 tokens.
    let copies = 50;
    let long = vec![sentence; copies].join(" ");
    let got = classifier
        .classify_tokens(vec![long.clone()])
        .await
        .unwrap()
        .remove(0);
    assert!(
        got.tokens > 512,
        "more tokens than one pass could hold: {}",
        got.tokens
    );
    // Every token of the text is reported exactly once, in order.
    assert_eq!(got.len(), single.len() * copies);
    assert!(
        got.offsets.windows(2).all(|w| w[0].1 <= w[1].0),
        "tokens in order, no repeats"
    );
    // Each copy is labelled like the sentence alone, the last one too.
    let stride = sentence.len() + 1;
    let long_labels = argmax_labels(&labels, &got);
    for (copy, chunk) in long_labels.chunks(single.len()).enumerate() {
        let shifted: Vec<(usize, usize)> = got.offsets
            [copy * single.len()..(copy + 1) * single.len()]
            .iter()
            .map(|&(s, e)| (s - copy * stride, e - copy * stride))
            .collect();
        assert_eq!(shifted, single.offsets, "offsets of copy {copy}");
        assert_eq!(chunk, single_labels.as_slice(), "labels of copy {copy}");
    }
}
