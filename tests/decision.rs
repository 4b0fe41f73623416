//! The decision beyond the domain: policies, the multi-factor scorer and its hard limits,
//! per-request preferences, explanations, reasoning templates and tool pre-selection, through
//! the real server.

mod common;

use common::{chat, default_config_with, expect_error, run_cli, Launch, Server};
use serde_json::{json, Value};

async fn post(
    client: &reqwest::Client,
    server: &Server,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client.post(server.url(path)).json(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.expect("request")
}

async fn route(
    client: &reqwest::Client,
    server: &Server,
    body: &Value,
    headers: &[(&str, &str)],
) -> Value {
    let response = post(client, server, "/v1/route", body, headers).await;
    assert_eq!(response.status(), 200, "route failed");
    response.json().await.expect("decision JSON")
}

const MATH: &str = "Solve 3x + 5 = 20 for x";

#[tokio::test]
async fn preference_headers_trade_quality_for_cost() {
    let server = Server::start_default();
    let client = reqwest::Client::new();
    let d = route(&client, &server, &chat("auto", MATH), &[]).await;
    assert_eq!(d["model"], "deepseek-v3.1");
    let d = route(
        &client,
        &server,
        &chat("auto", MATH),
        &[("x-semrouter-preference", "cost")],
    )
    .await;
    assert_eq!(
        d["model"], "qwen3-8b",
        "the cost preference picks the cheap model: {d}"
    );
    let d = route(
        &client,
        &server,
        &chat("auto", MATH),
        &[("x-semrouter-cost-weight", "1")],
    )
    .await;
    assert_eq!(d["model"], "qwen3-8b");
    assert_eq!(
        d["candidates"][0]["factors"]["quality"]["contribution"], 0.0,
        "cost weight 1 leaves quality no weight"
    );
    let d = route(
        &client,
        &server,
        &chat("auto", MATH),
        &[("x-semrouter-cost-weight", "0")],
    )
    .await;
    assert_eq!(d["model"], "deepseek-v3.1");

    let r = post(
        &client,
        &server,
        "/v1/route",
        &chat("auto", MATH),
        &[("x-semrouter-cost-weight", "2")],
    )
    .await;
    assert_eq!(
        expect_error(r, 400).await["param"],
        "x-semrouter-cost-weight"
    );
    let r = post(
        &client,
        &server,
        "/v1/route",
        &chat("auto", MATH),
        &[("x-semrouter-preference", "cheapest-please")],
    )
    .await;
    let e = expect_error(r, 400).await;
    assert!(e["message"].as_str().unwrap().contains("balanced"), "{e}");
}

#[tokio::test]
async fn explain_reports_every_signal_and_keywords_drive_policies() {
    let server = Server::start_default();
    let client = reqwest::Client::new();
    let d = route(&client, &server, &chat("auto", MATH), &[]).await;
    assert!(d.get("signals").is_none(), "signals only with explain");

    let mut body = chat("auto", "Why does my Python function raise a KeyError?");
    body["stream"] = json!(true);
    let d = client
        .post(server.url("/v1/route?explain=true"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let s = &d["signals"];
    assert_eq!(s["keywords"], json!(["code"]), "{s}");
    assert_eq!(s["context"]["stream"], true);
    assert_eq!(s["context"]["turns"], 1);
    assert!(s["domain"]["uncertainty"]
        .as_f64()
        .is_some_and(|u| (0.0..=1.0).contains(&u)));
    assert!(s["reasoning_need"].as_f64().is_some());
    assert_eq!(d["policy"], "code-on-capable-models");
    let models: Vec<&str> = d["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["model"].as_str().unwrap())
        .collect();
    assert!(
        !models.contains(&"qwen3-8b"),
        "the policy's candidates only: {models:?}"
    );

    let d = route(
        &client,
        &server,
        &chat("auto", MATH),
        &[("x-semrouter-explain", "true")],
    )
    .await;
    assert_eq!(d["signals"]["domain"]["category"], "math");
    assert_eq!(d["policy"], "default");
}

#[tokio::test]
async fn block_policies_tenants_context_windows_and_fallbacks() {
    let config = default_config_with(&[
        (
            "policies:\n",
            "policies:\n  - name: no-history\n    priority: 5\n    when: { all: [ { category: [history] }, { not: { tenant: [museum] } } ] }\n    action: block\n    flag: off-topic\n",
        ),
        ("    context_window: 32768\n", "    context_window: 64\n"),
        ("    latency_prior_ms: 1500\n", "    latency_prior_ms: 1500\n    tenants: [acme]\n"),
    ]);
    let server = Server::start(Launch {
        config: Some(config),
        ..Launch::default()
    });
    let client = reqwest::Client::new();

    let history = chat("auto", "Which treaty ended the Thirty Years War in 1648?");
    let d = route(&client, &server, &history, &[]).await;
    assert_eq!(d["action"], "block", "{d}");
    assert!(d["model"].is_null() && d["request"].is_null());
    assert_eq!(d["flags"], json!(["off-topic"]));
    let d = route(
        &client,
        &server,
        &history,
        &[("x-semrouter-tenant", "museum")],
    )
    .await;
    assert_eq!(d["action"], "route");

    // deepseek is reserved for tenant acme; math goes elsewhere without it.
    let d = route(&client, &server, &chat("auto", MATH), &[]).await;
    assert_ne!(d["model"], "deepseek-v3.1");
    let excluded = d["excluded"].as_array().unwrap();
    assert!(
        excluded
            .iter()
            .any(|e| e["model"] == "deepseek-v3.1"
                && e["reason"].as_str().unwrap().contains("tenant")),
        "{d}"
    );
    let d = route(
        &client,
        &server,
        &chat("auto", MATH),
        &[("x-semrouter-tenant", "acme")],
    )
    .await;
    assert_eq!(d["model"], "deepseek-v3.1");

    // A long prompt does not fit qwen3-8b's 64-token window.
    let long = chat(
        "auto",
        &"Please tell me a nice story about a friendly dog. ".repeat(20),
    );
    let d = route(&client, &server, &long, &[]).await;
    assert_ne!(d["model"], "qwen3-8b");
    assert!(d["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["model"] == "qwen3-8b"
            && e["reason"].as_str().unwrap().contains("context window")));
}

#[tokio::test]
async fn no_eligible_model_is_a_clear_error_or_the_fallback() {
    let strict = default_config_with(&[
        ("  # max_cost: 0.01\n", "  max_cost: 0.0000001\n"),
        ("  fallback: cheapest\n", "  fallback: error\n"),
    ]);
    let server = Server::start(Launch {
        config: Some(strict),
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let r = post(&client, &server, "/v1/route", &chat("auto", MATH), &[]).await;
    let e = expect_error(r, 400).await;
    assert_eq!(e["code"], "no_eligible_model");
    assert!(
        e["message"].as_str().unwrap().contains("qwen3-8b"),
        "names each model and why: {e}"
    );
    drop(server);

    let cheapest = default_config_with(&[("  # max_cost: 0.01\n", "  max_cost: 0.0000001\n")]);
    let server = Server::start(Launch {
        config: Some(cheapest),
        ..Launch::default()
    });
    let d = route(&client, &server, &chat("auto", MATH), &[]).await;
    assert_eq!(d["model"], "qwen3-8b");
    assert_eq!(d["fallback"], "cheapest");
}

#[tokio::test]
async fn greetings_and_thanks_go_to_the_small_model_unflagged() {
    // Phrasings of our own, not the corpus's: the default config must not send small talk to
    // the guarded model as a suspected jailbreak (it did, before the head saw small talk).
    let server = Server::start_default();
    let client = reqwest::Client::new();
    for prompt in [
        "hi there, how are you?",
        "hello!",
        "good morning",
        "thanks, that helped a lot",
    ] {
        let d = route(
            &client,
            &server,
            &chat("auto", prompt),
            &[("x-semrouter-explain", "true")],
        )
        .await;
        let score = d["signals"]["jailbreak"]["score"]
            .as_f64()
            .expect("a jailbreak score");
        assert!(score < 0.5, "{prompt:?} scored {score} as a jailbreak: {d}");
        assert_eq!(d["policy"], "default", "{prompt:?}: {d}");
        assert_eq!(
            d["model"], "qwen3-8b",
            "{prompt:?} goes to the small model: {d}"
        );
    }
}

fn tool(name: &str, description: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "description": description, "parameters": {"type": "object"}}})
}

#[tokio::test]
async fn tool_pre_selection_keeps_the_relevant_tools() {
    let server = Server::start(Launch {
        env: vec![("SEMROUTER__TOOLS__TOP_K", "2".into())],
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let tools = vec![
        tool("get_weather", "Get the current weather forecast for a city"),
        tool("send_email", "Send an email message to a recipient"),
        tool("book_flight", "Book a flight ticket between two airports"),
        tool(
            "stock_price",
            "Look up the latest stock market price of a company",
        ),
        tool("translate", "Translate text between languages"),
    ];
    let mut body = chat(
        "auto",
        "Will it rain in Paris tomorrow? What's the weather forecast?",
    );
    body["tools"] = json!(tools);
    let d = route(&client, &server, &body, &[]).await;
    let kept: Vec<&str> = d["tools"]["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(kept[0], "get_weather", "{d}");
    assert!(kept.len() <= 2);
    assert_eq!(
        d["tools"]["removed"].as_array().unwrap().len(),
        5 - kept.len()
    );
    assert!(d["tools"]["removed"][0]["reason"].as_str().is_some());
    let sent: Vec<&str> = d["request"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    let mut sorted_kept = kept.clone();
    sorted_kept.sort_unstable();
    let mut sorted_sent = sent.clone();
    sorted_sent.sort_unstable();
    assert_eq!(
        sorted_sent, sorted_kept,
        "the body carries exactly the kept tools"
    );

    // Two tools are not trimmed.
    let mut body = chat("auto", "Will it rain in Paris tomorrow?");
    body["tools"] = json!(tools[..2]);
    let d = route(&client, &server, &body, &[]).await;
    assert!(d.get("tools").is_none());
    assert_eq!(d["request"]["tools"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_policies_stop_start_up_naming_the_key() {
    for (replacement, key) in [
        (
            "    when: { keyword: [code] }\n",
            "policies[2].when.keyword[0]",
        ),
        (
            "    models: [gpt-oss-120b, deepseek-v3.1]\n",
            "policies[2].models[1]",
        ),
    ] {
        let config = match key {
            "policies[2].when.keyword[0]" => {
                default_config_with(&[(replacement, "    when: { keyword: [kode] }\n")])
            }
            _ => default_config_with(&[(replacement, "    models: [gpt-oss-120b, gpt-9]\n")]),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, config).unwrap();
        let (status, _, stderr) = run_cli(&["check-config", path.to_str().unwrap()], &[]);
        assert!(!status.success());
        assert!(stderr.contains(key), "{key} in {stderr}");
    }
    let config = default_config_with(&[(
        "    reasoning_family: qwen3\n",
        "    reasoning_family: qwen4\n",
    )]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, config).unwrap();
    let (status, _, stderr) = run_cli(&["check-config", path.to_str().unwrap()], &[]);
    assert!(!status.success());
    assert!(stderr.contains("models[0].reasoning_family"), "{stderr}");
}
