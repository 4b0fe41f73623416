//! Two real `semrouter serve` processes sharing one real `redis-server` (all on 127.0.0.1,
//! ephemeral ports): an answer stored through one is an exact and a semantic hit on the other;
//! while Redis is down both keep answering from their local tier (hits for what they hold,
//! misses otherwise, never a 5xx, never a wait on Redis); once Redis is back on the same port
//! they share again without a restart.
//!
//! Needs Debian's `redis-server` (see `tests/common/redis.rs`).

mod common;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{chat, Launch, Server};
use serde_json::{json, Value};

/// How long a replica may take to see another's entry, or to notice Redis leave or return.
const WAIT: Duration = Duration::from_secs(20);
/// The most one request may take while Redis is down: the lookup path never waits on Redis,
/// so this only absorbs a loaded machine (a request takes milliseconds).
const OUTAGE_BOUND: Duration = Duration::from_secs(3);

const QUESTION: &str = "What is the capital city of Australia?";
const PARAPHRASE: &str = "Could you tell me what the capital city of Australia is?";

fn replica(redis: &Redis) -> Server {
    Server::start(Launch {
        env: vec![
            ("SEMROUTER__CACHE__ENABLED", "true".into()),
            ("SEMROUTER__CACHE__SHARED__ENABLED", "true".into()),
            ("SEMROUTER__CACHE__SHARED__URL", redis.url()),
            (
                "SEMROUTER__CACHE__SHARED__KEY_PREFIX",
                "replicas-test".into(),
            ),
            ("SEMROUTER__CACHE__SHARED__CONNECT_TIMEOUT_MS", "300".into()),
            ("SEMROUTER__CACHE__SHARED__COMMAND_TIMEOUT_MS", "500".into()),
            ("SEMROUTER__CACHE__SHARED__BACKOFF_INITIAL_MS", "50".into()),
            ("SEMROUTER__CACHE__SHARED__BACKOFF_MAX_MS", "400".into()),
        ],
        ..Launch::default()
    })
}

fn completion(content: &str) -> Value {
    json!({"object": "chat.completion", "model": "qwen3-8b",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
}

struct Client {
    http: reqwest::Client,
}

impl Client {
    fn new() -> Self {
        // A hang fails the test instead of stalling it.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        Self { http }
    }

    async fn store(&self, server: &Server, prompt: &str, answer: &str) {
        let entry = json!({"request": chat("auto", prompt), "response": completion(answer)});
        let reply = self
            .http
            .post(server.url("/v1/cache"))
            .bearer_auth(common::ADMIN_TOKEN)
            .json(&entry)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["stored"], true, "{body}");
    }

    /// `/v1/route` for `prompt`: the `cache` object, and how long it took. Anything but 200 fails.
    async fn route(&self, server: &Server, prompt: &str) -> (Value, Duration) {
        let started = Instant::now();
        let reply = self
            .http
            .post(server.url("/v1/route"))
            .json(&chat("auto", prompt))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200, "route on {}", server.base);
        let body: Value = reply.json().await.unwrap();
        (body["cache"].clone(), started.elapsed())
    }

    /// The cached answer `server` serves for `prompt`, with the hit's kind.
    async fn served(&self, server: &Server, prompt: &str) -> Option<(String, String)> {
        let (cache, _) = self.route(server, prompt).await;
        let content = cache["response"]["choices"][0]["message"]["content"]
            .as_str()?
            .to_string();
        Some((cache["kind"].as_str()?.to_string(), content))
    }

    async fn connected(&self, server: &Server) -> bool {
        let stats: Value = self
            .http
            .get(server.url("/v1/cache/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["shared"]["connected"] == true
    }

    /// Polls until `server` serves `answer` for `prompt` as a hit of `kind`.
    async fn until_served(&self, server: &Server, prompt: &str, kind: &str, answer: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.served(server, prompt).await == Some((kind.to_string(), answer.to_string())) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never served `{answer}` as a {kind} hit",
                server.base
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until both replicas report the shared tier `connected` (or not).
    async fn until_connected(&self, replicas: [&Server; 2], connected: bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.connected(replicas[0]).await == connected
                && self.connected(replicas[1]).await == connected
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas never reported connected={connected}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn two_router_processes_share_one_redis_and_survive_its_outage() {
    let Some(redis) = Redis::start_or_skip("cache_replicas") else {
        return;
    };
    let (a, b) = (replica(&redis), replica(&redis));
    let client = Client::new();
    client.until_connected([&a, &b], true).await;

    // Stored through A: an exact hit on B, and a paraphrase a semantic hit.
    let (miss, _) = client.route(&b, QUESTION).await;
    assert_eq!(miss["hit"], false, "{miss}");
    client.store(&a, QUESTION, "Canberra.").await;
    client
        .until_served(&b, QUESTION, "exact", "Canberra.")
        .await;
    assert_eq!(
        client.served(&b, PARAPHRASE).await,
        Some(("semantic".into(), "Canberra.".into()))
    );

    // Redis dies. Before and after the replicas notice, both answer at once from their local
    // tier: hits for what they hold, misses for the rest, stores kept locally.
    redis.kill();
    for round in 0..2 {
        for server in [&a, &b] {
            for (prompt, hit) in [
                (QUESTION, true),
                (PARAPHRASE, true),
                ("How do volcanoes form?", false),
            ] {
                let (cache, took) = client.route(server, prompt).await;
                assert_eq!(cache["hit"], hit, "round {round}, {prompt}: {cache}");
                assert!(
                    took < OUTAGE_BOUND,
                    "round {round}: {prompt} took {took:?} on {}",
                    server.base
                );
            }
        }
        if round == 0 {
            client.until_connected([&a, &b], false).await;
        }
    }
    let started = Instant::now();
    client
        .store(&a, "Who wrote the novel Moby-Dick?", "Herman Melville.")
        .await;
    assert!(
        started.elapsed() < OUTAGE_BOUND,
        "a store never waits for Redis"
    );
    client
        .until_served(
            &a,
            "Who wrote the novel Moby-Dick?",
            "exact",
            "Herman Melville.",
        )
        .await;

    // Redis returns, empty, on the same port: both reconnect by themselves and share again.
    redis.restart();
    client.until_connected([&a, &b], true).await;
    client
        .store(
            &a,
            "What is the boiling point of water at sea level?",
            "100 degrees Celsius.",
        )
        .await;
    client
        .until_served(
            &b,
            "What is the boiling point of water at sea level?",
            "exact",
            "100 degrees Celsius.",
        )
        .await;
    assert_eq!(
        client
            .served(&b, "What's the boiling point of water at sea level?")
            .await
            .map(|(kind, _)| kind),
        Some("semantic".into())
    );
    // What B held before the outage it still serves.
    assert_eq!(
        client.served(&b, QUESTION).await,
        Some(("exact".into(), "Canberra.".into()))
    );
}
