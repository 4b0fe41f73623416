//! Criterion benches of the PII signal (part of `make bench`; needs `make setup`): what
//! `PiiDetector::detect` costs on a typical prompt carrying PII, with the regex recognisers
//! alone and with the Rampart token classifier (tokeniser, queue and worker included).
//!
//!     cargo bench --bench pii

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use semrouter::config;
use semrouter::engine::signals::pii::{PiiDetector, PiiSettings};
use semrouter_onnx::{OnnxModelConfig, OnnxRuntime, OnnxTokenClassifier};

/// A prompt of typical length (57 tokens) with a name, an address, an e-mail and a phone.
const PROMPT: &str = "Hi, I'm Marie Hamanová. Please send the signed contract to 2071 Maryland Avenue, Pinellas, FL 34624 and copy MarieHamanova@armyspy.com, or call me at (727) 538-7059.";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn detect(c: &mut Criterion) {
    let config = config::load(None).expect("the default config loads");
    let runtime = OnnxRuntime::load(
        &repo().join(&config.runtime.onnxruntime_library),
        "run `make setup`",
    )
    .expect("ONNX Runtime (make setup)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let regex_only = PiiDetector::new(None, PiiSettings::default()).expect("detector");
    c.bench_function("pii/regex_only", |b| {
        b.iter(|| rt.block_on(regex_only.detect(PROMPT)).expect("findings"))
    });

    let dir = repo().join("onnx/fetched/rampart");
    let rampart: OnnxModelConfig = serde_json::from_value(serde_json::json!({
        "model": dir.join("model_q4.onnx"),
        "tokenizer": dir.join("tokenizer.json"),
        "max_tokens": 512,
        // One thread: on this project's 2-core machine, under load, a second intra-op thread
        // doubled Rampart's latency (Python onnxruntime measured the same).
        "intra_threads": 1,
    }))
    .expect("model config");
    let classifier = OnnxTokenClassifier::load(&runtime, &rampart, &dir.join("config.json"))
        .expect("Rampart (make setup)");
    let detector =
        PiiDetector::new(Some(Arc::new(classifier)), PiiSettings::default()).expect("detector");
    c.bench_function("pii/detect_typical", |b| {
        b.iter(|| rt.block_on(detector.detect(PROMPT)).expect("findings"))
    });
}

criterion_group!(benches, detect);
criterion_main!(benches);
