//! The policy cookbook (`config/recipes/`): each recipe's file is validated with
//! `semrouter check-config`, served by the real binary, and held to the decisions its README
//! promises through `POST /v1/route` on 127.0.0.1. A recipe without a README, an index link or
//! a test here fails `every_recipe_has_a_config_a_readme_an_index_link_and_a_test`.

mod common;
#[path = "support/upstream.rs"]
mod upstream;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::{chat, repo, run_cli, Launch, Server};
use serde_json::{json, Value};
use upstream::{Behaviour, Upstream};

const SMALL_TALK: &str = "Can you recommend a movie for tonight?";
const MATH: &str = "Solve 3x + 5 = 20 for x";
const PROOF: &str = "Prove that there are infinitely many primes congruent to 3 mod 4, then explain how Dirichlet's theorem on arithmetic progressions generalises the argument.";
const INDUCTION: &str = "Prove by induction that the sum of the first n odd numbers is n squared, then generalise the argument to sums of k-th powers using Faulhaber's formula.";
const LAW: &str = "Is it legal to break a lease early in California?";
const CODE: &str = "Why does my Python function raise a KeyError?";

/// `config/recipes/NAME/semrouter.yaml`.
fn recipe(name: &str) -> PathBuf {
    repo()
        .join("config/recipes")
        .join(name)
        .join("semrouter.yaml")
}

/// `semrouter check-config` accepts the recipe.
fn check_config(name: &str) {
    let path = recipe(name);
    let (status, stdout, stderr) =
        run_cli(&["check-config", path.to_str().expect("utf-8 path")], &[]);
    assert!(
        status.success(),
        "check-config {name}: {status}\n{stdout}{stderr}"
    );
}

