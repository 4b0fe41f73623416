//! The semantic cache's figures (README, Performance, Semantic cache):
//!
//!     cargo bench --locked --bench cache          (part of `make bench`; needs `make setup`)
//!
//! 1. The index, in process, through the real [`SemanticCache`]: `CACHE_BENCH_ENTRIES`
//!    entries (default 100000, 384-d): every MMLU question's real embedding, then
//!    paraphrase-like variants of them (the real vector plus Gaussian noise, cosine 0.93-0.97
//!    to it) up to the count. Reports the insert cost, the semantic lookup p50/p99 and its
//!    recall@1 against a brute-force scan, for queries that are real embeddings of generated
//!    paraphrases of MMLU questions (the labelled set's `paraphrase` pairs), and the exact
//!    path p50/p99. The guard is off here: it is measured by the false-hit test.
//! 2. `/v1/route` over loopback on the real server with the cache on: MMLU val prompts first
//!    as misses (encoder, classifier, decision, semantic lookup), then stored with
//!    `POST /v1/cache` and sent again as exact hits; p50/p99 of each and their ratio.
//!
//! Environment: `CACHE_BENCH_ENTRIES`, `CACHE_BENCH_QUERIES` (default 1000),
//! `CACHE_BENCH_ROUTE` (prompts in phase 2, default 300; 0 skips it).

#[path = "../tests/support/embeddings.rs"]
mod embeddings;
#[path = "../tests/support/false_hits.rs"]
mod false_hits;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use semrouter::cache::{CacheConfig, CachedAnswer, EmbeddingSpace, SemanticCache};
use serde_json::{json, Value};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    for x in v.iter_mut() {
        *x /= n;
    }
}

fn gauss(rng: &mut impl Rng) -> f32 {
    let u: f32 = rng.random::<f32>().max(1e-9);
    let v: f32 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn chat(text: &str) -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": text}]})
}

fn answer(i: usize) -> CachedAnswer {
    CachedAnswer {
        content: format!("{i}"),
        reasoning_content: None,
        upstream_model: None,
        usage: None,
    }
}

fn index_phase() {
    let entries = env_usize("CACHE_BENCH_ENTRIES", 100_000);
    let queries = env_usize("CACHE_BENCH_QUERIES", 1000);
    let questions = embeddings::mmlu_questions();
    let (model_id, real) = embeddings::embed_cached("mmlu-questions.bin", &questions);
    let dimension = real[0].len();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(entries);
    for i in 0..entries {
        let base = &real[i % real.len()];
        let mut v = base.clone();
        if i >= real.len() {
            let sigma = rng.random_range(0.012..0.02);
            for x in v.iter_mut() {
                *x += sigma * gauss(&mut rng);
            }
        }
        normalise(&mut v);
        vectors.push(v);
    }

    // Queries: real embeddings of generated paraphrases of MMLU questions.
    let pairs: Vec<false_hits::Pair> = false_hits::generate(&questions, queries, 20261123)
        .into_iter()
        .filter(|p| p.kind == false_hits::Kind::Paraphrase)
        .take(queries)
        .collect();
    let texts: Vec<String> = pairs.iter().map(|p| p.query.clone()).collect();
    let (_, query_vectors) = embeddings::embed_cached("bench-paraphrases.bin", &texts);

    let mut config = CacheConfig {
        enabled: true,
        max_entries: entries,
        max_bytes: u64::MAX / 2,
        similarity_threshold: 0.5,
        ..CacheConfig::default()
    };
    config.guard.enabled = false;
    config.index.maintenance_interval_ms = 3_600_000;
    let cache = SemanticCache::new(&config, EmbeddingSpace { model_id, dimension }).expect("cache");
    let requests: Vec<_> = (0..entries)
        .map(|i| {
            let body = chat(&format!("bench entry {i}"));
            cache.request(body.as_object().expect("object"), "auto", None).expect("cacheable")
        })
        .collect();
    let started = Instant::now();
    for (i, (request, vector)) in requests.iter().zip(&vectors).enumerate() {
        cache.insert(request, Some(vector), None, answer(i)).expect("stored");
        if i % 20_000 == 19_999 {
            eprintln!("inserted {}/{entries} ({:.0} s)", i + 1, started.elapsed().as_secs_f64());
        }
    }
    let insert = started.elapsed();
    let stats = cache.stats();
    println!(
        "cache index: {entries} entries x {dimension}-d inserted in {:.1} s: {:.0} us per insert (one thread); {} MiB held, {} segments",
        insert.as_secs_f64(),
        us(insert) / entries as f64,
        stats.bytes >> 20,
        stats.index_segments
    );

    // Semantic lookups against brute force.
    let probe = cache.request(chat("a paraphrase").as_object().expect("object"), "auto", None).expect("cacheable");
    let mut latencies = Vec::with_capacity(query_vectors.len());
    let mut agree = 0;
    for q in &query_vectors {
        let mut q = q.clone();
        normalise(&mut q);
        let truth = vectors.iter().enumerate().map(|(i, v)| (dot(v, &q), i)).max_by(|a, b| a.0.total_cmp(&b.0)).map(|(_, i)| i);
        let t = Instant::now();
        let hit = cache.lookup_semantic(&probe, &q, None).expect("lookup");
        latencies.push(t.elapsed());
        let found = hit.and_then(|h| h.answer.content.parse::<usize>().ok());
        // Ties (a variant identical to its base after noise) count as agreement by similarity.
        if found == truth || found.zip(truth).is_some_and(|(f, t)| (dot(&vectors[f], &q) - dot(&vectors[t], &q)).abs() < 1e-6) {
            agree += 1;
        }
    }
    latencies.sort();
    println!(
        "semantic lookup at {entries} entries, {} real paraphrase queries: p50 {:.0} us, p99 {:.0} us; recall@1 vs brute force {:.4}",
        latencies.len(),
        us(quantile(&latencies, 0.5)),
        us(quantile(&latencies, 0.99)),
        agree as f64 / query_vectors.len() as f64
    );

    // Exact lookups of stored entries.
    let mut exact = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let request = &requests[(i * 7919) % entries];
        let t = Instant::now();
        let hit = cache.lookup_exact(request);
        exact.push(t.elapsed());
        assert!(hit.is_some(), "a stored entry is an exact hit");
    }
    exact.sort();
    println!(
        "exact lookup at {entries} entries: p50 {:.1} us, p99 {:.1} us",
        us(quantile(&exact, 0.5)),
        us(quantile(&exact, 0.99))
    );
}

