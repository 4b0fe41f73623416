//! The ext_proc round trip through the real Envoy, against the decision alone.
//!
//!     cargo bench --bench extproc          (part of `make bench`; needs `make setup`)
//!
//! One semrouter (ext_proc on, cache off so every request is decided), one stub OpenAI upstream
//! behind every model cluster, and Envoy on the shipped config/envoy/envoy.yaml, beside further
//! Envoys on the same example with other processing modes ([`variants`]: processing off, i.e.
//! Envoy's own proxy hop; the answer observed by the second, observe-only filter; STREAMED
//! bodies sent without waiting; FULL_DUPLEX_STREAMED; the response unobserved), and the example
//! wired to a processor that does no work (tests/support/noop_processor.rs: the floor). At
//! concurrency 1 each MMLU val prompt goes down every path in turn (a shared machine drifts):
//!   route   `POST /v1/route` on semrouter directly (the decision, over HTTP)
//!   stub    `POST /v1/chat/completions` on the stub directly
//!   envoy   `POST /v1/chat/completions` through Envoy, ext_proc deciding, to the stub
//!   ...     the same through each variant
//! and reports the ext_proc overhead as p50(envoy) - p50(route) - p50(stub) (target: at most
//! 1 ms), Envoy's own hop as p50(processing off) - p50(stub), and for every Envoy path the
//! median over prompts of (its time - /v1/route's time for the same prompt) less p50(stub).
//! Then throughput at concurrency 32, `/v1/route` alone against Envoy + semrouter + stub,
//! alternating over rounds (target: at least 80%).
//!
//! Environment: `EXTPROC_PROMPTS` (default 400), `EXTPROC_ROUNDS` (default 3).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/envoy.rs"]
mod envoy;
#[path = "../tests/support/noop_processor.rs"]
mod noop_processor;
#[path = "../tests/support/upstream.rs"]
mod upstream;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use semrouter::data::mmlu::{self, Split};
use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
        s.get(((s.len() as f64 * q) as usize).min(s.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
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
async fn load(
    client: &reqwest::Client,
    url: &str,
    prompts: &Arc<Vec<String>>,
    concurrency: usize,
    total: usize,
) -> Summary {
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
    let wire_to = |processor: u16, edits: Vec<(&'static str, &'static str)>| {
        let mut all = vec![("message_timeout: 0.5s", "message_timeout: 10s")];
        all.extend(edits);
        envoy::Envoy::start(&envoy::Wiring {
            extproc: processor,
            models: envoy::EXAMPLE_MODELS
                .iter()
                .map(|(m, _)| (*m, stub.port))
                .collect(),
            edits: all,
        })
    };
    let wire = |edits| wire_to(extproc, edits);
    let envoy = wire(Vec::new());
    let mut variants: Vec<(&str, envoy::Envoy)> = variants()
        .into_iter()
        .map(|(label, edits)| (label, wire(edits)))
        .collect();
    // The example answered by a processor that does no work, with its four messages and with
    // the request's two alone: the floor any processor on this gRPC stack pays here.
    let noop = noop_processor::start();
    variants.push((NOOP_LABEL, wire_to(noop, Vec::new())));
    variants.push((
        NOOP_REQUEST_ONLY_LABEL,
        wire_to(noop, response_unobserved()),
    ));
    let route_url = server.url("/v1/route");
    let stub_url = format!("{}/v1/chat/completions", stub.base);
    let envoy_url = envoy.url("/v1/chat/completions");
    let mut paths: Vec<(&str, String)> = vec![
        ("/v1/route direct (the decision)", route_url.clone()),
        ("stub upstream direct", stub_url),
        ("Envoy + ext_proc + stub", envoy_url.clone()),
    ];
    paths.extend(
        variants
            .iter()
            .map(|(label, e)| (*label, e.url("/v1/chat/completions"))),
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
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
        for (_, url) in &paths {
            load(&client, url, &prompts, 1, 50).await;
        }

        // Concurrency 1: each prompt goes down every path in turn (the starting path rotating),
        // so the paths see the same prompts at the same moment of a drifting shared machine, and
        // the Envoy path's cost over the decision can be taken prompt by prompt.
        let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(prompts.len()); paths.len()];
        for (i, prompt) in prompts.iter().enumerate() {
            let one = Arc::new(vec![prompt.clone()]);
            for k in 0..paths.len() {
                let p = (i + k) % paths.len();
                samples[p].extend(load(&client, &paths[p].1, &one, 1, 1).await.samples);
            }
            if (i + 1) % 50 == 0 || i + 1 == prompts.len() {
                eprintln!("  concurrency 1: {}/{} prompts on each path", i + 1, prompts.len());
            }
        }
        let summaries: Vec<Summary> = samples
            .iter()
            .map(|s| Summary {
                per_second: s.len() as f64 / s.iter().sum::<Duration>().as_secs_f64().max(1e-9),
                samples: s.clone(),
            })
            .collect();
        let (route, direct, through) = (&summaries[0], &summaries[1], &summaries[2]);

        // Where the example's cost lies, from semrouter's own histograms: the time it spends on
        // each ext_proc message against its time on a /v1/route request, same prompts.
        let metrics_url = server.url("/metrics");
        let split_prompts = Arc::new(prompts.iter().take(100).cloned().collect::<Vec<_>>());
        let before = scrape(&client, &metrics_url).await;
        load(&client, &route_url, &split_prompts, 1, split_prompts.len()).await;
        let after_route = scrape(&client, &metrics_url).await;
        load(&client, &envoy_url, &split_prompts, 1, split_prompts.len()).await;
        let after_envoy = scrape(&client, &metrics_url).await;
        let mean = |from: &str, to: &str, name: &str, label: &str| {
            let (sum, count) = histogram_delta(from, to, name, label);
            if count > 0.0 { sum / count * 1000.0 } else { 0.0 }
        };
        let route_server = mean(&before, &after_route, "semrouter_http_request_duration_seconds", "endpoint=\"/v1/route\"");
        let messages: Vec<(&str, f64)> = ["request_headers", "request_body", "response_headers", "response_body"]
            .into_iter()
            .map(|m| (m, mean(&after_route, &after_envoy, "semrouter_extproc_message_duration_seconds", &format!("message=\"{m}\""))))
            .collect();
        // The same split by engine stage: where an ext_proc request's time differs from a
        // /v1/route request's (the encoder's stages sharing two cores with Envoy, or the rest).
        let stages: Vec<(&str, f64, f64)> = ["queue", "tokenize", "infer", "signals", "decide"]
            .into_iter()
            .map(|stage| {
                let label = format!("stage=\"{stage}\"");
                let series = "semrouter_stage_duration_seconds";
                (stage, mean(&before, &after_route, series, &label), mean(&after_route, &after_envoy, series, &label))
            })
            .collect();

        // Concurrency 32: /v1/route alone against the whole Envoy path, alternating rounds.
        // Each round also reads the CPU time semrouter, Envoy and this process (the load
        // generator and the stub) spent on it: on two shared cores the throughput share is
        // the CPU a request costs on each path.
        let (mut route32, mut through32) = (Vec::new(), Vec::new());
        let pids = [server.pid(), envoy.pid().unwrap_or(u32::MAX), 0];
        let cpu_now = || pids.map(common::cpu_seconds);
        let (mut route_cpu, mut through_cpu) = ([0.0; 3], [0.0; 3]);
        let add = |total: &mut [f64; 3], from: [f64; 3], to: [f64; 3]| (0..3).for_each(|i| total[i] += to[i] - from[i]);
        // And the encoder's batches (the default config's model): how many prompts share one
        // forward pass on each path.
        let batches = |from: &str, to: &str| histogram_delta(from, to, "semrouter_onnx_batch_size", "model=\"all-MiniLM-L6-v2-int8\"");
        let (mut route_batches, mut through_batches) = ((0.0, 0.0), (0.0, 0.0));
        for round in 1..=rounds {
            let (start, start_metrics) = (cpu_now(), scrape(&client, &metrics_url).await);
            route32.push(load(&client, &route_url, &prompts, 32, prompts.len()).await);
            let (middle, middle_metrics) = (cpu_now(), scrape(&client, &metrics_url).await);
            through32.push(load(&client, &envoy_url, &prompts, 32, prompts.len()).await);
            let (end, end_metrics) = (cpu_now(), scrape(&client, &metrics_url).await);
            add(&mut route_cpu, start, middle);
            add(&mut through_cpu, middle, end);
            for (total, (texts, passes)) in [(&mut route_batches, batches(&start_metrics, &middle_metrics)), (&mut through_batches, batches(&middle_metrics, &end_metrics))] {
                total.0 += texts;
                total.1 += passes;
            }
            eprintln!("  concurrency 32: round {round}/{rounds}");
        }
        let per_request = |cpu: [f64; 3]| cpu.map(|seconds| seconds * 1e3 / (rounds * prompts.len()) as f64);
        let batch_mean = |(texts, passes): (f64, f64)| if passes > 0.0 { texts / passes } else { 0.0 };
        let (route32, through32) = (Summary::pooled(route32), Summary::pooled(through32));

        println!("concurrency 1");
        for (summary, (label, _)) in summaries.iter().zip(&paths) {
            summary.line(label);
        }
        let stub_p50 = ms(direct.at(0.5));
        let overhead = ms(through.at(0.5)) - ms(route.at(0.5)) - stub_p50;
        println!("  ext_proc round trip over the decision and the upstream: {overhead:+.3} ms at p50");
        let envoy_hop = ms(summaries[3].at(0.5)) - stub_p50;
        println!("  of which Envoy's own proxy hop: {envoy_hop:+.3} ms; the ext_proc messages: {:+.3} ms", overhead - envoy_hop);
        let paired = |path: &Summary| {
            let mut d: Vec<f64> = path.samples.iter().zip(&route.samples).map(|(p, r)| ms(*p) - ms(*r)).collect();
            d.sort_by(f64::total_cmp);
            d.get(d.len() / 2).copied().unwrap_or(0.0) - stub_p50
        };
        println!("  the same, prompt by prompt (median of Envoy path - /v1/route, less the stub's p50):");
        for (summary, (label, _)) in summaries.iter().zip(&paths).skip(2) {
            println!("    {label:<40} {:+.3} ms", paired(summary));
        }
        let over_stub = |wanted: &str| summaries.iter().zip(&paths).find(|(_, (label, _))| *label == wanted).map_or(0.0, |(s, _)| ms(s.at(0.5)) - stub_p50);
        let (floor, floor_request_only) = (over_stub(NOOP_LABEL), over_stub(NOOP_REQUEST_ONLY_LABEL));
        println!(
            "  the example's four messages answered by a no-op processor (Envoy's hop included): {floor:+.3} ms at p50 (its two request messages alone: {floor_request_only:+.3} ms); semrouter's share over that floor: {:+.3} ms",
            overhead - floor
        );
        let in_semrouter: f64 = messages.iter().map(|(_, t)| t).sum();
        println!(
            "  inside semrouter, mean of {} prompts: /v1/route {route_server:.3} ms; the example's ext_proc messages {in_semrouter:.3} ms ({}), {:+.3} ms over /v1/route",
            split_prompts.len(),
            messages.iter().map(|(m, t)| format!("{m} {t:.3}")).collect::<Vec<_>>().join(", "),
            in_semrouter - route_server
        );
        println!(
            "    by stage, /v1/route -> ext_proc: {}",
            stages.iter().map(|(stage, route, extproc)| format!("{stage} {route:.3} -> {extproc:.3}")).collect::<Vec<_>>().join(", ")
        );
        println!("concurrency 32");
        route32.line("/v1/route direct");
        through32.line("Envoy + ext_proc + stub");
        let share = through32.per_second / route32.per_second;
        println!("  Envoy + semrouter hold {:.0}% of /v1/route's throughput", share * 100.0);
        let (route_ms, through_ms) = (per_request(route_cpu), per_request(through_cpu));
        println!(
            "  CPU per request (ms): /v1/route: semrouter {:.2}, client {:.2}; Envoy path: semrouter {:.2}, Envoy {:.2}, client and stub {:.2}",
            route_ms[0], route_ms[2], through_ms[0], through_ms[1], through_ms[2]
        );
        println!("  prompts per encoder pass: /v1/route {:.2}, Envoy path {:.2}", batch_mean(route_batches), batch_mean(through_batches));
        println!("targets");
        println!("  ext_proc adds <= 1 ms at p50 over the decision: {overhead:+.3} ms  {}", verdict(overhead <= 1.0));
        println!("  >= 80% of /v1/route throughput at concurrency 32: {:.0}%  {}", share * 100.0, verdict(share >= 0.8));
    });
    drop(variants);
    drop(envoy);
    drop(server);
}

