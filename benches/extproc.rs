//! The ext_proc round trip through the real Envoy, against the decision alone.
//!
//!     cargo bench --bench extproc          (part of `make bench`; needs `make setup`)
//!
//! One semrouter (ext_proc on, cache off so every request is decided), one stub OpenAI upstream
//! behind every model cluster, and Envoy on the shipped config/envoy/envoy.yaml. On the same MMLU
//! val prompts it measures, at concurrency 1, in alternating chunks (a shared machine drifts):
//!   route   `POST /v1/route` on semrouter directly (the decision, over HTTP)
//!   stub    `POST /v1/chat/completions` on the stub directly
//!   envoy   `POST /v1/chat/completions` through Envoy, ext_proc deciding, to the stub
//!   bare    the same through a second Envoy on the same example with every processing mode
//!           off (SKIP / NONE: the filter sends nothing), i.e. Envoy's own proxy hop
//! and reports the ext_proc overhead as p50(envoy) - p50(route) - p50(stub) (target: at most
//! 1 ms), and apart from Envoy's own hop as p50(envoy) - p50(route) - p50(bare). Then throughput at concurrency 32, `/v1/route` alone against Envoy + semrouter + stub,
//! alternating over rounds (target: at least 80%).
//!
//! Environment: `EXTPROC_PROMPTS` (default 400), `EXTPROC_ROUNDS` (default 3).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/envoy.rs"]
mod envoy;
#[path = "../tests/support/upstream.rs"]
mod upstream;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use semrouter::data::mmlu::{self, Split};
use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Latencies and throughput of one measurement.
struct Summary {
    samples: Vec<Duration>,
    per_second: f64,
}

