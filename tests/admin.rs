//! Admin endpoints and log hygiene against the real binary: without a token the admin
//! endpoints (reload, cache store and flush) are off, not open; with one, a missing token is
//! 401 with `www-authenticate: Bearer` and a wrong one 403, both in the OpenAI envelope. At
//! debug log level no prompt text, API key, admin token or PII value reaches the log, and no
//! public endpoint shows a secret; `server.log_prompts: true` is what puts prompts in the log.

mod common;
#[path = "support/upstream.rs"]
mod upstream;

use common::{chat, default_config_with, expect_error, Launch, Server, ADMIN_TOKEN};
use serde_json::{json, Value};
use upstream::Upstream;

fn completion(content: &str) -> Value {
    json!({"object": "chat.completion", "model": "qwen3-8b",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
}

fn cache_entry(prompt: &str) -> Value {
    json!({"request": chat("auto", prompt), "response": completion("Canberra.")})
}

#[tokio::test]
async fn without_a_token_admin_endpoints_are_off() {
    let server = Server::start(Launch {
        config: Some(default_config_with(&[])),
        env: vec![
            ("SEMROUTER_ADMIN_TOKEN", String::new()),
            ("SEMROUTER__CACHE__ENABLED", "true".into()),
        ],
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let calls = [
        client.post(server.url("/admin/reload")),
        client
            .post(server.url("/v1/cache"))
            .json(&cache_entry("What is the capital of Australia?")),
        client.delete(server.url("/v1/cache")),
    ];
    for call in calls {
        // Any token, even the one other servers use, is refused: there is none to match.
        let error = expect_error(call.bearer_auth(ADMIN_TOKEN).send().await.unwrap(), 403).await;
        assert_eq!(error["code"], "admin_disabled");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("SEMROUTER_ADMIN_TOKEN"),
            "{error}"
        );
    }
    // Read-only cache stats stay open.
    let stats = client
        .get(server.url("/v1/cache/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), 200);
    assert!(server
        .stderr()
        .contains("admin endpoints (reload, cache store and flush) are off"));
}

#[tokio::test]
async fn admin_endpoints_need_the_configured_bearer_token() {
    let server = Server::start(Launch {
        config: Some(default_config_with(&[])),
        env: vec![
            (
                "SEMROUTER__SERVER__ADMIN__TOKEN_ENV",
                "ROUTER_OPS_TOKEN".into(),
            ),
            ("ROUTER_OPS_TOKEN", "ops-token-8c2d".into()),
            ("SEMROUTER__CACHE__ENABLED", "true".into()),
        ],
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let entry = cache_entry("What is the capital of Australia?");
    type Call = Box<dyn Fn() -> reqwest::RequestBuilder>;
    let calls: Vec<(&str, Call)> = vec![
        (
            "reload",
            Box::new({
                let (c, u) = (client.clone(), server.url("/admin/reload"));
                move || c.post(&u)
            }),
        ),
        (
            "store",
            Box::new({
                let (c, u, e) = (client.clone(), server.url("/v1/cache"), entry.clone());
                move || c.post(&u).json(&e)
            }),
        ),
        (
            "flush",
            Box::new({
                let (c, u) = (client.clone(), server.url("/v1/cache"));
                move || c.delete(&u)
            }),
        ),
    ];
    for (name, call) in &calls {
        let reply = call().send().await.unwrap();
        assert_eq!(
            reply
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer"),
            "{name}"
        );
        let error = expect_error(reply, 401).await;
        assert_eq!(error["code"], "missing_admin_token", "{name}");

        let error = expect_error(
            call()
                .header("authorization", "Basic b3BzOm9wcw==")
                .send()
                .await
                .unwrap(),
            401,
        )
        .await;
        assert_eq!(error["code"], "missing_admin_token", "{name}");
        for wrong in ["ops-token-8c2", "ops-token-8c2d0", ADMIN_TOKEN] {
            let error = expect_error(call().bearer_auth(wrong).send().await.unwrap(), 403).await;
            assert_eq!(error["code"], "invalid_admin_token", "{name} with {wrong}");
        }
        let reply = call().bearer_auth("ops-token-8c2d").send().await.unwrap();
        assert_eq!(
            reply.status(),
            200,
            "{name}: {}",
            reply.text().await.unwrap()
        );
    }
}

const EMAIL: &str = "jane.roe.4417@example.org";
const CARD: &str = "4111 1111 1111 1111";
const PROMPT_MARK: &str = "zanzibar-quokka-prompt";
const CLIENT_KEY: &str = "sk-live-Q9x7Zt3LmN8pR2vW";
const UPSTREAM_KEY: &str = "upstream-key-Hq73Kd9sVb";
const WRONG_TOKEN: &str = "wrong-admin-token-Zp41";

fn leaky_prompt() -> String {
    format!("{PROMPT_MARK}: my email is {EMAIL}, card {CARD}, and my key {CLIENT_KEY}. Why does my python function fail?")
}

/// A server at debug level with a proxied upstream that needs a key, and the cache on.
fn debug_server(upstream: &Upstream, log_prompts: bool) -> Server {
    let mut replacements = Vec::new();
    let lines: Vec<(String, String)> = ["qwen3", "gpt-oss", "deepseek"]
        .iter()
        .map(|family| {
            let line = format!("    reasoning_family: {family}\n");
            let with = format!(
                "{line}    upstream: {{ base_url: \"{}\", api_key_env: LOGTEST_UPSTREAM_KEY }}\n",
                upstream.base
            );
            (line, with)
        })
        .collect();
    for (line, with) in &lines {
        replacements.push((line.as_str(), with.as_str()));
    }
    Server::start(Launch {
        config: Some(default_config_with(&replacements)),
        env: vec![
            ("RUST_LOG", "debug".into()),
            ("LOGTEST_UPSTREAM_KEY", UPSTREAM_KEY.into()),
            ("SEMROUTER__CACHE__ENABLED", "true".into()),
            ("SEMROUTER__SERVER__LOG_PROMPTS", log_prompts.to_string()),
        ],
        ..Launch::default()
    })
}

/// Sends the leaky prompt through every public endpoint and the admin ones; returns the
/// public replies' text.
async fn exercise(client: &reqwest::Client, server: &Server) -> String {
    let prompt = leaky_prompt();
    let body = chat("auto", &prompt);
    let mut public = String::new();
    let route = client
        .post(server.url("/v1/route"))
        .header("authorization", format!("Bearer {CLIENT_KEY}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(route.status(), 200);
    let proxied = client
        .post(server.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {CLIENT_KEY}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200, "{}", proxied.text().await.unwrap());
    let streamed =
        json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": prompt}]});
    let sse = client
        .post(server.url("/v1/chat/completions"))
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    sse.text().await.unwrap();
    let classify = client
        .post(server.url("/v1/classify"))
        .json(&json!({"text": prompt}))
        .send()
        .await
        .unwrap();
    assert_eq!(classify.status(), 200);
    let embed = client
        .post(server.url("/v1/embeddings"))
        .json(&json!({"input": prompt}))
        .send()
        .await
        .unwrap();
    assert_eq!(embed.status(), 200);
    // Malformed bodies carrying the secrets.
    let bad = client
        .post(server.url("/v1/route"))
        .json(&json!({"model": "auto", "messages": prompt}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad = client
        .post(server.url("/v1/chat/completions"))
        .json(&json!({"model": CLIENT_KEY, "messages": [{"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 404);
    // Admin calls with a wrong token, and a store with the right one.
    let store = client
        .post(server.url("/v1/cache"))
        .bearer_auth(WRONG_TOKEN)
        .json(&cache_entry(&prompt))
        .send()
        .await
        .unwrap();
    assert_eq!(store.status(), 403);
    let store = client
        .post(server.url("/v1/cache"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&cache_entry(&prompt))
        .send()
        .await
        .unwrap();
    assert_eq!(store.status(), 200);
    for path in [
        "/v1/models",
        "/metrics",
        "/ready",
        "/health",
        "/v1/cache/stats",
    ] {
        let reply = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(reply.status(), 200, "{path}");
        public.push_str(&reply.text().await.unwrap());
    }
    public
}

#[tokio::test]
async fn debug_logs_and_public_endpoints_hold_no_prompt_key_or_pii() {
    let upstream = Upstream::start("small");
    let server = debug_server(&upstream, false);
    let client = reqwest::Client::new();
    let public = exercise(&client, &server).await;
    // The upstream did get the key, and the prompt: the secrets were in play.
    assert!(
        upstream
            .authorizations()
            .iter()
            .any(|a| a.as_deref() == Some(&format!("Bearer {UPSTREAM_KEY}"))),
        "{:?}",
        upstream.authorizations()
    );
    assert!(upstream
        .received()
        .iter()
        .any(|b| b.to_string().contains(PROMPT_MARK)));

    let log = server.stderr();
    assert!(
        log.contains("DEBUG"),
        "the server did not log at debug level:\n{log}"
    );
    assert!(
        log.contains("decision"),
        "no decision was logged at debug level:\n{log}"
    );
    for secret in [
        PROMPT_MARK,
        EMAIL,
        CARD,
        CLIENT_KEY,
        UPSTREAM_KEY,
        WRONG_TOKEN,
        ADMIN_TOKEN,
    ] {
        assert!(!log.contains(secret), "the log contains `{secret}`:\n{log}");
        assert!(
            !public.contains(secret),
            "a public endpoint shows `{secret}`:\n{public}"
        );
    }
}

#[tokio::test]
async fn log_prompts_is_what_puts_prompts_in_the_log() {
    let upstream = Upstream::start("small");
    let server = debug_server(&upstream, true);
    let client = reqwest::Client::new();
    exercise(&client, &server).await;
    let log = server.stderr();
    assert!(
        log.contains(PROMPT_MARK) && log.contains("server.log_prompts is on"),
        "{log}"
    );
    // Keys are never logged, even then.
    for secret in [UPSTREAM_KEY, WRONG_TOKEN, ADMIN_TOKEN] {
        assert!(!log.contains(secret), "the log contains `{secret}`");
    }
}