/// Validates the recipe, then serves it (with `env` overrides) until ready.
fn serve(name: &str, env: Vec<(&'static str, String)>) -> Server {
    check_config(name);
    Server::start_on_file(
        recipe(name),
        Launch {
            env,
            ..Launch::default()
        },
    )
}

/// The decision for `body`, with every signal explained.
async fn route(client: &reqwest::Client, server: &Server, body: &Value) -> Value {
    let response = client
        .post(server.url("/v1/route?explain=true"))
        .json(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "route failed");
    response.json().await.expect("decision JSON")
}

/// The `model` fields of a decision's `candidates` or `excluded` list.
fn models(list: &Value) -> Vec<&str> {
    list.as_array().map_or_else(Vec::new, |l| {
        l.iter()
            .map(|c| c["model"].as_str().expect("model name"))
            .collect()
    })
}

fn need(d: &Value) -> f64 {
    d["signals"]["reasoning_need"]
        .as_f64()
        .expect("reasoning_need with explain")
}

#[tokio::test]
async fn cost_saver_keeps_the_small_model_and_reasons_only_on_hard_problems() {
    let server = serve("cost-saver", Vec::new());
    let client = reqwest::Client::new();

    // Small talk, a one-step equation, a law question and an everyday code question: the
    // small model without thinking. (The default config sends the equation to deepseek-v3.1
    // with reasoning, the law question to gpt-oss-120b and the code question to a large model.)
    for prompt in [SMALL_TALK, MATH, LAW, CODE] {
        let d = route(&client, &server, &chat("auto", prompt)).await;
        assert_eq!(d["model"], "qwen3-8b", "{prompt}: {d}");
        assert_eq!(d["policy"], "default", "{prompt}: {d}");
        assert_eq!(d["reasoning"]["enabled"], false, "{prompt}: {d}");
        assert_eq!(
            d["request"]["chat_template_kwargs"],
            json!({"enable_thinking": false}),
            "{prompt}: qwen3 thinking is switched off"
        );
        assert!(
            need(&d) < 0.55,
            "{prompt}: below the first thinking level: {d}"
        );
        let top = &d["candidates"][0]["factors"];
        assert!(
            top["cost"]["contribution"].as_f64().unwrap()
                > top["quality"]["contribution"].as_f64().unwrap(),
            "cost dominates: {d}"
        );
    }

    // Hard mathematics reaches the first thinking level: the reasoning model, thinking.
    for prompt in [PROOF, INDUCTION] {
        let d = route(&client, &server, &chat("auto", prompt)).await;
        assert_eq!(
            d["policy"], "hard-problems-on-the-reasoning-model",
            "{prompt}: {d}"
        );
        assert_eq!(d["model"], "deepseek-v3.1", "{prompt}: {d}");
        assert_eq!(models(&d["candidates"]), ["deepseek-v3.1"]);
        assert!(need(&d) >= 0.55, "{d}");
        assert_eq!(d["reasoning"]["enabled"], true, "{prompt}: {d}");
        assert!(
            ["medium", "high"].contains(&d["reasoning"]["effort"].as_str().unwrap_or("")),
            "{d}"
        );
        assert!(
            d["reasoning"]["budget_tokens"]
                .as_u64()
                .is_some_and(|b| b >= 4096),
            "{d}"
        );
        assert_eq!(
            d["request"]["chat_template_kwargs"]["thinking"], true,
            "deepseek thinking is switched on: {d}"
        );
    }
}

#[tokio::test]
async fn quality_first_picks_the_best_model_for_the_category_and_reasons_early() {
    let server = serve("quality-first", Vec::new());
    let client = reqwest::Client::new();

    let cases = [
        // (prompt, model, reasoning effort or None for off)
        (MATH, "deepseek-v3.1", Some(("medium", 8192))),
        (PROOF, "deepseek-v3.1", Some(("high", 32768))),
        (LAW, "gpt-oss-120b", None),
        (SMALL_TALK, "qwen3-8b", None),
    ];
    for (prompt, model, reasoning) in cases {
        let d = route(&client, &server, &chat("auto", prompt)).await;
        assert_eq!(d["model"], model, "{prompt}: {d}");
        let candidates = d["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 3, "every model competes: {d}");
        let best_quality = candidates
            .iter()
            .map(|c| c["factors"]["quality"]["value"].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert_eq!(
            candidates[0]["factors"]["quality"]["value"]
                .as_f64()
                .unwrap(),
            best_quality,
            "{prompt}: the highest expected quality wins: {d}"
        );
        for c in candidates {
            assert_eq!(
                c["factors"]["cost"]["contribution"], 0.0,
                "cost has no weight: {c}"
            );
        }
        match reasoning {
            Some((effort, budget)) => {
                assert_eq!(d["reasoning"]["enabled"], true, "{prompt}: {d}");
                assert_eq!(d["reasoning"]["effort"], effort, "{prompt}: {d}");
                assert_eq!(d["reasoning"]["budget_tokens"], budget, "{prompt}: {d}");
            }
            None => assert_eq!(d["reasoning"]["enabled"], false, "{prompt}: {d}"),
        }
    }
    let d = route(&client, &server, &chat("auto", MATH)).await;
    assert_eq!(d["category"]["name"], "math");
    assert_eq!(d["request"]["chat_template_kwargs"]["thinking"], true);
}

#[tokio::test]
async fn privacy_first_keeps_personal_data_on_the_on_prem_model() {
    let server = serve("privacy-first", Vec::new());
    let client = reqwest::Client::new();

    let personal = [
        (
            "Please write a polite reminder to jane.doe@example.com about the unpaid invoice.",
            "EMAIL",
        ),
        (
            "Call me back at (727) 538-7059 about my order, please.",
            "PHONE",
        ),
        (
            "Write a short birthday message for my colleague Marie Hamanová.",
            "PERSON",
        ),
        // A code question: the code rule alone would leave only cloud candidates (and mask).
        (
            "My python function fails for user John Smith, phone 415-555-0132. Why?",
            "PHONE",
        ),
    ];
    for (prompt, kind) in personal {
        let body = chat("auto", prompt);
        let d = route(&client, &server, &body).await;
        assert_eq!(d["model"], "onprem-llama", "{prompt}: {d}");
        assert_eq!(d["policy"], "personal-data-stays-on-prem", "{prompt}: {d}");
        assert_eq!(
            d["action"], "route",
            "the on-prem model may see it, so nothing is masked: {d}"
        );
        assert_eq!(d["flags"], json!(["pii-on-prem"]), "{d}");
        assert_eq!(
            models(&d["candidates"]),
            ["onprem-llama"],
            "no cloud model is a candidate: {d}"
        );
        let types: Vec<&str> = d["signals"]["pii"]["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(types.contains(&kind), "{prompt}: {kind} in {types:?}");
        assert_eq!(
            d["request"]["messages"], body["messages"],
            "sent unmasked to the on-prem model"
        );
    }

    // Clean prompts compete on quality, and the cloud models win them.
    let d = route(&client, &server, &chat("auto", MATH)).await;
    assert_eq!(d["model"], "deepseek-v3.1", "{d}");
    assert_eq!(d["policy"], "default");
    assert_eq!(d["signals"]["pii"]["types"], json!([]));
    assert!(
        d.get("excluded").is_none(),
        "nothing found, nothing excluded: {d}"
    );
    let d = route(&client, &server, &chat("auto", CODE)).await;
    assert_eq!(d["model"], "gpt-oss-120b", "{d}");
    assert_eq!(d["policy"], "code-on-capable-models");

    assert!(
        !server.stderr().contains("jane.doe@example.com"),
        "values never reach the log"
    );
}

#[tokio::test]
async fn latency_slo_excludes_models_whose_p95_latency_is_over_the_budget() {
    // qwen3-8b gets an upstream (the recipe has none), so the proxy can observe its answers.
    let small = Upstream::start("small");
    let env = vec![(
        "SEMROUTER__MODELS__0__UPSTREAM__BASE_URL",
        small.base.clone(),
    )];
    let server = serve("latency-slo", env);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    // deepseek-v3.1's prior (1500 ms) is over the 1000 ms budget: excluded from every decision,
    // even where it would be the best (math) or a policy names it (code).
    for prompt in [MATH, PROOF, LAW, CODE, SMALL_TALK] {
        let d = route(&client, &server, &chat("auto", prompt)).await;
        assert_ne!(d["model"], "deepseek-v3.1", "{prompt}: {d}");
        assert!(d["model"].is_string() && d["action"] == "route", "{d}");
        assert_eq!(
            d["excluded"],
            json!([{"model": "deepseek-v3.1", "reason": "p95 latency 1500 ms is over the 1000 ms budget"}]),
            "{prompt}: {d}"
        );
        assert!(!models(&d["candidates"]).contains(&"deepseek-v3.1"));
    }
    let d = route(&client, &server, &chat("auto", SMALL_TALK)).await;
    assert_eq!(d["model"], "qwen3-8b", "{d}");
    let d = route(&client, &server, &chat("auto", CODE)).await;
    assert_eq!(d["model"], "gpt-oss-120b", "the policy's other model: {d}");

    // A percentile, not an average: 19 fast answers, then one slow one leaves qwen3-8b in (the
    // p95 of 20 is the 19th), a second puts its p95 at the slow answer's time.
    let proxied = |delay_ms: u64| {
        small.set(Behaviour {
            delay: Duration::from_millis(delay_ms),
            ..Behaviour::default()
        });
        let (client, url) = (client.clone(), server.url("/v1/chat/completions"));
        async move {
            let response = client
                .post(url)
                .json(&chat("auto", SMALL_TALK))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(
                response
                    .headers()
                    .get("x-selected-model")
                    .and_then(|v| v.to_str().ok()),
                Some("qwen3-8b")
            );
            response.bytes().await.unwrap();
        }
    };
    for _ in 0..19 {
        proxied(0).await;
    }
    proxied(1200).await;
    let d = route(&client, &server, &chat("auto", SMALL_TALK)).await;
    assert_eq!(
        d["model"], "qwen3-8b",
        "one slow answer in twenty is within a p95: {d}"
    );
    proxied(1200).await;
    let d = route(&client, &server, &chat("auto", SMALL_TALK)).await;
    assert_eq!(
        d["model"], "gpt-oss-120b",
        "qwen3-8b is now over the budget: {d}"
    );
    let excluded = d["excluded"].as_array().unwrap();
    let slow = excluded
        .iter()
        .find(|e| e["model"] == "qwen3-8b")
        .unwrap_or_else(|| panic!("qwen3-8b excluded: {d}"));
    let reason = slow["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("p95 latency 12") && reason.ends_with("ms is over the 1000 ms budget"),
        "{reason}"
    );
}

fn tool(name: &str, description: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "description": description, "parameters": {"type": "object"}}})
}

/// An agent's catalogue of twelve tools.
fn catalogue() -> Vec<Value> {
    vec![
        tool("get_weather", "Get the current weather and the forecast for a city"),
        tool("send_email", "Send an email message to a recipient"),
        tool("book_flight", "Book a flight ticket between two airports"),
        tool("stock_price", "Look up the latest stock market price of a company"),
        tool("translate", "Translate text between languages"),
        tool("run_sql", "Run SQL queries (SELECT, JOIN, GROUP BY) on the sales database of customers and orders"),
        tool("create_calendar_event", "Create an event in the user's calendar"),
        tool("search_web", "Search the web for pages matching a query"),
        tool("read_file", "Read the contents of a file from the workspace"),
        tool("convert_currency", "Convert an amount of money between currencies"),
        tool("set_reminder", "Set a reminder for the user at a given time"),
        tool("ask_user", "Ask the user a clarifying question"),
    ]
}

fn names<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array().map_or_else(Vec::new, |l| {
        l.iter()
            .map(|t| t[key].as_str().expect("tool name"))
            .collect()
    })
}

