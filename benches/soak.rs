//! Soak: the real server under steady mixed traffic for a few minutes, on loopback only.
//!
//!     make soak                     (= cargo bench --locked --bench soak; needs `make setup`)
//!
//! One semrouter under test, whose embeddings come from a second semrouter over HTTP (the
//! `vllm` backend against its OpenAI-compatible `/v1/embeddings`, model ids equal, so the
//! default heads apply) with `fallback: onnx`; one stub upstream behind every model, set from
//! the environment (`SEMROUTER__MODELS__N__UPSTREAM__BASE_URL`). At a steady rate it sends a mix:
//! decisions (`/v1/route`), proxied completions (JSON and SSE) of fresh prompts, which fill a
//! small cache (`max_entries` 256, so it evicts all the time), repeats of recent prompts (cache
//! hits) and `POST /v1/cache` stores. Meanwhile the config file is rewritten and reloaded
//! (`POST /admin/reload`) every few seconds, and in the middle the embedding server is killed
//! and started again on the same port.
//!
//! Every 10 s it prints the window's requests, errors, 429s, prompts the policy blocked (403,
//! a decision, not an error), p50/p99 and resident memory; at the
//! end the totals and the verdicts: no error but deliberate 429s, and resident memory at the end
//! at most 10% over the figure after warm-up. It exits 1 when a verdict fails.
//!
//! Environment: `SOAK_SECS` (default 180), `SOAK_RATE` (requests per second, default 16),
//! `SOAK_RELOAD_SECS` (default 3).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/upstream.rs"]
mod upstream;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{chat, default_config_with, free_port, Launch, Server, ADMIN_TOKEN};
use semrouter::data::mmlu::{self, Split};
use serde_json::json;
use upstream::Upstream;

/// How long the embedding server stays down in the middle of the run.
const OUTAGE: Duration = Duration::from_secs(5);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The second semrouter, serving embeddings on a fixed port so it can be restarted in place.
struct EmbeddingServer {
    port: u16,
    child: Option<Child>,
}

