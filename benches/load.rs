//! Load run: the real server over loopback against raw in-process ONNX Runtime, in one run,
//! on the same prompts (MMLU val questions).
//!
//!     cargo bench --bench load            (part of `make bench`; needs `make setup`)
//!
//! Prints raw ONNX figures (single-prompt p50, throughput one prompt at a time, throughput in
//! length-sorted batches of 32), then `/v1/route` p50/p99 and throughput at concurrency 1 and
//! 32, resident memory, and whether each target of the foundation issue is met. Then the cost
//! of the signals: `/v1/route` at concurrency 1 on the default config against a bare copy of it
//! (no complexity or jailbreak head, no keyword rules, no policies: the domain alone), the two
//! servers taking the same prompts in alternating chunks of 100. The server
//! reads `SEMROUTER__*` overrides from the environment, so variants can be compared:
//!
//!     SEMROUTER__EMBEDDING__ONNX__SESSIONS=2 SEMROUTER__EMBEDDING__ONNX__INTRA_THREADS=1 cargo bench --bench load
//!
//! The raw and the server phases alternate over `LOAD_ROUNDS` rounds (default 3) and are pooled,
//! because a shared machine's speed drifts by tens of percent over minutes.
//!
//! Environment: `LOAD_REQUESTS` (requests per round at concurrency 32, default one per prompt),
//! `LOAD_PROMPTS` (prompts used, default all 1531), `LOAD_ROUNDS`, `LOAD_SKIP_RAW=1` to skip the
//! raw phase.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::value::Tensor;
use semrouter::data::mmlu::{self, Split};
use semrouter_onnx::TextTokenizer;
use serde_json::json;

const MODEL: &str = "onnx/fetched/all-MiniLM-L6-v2-int8/model.onnx";
const TOKENIZER: &str = "onnx/fetched/all-MiniLM-L6-v2-int8/tokenizer.json";
const LIBRARY: &str = "onnx/fetched/onnxruntime/libonnxruntime.so.1.31.1";
const MAX_TOKENS: usize = 256;
const RAW_THREADS: usize = 2;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Latency summary of a set of samples.
struct Summary {
    p50: Duration,
    p99: Duration,
    per_second: f64,
    samples: Vec<Duration>,
}

/// Client-side latency plus what the server reported for the same requests.
struct LoadResult {
    client: Summary,
    /// p50 of the server's own `timing_us.total` (parse to reply, no HTTP).
    server_total_p50: Duration,
    /// p50 of `timing_us.infer` (the forward pass).
    infer_p50: Duration,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn summarise(mut samples: Vec<Duration>, wall: Duration) -> Summary {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        per_second: samples.len() as f64 / wall.as_secs_f64(),
        samples,
    }
}

