//! Overload run: `/v1/route` on 127.0.0.1 with `server.max_in_flight` set to a small limit,
//! first loaded up to the limit only (as many closed-loop clients as it admits: "unloaded"),
//! then with many more clients than that flooding it at once. Prints the admitted requests'
//! p50/p99 and throughput in both phases, the 429s' count, latency and rate, and whether the
//! admitted p99 under overload stays within 2x of the unloaded p99.
//!
//!     cargo bench --bench overload        (needs `make setup`)
//!
//! Environment: `OVERLOAD_LIMIT` (default 4), `OVERLOAD_FLOOD` (clients beyond the limit,
//! default 8 per admitted slot), `OVERLOAD_SECONDS` (each phase, default 10). The flooding
//! clients do not honour `Retry-After`: each sends its next request as soon as the last is
//! answered, the worst case for the admitted ones.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

const PROMPTS: [&str; 8] = [
    "What is the capital of France?",
    "Can you recommend a movie for tonight?",
    "Prove that the square root of two is irrational.",
    "How do vaccines train the immune system?",
    "Write a haiku about autumn leaves.",
    "What does a central bank do when inflation rises?",
    "Explain the difference between TCP and UDP.",
    "Which enzyme unwinds DNA during replication?",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What one phase saw: latencies of admitted replies (200) and of refusals (429).
#[derive(Default)]
struct Phase {
    admitted: Vec<Duration>,
    refused: Vec<Duration>,
    /// Replies that were neither (should stay 0).
    other: usize,
}

/// Runs `clients` closed-loop clients against `url` for `length`.
async fn phase(url: &str, clients: usize, length: Duration) -> (Phase, Duration) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let seen = Arc::new(Mutex::new(Phase::default()));
    let started = Instant::now();
    let stop = started + length;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (client, url, seen) = (client.clone(), url.to_string(), Arc::clone(&seen));
            tokio::spawn(async move {
                let mut n = i;
                while Instant::now() < stop {
                    let body = json!({"model": "auto", "messages": [{"role": "user", "content": PROMPTS[n % PROMPTS.len()]}]});
                    n += 1;
                    let sent = Instant::now();
                    let status = match client.post(&url).json(&body).send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let _ = response.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    let latency = sent.elapsed();
                    let mut seen = seen.lock().expect("phase lock");
                    match status {
                        200 => seen.admitted.push(latency),
                        429 => seen.refused.push(latency),
                        _ => seen.other += 1,
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    let mut phase = Arc::try_unwrap(seen)
        .ok()
        .expect("all clients done")
        .into_inner()
        .expect("phase lock");
    phase.admitted.sort_unstable();
    phase.refused.sort_unstable();
    (phase, elapsed)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let limit = env_usize("OVERLOAD_LIMIT", 4);
    let flood = env_usize("OVERLOAD_FLOOD", 8 * limit);
    let length = Duration::from_secs(env_usize("OVERLOAD_SECONDS", 10) as u64);
    let server = common::Server::start(common::Launch {
        env: vec![("SEMROUTER__SERVER__MAX_IN_FLIGHT", limit.to_string())],
        ..common::Launch::default()
    });
    let url = server.url("/v1/route");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "overload: /v1/route on 127.0.0.1, server.max_in_flight = {limit}, {} s per phase",
        length.as_secs()
    );
    let (warm, _) = runtime.block_on(phase(&url, limit, Duration::from_secs(2)));
    drop(warm);

    let (unloaded, unloaded_s) = runtime.block_on(phase(&url, limit, length));
    let (loaded, loaded_s) = runtime.block_on(phase(&url, limit + flood, length));

    let report = |name: &str, clients: usize, p: &Phase, elapsed: Duration| {
        println!(
            "{name:<9} {clients:>3} clients: admitted {:>6} ({:>7.1}/s)  p50 {:>7.2} ms  p99 {:>7.2} ms | 429 {:>7} ({:>8.1}/s)  p50 {:>6.2} ms  p99 {:>6.2} ms | other {}",
            p.admitted.len(),
            p.admitted.len() as f64 / elapsed.as_secs_f64(),
            ms(percentile(&p.admitted, 0.50)),
            ms(percentile(&p.admitted, 0.99)),
            p.refused.len(),
            p.refused.len() as f64 / elapsed.as_secs_f64(),
            ms(percentile(&p.refused, 0.50)),
            ms(percentile(&p.refused, 0.99)),
            p.other,
        );
    };
    report("unloaded", limit, &unloaded, unloaded_s);
    report("overload", limit + flood, &loaded, loaded_s);
    let (p99_unloaded, p99_loaded) = (
        percentile(&unloaded.admitted, 0.99),
        percentile(&loaded.admitted, 0.99),
    );
    let ratio = p99_loaded.as_secs_f64() / p99_unloaded.as_secs_f64().max(1e-9);
    println!(
        "admitted p99 under overload / unloaded p99: {ratio:.2}x (target: within 2x: {}); slowest 429: {:.2} ms",
        if ratio <= 2.0 { "met" } else { "not met" },
        ms(loaded.refused.last().copied().unwrap_or_default())
    );
}
