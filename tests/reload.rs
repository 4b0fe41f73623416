//! Hot reload against the real binary: `POST /admin/reload` changes a routing decision without
//! a restart; an invalid or unbuildable config is refused naming the key and the old one keeps
//! serving; keys that need a restart are reported; a rewritten file and a ConfigMap-style
//! symlink swap are picked up by the watcher; requests during reloads all succeed; the reload
//! metrics count each outcome. Also `check-config` naming the line, and env overrides of list
//! keys and of items of lists of sections.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    chat, default_config_with, expect_error, metric, run_cli, Launch, Server, ADMIN_TOKEN,
};
use serde_json::Value;

/// A prompt the default `code` keyword rule matches, so the `code-on-capable-models` policy
/// decides its candidates.
const CODE_PROMPT: &str = "Why does my python function raise a KeyError on this dict?";
const CODE_MODELS: &str = "models: [gpt-oss-120b, deepseek-v3.1]";

/// The default config with the code policy's candidates narrowed to `model`.
fn code_policy_on(model: &str) -> String {
    default_config_with(&[(CODE_MODELS, &format!("models: [{model}]"))])
}

async fn routed_model(client: &reqwest::Client, server: &Server) -> String {
    let reply = client
        .post(server.url("/v1/route"))
        .json(&chat("auto", CODE_PROMPT))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    body["model"]
        .as_str()
        .unwrap_or_else(|| panic!("no model in {body}"))
        .to_string()
}

