//! Real embeddings for the cache's tests and benches, computed once with the default encoder
//! and kept under `target/cache-data/` (embedding 15k texts takes minutes on 2 cores).
//!
//! The file holds the texts' SHA-256, so a change of texts or model recomputes it.
#![allow(dead_code)] // each test or bench uses part of it

use std::io::{Read, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Texts per embedding call.
const CHUNK: usize = 64;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every MMLU question (test, dev, val), deduplicated, in a fixed order.
pub fn mmlu_questions() -> Vec<String> {
    use semrouter::data::mmlu::{load, Split, DEFAULT_DIR};
    let dir = repo().join(DEFAULT_DIR);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for split in [Split::Test, Split::Dev, Split::Val] {
        for q in load(&dir, split).expect("MMLU (run `make setup`)") {
            let text = q.question.trim().to_string();
            if !text.is_empty() && seen.insert(text.clone()) {
                out.push(text);
            }
        }
    }
    out
}

/// The default config's embedder, built from the repository root.
pub fn embedder() -> (
    std::sync::Arc<dyn semrouter_embedder::Embedder>,
    semrouter_onnx::OnnxRuntime,
) {
    std::env::set_current_dir(repo()).expect("cd to the repository root");
    let config = semrouter::config::load(None).expect("the default config loads");
    let runtime = semrouter::assemble::runtime(&config).expect("ONNX Runtime (run `make setup`)");
    // build_embedder is async (the remote backend starts a task on the runtime); the default
    // config's backend is the local ONNX encoder, which needs no runtime once built.
    let embedder = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
        .block_on(semrouter::assemble::build_embedder(&config, &runtime))
        .expect("the default encoder");
    (embedder, runtime)
}

/// Whether the default encoder truncates `text` (its token count reaches `max_tokens`): the
/// caller of the cache marks such requests so the semantic path is skipped.
pub fn truncation_check() -> impl Fn(&str) -> bool {
    let config = semrouter::config::load(None).expect("the default config loads");
    let onnx = config.embedding.onnx.expect("embedding.onnx");
    let tokenizer =
        semrouter_onnx::TextTokenizer::from_file(&repo().join(&onnx.tokenizer), onnx.max_tokens)
            .expect("tokenizer (run `make setup`)");
    let max = onnx.max_tokens;
    move |text: &str| tokenizer.encode(text).map_or(true, |t| t.len() >= max)
}

/// Embeds `texts` with the default encoder, caching the result under `target/cache-data/NAME`.
/// Returns the model id and one vector per text.
pub fn embed_cached(name: &str, texts: &[String]) -> (String, Vec<Vec<f32>>) {
    let mut hasher = Sha256::new();
    for t in texts {
        hasher.update((t.len() as u64).to_le_bytes());
        hasher.update(t.as_bytes());
    }
    let digest: [u8; 32] = hasher.finalize().into();
    let path = repo().join("target/cache-data").join(name);
    if let Some(found) = read(&path, &digest, texts.len()) {
        return found;
    }
    let (embedder, _runtime) = embedder();
    let model = embedder.info().model_id.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    let started = std::time::Instant::now();
    let mut vectors = Vec::with_capacity(texts.len());
    for (i, chunk) in texts.chunks(CHUNK).enumerate() {
        let encoded = rt
            .block_on(embedder.embed(chunk.to_vec()))
            .expect("embedding");
        vectors.extend(encoded.into_iter().map(|e| e.values));
        if i % 20 == 0 {
            eprintln!(
                "embedding {name}: {}/{} ({:.0} s)",
                vectors.len(),
                texts.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    write(&path, &digest, &model, &vectors);
    (model, vectors)
}

fn read(path: &PathBuf, digest: &[u8; 32], count: usize) -> Option<(String, Vec<Vec<f32>>)> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() < 48 || &bytes[..32] != digest {
        return None;
    }
    let n = u64::from_le_bytes(bytes[32..40].try_into().ok()?) as usize;
    let dim = u32::from_le_bytes(bytes[40..44].try_into().ok()?) as usize;
    let model_len = u32::from_le_bytes(bytes[44..48].try_into().ok()?) as usize;
    let model = String::from_utf8(bytes.get(48..48 + model_len)?.to_vec()).ok()?;
    let body = bytes.get(48 + model_len..)?;
    if n != count || body.len() != n * dim * 4 {
        return None;
    }
    let floats: Vec<f32> = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some((model, floats.chunks(dim).map(<[f32]>::to_vec).collect()))
}

fn write(path: &PathBuf, digest: &[u8; 32], model: &str, vectors: &[Vec<f32>]) {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(48 + vectors.len() * dim * 4);
    out.extend_from_slice(digest);
    out.extend_from_slice(&(vectors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    out.extend_from_slice(&(model.len() as u32).to_le_bytes());
    out.extend_from_slice(model.as_bytes());
    for v in vectors {
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let tmp = path.with_extension("tmp");
    if let Ok(mut f) = std::fs::File::create(&tmp) {
        if f.write_all(&out).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}