impl EmbeddingServer {
    fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.spawn();
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new(common::binary())
            .current_dir(common::repo())
            .args(["serve", "--http-addr", &format!("127.0.0.1:{}", self.port)])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the embedding server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        while common::get_status(&format!("127.0.0.1:{}", self.port), "/ready") != Some(200) {
            assert!(
                Instant::now() < deadline,
                "the embedding server was not ready within 120 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Nothing may answer on the port while it is down.
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for EmbeddingServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The config under test: the default with the embedding backend on `embedding_url` and the
/// reasoning level threshold `min_need` (the key each reload flips).
fn config(embedding_url: &str, min_need: &str) -> String {
    let embedding = format!(
        "embedding:\n  backend: vllm\n  vllm:\n    base_url: {embedding_url}\n    model: all-MiniLM-L6-v2-int8\n    \
         timeout_ms: 2000\n    failure_threshold: 2\n    open_ms: 500\n    fallback: onnx\n"
    );
    default_config_with(&[
        ("embedding:\n  # Which backend embeds prompts: onnx (a local encoder).\n  backend: onnx\n", embedding.as_str()),
        ("    - { min_need: 0.4, enabled: true,", &format!("    - {{ min_need: {min_need}, enabled: true,")),
    ])
}

/// What one request ended as.
#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Ok,
    Overloaded,
    Blocked,
    Error,
}

/// Samples of one 10-second window.
#[derive(Default)]
struct Window {
    latencies: Vec<Duration>,
    errors: usize,
    overloaded: usize,
    blocked: usize,
}

fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples
        .get(((samples.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The traffic mix, by request number: what to send.
enum Kind {
    Route,
    Proxy { stream: bool },
    Repeat,
    Store,
}

fn kind(n: u64) -> Kind {
    match n % 10 {
        0..=3 => Kind::Route,
        4 | 5 => Kind::Proxy { stream: false },
        6 => Kind::Proxy { stream: true },
        7 | 8 => Kind::Repeat,
        _ => Kind::Store,
    }
}

/// Sends request `n` and reads its whole answer.
async fn send(
    client: &reqwest::Client,
    base: &str,
    prompts: &[String],
    recent: &Mutex<Vec<String>>,
    n: u64,
) -> Result<u16, reqwest::Error> {
    let prompt = prompts[(n as usize) % prompts.len()].clone();
    let request = match kind(n) {
        Kind::Route => client
            .post(format!("{base}/v1/route"))
            .json(&chat("auto", &prompt)),
        Kind::Proxy { stream } => {
            let mut body = chat("auto", &prompt);
            body["stream"] = json!(stream);
            if let Ok(mut recent) = recent.lock() {
                recent.push(prompt);
                if recent.len() > 64 {
                    recent.remove(0);
                }
            }
            client
                .post(format!("{base}/v1/chat/completions"))
                .json(&body)
        }
        Kind::Repeat => {
            let again = recent
                .lock()
                .ok()
                .and_then(|r| r.get((n as usize) % r.len().max(1)).cloned())
                .unwrap_or(prompt);
            client
                .post(format!("{base}/v1/chat/completions"))
                .json(&chat("auto", &again))
        }
        Kind::Store => {
            let answer = json!({"id": "soak", "object": "chat.completion", "created": 0, "model": "qwen3-8b",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "stored"}, "finish_reason": "stop"}]});
            client
                .post(format!("{base}/v1/cache"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"request": chat("qwen3-8b", &format!("{prompt} (stored {n})")), "response": answer}))
        }
    };
    let response = request.send().await?;
    let status = response.status().as_u16();
    response.bytes().await?;
    Ok(status)
}

fn write_config(path: &Path, text: &str) {
    // Written whole and renamed, as a ConfigMap update lands: the watcher never sees half a file.
    let staging = path.with_extension("next");
    std::fs::write(&staging, text).expect("write config");
    std::fs::rename(&staging, path).expect("swap config");
}

fn main() {
    let secs = env_u64("SOAK_SECS", 180);
    let rate = env_u64("SOAK_RATE", 16).max(1);
    let reload_every = Duration::from_secs(env_u64("SOAK_RELOAD_SECS", 3).max(1));
    let warmup = Duration::from_secs((secs / 5).max(20).min(secs));
    let duration = Duration::from_secs(secs);

    let prompts: Vec<String> = mmlu::load(&common::repo().join("onnx/fetched/mmlu"), Split::Val)
        .expect("MMLU val (make setup)")
        .into_iter()
        .map(|q| q.question)
        .collect();
    let embedder = EmbeddingServer::start();
    let embedding_url = embedder.url();
    let embedder = Arc::new(Mutex::new(embedder));
    let stub = Upstream::start("soak");
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path: PathBuf = dir.path().join("semrouter.yaml");
    write_config(&config_path, &config(&embedding_url, "0.4"));
    let env = vec![
        ("SEMROUTER__CACHE__ENABLED", "true".to_string()),
        ("SEMROUTER__CACHE__MAX_ENTRIES", "256".to_string()),
        (
            "SEMROUTER__MODELS__0__UPSTREAM__BASE_URL",
            stub.base.clone(),
        ),
        (
            "SEMROUTER__MODELS__1__UPSTREAM__BASE_URL",
            stub.base.clone(),
        ),
        (
            "SEMROUTER__MODELS__2__UPSTREAM__BASE_URL",
            stub.base.clone(),
        ),
        ("RUST_LOG", "warn".to_string()),
    ];
    let server = Server::start_on_file(
        config_path.clone(),
        Launch {
            env,
            ..Launch::default()
        },
    );
    let pid = server.pid();
    let base = server.base.clone();
    println!(
        "soak: {secs} s at {rate} req/s (route 40%, proxied 30% of which a third SSE, cache repeats 20%, stores 10%), \
         reload every {} s, embedding server restart at {} s, warm-up {} s",
        reload_every.as_secs(),
        secs / 2,
        warmup.as_secs()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let windows: Arc<Mutex<Vec<Window>>> = Arc::new(Mutex::new(
        (0..secs.div_ceil(10)).map(|_| Window::default()).collect(),
    ));
    let recent = Arc::new(Mutex::new(Vec::new()));
    let prompts = Arc::new(prompts);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let started = Instant::now();
    let (mut rss_warm, mut reloads, mut reload_failures, mut restarted) =
        (0.0, 0usize, 0usize, false);
    let rss_start = common::rss_mb(pid);

    runtime.block_on(async {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_reload = started + reload_every;
        let mut next_report = started + Duration::from_secs(10);
        let mut in_flight = tokio::task::JoinSet::new();
        let mut n = 0u64;
        while started.elapsed() < duration {
            ticker.tick().await;
            let (task_client, task_base, task_prompts, task_recent, task_windows) =
                (client.clone(), base.clone(), prompts.clone(), recent.clone(), windows.clone());
            in_flight.spawn(async move {
                let sent = Instant::now();
                let window = (sent.duration_since(started).as_secs() / 10) as usize;
                let outcome = match send(&task_client, &task_base, &task_prompts, &task_recent, n).await {
                    Ok(200..=299) => Outcome::Ok,
                    Ok(429) => Outcome::Overloaded,
                    // The policy blocking a prompt (some MMLU questions read as attacks or carry
                    // what looks like personal data) is a decision, not a failure.
                    Ok(403) if !matches!(kind(n), Kind::Store) => Outcome::Blocked,
                    Ok(status) => {
                        eprintln!("soak: request {n} answered {status}");
                        Outcome::Error
                    }
                    Err(error) => {
                        eprintln!("soak: request {n} failed: {error}");
                        Outcome::Error
                    }
                };
                let elapsed = sent.elapsed();
                let Ok(mut windows) = task_windows.lock() else { return };
                if let Some(w) = windows.get_mut(window) {
                    match outcome {
                        Outcome::Ok => w.latencies.push(elapsed),
                        Outcome::Overloaded => w.overloaded += 1,
                        Outcome::Blocked => w.blocked += 1,
                        Outcome::Error => w.errors += 1,
                    }
                }
            });
            n += 1;
            while in_flight.try_join_next().is_some() {}

            let now = Instant::now();
            if now >= next_reload {
                next_reload = now + reload_every;
                let min_need = if reloads % 2 == 0 { "0.41" } else { "0.4" };
                write_config(&config_path, &config(&embedding_url, min_need));
                match client.post(format!("{base}/admin/reload")).bearer_auth(ADMIN_TOKEN).send().await {
                    Ok(r) if r.status().is_success() => reloads += 1,
                    Ok(r) => {
                        reload_failures += 1;
                        eprintln!("soak: reload answered {}: {}", r.status(), r.text().await.unwrap_or_default());
                    }
                    Err(error) => {
                        reload_failures += 1;
                        eprintln!("soak: reload failed: {error}");
                    }
                }
            }
            if !restarted && started.elapsed() >= duration / 2 {
                restarted = true;
                // Beside the load, which goes on at the same rate through the outage.
                let embedder = embedder.clone();
                tokio::task::spawn_blocking(move || {
                    let Ok(mut embedder) = embedder.lock() else { return };
                    embedder.kill();
                    println!("soak: {:>4} s  embedding server killed", started.elapsed().as_secs());
                    std::thread::sleep(OUTAGE);
                    embedder.spawn();
                    println!("soak: {:>4} s  embedding server up again", started.elapsed().as_secs());
                });
            }
            if rss_warm == 0.0 && started.elapsed() >= warmup {
                rss_warm = common::rss_mb(pid);
            }
            if now >= next_report {
                next_report += Duration::from_secs(10);
                let index = (started.elapsed().as_secs() / 10).saturating_sub(1) as usize;
                let mut windows = windows.lock().expect("windows");
                if let Some(w) = windows.get_mut(index) {
                    let count = w.latencies.len();
                    println!(
                        "soak: {:>4} s  {:>4} ok  {:>2} errors  {:>3} 429s  {:>2} blocked  p50 {:>7.2} ms  p99 {:>7.2} ms  RSS {:>5.0} MB",
                        (index + 1) * 10,
                        count,
                        w.errors,
                        w.overloaded,
                        w.blocked,
                        ms(quantile(&mut w.latencies, 0.5)),
                        ms(quantile(&mut w.latencies, 0.99)),
                        common::rss_mb(pid)
                    );
                }
                stub.clear();
            }
        }
        while in_flight.join_next().await.is_some() {}
    });

    let rss_end = common::rss_mb(pid);
    let windows = windows
        .lock()
        .map(|mut w| std::mem::take(&mut *w))
        .unwrap_or_default();
    let errors: usize = windows.iter().map(|w| w.errors).sum();
    let overloaded: usize = windows.iter().map(|w| w.overloaded).sum();
    let blocked: usize = windows.iter().map(|w| w.blocked).sum();
    let mut all: Vec<Duration> = windows.into_iter().flat_map(|w| w.latencies).collect();
    let total = all.len() + errors + overloaded + blocked;
    let growth = if rss_warm > 0.0 {
        rss_end / rss_warm - 1.0
    } else {
        f64::NAN
    };
    let metrics = runtime.block_on(async {
        match client.get(format!("{base}/metrics")).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    });
    let fallbacks: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("semrouter_embedding_fallbacks_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let evictions = common::metric(&metrics, "semrouter_cache_evictions_total", &[]).unwrap_or(0.0);
    println!(
        "soak: {total} requests in {:.0} s ({:.1} req/s)",
        started.elapsed().as_secs_f64(),
        total as f64 / started.elapsed().as_secs_f64()
    );
    println!(
        "  errors {errors} ({:.3}%), 429s {overloaded}, blocked by policy (403) {blocked}; p50 {:.2} ms, p99 {:.2} ms over the run",
        100.0 * errors as f64 / total.max(1) as f64,
        ms(quantile(&mut all, 0.5)),
        ms(quantile(&mut all, 0.99))
    );
    println!("  reloads {reloads} applied, {reload_failures} failed; embedding fallbacks {fallbacks:.0}; cache evictions {evictions:.0}");
    println!("  resident memory: {rss_start:.0} MB at start, {rss_warm:.0} MB after warm-up, {rss_end:.0} MB at the end ({:+.1}%)", growth * 100.0);
    let errors_ok = errors == 0 && reload_failures == 0;
    let memory_ok = growth <= 0.10;
    println!("targets");
    println!(
        "  no errors but deliberate 429s:            {}",
        if errors_ok { "PASS" } else { "FAIL" }
    );
    println!(
        "  resident memory growth <= 10% after warm-up: {:+.1}%  {}",
        growth * 100.0,
        if memory_ok { "PASS" } else { "FAIL" }
    );
    drop(server);
    if !(errors_ok && memory_ok) {
        std::process::exit(1);
    }
}