async fn reload(client: &reqwest::Client, server: &Server) -> reqwest::Response {
    client
        .post(server.url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

async fn metrics(client: &reqwest::Client, server: &Server) -> String {
    client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The other code-capable model than `model`.
fn other(model: &str) -> &'static str {
    match model {
        "gpt-oss-120b" => "deepseek-v3.1",
        "deepseek-v3.1" => "gpt-oss-120b",
        m => panic!("the code policy routed to `{m}`, outside its candidates"),
    }
}

/// Waits until the route for the code prompt picks `model`; returns how long that took.
async fn wait_for_model(
    client: &reqwest::Client,
    server: &Server,
    model: &str,
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let now = routed_model(client, server).await;
        if now == model {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "still routed to `{now}` after {timeout:?}, expected `{model}`; stderr:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A server on a config file it does not watch: only the endpoint reloads it (the watcher
/// would pick up the test's rewrites by itself).
fn start_without_watcher() -> Server {
    Server::start(Launch {
        config: Some(default_config_with(&[])),
        env: vec![("SEMROUTER__SERVER__RELOAD__WATCH", "false".into())],
        ..Launch::default()
    })
}

#[tokio::test]
async fn the_reload_endpoint_changes_routing_and_refuses_bad_configs() {
    let server = start_without_watcher();
    let path = server.config_path.clone().unwrap();
    let client = reqwest::Client::new();
    let first = routed_model(&client, &server).await;
    let (first, second) = (first.as_str(), other(&first));

    // A valid change: the policy's only candidate is now the other model.
    std::fs::write(&path, code_policy_on(second)).unwrap();
    let reply = reload(&client, &server).await;
    assert_eq!(reply.status(), 200);
    let report: Value = reply.json().await.unwrap();
    assert_eq!(report["reloaded"], true, "{report}");
    assert_eq!(report["changed"], true, "{report}");
    assert_eq!(
        report["restart_required"],
        serde_json::json!([]),
        "{report}"
    );
    assert_eq!(
        routed_model(&client, &server).await,
        second,
        "the reload did not change the decision"
    );
    let text = metrics(&client, &server).await;
    assert_eq!(
        metric(
            &text,
            "semrouter_config_reloads_total",
            &["result=\"ok\"", "trigger=\"endpoint\""]
        ),
        Some(1.0)
    );
    let hash = metric(&text, "semrouter_config_hash", &[]).expect("config hash gauge");

    // Invalid: refused with the key (and its line), the old config keeps serving.
    std::fs::write(
        &path,
        default_config_with(&[
            (CODE_MODELS, &format!("models: [{first}]")),
            ("  workers: 0", "  workers: 5000"),
        ]),
    )
    .unwrap();
    let error = expect_error(reload(&client, &server).await, 400).await;
    assert_eq!(error["code"], "invalid_config");
    assert_eq!(error["param"], "server.workers");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("must be at most 1024") && message.contains(" line "),
        "{message}"
    );
    assert_eq!(
        routed_model(&client, &server).await,
        second,
        "an invalid reload changed the decision"
    );
    // An unknown key too.
    std::fs::write(
        &path,
        default_config_with(&[("  workers: 0", "  wokers: 0")]),
    )
    .unwrap();
    let error = expect_error(reload(&client, &server).await, 400).await;
    assert_eq!(error["param"], "server.wokers");

    // Valid YAML and keys, but the engine cannot be built: 422, old config serving.
    std::fs::write(
        &path,
        default_config_with(&[
            (CODE_MODELS, &format!("models: [{first}]")),
            (
                "head: onnx/heads/domain-",
                "head: onnx/heads/missing-domain-",
            ),
        ]),
    )
    .unwrap();
    let error = expect_error(reload(&client, &server).await, 422).await;
    assert_eq!(error["code"], "reload_failed");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("missing-domain-"),
        "{error}"
    );
    assert_eq!(
        routed_model(&client, &server).await,
        second,
        "a failed reload changed the decision"
    );

    let text = metrics(&client, &server).await;
    assert_eq!(
        metric(
            &text,
            "semrouter_config_reloads_total",
            &["result=\"invalid\""]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "semrouter_config_reloads_total",
            &["result=\"failed\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "semrouter_config_hash", &[]),
        Some(hash),
        "a refused reload changed the hash gauge"
    );
    let log = server.stderr();
    assert!(
        log.contains("config reload refused") && log.contains("server.workers"),
        "{log}"
    );

    // A start-up key changed along with a live one: the live one applies, the other is reported.
    std::fs::write(
        &path,
        default_config_with(&[
            (CODE_MODELS, &format!("models: [{first}]")),
            ("  workers: 0", "  workers: 2"),
        ]),
    )
    .unwrap();
    let reply = reload(&client, &server).await;
    assert_eq!(reply.status(), 200);
    let report: Value = reply.json().await.unwrap();
    assert_eq!(
        report["restart_required"],
        serde_json::json!(["server.workers"]),
        "{report}"
    );
    assert_eq!(routed_model(&client, &server).await, first);
    assert!(server
        .stderr()
        .contains("takes effect only after a restart"));
}

#[tokio::test]
async fn requests_during_reloads_all_succeed() {
    let server = start_without_watcher();
    let path = server.config_path.clone().unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let first = routed_model(&client, &server).await;
    let (first, second) = (first.as_str(), other(&first));

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (client, url, stop, ok, failed) = (
            client.clone(),
            server.url("/v1/route"),
            stop.clone(),
            ok.clone(),
            failed.clone(),
        );
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client
                    .post(&url)
                    .json(&chat("auto", CODE_PROMPT))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for round in 0..4 {
        let model = if round % 2 == 0 { second } else { first };
        std::fs::write(&path, code_policy_on(model)).unwrap();
        assert_eq!(reload(&client, &server).await.status(), 200);
    }
    // Let some requests run on the last engine too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during reloads",
        ok + failed
    );
    assert!(ok >= 8, "only {ok} requests ran during the reloads");
    assert_eq!(routed_model(&client, &server).await, first);
}

#[tokio::test]
async fn the_watcher_reloads_a_rewritten_file_and_a_configmap_symlink_swap() {
    // Kubernetes mounts a ConfigMap as DIR/config.yaml -> ..data/config.yaml, ..data -> a
    // timestamped directory; an update writes a new directory and renames a new `..data` over
    // the old link.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write_version = |name: &str, text: &str| {
        std::fs::create_dir(root.join(name)).unwrap();
        std::fs::write(root.join(name).join("config.yaml"), text).unwrap();
    };
    let swap_data_to = |name: &str| {
        let tmp = root.join("..data_tmp");
        std::os::unix::fs::symlink(name, &tmp).unwrap();
        std::fs::rename(&tmp, root.join("..data")).unwrap();
    };
    write_version("..v1", &default_config_with(&[]));
    swap_data_to("..v1");
    std::os::unix::fs::symlink("..data/config.yaml", root.join("config.yaml")).unwrap();

    let server = Server::start_on_file(
        root.join("config.yaml"),
        Launch {
            env: vec![("SEMROUTER__SERVER__RELOAD__POLL_INTERVAL_MS", "200".into())],
            ..Launch::default()
        },
    );
    let client = reqwest::Client::new();
    let first = routed_model(&client, &server).await;
    let (first, second) = (first.as_str(), other(&first));

    // A ConfigMap update.
    write_version("..v2", &code_policy_on(second));
    swap_data_to("..v2");
    std::fs::remove_dir_all(root.join("..v1")).unwrap();
    wait_for_model(&client, &server, second, Duration::from_secs(30)).await;

    // A broken update is refused once and the old config keeps serving.
    write_version(
        "..v3",
        &default_config_with(&[("  workers: 0", "  workers: lots")]),
    );
    swap_data_to("..v3");
    let started = Instant::now();
    while metric(
        &metrics(&client, &server).await,
        "semrouter_config_reloads_total",
        &["result=\"invalid\"", "trigger=\"watch\""],
    )
    .is_none()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the broken update was not seen; stderr:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let text = metrics(&client, &server).await;
    assert_eq!(
        metric(
            &text,
            "semrouter_config_reloads_total",
            &["result=\"invalid\"", "trigger=\"watch\""]
        ),
        Some(1.0),
        "retried a broken file"
    );
    assert_eq!(routed_model(&client, &server).await, second);

    // A rewrite of the file the link points at, as an editor saves it (a new file renamed
    // over the old, so that no poll reads it half-written).
    std::fs::write(
        root.join("..v3").join("config.yaml.tmp"),
        code_policy_on(first),
    )
    .unwrap();
    std::fs::rename(
        root.join("..v3").join("config.yaml.tmp"),
        root.join("..v3").join("config.yaml"),
    )
    .unwrap();
    wait_for_model(&client, &server, first, Duration::from_secs(30)).await;
    let text = metrics(&client, &server).await;
    assert_eq!(
        metric(
            &text,
            "semrouter_config_reloads_total",
            &["result=\"ok\"", "trigger=\"watch\""]
        ),
        Some(2.0)
    );
}

#[test]
fn check_config_names_the_key_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let text = default_config_with(&[("  workers: 0", "  workers: 5000")]);
    let (status, _, stderr) = run_cli(&["check-config", &write("range.yaml", text.clone())], &[]);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!(
            "line {}: key `server.workers`: must be at most 1024",
            line_of(&text, "workers: 5000")
        )),
        "{stderr}"
    );

    // A key in the second model's quality table.
    let text = default_config_with(&[("      law: 0.82", "      law: 1.82")]);
    let (status, _, stderr) = run_cli(&["check-config", &write("quality.yaml", text.clone())], &[]);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!(
            "line {}: key `models[1].quality.law`",
            line_of(&text, "law: 1.82")
        )),
        "{stderr}"
    );

    let text = default_config_with(&[("  workers: 0", "  wokers: 0")]);
    let (status, _, stderr) = run_cli(&["check-config", &write("unknown.yaml", text.clone())], &[]);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!(
            "line {}: key `server.wokers`: unknown field `wokers`",
            line_of(&text, "wokers: 0")
        )),
        "{stderr}"
    );

    let (status, stdout, _) = run_cli(
        &["check-config", &write("ok.yaml", default_config_with(&[]))],
        &[],
    );
    assert!(status.success() && stdout.ends_with(": ok\n"), "{stdout}");
}

