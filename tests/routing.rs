//! `/v1/route` end to end on the default config: the trained head, the example fleet and the
//! reasoning rewrite per family, through the real server.

mod common;

use std::time::{Duration, Instant};

use common::{chat, expect_error, metric, Launch, Server};
use serde_json::{json, Value};

async fn route(client: &reqwest::Client, server: &Server, body: &Value) -> Value {
    let response = client
        .post(server.url("/v1/route"))
        .json(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "route failed");
    response.json().await.expect("decision JSON")
}

#[tokio::test]
async fn math_reasons_on_the_reasoning_model_and_small_talk_goes_to_the_small_model() {
    let server = Server::start_default();
    let client = reqwest::Client::new();

    let mut math = chat("auto", "Solve 3x + 5 = 20 for x");
    math["temperature"] = json!(0.2);
    math["metadata"] = json!({"trace": "abc"});
    let d = route(&client, &server, &math).await;
    assert_eq!(d["model"], "deepseek-v3.1");
    assert_eq!(d["routed"], true);
    assert_eq!(d["category"]["name"], "math");
    assert!(d["category"]["confidence"].as_f64().unwrap() > 0.5);
    assert_eq!(d["action"], "route");
    assert_eq!(d["reasoning"]["enabled"], true);
    assert_eq!(d["reasoning"]["family"], "deepseek");
    // A one-step equation is math but simple: reasoning on, at the smallest budget.
    assert_eq!(d["reasoning"]["effort"], "low", "{d}");
    assert_eq!(d["reasoning"]["budget_tokens"], 1024, "{d}");
    let body = &d["request"];
    assert_eq!(body["model"], "deepseek-v3.1");
    assert_eq!(body["chat_template_kwargs"]["thinking"], true);
    assert_eq!(
        body["temperature"], 0.2,
        "fields the router does not own pass through"
    );
    assert_eq!(body["metadata"], json!({"trace": "abc"}));
    assert_eq!(body["messages"], math["messages"]);
    let candidates = d["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 3);
    assert_eq!(candidates[0]["model"], "deepseek-v3.1");
    for c in candidates {
        let f = &c["factors"];
        let sum: f64 = ["quality", "cost", "latency", "load"]
            .iter()
            .map(|k| f[k]["contribution"].as_f64().unwrap())
            .sum();
        assert!(
            (sum - c["score"].as_f64().unwrap()).abs() < 1e-6,
            "factors add up to the score: {c}"
        );
    }
    for stage in [
        "parse", "tokenize", "queue", "infer", "signals", "pii", "decide", "total",
    ] {
        assert!(d["timing_us"][stage].is_u64(), "timing_us.{stage} in {d}");
    }

    // A proof gets a bigger thinking budget; arithmetic gets none.
    let proof = "Prove that there are infinitely many primes congruent to 3 mod 4, then explain how Dirichlet's theorem on arithmetic progressions generalises the argument.";
    let d = route(&client, &server, &chat("auto", proof)).await;
    assert_eq!(d["model"], "deepseek-v3.1");
    assert!(
        d["reasoning"]["budget_tokens"]
            .as_u64()
            .is_some_and(|b| b >= 4096),
        "{d}"
    );
    let d = route(&client, &server, &chat("auto", "What is 2 + 2?")).await;
    assert_eq!(d["reasoning"]["enabled"], false, "{d}");

    let d = route(
        &client,
        &server,
        &chat("auto", "Can you recommend a movie for tonight?"),
    )
    .await;
    assert_eq!(d["model"], "qwen3-8b");
    assert_eq!(d["category"]["name"], "other");
    assert_eq!(d["reasoning"]["enabled"], false);
    assert_eq!(
        d["request"]["chat_template_kwargs"],
        json!({"enable_thinking": false})
    );

    let d = route(
        &client,
        &server,
        &chat("auto", "Is it legal to break a lease early in California?"),
    )
    .await;
    assert_eq!(d["model"], "gpt-oss-120b");
    assert_eq!(d["category"]["name"], "law");
    assert_eq!(
        d["reasoning"],
        json!({"enabled": false, "effort": null, "budget_tokens": null, "family": "gpt-oss"})
    );
    assert_eq!(
        d["request"]["reasoning_effort"], "low",
        "gpt-oss has no off; the lowest effort is written"
    );
}

#[tokio::test]
async fn named_models_pass_through_and_unknown_models_are_404() {
    let server = Server::start_default();
    let client = reqwest::Client::new();
    let mut body = chat("gpt-oss-120b", "Solve 3x + 5 = 20 for x");
    body["reasoning_effort"] = json!("high");
    let d = route(&client, &server, &body).await;
    assert_eq!(d["model"], "gpt-oss-120b");
    assert_eq!(d["routed"], false);
    assert_eq!(
        d["request"], body,
        "a named model's request is forwarded unchanged"
    );
    assert!(d["category"].is_null() && d["reasoning"].is_null());
    assert_eq!(
        d["timing_us"]["infer"], 0,
        "no model runs for a pass-through"
    );

    let response = client
        .post(server.url("/v1/route"))
        .json(&chat("gpt-17", "hi"))
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 404).await;
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(error["param"], "model");
    assert!(error["message"].as_str().unwrap().contains("gpt-17"));
}