impl Summary {
    fn at(&self, q: f64) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        s.get(((s.len() as f64 * q) as usize).min(s.len().saturating_sub(1))).copied().unwrap_or_default()
    }

    fn pooled(rounds: Vec<Summary>) -> Summary {
        let mut rates: Vec<f64> = rounds.iter().map(|r| r.per_second).collect();
        rates.sort_by(f64::total_cmp);
        let per_second = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
        Summary {
            samples: rounds.into_iter().flat_map(|r| r.samples).collect(),
            per_second,
        }
    }

    fn line(&self, label: &str) {
        println!(
            "  {label:<34} p50 {:>7.3} ms   p99 {:>7.3} ms   {:>7.1} req/s   ({} requests)",
            ms(self.at(0.5)),
            ms(self.at(0.99)),
            self.per_second,
            self.samples.len()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Sends `total` requests to `url` from `concurrency` workers; every answer must be 200.
async fn load(client: &reqwest::Client, url: &str, prompts: &Arc<Vec<String>>, concurrency: usize, total: usize) -> Summary {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, prompts, next) = (client.clone(), url.to_string(), Arc::clone(prompts), Arc::clone(&next));
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
                    let _ = response.bytes().await.expect("body");
                    samples.push(t.elapsed());
                    assert_eq!(status, 200, "{url} failed under load");
                }
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(total);
    for w in workers {
        samples.extend(w.await.expect("worker"));
    }
    Summary {
        per_second: samples.len() as f64 / started.elapsed().as_secs_f64(),
        samples,
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
    let mut prompts: Vec<String> = mmlu::load(&common::repo().join(mmlu::DEFAULT_DIR), Split::Val)
        .expect("MMLU (make setup)")
        .into_iter()
        .map(|q| q.question)
        .collect();
    prompts.truncate(env_usize("EXTPROC_PROMPTS", 400));
    let rounds = env_usize("EXTPROC_ROUNDS", 3).max(1);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("semrouter ext_proc bench: {} MMLU val prompts, Envoy 1.40.0, {cores} cores, {rounds} rounds at concurrency 32", prompts.len());

    let stub = upstream::Upstream::start("stub");
    let extproc = common::free_port();
    let server = common::Server::start(common::Launch {
        config: None,
        env: vec![
            ("SEMROUTER__EXTPROC__ENABLED", "true".into()),
            ("SEMROUTER__EXTPROC__ADDR", format!("127.0.0.1:{extproc}")),
            // measure decisions, not fallbacks: no budget cut-off under load
            ("SEMROUTER__EXTPROC__DECISION_TIMEOUT_MS", "10000".into()),
        ],
    });
    let envoy = envoy::Envoy::start(&envoy::Wiring {
        extproc,
        models: envoy::EXAMPLE_MODELS.iter().map(|(m, _)| (*m, stub.port)).collect(),
        edits: vec![("message_timeout: 0.5s", "message_timeout: 10s")],
    });
    let bare = envoy::Envoy::start(&envoy::Wiring {
        extproc,
        models: envoy::EXAMPLE_MODELS.iter().map(|(m, _)| (*m, stub.port)).collect(),
        edits: vec![
            ("request_header_mode: SEND", "request_header_mode: SKIP"),
            ("request_body_mode: BUFFERED", "request_body_mode: NONE"),
            ("response_header_mode: SEND", "response_header_mode: SKIP"),
            ("response_body_mode: BUFFERED", "response_body_mode: NONE"),
        ],
    });
    let bare_url = bare.url("/v1/chat/completions");
    let route_url = server.url("/v1/route");
    let stub_url = format!("{}/v1/chat/completions", stub.base);
    let envoy_url = envoy.url("/v1/chat/completions");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).pool_idle_timeout(Duration::from_secs(2)).build().expect("client");
        // Prompts a policy blocks are answered by Envoy without the upstream: left out, so every
        // request on every path makes the same trip.
        eprintln!("warming up; leaving out prompts a policy blocks");
        let mut kept = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            let body = json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]});
            let decision: serde_json::Value = client.post(&route_url).json(&body).send().await.expect("route").json().await.expect("decision");
            if decision["action"] != "block" {
                kept.push(prompt);
            }
        }
        println!("{} prompts routed (the rest blocked by policy)", kept.len());
        let prompts = Arc::new(kept);
        for url in [&route_url, &stub_url, &envoy_url, &bare_url] {
            load(&client, url, &prompts, 1, 50).await;
        }

        // Concurrency 1, the three paths taking the same prompts in alternating chunks.
        let (mut route, mut direct, mut through, mut hop) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut done = 0;
        for chunk in prompts.chunks(50) {
            let chunk = Arc::new(chunk.to_vec());
            route.push(load(&client, &route_url, &chunk, 1, chunk.len()).await);
            direct.push(load(&client, &stub_url, &chunk, 1, chunk.len()).await);
            through.push(load(&client, &envoy_url, &chunk, 1, chunk.len()).await);
            hop.push(load(&client, &bare_url, &chunk, 1, chunk.len()).await);
            done += chunk.len();
            eprintln!("  concurrency 1: {done}/{} prompts on each path", prompts.len());
        }
        let (route, direct, through, hop) = (Summary::pooled(route), Summary::pooled(direct), Summary::pooled(through), Summary::pooled(hop));

        // Concurrency 32: /v1/route alone against the whole Envoy path, alternating rounds.
        let (mut route32, mut through32) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            route32.push(load(&client, &route_url, &prompts, 32, prompts.len()).await);
            through32.push(load(&client, &envoy_url, &prompts, 32, prompts.len()).await);
            eprintln!("  concurrency 32: round {round}/{rounds}");
        }
        let (route32, through32) = (Summary::pooled(route32), Summary::pooled(through32));

        println!("concurrency 1");
        route.line("/v1/route direct (the decision)");
        direct.line("stub upstream direct");
        through.line("Envoy + ext_proc + stub");
        hop.line("Envoy (processing off) + stub");
        let overhead = ms(through.at(0.5)) - ms(route.at(0.5)) - ms(direct.at(0.5));
        println!("  ext_proc round trip over the decision and the upstream: {overhead:+.3} ms at p50");
        let envoy_hop = ms(hop.at(0.5)) - ms(direct.at(0.5));
        println!("  of which Envoy's own proxy hop: {envoy_hop:+.3} ms; the ext_proc messages: {:+.3} ms", overhead - envoy_hop);
        println!("concurrency 32");
        route32.line("/v1/route direct");
        through32.line("Envoy + ext_proc + stub");
        let share = through32.per_second / route32.per_second;
        println!("  Envoy + semrouter hold {:.0}% of /v1/route's throughput", share * 100.0);
        println!("targets");
        println!("  ext_proc adds <= 1 ms at p50 over the decision: {overhead:+.3} ms  {}", verdict(overhead <= 1.0));
        println!("  >= 80% of /v1/route throughput at concurrency 32: {:.0}%  {}", share * 100.0, verdict(share >= 0.8));
    });
    drop(bare);
    drop(envoy);
    drop(server);
}