/// The real server with the cache on, stopped on drop.
struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn route_phase() {
    let prompts = env_usize("CACHE_BENCH_ROUTE", 300);
    if prompts == 0 {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let child = Command::new(env!("CARGO_BIN_EXE_semrouter"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["serve", "--http-addr", &format!("127.0.0.1:{port}")])
        .env("SEMROUTER__CACHE__ENABLED", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start semrouter");
    let server = Server(child, format!("http://127.0.0.1:{port}"));
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{}/ready", server.1)).send().await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(started.elapsed() < Duration::from_secs(120), "server not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(semrouter::data::mmlu::DEFAULT_DIR);
    let texts: Vec<String> = semrouter::data::mmlu::load(&dir, semrouter::data::mmlu::Split::Val)
        .expect("MMLU (run `make setup`)")
        .into_iter()
        .map(|q| q.question)
        .take(prompts)
        .collect();
    let route = |text: &str| {
        let request = client.post(format!("{}/v1/route", server.1)).json(&chat(text));
        async move {
            let t = Instant::now();
            let reply: Value = request.send().await.expect("route").json().await.expect("json");
            (t.elapsed(), reply)
        }
    };
    // Warm-up.
    for text in texts.iter().take(10) {
        let _ = route(&format!("warm-up: {text}")).await;
    }
    let mut misses = Vec::new();
    for text in &texts {
        let (elapsed, reply) = route(text).await;
        if reply["cache"]["hit"] == false {
            misses.push(elapsed);
        }
        let entry = json!({"request": chat(text), "response": {"object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "cached"}, "finish_reason": "stop"}]}});
        client.post(format!("{}/v1/cache", server.1)).json(&entry).send().await.expect("store");
    }
    let mut hits = Vec::new();
    for text in &texts {
        let (elapsed, reply) = route(text).await;
        if reply["cache"]["kind"] == "exact" {
            hits.push(elapsed);
        }
    }
    misses.sort();
    hits.sort();
    assert!(!misses.is_empty() && !hits.is_empty(), "{} misses, {} exact hits", misses.len(), hits.len());
    let (miss50, hit50) = (quantile(&misses, 0.5), quantile(&hits, 0.5));
    println!(
        "/v1/route over loopback, concurrency 1: miss p50 {:.0} us p99 {:.0} us ({} prompts); exact hit p50 {:.0} us p99 {:.0} us ({}); hit {:.1}x faster at p50",
        us(miss50),
        us(quantile(&misses, 0.99)),
        misses.len(),
        us(hit50),
        us(quantile(&hits, 0.99)),
        hits.len(),
        miss50.as_secs_f64() / hit50.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments of its own.
    route_phase_blocking();
    index_phase();
}

fn route_phase_blocking() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    runtime.block_on(route_phase());
}
