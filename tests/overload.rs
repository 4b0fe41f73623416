//! The admission limit (`server.max_in_flight`): beyond it the server answers 429 at once, in
//! OpenAI's envelope with `Retry-After`, on every front end (REST, the proxy, ext_proc), and
//! the admitted requests all succeed. The latency figure (admitted p99 under overload against
//! unloaded) is measured by `cargo bench --bench overload`, not asserted here: timing on a
//! shared CI machine is too noisy for that.

mod common;
#[path = "support/extproc.rs"]
mod extproc;
#[path = "support/upstream.rs"]
mod upstream;

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response;
use serde_json::Value;

use common::{chat, default_config_with, free_port, metric, Launch, Server};
use upstream::{answer_text, Behaviour, Upstream};

/// The limit under test.
const LIMIT: usize = 4;
/// How long the stub upstream takes to answer: what keeps an admitted request in flight.
const UPSTREAM_DELAY: Duration = Duration::from_millis(800);
/// How long the holders keep every slot while the other front ends are tried.
const HOLD: Duration = Duration::from_secs(3);
const PROMPT: &str = "Can you recommend a movie for tonight?";

/// The default config with every model's upstream pointing at `base`.
fn config(base: &str) -> String {
    let upstream = format!("    upstream: {{ base_url: \"{base}\" }}\n");
    let entries: Vec<(String, String)> = ["qwen3-8b", "gpt-oss-120b", "deepseek-v3.1"]
        .iter()
        .map(|m| {
            (
                format!("  - name: {m}\n"),
                format!("  - name: {m}\n{upstream}"),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = entries
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    default_config_with(&pairs)
}

/// One reply as a flooding client saw it.
struct Seen {
    status: u16,
    latency: Duration,
    retry_after: Option<String>,
    body: Value,
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Seen {
    let started = Instant::now();
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.json().await.unwrap_or(Value::Null);
    Seen {
        status,
        latency: started.elapsed(),
        retry_after,
        body,
    }
}

/// Asserts a refusal for overload: 429, `Retry-After`, the envelope with code `overloaded`.
fn assert_overloaded(seen: &Seen) {
    assert_eq!(seen.status, 429, "{}", seen.body);
    assert_eq!(
        seen.retry_after.as_deref(),
        Some("1"),
        "a 429 tells the client when to retry"
    );
    let error = &seen.body["error"];
    assert_eq!(error["type"], "rate_limit_error", "{}", seen.body);
    assert_eq!(error["code"], "overloaded", "{}", seen.body);
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("server.max_in_flight")),
        "{}",
        seen.body
    );
}

fn start(upstream: &Upstream, extproc: u16) -> Server {
    Server::start(Launch {
        config: Some(config(&upstream.base)),
        env: vec![
            ("SEMROUTER__SERVER__MAX_IN_FLIGHT", LIMIT.to_string()),
            ("SEMROUTER__EXTPROC__ENABLED", "true".into()),
            ("SEMROUTER__EXTPROC__ADDR", format!("127.0.0.1:{extproc}")),
            ("SEMROUTER__EXTPROC__DECISION_TIMEOUT_MS", "10000".into()),
        ],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn beyond_the_limit_requests_get_429_at_once_and_the_admitted_all_succeed() {
    let upstream = Upstream::start("slow");
    upstream.set(Behaviour {
        delay: UPSTREAM_DELAY,
        ..Behaviour::default()
    });
    let extproc = free_port();
    let server = start(&upstream, extproc);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // A flood of proxy requests from many clients at once: LIMIT are taken, the rest refused.
    let url = server.url("/v1/chat/completions");
    let flood: Vec<_> = (0..8 * LIMIT)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { post(&client, &url, &chat("auto", PROMPT)).await })
        })
        .collect();
    let mut seen = Vec::new();
    for task in flood {
        seen.push(task.await.unwrap());
    }
    let (admitted, refused): (Vec<&Seen>, Vec<&Seen>) = seen.iter().partition(|s| s.status != 429);
    assert!(
        !admitted.is_empty() && !refused.is_empty(),
        "{} admitted, {} refused",
        admitted.len(),
        refused.len()
    );
    for s in &admitted {
        assert_eq!(s.status, 200, "an admitted request succeeds: {}", s.body);
        assert_eq!(
            s.body["choices"][0]["message"]["content"],
            answer_text("slow")
        );
    }
    let slowest_refusal = refused.iter().map(|s| s.latency).max().unwrap();
    let fastest_admitted = admitted.iter().map(|s| s.latency).min().unwrap();
    for s in &refused {
        assert_overloaded(s);
    }
    // Refused at once, not queued behind the admitted ones (which wait for the upstream).
    assert!(
        slowest_refusal * 2 < fastest_admitted,
        "the slowest 429 took {slowest_refusal:?}, the fastest admitted request {fastest_admitted:?}"
    );

    // While LIMIT slow requests hold every slot (all of them at the upstream), each front end
    // refuses: REST and ext_proc.
    upstream.clear();
    upstream.set(Behaviour {
        delay: HOLD,
        ..Behaviour::default()
    });
    let holders: Vec<_> = (0..LIMIT)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { post(&client, &url, &chat("auto", PROMPT)).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.received().len() < LIMIT {
        assert!(
            Instant::now() < deadline,
            "the holders did not reach the upstream"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let route = server.url("/v1/route");
    assert_overloaded(
        &post(
            &client,
            &route,
            &chat("auto", "What is the capital of France?"),
        )
        .await,
    );
    let immediate = extproc_exchange(extproc).await;
    assert_eq!(
        immediate.0, 429,
        "ext_proc refuses with an ImmediateResponse 429: {}",
        immediate.2
    );
    assert!(
        immediate
            .1
            .iter()
            .any(|(k, v)| k == "retry-after" && v == "1"),
        "{:?}",
        immediate.1
    );
    assert_eq!(immediate.2["error"]["code"], "overloaded");
    for holder in holders {
        assert_eq!(holder.await.unwrap().status, 200);
    }

    // The slots are released: the next request is admitted.
    let after = post(
        &client,
        &route,
        &chat("auto", "What is the capital of France?"),
    )
    .await;
    assert_eq!(after.status, 200, "{}", after.body);

    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for front_end in ["proxy", "rest", "extproc"] {
        let label = format!("front_end=\"{front_end}\"");
        assert!(
            metric(&metrics, "semrouter_admission_rejections_total", &[&label])
                .is_some_and(|n| n >= 1.0),
            "{front_end}: {metrics}"
        );
    }
    let proxy_refusals = metric(
        &metrics,
        "semrouter_admission_rejections_total",
        &["front_end=\"proxy\""],
    )
    .unwrap_or(0.0);
    assert_eq!(
        proxy_refusals as usize,
        refused.len(),
        "every refusal is counted"
    );
}

/// One routed ext_proc exchange (headers, then the body); the ImmediateResponse it ends in:
/// status, headers, body.
async fn extproc_exchange(port: u16) -> (u16, Vec<(String, String)>, Value) {
    let mut client = ExternalProcessorClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("ext_proc reachable");
    let messages = extproc::buffered_chat(serde_json::to_vec(&chat("auto", PROMPT)).unwrap());
    let mut replies = client
        .process(futures_util::stream::iter(messages))
        .await
        .expect("the stream opens")
        .into_inner();
    loop {
        let reply = tokio::time::timeout(Duration::from_secs(10), replies.message())
            .await
            .expect("a reply in time")
            .expect("no stream error")
            .expect("a reply before the stream ends");
        if let Some(Response::ImmediateResponse(immediate)) = reply.response {
            let headers = immediate
                .headers
                .iter()
                .flat_map(|m| &m.set_headers)
                .filter_map(|h| h.header.as_ref())
                .map(|h| {
                    (
                        h.key.clone(),
                        String::from_utf8_lossy(&h.raw_value).into_owned(),
                    )
                })
                .collect();
            let body = serde_json::from_slice(&immediate.body).unwrap_or(Value::Null);
            return (immediate.status.map_or(0, |s| s.code) as u16, headers, body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_decisions_gets_decisions_or_429s_only() {
    let server = Server::start(Launch {
        env: vec![("SEMROUTER__SERVER__MAX_IN_FLIGHT", "2".into())],
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let url = server.url("/v1/route");
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                post(
                    &client,
                    &url,
                    &chat(
                        "auto",
                        &format!("Question {i}: how do vaccines train the immune system?"),
                    ),
                )
                .await
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        let seen = task.await.unwrap();
        match seen.status {
            200 => {
                admitted += 1;
                assert!(seen.body["model"].is_string(), "{}", seen.body);
            }
            _ => assert_overloaded(&seen),
        }
    }
    assert!(admitted >= 1, "some requests are admitted");
}

#[test]
fn the_limit_is_checked_at_load() {
    let (status, stderr) =
        common::serve_expecting_failure(None, &[("SEMROUTER__SERVER__MAX_IN_FLIGHT", "0")]);
    assert!(!status.success());
    assert!(stderr.contains("server.max_in_flight"), "{stderr}");
}