/// The example's Envoy path with the no-op processor.
const NOOP_LABEL: &str = "Envoy + no-op processor + stub";
/// The same, the answer unobserved (two messages: the request's headers and body).
const NOOP_REQUEST_ONLY_LABEL: &str = "Envoy + no-op, response unobserved";

/// Envoy on the example with some processing modes changed, measured beside it in the same run.
fn variants() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        // The filter sends nothing: Envoy's own proxy hop.
        (
            "Envoy (processing off) + stub",
            vec![
                ("request_header_mode: SEND", "request_header_mode: SKIP"),
                ("request_body_mode: BUFFERED", "request_body_mode: NONE"),
                ("                        response_header_mode: SEND\n", "                        response_header_mode: SKIP\n"),
                ("response_body_mode: BUFFERED", "response_body_mode: NONE"),
            ],
        ),
        // The answer observed by the second, observe-only filter, which Envoy does not wait on.
        (
            "Envoy, observe-only filter + stub",
            vec![
                ("                        response_header_mode: SEND\n", "                        response_header_mode: SKIP\n"),
                ("response_body_mode: BUFFERED", "response_body_mode: NONE"),
                ("disabled: true", "disabled: false"),
            ],
        ),
        // Headers and body sent at once (one round trip each way instead of two).
        (
            "Envoy, STREAMED without waiting",
            vec![
                ("request_body_mode: BUFFERED", "request_body_mode: STREAMED"),
                ("response_body_mode: BUFFERED", "response_body_mode: STREAMED"),
                ("allow_mode_override: true", "allow_mode_override: true\n                      send_body_without_waiting_for_header_response: true"),
            ],
        ),
        // STREAMED without waiting, and the answer's headers skipped: its status and content
        // type come as attributes with its first body chunk (one round trip each way).
        (
            "Envoy, STREAMED early, no answer headers",
            vec![
                ("request_body_mode: BUFFERED", "request_body_mode: STREAMED"),
                ("                        response_header_mode: SEND\n", "                        response_header_mode: SKIP\n"),
                ("response_body_mode: BUFFERED", "response_body_mode: STREAMED"),
                (
                    "allow_mode_override: true",
                    "allow_mode_override: true\n                      send_body_without_waiting_for_header_response: true\n                      response_attributes: [\"response.code\", \"response.headers['content-type']\"]",
                ),
            ],
        ),
        (
            "Envoy, FULL_DUPLEX_STREAMED + stub",
            vec![
                ("request_body_mode: BUFFERED", "request_body_mode: FULL_DUPLEX_STREAMED"),
                ("response_body_mode: BUFFERED", "response_body_mode: FULL_DUPLEX_STREAMED"),
                ("request_trailer_mode: SKIP\n", "request_trailer_mode: SEND\n"),
                ("response_trailer_mode: SKIP\n", "response_trailer_mode: SEND\n"),
            ],
        ),
        // The request side alone: what leaving the answer unobserved would cost (a bound for
        // any scheme that takes the response off the critical path).
        ("Envoy, response unobserved + stub", response_unobserved()),
    ]
}

/// The example's edits that leave the answer unobserved (request headers and body only).
fn response_unobserved() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "                        response_header_mode: SEND\n",
            "                        response_header_mode: SKIP\n",
        ),
        ("response_body_mode: BUFFERED", "response_body_mode: NONE"),
    ]
}

/// The growth of a Prometheus histogram's sum and count between two scrapes.
fn histogram_delta(from: &str, to: &str, name: &str, label: &str) -> (f64, f64) {
    let value = |text: &str, series: &str| {
        common::metric(text, &format!("{name}_{series}"), &[label]).unwrap_or(0.0)
    };
    (
        value(to, "sum") - value(from, "sum"),
        value(to, "count") - value(from, "count"),
    )
}

/// semrouter's Prometheus text.
async fn scrape(client: &reqwest::Client, url: &str) -> String {
    client
        .get(url)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}