#[test]
fn environment_overrides_reach_nested_and_list_keys() {
    let path = common::repo().join("config/semrouter.yaml");
    let path = path.to_str().unwrap();
    let check = |env: &[(&str, &str)]| run_cli(&["check-config", path], env);
    // A nested new key, validated like the file's.
    let (status, _, stderr) = check(&[("SEMROUTER__SERVER__RELOAD__POLL_INTERVAL_MS", "5")]);
    assert!(
        !status.success() && stderr.contains("server.reload.poll_interval_ms"),
        "{stderr}"
    );
    // A list key takes a comma-separated list; a bad element names the key.
    let (status, _, stderr) = check(&[(
        "SEMROUTER__SERVER__DECISION_HEADERS",
        "x-selected-model,x-bogus",
    )]);
    assert!(
        !status.success() && stderr.contains("server.decision_headers"),
        "{stderr}"
    );
    let (status, _, stderr) = check(&[
        (
            "SEMROUTER__SERVER__DECISION_HEADERS",
            "x-selected-model,x-semrouter-cache",
        ),
        ("SEMROUTER__ROUTING__AUTO_MODELS", "auto,router"),
    ]);
    assert!(status.success(), "{stderr}");
    // A value from the environment has no line in the file.
    let (status, _, stderr) = check(&[("SEMROUTER__SERVER__WORKERS", "abc")]);
    assert!(
        !status.success() && stderr.contains("in the environment") && !stderr.contains(" line "),
        "{stderr}"
    );
    // Items of lists of sections by index: a bad value names the item's key, and a value that
    // fails validation is not blamed on the file's line for that key.
    let (status, _, stderr) = check(&[("SEMROUTER__MODELS__0__CONTEXT_WINDOW", "abc")]);
    assert!(
        !status.success()
            && stderr.contains("models[0].context_window")
            && stderr.contains("in the environment")
            && !stderr.contains(" line "),
        "{stderr}"
    );
    let (status, _, stderr) = check(&[("SEMROUTER__MODELS__1__QUALITY__LAW", "1.82")]);
    assert!(
        !status.success()
            && stderr.contains("key `models[1].quality.law`")
            && !stderr.contains(" line "),
        "{stderr}"
    );
    let (status, _, stderr) = check(&[("SEMROUTER__MODELS__1__BASE_URL", "http://127.0.0.1:8001")]);
    assert!(
        !status.success()
            && stderr.contains("key `models[1].base_url`: unknown field")
            && !stderr.contains(" line "),
        "{stderr}"
    );
    let (status, _, stderr) = check(&[
        (
            "SEMROUTER__MODELS__1__UPSTREAM__BASE_URL",
            "http://127.0.0.1:8001",
        ),
        ("SEMROUTER__REASONING__LEVELS__1__BUDGET_TOKENS", "2048"),
    ]);
    assert!(status.success(), "{stderr}");
    assert!(Path::new(path).exists());
}

/// An indexed override reaches the running server: a model the default config does not proxy
/// gains an upstream from the environment alone (a section the file does not have).
#[tokio::test]
async fn an_indexed_environment_override_reaches_the_server() {
    let server = Server::start(Launch {
        env: vec![(
            "SEMROUTER__MODELS__1__UPSTREAM__BASE_URL",
            "http://127.0.0.1:9".into(),
        )],
        ..Launch::default()
    });
    let models: Value = reqwest::get(server.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let proxied: Vec<(&str, bool)> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["semrouter"]["kind"] == "upstream")
        .map(|m| {
            (
                m["id"].as_str().unwrap(),
                m["semrouter"]["proxied"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        proxied,
        [
            ("qwen3-8b", false),
            ("gpt-oss-120b", true),
            ("deepseek-v3.1", false)
        ]
    );
}