#[tokio::test]
async fn tool_agents_keep_the_relevant_tools_of_a_long_catalogue() {
    let server = serve("tool-agents", Vec::new());
    let client = reqwest::Client::new();
    const TOP_K: usize = 3;

    for (prompt, relevant) in [
        ("What's the weather in Paris tomorrow?", "get_weather"),
        (
            "Which customers placed more than ten orders last month? Query the orders table.",
            "run_sql",
        ),
    ] {
        let mut body = chat("auto", prompt);
        body["tools"] = json!(catalogue());
        let d = route(&client, &server, &body).await;
        let kept = names(&d["tools"]["kept"], "name");
        assert_eq!(
            kept[0], relevant,
            "{prompt}: the most similar tool first: {d}"
        );
        assert!(kept.contains(&"ask_user"), "always_keep: {kept:?}");
        let ranked = kept.iter().filter(|&&n| n != "ask_user").count();
        assert!(ranked <= TOP_K, "{prompt}: at most top_k by rank: {kept:?}");
        let removed = d["tools"]["removed"].as_array().unwrap();
        assert_eq!(kept.len() + removed.len(), 12);
        for r in removed {
            let reason = r["reason"].as_str().unwrap();
            assert!(
                reason.contains("threshold 0.20") || reason.contains("top 3"),
                "{reason}"
            );
        }
        let sent: BTreeSet<&str> = d["request"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            sent,
            kept.iter().copied().collect(),
            "the body carries exactly the kept tools"
        );
        assert_eq!(d["policy"], "tools-on-capable-models", "{d}");
        assert_ne!(
            d["model"], "qwen3-8b",
            "tool calls go to a large model: {d}"
        );
    }

    // A multi-step request with four relevant tools: top_k decides.
    let mut body = chat("auto", "Book a flight to Paris, check the weather there, and add the trip to my calendar with a reminder.");
    body["tools"] = json!(catalogue());
    let d = route(&client, &server, &body).await;
    let kept = names(&d["tools"]["kept"], "name");
    assert!(
        kept.contains(&"get_weather")
            && kept.contains(&"book_flight")
            && kept.contains(&"ask_user"),
        "{kept:?}"
    );
    assert_eq!(kept.len(), TOP_K + 1, "3 by rank plus ask_user: {kept:?}");
    let cut: Vec<&str> = d["tools"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reason"] == "not in the top 3 by similarity")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        !cut.is_empty(),
        "a tool above the threshold was cut by top_k: {d}"
    );
    assert!(
        cut.iter()
            .all(|n| ["set_reminder", "create_calendar_event"].contains(n)),
        "{cut:?}"
    );

    // A tool forced by tool_choice is kept even though the prompt is about something else.
    let mut body = chat("auto", "What's the weather in Paris tomorrow?");
    body["tools"] = json!(catalogue());
    body["tool_choice"] = json!({"type": "function", "function": {"name": "book_flight"}});
    let d = route(&client, &server, &body).await;
    let kept = names(&d["tools"]["kept"], "name");
    assert!(
        kept.contains(&"book_flight") && kept.contains(&"get_weather"),
        "{kept:?}"
    );
    assert_eq!(d["request"]["tools"].as_array().unwrap().len(), kept.len());
    assert_eq!(
        d["request"]["tool_choice"], body["tool_choice"],
        "tool_choice passes through"
    );

    // top_k tools or fewer are left alone.
    let mut body = chat("auto", "What's the weather in Paris tomorrow?");
    body["tools"] = json!(catalogue()[..TOP_K]);
    let d = route(&client, &server, &body).await;
    assert!(d.get("tools").is_none(), "{d}");
    assert_eq!(d["request"]["tools"].as_array().unwrap().len(), TOP_K);

    // Without tools the tools rule does not apply and the small model answers small talk.
    let d = route(&client, &server, &chat("auto", SMALL_TALK)).await;
    assert_eq!(d["model"], "qwen3-8b", "{d}");
    assert_eq!(d["policy"], "default");
}

