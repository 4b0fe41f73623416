//! Criterion benches of each stage of a decision (part of `make bench`; needs `make setup`):
//!
//! - `parse`: an OpenAI chat request body into a `ChatRequest`
//! - `tokenize`: a typical MMLU prompt, and one at the 256-token limit
//! - `embed`: one prompt through the real ONNX encoder, queue and worker included
//! - `classify`: the domain head over a real embedding
//! - `decide`: `Router::decide` with the model pass replaced by a precomputed real embedding,
//!   i.e. the router's own work per request (text selection, every signal from the embedding,
//!   20 policy rules, scoring a 5-model fleet, body rewrite), on `benches/decide.yaml`; its
//!   p50 and p99 over 20,000 calls are printed after criterion's figures
//!
//!     cargo bench --bench pipeline

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion};
use semrouter::assemble::assemble_with;
use semrouter::config;
use semrouter::engine::RequestOptions;
use semrouter::heads::LinearHead;
use semrouter::openai::parse_chat_request;
use semrouter_embedder::{BackendError, BackendInfo, Embedder, Encoded, Health, StageTiming};
use semrouter_onnx::{OnnxEncoder, OnnxRuntime, TextTokenizer};

const PROMPT: &str = "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.";
const BODY: &str = r#"{"model":"auto","temperature":0.2,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field."}]}"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An embedder that returns one precomputed embedding, so `decide` measures the router alone.
struct FixedEmbedder {
    vector: Vec<f32>,
    info: BackendInfo,
}

#[async_trait]
impl Embedder for FixedEmbedder {
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Encoded>, BackendError> {
        Ok(texts
            .iter()
            .map(|_| Encoded {
                values: self.vector.clone(),
                tokens: 20,
                timing: StageTiming::default(),
            })
            .collect())
    }

    fn info(&self) -> &BackendInfo {
        &self.info
    }

    async fn health(&self) -> Health {
        Health::Ready
    }
}

fn stages(c: &mut Criterion) {
    let config = config::load(None).expect("the default config loads");
    let onnx = config.embedding.onnx.clone().expect("embedding.onnx");
    let runtime = OnnxRuntime::load(
        &repo().join(&config.runtime.onnxruntime_library),
        "run `make setup`",
    )
    .expect("ONNX Runtime (make setup)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    c.bench_function("parse", |b| {
        b.iter(|| parse_chat_request(BODY.as_bytes()).expect("valid body"))
    });

    let tokenizer = TextTokenizer::from_file(&repo().join(&onnx.tokenizer), onnx.max_tokens)
        .expect("tokenizer");
    let long = "The quick brown fox jumps over the lazy dog near the riverbank. ".repeat(40);
    c.bench_function("tokenize/typical", |b| {
        b.iter(|| tokenizer.encode(PROMPT).expect("tokens"))
    });
    c.bench_function("tokenize/256_tokens", |b| {
        b.iter(|| tokenizer.encode(&long).expect("tokens"))
    });

    let mut model = onnx.clone();
    model.model = repo().join(&onnx.model);
    model.tokenizer = repo().join(&onnx.tokenizer);
    let encoder = OnnxEncoder::load(&runtime, &model).expect("encoder");
    c.bench_function("embed/one_prompt", |b| {
        b.iter(|| {
            rt.block_on(encoder.embed(vec![PROMPT.to_string()]))
                .expect("embedding")
        })
    });

    let head_path = repo().join(config.classifier.head.as_deref().expect("classifier.head"));
    let head = LinearHead::load(&head_path).expect("head");
    let vector = rt
        .block_on(encoder.embed(vec![PROMPT.to_string()]))
        .expect("embedding")
        .remove(0)
        .values;
    c.bench_function("classify/head", |b| {
        b.iter(|| head.probabilities(&vector, PROMPT))
    });
    // The jailbreak and complexity heads also hash the text's n-grams.
    for task in ["jailbreak", "complexity"] {
        let path = repo().join(semrouter::heads::default_path(
            task,
            &head.embedding.model_id,
        ));
        let extra = LinearHead::load(&path).expect("head");
        c.bench_function(&format!("classify/{task}_head"), |b| {
            b.iter(|| extra.probabilities(&vector, PROMPT))
        });
    }
    // The worst case: the lexical features read at most the first 8 KiB of a text.
    let jailbreak = LinearHead::load(&repo().join(semrouter::heads::default_path(
        "jailbreak",
        &head.embedding.model_id,
    )))
    .expect("head");
    let huge = long.repeat(8);
    c.bench_function("classify/jailbreak_head_8k", |b| {
        b.iter(|| jailbreak.probabilities(&vector, &huge))
    });

    let fixed = FixedEmbedder {
        vector,
        info: encoder.info().clone(),
    };
    let mut decide_config =
        config::load(Some(&repo().join("benches/decide.yaml"))).expect("benches/decide.yaml loads");
    decide_config.runtime.onnxruntime_library =
        repo().join(&decide_config.runtime.onnxruntime_library);
    let router = assemble_with(&decide_config, &runtime, Arc::new(fixed))
        .expect("the bench engine assembles");
    let request = parse_chat_request(BODY.as_bytes()).expect("valid body");
    let options = RequestOptions::default();
    c.bench_function("decide/without_model_pass", |b| {
        b.iter(|| {
            rt.block_on(router.decide(&request, &options))
                .expect("decision")
        })
    });

    // Criterion reports means; the target is a p99, so time single calls too.
    let mut samples: Vec<std::time::Duration> = (0..20_000)
        .map(|_| {
            let t = std::time::Instant::now();
            std::hint::black_box(
                rt.block_on(router.decide(&request, &options))
                    .expect("decision"),
            );
            t.elapsed()
        })
        .collect();
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "decide/without_model_pass (5 models, 20 rules): p50 {:.1} µs, p99 {:.1} µs over {} calls  (target p99 <= 50 µs: {})",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        samples.len(),
        if at(0.99).as_secs_f64() <= 50e-6 { "PASS" } else { "FAIL" }
    );
}

criterion_group!(benches, stages);
criterion_main!(benches);
