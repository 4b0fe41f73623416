//! The proxy's own cost: the same chat request sent directly to a stub OpenAI upstream and
//! through semrouter's `POST /v1/chat/completions` to that upstream, over loopback.
//!
//!     cargo bench --bench proxy            (part of `make bench`; needs `make setup`)
//!
//! The request names a configured model, so no encoder pass runs: what is measured is the
//! proxy (parse, the route flow's pass-through decision, the upstream call, relaying the
//! answer), not the decision. At concurrency 1 the direct and proxied requests alternate in
//! chunks of 200 (a shared machine's speed drifts over minutes); then both run at concurrency
//! 32 for throughput. A streamed (SSE) answer is timed the same way at concurrency 1. Prints
//! p50/p99/throughput of each and the difference against the target (the proxy adds at most
//! 0.5 ms at p50).
//!
//! Environment: `PROXY_BENCH_REQUESTS` (per side at concurrency 1, default 3000),
//! `PROXY_BENCH_CONCURRENT` (per side at concurrency 32, default 6000).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/upstream.rs"]
mod upstream;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CHUNK: usize = 200;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Summary {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

fn summarise(mut samples: Vec<Duration>, wall: Duration) -> Summary {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        per_second: samples.len() as f64 / wall.as_secs_f64(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn line(label: &str, s: &Summary) {
    println!(
        "  {label:<34} p50 {:>7.3} ms   p99 {:>7.3} ms   {:>7.0} req/s",
        ms(s.p50),
        ms(s.p99),
        s.per_second
    );
}

/// One request, its whole answer read; panics on anything but 200.
async fn call(client: &reqwest::Client, url: &str, body: &Value) -> Duration {
    let started = Instant::now();
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200, "{url}");
    let bytes = response.bytes().await.expect("answer read");
    assert!(!bytes.is_empty());
    started.elapsed()
}

/// Concurrency 1, direct and proxied alternating in chunks: (direct, proxied) samples and
/// the wall time each side took.
async fn sequential(
    client: &reqwest::Client,
    direct: &str,
    proxied: &str,
    body: &Value,
    total: usize,
    label: &str,
) -> (Summary, Summary) {
    let (mut a, mut b) = (Vec::with_capacity(total), Vec::with_capacity(total));
    let (mut wall_a, mut wall_b) = (Duration::ZERO, Duration::ZERO);
    while a.len() < total {
        let n = CHUNK.min(total - a.len());
        let started = Instant::now();
        for _ in 0..n {
            a.push(call(client, direct, body).await);
        }
        wall_a += started.elapsed();
        let started = Instant::now();
        for _ in 0..n {
            b.push(call(client, proxied, body).await);
        }
        wall_b += started.elapsed();
        eprintln!("  {label}: {}/{total}", a.len());
    }
    (summarise(a, wall_a), summarise(b, wall_b))
}

/// `total` requests from `concurrency` callers.
async fn concurrent(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    concurrency: usize,
    total: usize,
    label: &str,
) -> Summary {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, body, next) = (
            client.clone(),
            url.to_string(),
            body.clone(),
            Arc::clone(&next),
        );
        let label = label.to_string();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return samples;
                }
                if i > 0 && i % 2000 == 0 {
                    eprintln!("  {label}: {i}/{total}");
                }
                samples.push(call(&client, &url, &body).await);
            }
        }));
    }
    let mut samples = Vec::with_capacity(total);
    for task in tasks {
        samples.extend(task.await.expect("caller finished"));
    }
    summarise(samples, started.elapsed())
}

fn main() {
    let requests = env_usize("PROXY_BENCH_REQUESTS", 3000);
    let concurrent_requests = env_usize("PROXY_BENCH_CONCURRENT", 6000);
    let stub = upstream::Upstream::start("bench");
    let mut config = common::default_config_with(&[(
        "    latency_prior_ms: 400\n",
        &format!(
            "    latency_prior_ms: 400\n    upstream: {{ base_url: \"{}\" }}\n",
            stub.base
        ),
    )]);
    config.push('\n');
    eprintln!("starting semrouter (models load first)...");
    let server = common::Server::start(common::Launch {
        config: Some(config),
        env: Vec::new(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).tcp_nodelay(true).build().expect("client");
        let direct = format!("{}/v1/chat/completions", stub.base);
        let proxied = server.url("/v1/chat/completions");
        let body = json!({"model": "qwen3-8b", "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 32});
        for _ in 0..200 {
            call(&client, &direct, &body).await;
            call(&client, &proxied, &body).await;
        }
        let (direct_1, proxied_1) = sequential(&client, &direct, &proxied, &body, requests, "concurrency 1").await;
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let (direct_s, proxied_s) = sequential(&client, &direct, &proxied, &streamed, requests / 2, "streamed, concurrency 1").await;
        let direct_32 = concurrent(&client, &direct, &body, 32, concurrent_requests, "direct, concurrency 32").await;
        let proxied_32 = concurrent(&client, &proxied, &body, 32, concurrent_requests, "proxied, concurrency 32").await;

        println!("POST /v1/chat/completions naming a configured model (no encoder pass), stub upstream on loopback");
        println!("concurrency 1, {requests} requests each, alternating chunks of {CHUNK}");
        line("direct to the upstream", &direct_1);
        line("through semrouter", &proxied_1);
        println!("streamed (SSE, 6 events), concurrency 1, {} requests each", requests / 2);
        line("direct to the upstream", &direct_s);
        line("through semrouter", &proxied_s);
        println!("concurrency 32, {concurrent_requests} requests each");
        line("direct to the upstream", &direct_32);
        line("through semrouter", &proxied_32);
        let added = ms(proxied_1.p50) - ms(direct_1.p50);
        let added_stream = ms(proxied_s.p50) - ms(direct_s.p50);
        println!("the proxy adds");
        println!("  p50 at c=1 {added:.3} ms (p99 {:.3} ms); streamed p50 {added_stream:.3} ms", ms(proxied_1.p99) - ms(direct_1.p99));
        println!("  throughput at c=32: {:.0} vs {:.0} req/s direct ({:.0}%)", proxied_32.per_second, direct_32.per_second, 100.0 * proxied_32.per_second / direct_32.per_second);
        println!("targets");
        println!("  proxy adds <= 0.5 ms at p50 (c=1): {added:.3} ms  {}", if added <= 0.5 { "PASS" } else { "FAIL" });
    });
    drop(server);
}