/// Rounds of the same measurement pooled: latency percentiles over all samples, throughput
/// the median of the rounds (so one noisy round on a shared machine does not decide).
fn pool(rounds: Vec<Summary>) -> Summary {
    let mut rates: Vec<f64> = rounds.iter().map(|r| r.per_second).collect();
    rates.sort_by(f64::total_cmp);
    let median_rate = rates[rates.len() / 2];
    let samples: Vec<Duration> = rounds.into_iter().flat_map(|r| r.samples).collect();
    Summary {
        per_second: median_rate,
        ..summarise(samples, Duration::from_secs(1))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Progress on stderr: a line every 10%.
fn progress(label: &str, done: usize, total: usize) {
    if total >= 10 && done % (total / 10) == 0 {
        eprintln!("  {label}: {done}/{total}");
    }
}

fn raw_session(environment: &ort::environment::Environment) -> ort::Result<Session> {
    Session::builder(environment)?
        .with_intra_threads(RAW_THREADS)?
        .with_inter_threads(1)?
        .commit_from_file(repo().join(MODEL))
}

/// Raw ONNX Runtime on the same model and prompts: tokenise, pad, run, mean-pool, with no
/// queue, no HTTP and no JSON. What the router is measured against.
struct RawOnnx {
    session: Session,
    tokenizer: TextTokenizer,
}

impl RawOnnx {
    fn load() -> Self {
        let environment = ort::init_from(repo().join(LIBRARY))
            .expect("ONNX Runtime library (make setup)")
            .build()
            .expect("ONNX Runtime environment");
        let session = raw_session(&environment).expect("raw session");
        let tokenizer =
            TextTokenizer::from_file(&repo().join(TOKENIZER), MAX_TOKENS).expect("tokenizer");
        Self { session, tokenizer }
    }

    fn run(&mut self, texts: &[&String]) {
        let tokens: Vec<_> = texts
            .iter()
            .map(|t| self.tokenizer.encode(t).expect("tokenise"))
            .collect();
        let (rows, cols) = (
            tokens.len(),
            tokens.iter().map(|t| t.len()).max().unwrap_or(1),
        );
        let mut ids = vec![0i64; rows * cols];
        let mut mask = vec![0i64; rows * cols];
        for (r, t) in tokens.iter().enumerate() {
            ids[r * cols..r * cols + t.len()].copy_from_slice(&t.ids);
            mask[r * cols..r * cols + t.len()].fill(1);
        }
        let types = vec![0i64; rows * cols];
        let outputs = self
            .session
            .run(ort::inputs![
                "input_ids" => Tensor::from_array(([rows, cols], ids)).expect("ids"),
                "attention_mask" => Tensor::from_array(([rows, cols], mask.clone())).expect("mask"),
                "token_type_ids" => Tensor::from_array(([rows, cols], types)).expect("types"),
            ])
            .expect("run");
        let (_, hidden) = outputs[0].try_extract_tensor::<f32>().expect("hidden");
        // mean pooling, as the service does, so the raw figure does the same work
        let dim = hidden.len() / (rows * cols);
        let mut pooled = vec![0f32; rows * dim];
        for r in 0..rows {
            for c in 0..cols {
                if mask[r * cols + c] == 1 {
                    let token = &hidden[(r * cols + c) * dim..(r * cols + c + 1) * dim];
                    pooled[r * dim..(r + 1) * dim]
                        .iter_mut()
                        .zip(token)
                        .for_each(|(p, v)| *p += v);
                }
            }
        }
        std::hint::black_box(pooled);
    }

    /// One prompt at a time, in the given order: per-prompt latency and throughput.
    fn one_at_a_time(&mut self, prompts: &[String]) -> Summary {
        let mut samples = Vec::with_capacity(prompts.len());
        let started = Instant::now();
        for (i, p) in prompts.iter().enumerate() {
            let t = Instant::now();
            self.run(&[p]);
            samples.push(t.elapsed());
            progress("raw one at a time", i + 1, prompts.len());
        }
        summarise(samples, started.elapsed())
    }

    /// Length-sorted batches of 32 (the least padding batching can have): throughput.
    fn sorted_batches(&mut self, prompts: &[String]) -> Summary {
        let mut sorted: Vec<&String> = prompts.iter().collect();
        sorted.sort_by_key(|p| self.tokenizer.encode(p).map(|t| t.len()).unwrap_or(0));
        let mut samples = Vec::with_capacity(sorted.len());
        let started = Instant::now();
        for batch in sorted.chunks(32) {
            let t = Instant::now();
            self.run(batch);
            samples.extend(std::iter::repeat_n(t.elapsed(), batch.len()));
        }
        summarise(samples, started.elapsed())
    }
}

/// The server under load; stopped on drop.
struct ServerProcess {
    child: Child,
    base: String,
}

impl ServerProcess {
    /// Starts the server on `config` (the built-in default when `None`).
    fn start(config: Option<&Path>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_semrouter"));
        command
            .current_dir(repo())
            .args(["serve", "--http-addr", &format!("127.0.0.1:{port}")]);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start semrouter");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn rss_mb(&self) -> f64 {
        common::rss_mb(self.child.id())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/ready")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server not ready");
}

/// The default config without the signals beyond the domain (the `signals:` section: complexity
/// and jailbreak heads, keyword rules) and without `policies:`: the baseline the signals' cost
/// is measured against.
fn bare_config() -> PathBuf {
    let text = std::fs::read_to_string(repo().join("config/semrouter.yaml"))
        .expect("config/semrouter.yaml");
    let mut bare = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if !line.is_empty() && !line.starts_with([' ', '#']) {
            skipping = line.starts_with("signals:") || line.starts_with("policies:");
        }
        if !skipping {
            bare.push_str(line);
            bare.push('\n');
        }
    }
    // Not under target/: CARGO_TARGET_DIR may put that elsewhere.
    let path = std::env::temp_dir().join(format!(
        "semrouter-bench-bare-config-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, bare).expect("write the bare config");
    path
}

/// `/v1/route` at concurrency 1 on two servers, the same prompts in alternating chunks, so
/// drift on a shared machine hits both alike. Returns (first, second).
async fn paired(
    client: &reqwest::Client,
    first: &str,
    second: &str,
    prompts: &[String],
) -> (LoadResult, LoadResult) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut done = 0;
    for chunk in prompts.chunks(100) {
        let chunk = Arc::new(chunk.to_vec());
        a.push(load(client, first, &chunk, 1, chunk.len(), false).await);
        b.push(load(client, second, &chunk, 1, chunk.len(), false).await);
        done += chunk.len();
        eprintln!("  signals A/B: {done}/{}", prompts.len());
    }
    (pool_load(a), pool_load(b))
}

/// Sends `total` route requests from `concurrency` workers over keep-alive connections.
async fn load(
    client: &reqwest::Client,
    base: &str,
    prompts: &Arc<Vec<String>>,
    concurrency: usize,
    total: usize,
    show_progress: bool,
) -> LoadResult {
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{base}/v1/route");
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, prompts, next) = (client.clone(), url.clone(), Arc::clone(prompts), Arc::clone(&next));
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return samples;
                    }
                    let body = json!({"model": "auto", "messages": [{"role": "user", "content": prompts[i % prompts.len()]}]});
                    let t = Instant::now();
                    let response = client.post(&url).json(&body).send().await.expect("request");
                    let status = response.status();
                    let bytes = response.bytes().await.expect("body");
                    let elapsed = t.elapsed();
                    assert_eq!(status, 200, "route failed under load");
                    let reply: serde_json::Value = serde_json::from_slice(&bytes).expect("decision JSON");
                    let us = |k: &str| Duration::from_micros(reply["timing_us"][k].as_u64().unwrap_or(0));
                    samples.push((elapsed, us("total"), us("infer")));
                    if show_progress {
                        progress(&format!("concurrency {concurrency}"), i + 1, total);
                    }
                }
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(total);
    for w in workers {
        samples.extend(w.await.expect("worker"));
    }
    let wall = started.elapsed();
    LoadResult {
        server_total_p50: median(samples.iter().map(|s| s.1).collect()),
        infer_p50: median(samples.iter().map(|s| s.2).collect()),
        client: summarise(samples.into_iter().map(|s| s.0).collect(), wall),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing else is expected.
    let mut prompts: Vec<String> = mmlu::load(&repo().join(mmlu::DEFAULT_DIR), Split::Val)
        .expect("MMLU (make setup)")
        .into_iter()
        .map(|q| q.question)
        .collect();
    prompts.truncate(env_usize("LOAD_PROMPTS", prompts.len()));
    let requests_32 = env_usize("LOAD_REQUESTS", prompts.len());
    let rounds = env_usize("LOAD_ROUNDS", 3).max(1);
    let skip_raw = std::env::var("LOAD_SKIP_RAW").is_ok();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("semrouter load run: {} MMLU val prompts, all-MiniLM-L6-v2 int8, {cores} cores, {rounds} rounds", prompts.len());
    let overrides: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SEMROUTER__"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !overrides.is_empty() {
        println!("server overrides: {}", overrides.join(" "));
    }

    let mut raw = (!skip_raw).then(RawOnnx::load);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = ServerProcess::start(None);
    let bare = ServerProcess::start(Some(&bare_config()));
    let prompts = Arc::new(prompts);
    // Idle connections are dropped before the server's keep-alive (5 s) closes them, since the raw
    // phases leave them idle for longer.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let rss_start = runtime.block_on(async {
        wait_ready(&client, &server.base).await;
        wait_ready(&client, &bare.base).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = server.rss_mb();
        // warm the connections and the models
        load(&client, &server.base, &prompts, 1, 50, false).await;
        load(&client, &bare.base, &prompts, 1, 50, false).await;
        rss
    });
    if let Some(raw) = raw.as_mut() {
        for p in prompts.iter().take(50) {
            raw.run(&[p]);
        }
    }

    // Shared machines drift by tens of percent over minutes, so the raw and the server figures
    // are taken in alternating rounds and pooled, never one after the other.
    let (mut raw_single, mut raw_batched, mut c1, mut c32) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut bare_c1, mut full_c1) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        if let Some(raw) = raw.as_mut() {
            eprintln!("round {round}/{rounds}: raw in-process ONNX Runtime ({RAW_THREADS} intra-op threads)");
            raw_single.push(raw.one_at_a_time(&prompts));
            raw_batched.push(raw.sorted_batches(&prompts));
        }
        runtime.block_on(async {
            eprintln!("round {round}/{rounds}: server, concurrency 1");
            c1.push(load(&client, &server.base, &prompts, 1, prompts.len(), true).await);
            eprintln!("round {round}/{rounds}: server, concurrency 32");
            c32.push(load(&client, &server.base, &prompts, 32, requests_32, true).await);
            eprintln!("round {round}/{rounds}: signals A/B (bare config, then the default), concurrency 1");
            let (b, f) = paired(&client, &bare.base, &server.base, &prompts).await;
            bare_c1.push(b);
            full_c1.push(f);
        });
    }
    let rss_end = server.rss_mb();
    drop(server);
    drop(bare);

    println!();
    let raw = (!skip_raw).then(|| (pool(raw_single), pool(raw_batched)));
    if let Some((single, batched)) = &raw {
        println!("raw in-process ONNX Runtime ({RAW_THREADS} intra-op threads, same prompts)");
        println!(
            "  single prompt             p50 {:6.2} ms   p99 {:6.2} ms",
            ms(single.p50),
            ms(single.p99)
        );
        println!(
            "  one prompt at a time      {:6.0} prompts/s",
            single.per_second
        );
        println!(
            "  length-sorted batches 32  {:6.0} prompts/s",
            batched.per_second
        );
    }
    println!("semrouter POST /v1/route over loopback");
    let c1 = pool_load(c1);
    let c32 = pool_load(c32);
    for (name, r) in [("concurrency 1 ", &c1), ("concurrency 32", &c32)] {
        println!(
            "  {name}   p50 {:6.2} ms   p99 {:7.2} ms   {:5.0} req/s   (server p50 {:.2} ms, of which infer {:.2} ms)",
            ms(r.client.p50),
            ms(r.client.p99),
            r.client.per_second,
            ms(r.server_total_p50),
            ms(r.infer_p50)
        );
    }
    println!("  resident memory  {rss_start:.0} MB after start-up, {rss_end:.0} MB after the load");
    let (bare_c1, full_c1) = (pool_load(bare_c1), pool_load(full_c1));
    println!("the signals' cost: POST /v1/route at concurrency 1, same prompts, alternating chunks of 100");
    for (name, r) in [
        ("bare config (domain only, no policies)", &bare_c1),
        ("default config (all non-PII signals)", &full_c1),
    ] {
        println!(
            "  {name:<40} p50 {:6.2} ms   p99 {:7.2} ms   (server p50 {:.3} ms)",
            ms(r.client.p50),
            ms(r.client.p99),
            ms(r.server_total_p50)
        );
    }
    println!("targets");
    if let Some((single, batched)) = &raw {
        let limit = ms(single.p50) + 1.0;
        println!(
            "  p50 at c=1 <= raw p50 + 1 ms:        {:.2} <= {limit:.2} ms  {}",
            ms(c1.client.p50),
            verdict(ms(c1.client.p50) <= limit)
        );
        let best = single.per_second.max(batched.per_second);
        let ratio = c32.client.per_second / best;
        println!(
            "  throughput at c=32 >= 85% of best raw: {:.0} / {best:.0} = {:.0}%  {}",
            c32.client.per_second,
            ratio * 100.0,
            verdict(ratio >= 0.85)
        );
    }
    println!(
        "  resident memory <= 300 MB:           {rss_start:.0} MB  {}",
        verdict(rss_start <= 300.0)
    );
    let overhead = ms(full_c1.client.p50) / ms(bare_c1.client.p50) - 1.0;
    println!(
        "  all non-PII signals add <= 10% to p50: {:.2} vs {:.2} ms = {:+.1}%  {}",
        ms(full_c1.client.p50),
        ms(bare_c1.client.p50),
        overhead * 100.0,
        verdict(overhead <= 0.10)
    );
}

/// Pools rounds of a load phase (see [`pool`]); server-side medians over all samples.
fn pool_load(rounds: Vec<LoadResult>) -> LoadResult {
    let server_total: Vec<Duration> = rounds.iter().map(|r| r.server_total_p50).collect();
    let infer: Vec<Duration> = rounds.iter().map(|r| r.infer_p50).collect();
    LoadResult {
        server_total_p50: median(server_total),
        infer_p50: median(infer),
        client: pool(rounds.into_iter().map(|r| r.client).collect()),
    }
}
