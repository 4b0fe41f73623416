//! The cache's shared tier against a real `redis-server` (started by `scripts/redis.sh` on a
//! free loopback port): replicas share entries, a new replica starts warm, flushes propagate,
//! and when Redis dies and comes back (empty) every replica keeps serving from its local tier
//! and recovers without a restart.
//!
//! Needs Debian's `redis-server` (`make redis` installs the pinned version); without it the
//! test fails under `make test` (`SEMROUTER_REQUIRE_REDIS=1`) and otherwise says so loudly.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::Redis;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use semrouter::cache::{
    CacheConfig, CacheRequest, CachedAnswer, EmbeddingSpace, FlushFilter, SemanticCache, SharedTier,
};
use serde_json::json;

const DIM: usize = 32;

fn config(url: &str) -> CacheConfig {
    let mut config = CacheConfig {
        enabled: true,
        ..CacheConfig::default()
    };
    config.shared.enabled = true;
    config.shared.url = url.to_string();
    config.shared.key_prefix = "test-cache".into();
    config.shared.connect_timeout_ms = 300;
    config.shared.command_timeout_ms = 500;
    config.shared.backoff_initial_ms = 50;
    config.shared.backoff_max_ms = 400;
    config
}

fn replica(url: &str) -> (Arc<SemanticCache>, SharedTier) {
    let space = EmbeddingSpace {
        model_id: "test-model".into(),
        dimension: DIM,
    };
    let cache = Arc::new(SemanticCache::new(&config(url), space).unwrap());
    let tier = SharedTier::start(Arc::clone(&cache)).unwrap();
    (cache, tier)
}

fn vector(seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..DIM).map(|_| rng.random::<f32>() - 0.5).collect()
}

fn request(cache: &SemanticCache, text: &str) -> CacheRequest {
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": text}]});
    cache
        .request(body.as_object().unwrap(), "qwen3-8b", Some("acme"))
        .unwrap()
}

fn store(cache: &SemanticCache, text: &str, seed: u64) {
    let answer = CachedAnswer {
        content: format!("answer {seed}"),
        reasoning_content: None,
        upstream_model: None,
        usage: None,
    };
    cache
        .insert(&request(cache, text), Some(&vector(seed)), None, answer)
        .unwrap();
}

fn serves(cache: &SemanticCache, text: &str, seed: u64) -> bool {
    let req = request(cache, text);
    let exact = cache
        .lookup_exact(&req)
        .is_some_and(|h| h.answer.content == format!("answer {seed}"));
    let semantic = cache
        .lookup_semantic(&req, &vector(seed), None)
        .unwrap()
        .is_some_and(|h| h.answer.content == format!("answer {seed}"));
    exact && semantic
}

/// Polls `condition` for up to `within`.
async fn eventually(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_entries_and_survive_a_redis_restart() {
    let Some(redis) = Redis::start_or_skip("cache_shared") else {
        return;
    };
    let url = redis.url();
    let (a, tier_a) = replica(&url);
    let (b, tier_b) = replica(&url);
    let wait = Duration::from_secs(15);
    eventually("both replicas connected", wait, || {
        tier_a.stats().connected && tier_b.stats().connected
    })
    .await;

    // Stored through A, served by B (exact and semantic).
    store(&a, "What is the boiling point of water?", 1);
    eventually("B serves A's entry", wait, || {
        serves(&b, "What is the boiling point of water?", 1)
    })
    .await;
    store(&b, "Who painted the Mona Lisa?", 2);
    eventually("A serves B's entry", wait, || {
        serves(&a, "Who painted the Mona Lisa?", 2)
    })
    .await;

    // A replica started later warms from Redis.
    let (c, tier_c) = replica(&url);
    eventually("C warms with both entries", wait, || {
        serves(&c, "What is the boiling point of water?", 1)
            && serves(&c, "Who painted the Mona Lisa?", 2)
    })
    .await;

    // A flush on one replica reaches the others and Redis.
    store(&a, "Name a prime number.", 3);
    eventually("C has the third entry", wait, || {
        serves(&c, "Name a prime number.", 3)
    })
    .await;
    assert_eq!(a.flush(&FlushFilter::scope(request(&a, "x").scope.id)), 3);
    eventually("B and C flushed too", wait, || {
        !serves(&b, "Name a prime number.", 3)
            && !serves(&c, "Name a prime number.", 3)
            && b.stats().entries == 0
    })
    .await;
    drop(tier_c);
    let (d, _tier_d) = replica(&url);
    store(&a, "What is the speed of light?", 4);
    eventually("D gets new entries", wait, || {
        serves(&d, "What is the speed of light?", 4)
    })
    .await;
    assert!(
        !serves(&d, "What is the boiling point of water?", 1),
        "flushed entries are gone from Redis"
    );

    // Redis dies: both keep serving and storing locally.
    redis.kill();
    eventually("both notice", wait, || {
        !tier_a.stats().connected && !tier_b.stats().connected
    })
    .await;
    assert!(serves(&a, "What is the speed of light?", 4));
    assert!(serves(&b, "What is the speed of light?", 4));
    store(&a, "Stored during the outage.", 5);
    assert!(serves(&a, "Stored during the outage.", 5));
    let started = Instant::now();
    store(&b, "Also during the outage.", 6);
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "a write never waits for Redis"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !serves(&b, "Stored during the outage.", 5),
        "no sharing while Redis is down"
    );

    // Redis comes back empty: replicas reconnect, republish, and share again.
    redis.restart();
    eventually("both reconnect", wait, || {
        tier_a.stats().connected && tier_b.stats().connected
    })
    .await;
    eventually("the outage entries cross over", wait, || {
        serves(&b, "Stored during the outage.", 5) && serves(&a, "Also during the outage.", 6)
    })
    .await;
    store(&b, "After the restart.", 7);
    eventually("new entries are shared again", wait, || {
        serves(&a, "After the restart.", 7)
    })
    .await;
    let (e, _tier_e) = replica(&url);
    eventually(
        "a new replica warms from the republished entries",
        wait,
        || serves(&e, "What is the speed of light?", 4),
    )
    .await;

    let stats = tier_a.stats();
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert!(stats.published >= 3, "{stats:?}");
    assert!(tier_b.stats().received >= 3, "{:?}", tier_b.stats());
    assert!(a.stats().shared.is_some());
}
