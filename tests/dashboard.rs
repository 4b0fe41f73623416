//! The built-in dashboard: its embedded assets, the JSON views it polls (live decisions from
//! every front end, the distribution, cache and backend health, the policy map), and the
//! pages themselves in a real headless Chromium (tests/browser/dashboard.mjs, driven by
//! playwright-core), which saves a screenshot of each view under
//! `target/dashboard-screenshots/`.

mod common;
#[path = "support/upstream.rs"]
mod upstream;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{chat, expect_error, repo, Launch, Server, ADMIN_TOKEN};
use serde_json::{json, Value};
use upstream::Upstream;

/// A prompt word no test prompt shares with anything the router writes by itself, to show
/// prompt text is (or is not) kept.
const MARKER: &str = "zanzibarite";

async fn get_json(client: &reqwest::Client, url: String) -> Value {
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

/// The default config, from a file (so that it can be reloaded), with the cache on and the
/// small and reasoning models proxied to stubs.
fn launch(small: &Upstream, big: &Upstream, extra: &[(&'static str, &str)]) -> Launch<'static> {
    let mut env = vec![
        ("SEMROUTER__CACHE__ENABLED", "true".to_string()),
        (
            "SEMROUTER__MODELS__0__UPSTREAM__BASE_URL",
            small.base.clone(),
        ),
        ("SEMROUTER__MODELS__1__UPSTREAM__BASE_URL", big.base.clone()),
        ("SEMROUTER__MODELS__2__UPSTREAM__BASE_URL", big.base.clone()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let config =
        std::fs::read_to_string(repo().join("config/semrouter.yaml")).expect("default config");
    Launch {
        config: Some(config),
        env,
    }
}

#[tokio::test]
async fn the_assets_are_embedded_and_load_nothing_from_elsewhere() {
    let server = Server::start_default();
    let client = reqwest::Client::new();
    for (path, content_type, needle) in [
        (
            "/dashboard",
            "text/html",
            "<title>semrouter dashboard</title>",
        ),
        ("/dashboard/", "text/html", "/dashboard/dashboard.js"),
        (
            "/dashboard/dashboard.js",
            "text/javascript",
            "/dashboard/api/decisions",
        ),
        ("/dashboard/dashboard.css", "text/css", ".cards"),
    ] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}: {:?}",
            headers["content-type"]
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        let body = response.text().await.unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
        // The SVG namespace is a name, not a fetch; any other absolute URL would be one.
        let external = body.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !external.contains("http://")
                && !external.contains("https://")
                && !external.contains("//cdn"),
            "{path} refers to another host"
        );
    }
    let error = expect_error(
        client.post(server.url("/dashboard")).send().await.unwrap(),
        405,
    )
    .await;
    assert_eq!(error["code"], "method_not_allowed");
}

#[tokio::test]
async fn the_views_show_what_each_front_end_decided_and_never_the_prompt() {
    let (small, big) = (Upstream::start("small"), Upstream::start("big"));
    let server = Server::start(launch(&small, &big, &[]));
    let client = reqwest::Client::new();

    let math = format!("Prove that there are infinitely many primes, {MARKER}.");
    let routed: Value = client
        .post(server.url("/v1/route"))
        .json(&chat("auto", &math))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let history = format!("Who was the first emperor of Rome, {MARKER}?");
    for _ in 0..2 {
        // The second one is an exact cache hit of the first's answer.
        let response = client
            .post(server.url("/v1/chat/completions"))
            .json(&chat("auto", &history))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    let decisions = get_json(&client, server.url("/dashboard/api/decisions")).await;
    let recent = decisions["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 3, "{decisions}");
    let (hit, proxied, rest) = (&recent[0], &recent[1], &recent[2]);
    assert_eq!(rest["front_end"], "rest");
    assert_eq!(rest["action"], routed["action"]);
    assert_eq!(rest["model"], routed["model"]);
    assert_eq!(rest["category"], routed["category"]["name"]);
    assert_eq!(rest["policy"], routed["policy"]);
    assert_eq!(rest["cache"], "miss");
    assert!(rest["latency_us"].as_u64().unwrap() > 0);
    assert_eq!(proxied["front_end"], "proxy");
    assert_eq!(proxied["cache"], "miss");
    assert_eq!(
        (
            hit["front_end"].as_str(),
            hit["action"].as_str(),
            hit["cache_kind"].as_str()
        ),
        (Some("proxy"), Some("cache"), Some("exact"))
    );
    assert_eq!(
        hit["model"], proxied["model"],
        "the cache served the model that answered"
    );
    assert!(rest["at_ms"].as_u64() <= hit["at_ms"].as_u64());

    let dist = &decisions["distribution"];
    assert_eq!(dist["decisions"], 3);
    assert_eq!(
        (dist["cache_hits"].as_u64(), dist["cache_lookups"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(dist["by_front_end"], json!({"proxy": 2, "rest": 1}));
    assert_eq!(dist["by_action"]["cache"], 1);
    let by_model: u64 = dist["by_model"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_model, 3);
    assert_eq!(decisions["show_prompts"], false);
    assert!(
        !decisions.to_string().contains(MARKER),
        "prompt text reached the dashboard: {decisions}"
    );

    let overview = get_json(&client, server.url("/dashboard/api/overview")).await;
    assert_eq!(overview["ready"], true);
    assert_eq!(overview["embedding"]["health"]["state"], "ready");
    assert_eq!(overview["embedding"]["fallbacks"], 0);
    assert_eq!(overview["cache"]["hits"]["exact"], 1, "{overview}");
    assert_eq!(overview["cache"]["entries"], 1);
    let models = overview["models"].as_array().unwrap();
    assert_eq!(models.len(), 3);
    assert!(models
        .iter()
        .all(|m| m["proxied"] == true && m["in_flight"] == 0));
    let answered = models
        .iter()
        .find(|m| m["name"] == proxied["model"])
        .unwrap();
    assert_ne!(
        answered["latency_ewma_ms"],
        json!(400.0),
        "the stub's answer moved the EWMA off its prior: {answered}"
    );
    assert_eq!(overview["admission"]["max_in_flight"], 1024);
}

#[tokio::test]
async fn the_policy_map_is_the_loaded_configuration() {
    let server = Server::start_default();
    let map = get_json(&reqwest::Client::new(), server.url("/dashboard/api/policy")).await;
    let rules: Vec<&str> = map["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "block-jailbreak",
            "guard-suspected-jailbreak",
            "code-on-capable-models",
            "default"
        ]
    );
    let block = &map["rules"][0];
    assert_eq!(block["action"], "block");
    assert_eq!(block["models"], json!([]));
    assert_eq!(block["signals"], json!(["jailbreak"]));
    assert_eq!(block["when"], "jailbreak \u{2265} 0.9");
    assert_eq!(map["rules"][1]["models"], json!(["gpt-oss-120b"]));
    assert_eq!(map["rules"][1]["reasoning"], "off");
    assert_eq!(map["rules"][2]["signals"], json!(["keyword:code"]));
    assert_eq!(
        map["rules"][3]["models"],
        json!(["qwen3-8b", "gpt-oss-120b", "deepseek-v3.1"])
    );
    assert_eq!(map["rules"][3]["when"], Value::Null);
    assert_eq!(
        map["tenant_header"], "x-semrouter-tenant",
        "the try-it box sends the configured tenant header"
    );
    let signals: Vec<&str> = map["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for expected in [
        "domain",
        "complexity",
        "jailbreak",
        "keyword:code",
        "request",
    ] {
        assert!(
            signals.contains(&expected),
            "{expected} missing from {signals:?}"
        );
    }
    // The default config's PII detector is loaded only when a rule or a model needs it; none does.
    assert!(!signals.contains(&"pii"), "{signals:?}");
    let deepseek = &map["models"][2];
    assert_eq!(deepseek["name"], "deepseek-v3.1");
    assert_eq!(deepseek["context_window"], 131072);
    assert_eq!(deepseek["price"]["output_per_million"], 1.1);
    assert!((deepseek["quality"]["math"].as_f64().unwrap() - 0.95).abs() < 1e-6);
    assert_eq!(map["scoring"]["weights"]["quality"], 0.75);
    assert_eq!(map["scoring"]["fallback"], "cheapest");
    assert!(
        map["scoring"]["preferences"]["cost"]["cost"]
            .as_f64()
            .unwrap()
            > 0.5
    );
    assert_eq!(map["reasoning_levels"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn prompts_appear_only_with_the_debug_option_and_the_dashboard_can_be_turned_off() {
    let shown = Server::start(Launch {
        env: vec![("SEMROUTER__DASHBOARD__SHOW_PROMPTS", "true".into())],
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let prompt = format!("What is the capital of France, {MARKER}?");
    client
        .post(shown.url("/v1/route"))
        .json(&chat("auto", &prompt))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let decisions = get_json(&client, shown.url("/dashboard/api/decisions")).await;
    assert_eq!(decisions["show_prompts"], true);
    assert_eq!(decisions["recent"][0]["prompt"], prompt.as_str());
    drop(shown);

    let off = Server::start(Launch {
        env: vec![("SEMROUTER__DASHBOARD__ENABLED", "false".into())],
        ..Launch::default()
    });
    for path in [
        "/dashboard",
        "/dashboard/dashboard.js",
        "/dashboard/api/decisions",
        "/dashboard/api/policy",
    ] {
        let error = expect_error(client.get(off.url(path)).send().await.unwrap(), 404).await;
        assert_eq!(error["code"], "unknown_url", "{path}");
    }
    // The rest of the router is unaffected.
    let routed = client
        .post(off.url("/v1/route"))
        .json(&chat("auto", "What is 2 + 2?"))
        .send()
        .await
        .unwrap();
    assert_eq!(routed.status(), 200);
}

#[tokio::test]
async fn the_try_it_box_learns_a_renamed_tenant_header() {
    let server = Server::start(Launch {
        env: vec![("SEMROUTER__ROUTING__TENANT_HEADER", "x-team".into())],
        ..Launch::default()
    });
    let map = get_json(&reqwest::Client::new(), server.url("/dashboard/api/policy")).await;
    assert_eq!(map["tenant_header"], "x-team");
    let script = reqwest::get(server.url("/dashboard/dashboard.js"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        script.contains("headers[tenantHeader]")
            && script.contains("tenantHeader = map.tenant_header"),
        "the box sends the header the map names"
    );
}

#[test]
fn a_bad_dashboard_setting_stops_start_up_naming_the_key() {
    let (status, stderr) =
        common::serve_expecting_failure(None, &[("SEMROUTER__DASHBOARD__HISTORY", "5")]);
    assert!(!status.success());
    assert!(stderr.contains("dashboard.history"), "{stderr}");
}

/// Chromium and the test's node modules, when installed (`make browser`); without them the
/// browser test fails under `make test` (`SEMROUTER_REQUIRE_BROWSER=1`) and otherwise skips
/// loudly.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let script = repo().join("tests/browser/dashboard.mjs");
    let modules = repo().join("tests/browser/node_modules/playwright-core");
    if chromium.exists() && modules.exists() {
        return Some((chromium, script));
    }
    assert!(
        std::env::var_os("SEMROUTER_REQUIRE_BROWSER").is_none(),
        "Chromium ({}) or playwright-core is missing and SEMROUTER_REQUIRE_BROWSER is set; run `make browser`",
        chromium.display()
    );
    eprintln!("\n\n******** SKIPPED the dashboard browser test: run `make browser` (Chromium, playwright-core) ********\n\n");
    None
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path)
        .is_ok_and(|bytes| bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[tokio::test]
async fn every_view_renders_in_chromium_and_the_try_it_box_explains_a_decision() {
    let Some((chromium, script)) = browser() else {
        return;
    };
    let (small, big) = (Upstream::start("small"), Upstream::start("big"));
    let server = Server::start(launch(&small, &big, &[]));
    let client = reqwest::Client::new();
    for prompt in [
        "Who was the first emperor of Rome?",
        "Write a python function that reverses a list",
        "Who was the first emperor of Rome?",
    ] {
        let response = client
            .post(server.url("/v1/chat/completions"))
            .json(&chat("auto", prompt))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    let prompt = "Prove that the square root of 2 is irrational.";
    let expected: Value = client
        .post(server.url("/v1/route?explain=true"))
        .header("cache-control", "no-cache, no-store")
        .json(&chat("auto", prompt))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let shots = repo().join("target/dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let base = server.base.clone();
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .arg(&base)
            .arg(&shots)
            .arg(prompt)
            .env("CHROMIUM", &chromium)
            .env("SEMROUTER_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the browser run failed ({}):\n{stderr}\nsaw: {stdout}",
        run.status
    );
    let seen: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    // Live view: the three proxied requests and the explained decision, and a row per model.
    assert_eq!(seen["live_rows"], 4, "{seen}");
    assert_eq!(seen["model_rows"], 3);
    assert!(seen["distribution_cards"].as_u64().unwrap() >= 5);
    assert!(seen["embedding"]
        .as_str()
        .unwrap()
        .contains("all-MiniLM-L6-v2-int8"));
    // Policy view: a node per rule and per model, and edges between them.
    let rules = seen["policy_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4, "{seen}");
    assert!(
        rules[0].as_str().unwrap().starts_with("1. block-jailbreak")
            && rules[3].as_str().unwrap().starts_with("4. default")
    );
    assert_eq!(seen["policy_models"], 3);
    assert!(seen["policy_edges"].as_u64().unwrap() >= 6);
    // Try-it: the page shows the decision the API makes for the same prompt.
    let shown = seen["try_decision"].as_array().unwrap();
    assert_eq!(shown[0], expected["action"]);
    assert_eq!(shown[1], expected["model"]);
    assert_eq!(shown[2], expected["policy"]);
    assert_eq!(
        seen["try_candidates"].as_u64(),
        expected["candidates"].as_array().map(|c| c.len() as u64)
    );
    assert_eq!(seen["try_body"], expected["request"], "the rewritten body");
    assert!(seen["try_signals"]
        .as_str()
        .unwrap()
        .contains(expected["category"]["name"].as_str().unwrap()));
    // ...and its decision joins the live view.
    assert_eq!(seen["live_rows_after"], 5);

    for view in ["live", "policy", "try"] {
        let path = repo().join(format!("target/dashboard-screenshots/{view}.png"));
        assert!(is_png(&path), "no screenshot at {}", path.display());
    }

    // The reload button: refused without the admin token, applied with it.
    assert!(
        seen["reload_without_token"]
            .as_str()
            .unwrap()
            .starts_with("refused (401)"),
        "{seen}"
    );
    assert_eq!(seen["reload_with_token"]["reloaded"], true, "{seen}");
}