#[test]
fn every_recipe_has_a_config_a_readme_an_index_link_and_a_test() {
    let dir = repo().join("config/recipes");
    let index = std::fs::read_to_string(dir.join("README.md")).expect("config/recipes/README.md");
    let this_file = include_str!("recipes.rs");
    let mut recipes = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("config/recipes") {
        let entry = entry.unwrap();
        if !entry.file_type().unwrap().is_dir() {
            continue;
        }
        let name = entry.file_name().into_string().expect("utf-8 recipe name");
        assert!(
            entry.path().join("semrouter.yaml").is_file(),
            "{name}: no semrouter.yaml"
        );
        let readme = std::fs::read_to_string(entry.path().join("README.md"))
            .unwrap_or_else(|_| panic!("{name}: no README.md"));
        assert!(
            readme.contains(&format!("config/recipes/{name}/semrouter.yaml")),
            "{name}/README.md: how to run it"
        );
        assert!(
            index.contains(&format!("]({name}/README.md)")),
            "config/recipes/README.md links {name}/README.md"
        );
        assert!(
            this_file.contains(&format!("serve(\"{name}\"")),
            "tests/recipes.rs serves and checks {name}"
        );
        check_config(&name);
        recipes.push(name);
    }
    recipes.sort();
    assert_eq!(
        recipes,
        [
            "cost-saver",
            "latency-slo",
            "privacy-first",
            "quality-first",
            "tool-agents"
        ]
    );
}