#[tokio::test]
async fn unknown_models_can_be_passed_through_by_config() {
    let server = Server::start(Launch {
        env: vec![("SEMROUTER__ROUTING__UNKNOWN_MODELS", "pass".into())],
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let d = route(&client, &server, &chat("my-private-model", "hi")).await;
    assert_eq!(d["model"], "my-private-model");
    assert_eq!(d["routed"], false);
}

#[tokio::test]
async fn the_last_user_turn_is_classified_and_content_parts_are_read() {
    let server = Server::start_default();
    let client = reqwest::Client::new();
    let conversation = json!({"model": "auto", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Solve 3x + 5 = 20 for x"},
        {"role": "assistant", "content": "x = 5"},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "Is it legal to break a lease early in California?"}
        ]}
    ]});
    let d = route(&client, &server, &conversation).await;
    assert_eq!(
        d["category"]["name"], "law",
        "the last user turn decides: {d}"
    );
    assert_eq!(d["model"], "gpt-oss-120b");
}

#[tokio::test]
async fn the_classified_text_is_configurable() {
    // With all user turns, a conversation that is mostly mathematics routes as mathematics
    // even when the last turn is a short follow-up.
    let server = Server::start(Launch {
        env: vec![("SEMROUTER__CLASSIFIER__TEXT", "all_user".into())],
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let conversation = json!({"model": "auto", "messages": [
        {"role": "user", "content": "Compute the derivative of x^3 + 2x^2 - 7x and find where it equals zero."},
        {"role": "assistant", "content": "..."},
        {"role": "user", "content": "thanks!"}
    ]});
    let d = route(&client, &server, &conversation).await;
    assert_eq!(d["category"]["name"], "math", "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_forward_passes_when_batching_is_on() {
    // The default runs one prompt per pass (measured fastest on 2 cores); batching is a setting.
    let server = Server::start(Launch {
        env: vec![("SEMROUTER__EMBEDDING__ONNX__MAX_BATCH_SIZE", "16".into())],
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let prompts = [
        "Solve 3x + 5 = 20 for x",
        "Is it legal to break a lease early in California?",
        "Can you recommend a movie for tonight?",
        "What is the capital of Australia?",
    ];
    let requests: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            let url = server.url("/v1/route");
            let body = chat("auto", prompts[i % prompts.len()]);
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().unwrap(), 200);
    }
    let text = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sum = metric(&text, "semrouter_onnx_batch_size_sum", &[]).expect("batch size sum");
    let count = metric(&text, "semrouter_onnx_batch_size_count", &[]).expect("batch size count");
    // Warm-up passes count too; 64 concurrent requests must have shared passes.
    assert!(
        sum >= 64.0 && count < sum,
        "no batching: {sum} texts in {count} passes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_429_with_retry_after_at_once() {
    let server = Server::start(Launch {
        env: vec![
            ("SEMROUTER__EMBEDDING__ONNX__QUEUE_CAPACITY", "1".into()),
            ("SEMROUTER__EMBEDDING__ONNX__MAX_BATCH_SIZE", "1".into()),
        ],
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let started = Instant::now();
    let requests: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            let url = server.url("/v1/route");
            let body = chat(
                "auto",
                &format!("Question {i}: what is the boiling point of water at altitude?"),
            );
            tokio::spawn(async move {
                let sent = Instant::now();
                let response = client.post(url).json(&body).send().await.expect("response");
                (
                    response.status().as_u16(),
                    response.headers().get("retry-after").cloned(),
                    sent.elapsed(),
                    response,
                )
            })
        })
        .collect();
    let mut refused = 0;
    for request in requests {
        let (status, retry_after, elapsed, response) = request.await.unwrap();
        match status {
            200 => {}
            429 => {
                refused += 1;
                assert_eq!(retry_after.expect("Retry-After on 429"), "1");
                assert!(
                    elapsed < Duration::from_secs(2),
                    "a refusal must be immediate, took {elapsed:?}"
                );
                let error = expect_error(response, 429).await;
                assert_eq!(error["code"], "queue_full");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        refused > 0,
        "64 concurrent requests into a queue of 1 must shed load"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let after = route(&client, &server, &chat("auto", "still alive?")).await;
    assert!(after["model"].is_string());
}
