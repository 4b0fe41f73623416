//! The semantic cache's local tier: bounds under churn, TTL, scope isolation, the guard, LRU
//! order, replies, flushes, snapshots and concurrency. Vectors are synthetic (seeded) so the
//! similarities are exact; `cache_false_hits.rs` uses the real encoder.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use semrouter::cache::{
    directives, BatchItem, CacheConfig, CacheRequest, CachedAnswer, EmbeddingSpace, FlushFilter,
    HitKind, ManualClock, Reply, SemanticCache, SnapshotError, WriteSkip,
};
use serde_json::{json, Value};

const DIM: usize = 384;
const T0: u64 = 1_800_000_000_000;

fn space() -> EmbeddingSpace {
    EmbeddingSpace {
        model_id: "test-model".into(),
        dimension: DIM,
    }
}

fn config() -> CacheConfig {
    CacheConfig {
        enabled: true,
        ..CacheConfig::default()
    }
}

fn cache_with(config: CacheConfig) -> (SemanticCache, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (
        SemanticCache::with_clock(&config, space(), clock.clone()).unwrap(),
        clock,
    )
}

/// A seeded random unit vector.
fn vector(seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..DIM).map(|_| rng.random::<f32>() - 0.5).collect();
    unit(v)
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// A unit vector at cosine similarity `cos` from `base`.
fn at_similarity(base: &[f32], cos: f32, seed: u64) -> Vec<f32> {
    let r = vector(seed);
    let dot: f32 = r.iter().zip(base).map(|(a, b)| a * b).sum();
    let orth = unit(r.iter().zip(base).map(|(a, b)| a - dot * b).collect());
    let sin = (1.0 - cos * cos).sqrt();
    unit(
        base.iter()
            .zip(&orth)
            .map(|(b, o)| cos * b + sin * o)
            .collect(),
    )
}

fn body(text: &str) -> Value {
    json!({"model": "auto", "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]})
}

fn request(cache: &SemanticCache, text: &str) -> CacheRequest {
    request_in(cache, &body(text), "qwen3-8b", None)
}

fn request_in(
    cache: &SemanticCache,
    body: &Value,
    model: &str,
    tenant: Option<&str>,
) -> CacheRequest {
    cache
        .request(body.as_object().unwrap(), model, tenant)
        .unwrap()
}

fn answer(text: &str) -> CachedAnswer {
    CachedAnswer {
        content: text.into(),
        reasoning_content: None,
        upstream_model: Some("qwen3-8b".into()),
        usage: Some(json!({"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30})),
    }
}

fn put(cache: &SemanticCache, text: &str, v: &[f32], category: Option<&str>) {
    cache
        .insert(
            &request(cache, text),
            Some(v),
            category,
            answer(&format!("answer to {text}")),
        )
        .unwrap();
}

fn semantic(cache: &SemanticCache, text: &str, v: &[f32]) -> Option<String> {
    cache
        .lookup_semantic(&request(cache, text), v, None)
        .unwrap()
        .map(|h| h.answer.content.clone())
}

fn median_lookup_us(cache: &SemanticCache, seeds: std::ops::Range<u64>) -> f64 {
    let req = request(cache, "probe");
    let mut times: Vec<f64> = seeds
        .map(|s| {
            let q = vector(s);
            let t = Instant::now();
            let _ = cache.lookup_semantic(&req, &q, None).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[test]
fn ten_times_capacity_keeps_entries_bytes_points_and_lookup_time_bounded() {
    // The default shape (one generation per segment, dead points up to the live ones) and a
    // small-segment shape that compacts often.
    churn(None, 1.0, false);
    churn(Some(250), 0.25, true);
}

fn churn(segment_points: Option<usize>, max_dead_fraction: f32, expect_compaction: bool) {
    let capacity = 1000;
    let max_bytes = 4 << 20;
    let mut config = config();
    config.max_entries = capacity;
    config.max_bytes = max_bytes;
    config.index.segment_points = segment_points.unwrap_or(0);
    config.index.max_dead_fraction = max_dead_fraction;
    let segment = config.index.segment_size(capacity);
    let (cache, _clock) = cache_with(config.clone());
    let filler = "x".repeat(3000);

    let mut worst_points = 0;
    let mut worst_segments = 0;
    let mut first_fill_us = 0.0;
    for i in 0..(10 * capacity as u64) {
        let text = format!(
            "question {i} {}",
            if i % 3 == 0 { filler.as_str() } else { "" }
        );
        put(&cache, &text, &vector(i), None);
        // Hits on older entries keep some of them alive in old segments, so segments do not
        // all die whole and compaction must move live points.
        if i % 4 == 0 && i > 500 {
            let old = i - 1 - (i * 7919) % 500;
            if old % 3 != 0 {
                let _ = cache.lookup_exact(&request(&cache, &format!("question {old} ")));
            }
        }
        // The background task's work, done here deterministically every 50 inserts.
        if i % 50 == 49 {
            cache.maintain();
        }
        let stats = cache.stats();
        assert!(
            stats.entries <= capacity,
            "entries {} at insert {i}",
            stats.entries
        );
        assert!(
            stats.bytes <= max_bytes,
            "bytes {} at insert {i}",
            stats.bytes
        );
        worst_points = worst_points.max(stats.index_points);
        worst_segments = worst_segments.max(stats.index_segments);
        if i + 1 == capacity as u64 {
            first_fill_us = median_lookup_us(&cache, 1_000_000..1_000_200);
        }
    }
    let stats = cache.stats();
    // Bound from the design: live + max_dead_fraction * max(live, 1024) + one segment.
    let allowance = (config.index.max_dead_fraction as f64 * 1024f64) as usize;
    let bound = capacity + allowance + segment;
    println!(
        "segment {segment}, max_dead_fraction {max_dead_fraction}: after {} inserts: entries {}, bytes {}, points {} (worst {worst_points}, bound {bound}), segments worst {worst_segments}, evictions {}, compactions {}",
        10 * capacity,
        stats.entries,
        stats.bytes,
        stats.index_points,
        stats.counters.evictions,
        stats.counters.compactions
    );
    assert!(
        worst_points <= bound,
        "index points peaked at {worst_points}, bound {bound}"
    );
    assert!(
        worst_segments <= bound / segment + 2,
        "segments peaked at {worst_segments}"
    );
    assert!(stats.counters.evictions >= 9 * capacity as u64 - 1);
    if expect_compaction {
        assert!(
            stats.counters.compactions > 0,
            "refreshed entries made compaction necessary"
        );
    }
    assert!(
        stats.entries > capacity / 2,
        "the byte bound, not a leak, limits entries: {}",
        stats.entries
    );

    // Lookup time did not grow with the churn (generous factor: CI machines are noisy).
    let churned_us = median_lookup_us(&cache, 1_000_000..1_000_200);
    println!(
        "median lookup: {first_fill_us:.0} µs at capacity, {churned_us:.0} µs after 10x churn"
    );
    assert!(
        churned_us <= first_fill_us * 3.0 + 300.0,
        "{churned_us} µs vs {first_fill_us} µs"
    );

    // The newest entries are all still found, by exact key and by vector.
    for i in (10 * capacity as u64 - 20)..(10 * capacity as u64) {
        if i % 3 != 0 {
            let text = format!("question {i} ");
            assert!(
                cache.lookup_exact(&request(&cache, &text)).is_some(),
                "exact {i}"
            );
            assert!(
                semantic(&cache, &text, &vector(i)).is_some(),
                "semantic {i}"
            );
        }
    }
}

#[test]
fn a_batch_insert_stores_what_inserts_one_by_one_would() {
    let mut config = config();
    config.max_entries = 300;
    // 400 points over segments of 128: the batch fills and seals segments as it goes.
    config.index.segment_points = 128;
    let (cache, _clock) = cache_with(config);
    let texts: Vec<String> = (0..400).map(|i| format!("batch question {i}")).collect();
    let requests: Vec<CacheRequest> = texts.iter().map(|t| request(&cache, t)).collect();
    let vectors: Vec<Vec<f32>> = (0..400).map(|i| vector(5000 + i)).collect();
    let items = (0..400)
        .map(|i| BatchItem {
            request: &requests[i],
            // One bad embedding (refused and counted), one entry for the exact path only.
            embedding: match i {
                7 => Some(&vectors[i][..10]),
                8 => None,
                _ => Some(vectors[i].as_slice()),
            },
            category: None,
            answer: answer(&format!("answer to {}", texts[i])),
        })
        .collect();
    let results = cache.insert_batch(items);
    assert_eq!(results.len(), 400);
    assert!(
        matches!(results[7], Err(WriteSkip::BadEmbedding(_))),
        "{:?}",
        results[7]
    );
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 399);

    let stats = cache.stats();
    assert_eq!(stats.entries, 300, "the LRU bound holds across a batch");
    assert_eq!(stats.counters.inserts, 399);
    assert_eq!(stats.counters.evictions, 99);
    assert_eq!(stats.counters.write_skips.get("bad_embedding"), Some(&1));
    assert_eq!(
        stats.index_points, 398,
        "every stored vector is in the index, once"
    );
    assert!(
        stats.index_segments >= 3,
        "{} segments",
        stats.index_segments
    );
    // The oldest went first, in batch order; the rest are served by both paths.
    assert!(cache.lookup_exact(&requests[50]).is_none());
    assert!(cache.lookup_exact(&requests[8]).is_none());
    for i in (100..400).step_by(7) {
        let expected = format!("answer to {}", texts[i]);
        assert_eq!(
            cache
                .lookup_exact(&requests[i])
                .map(|h| h.answer.content.clone()),
            Some(expected.clone()),
            "exact {i}"
        );
        assert_eq!(
            semantic(&cache, &texts[i], &vectors[i]),
            Some(expected),
            "semantic {i}"
        );
    }
}

#[test]
fn background_maintenance_compacts_without_help() {
    let mut config = config();
    config.max_entries = 300;
    config.index.segment_points = 100;
    config.index.max_dead_fraction = 0.25;
    config.index.maintenance_interval_ms = 5;
    let cache = Arc::new(SemanticCache::new(&config, space()).unwrap());
    let _maintenance = cache.spawn_maintenance().unwrap();
    for i in 0..3000u64 {
        put(&cache, &format!("q{i}"), &vector(i), None);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let bound = 300 + 256 + 100;
    while cache.stats().index_points > bound && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = cache.stats();
    assert!(stats.index_points <= bound, "{stats:?}");
    assert!(semantic(&cache, "q2999", &vector(2999)).is_some());
}

#[test]
fn expired_entries_are_never_served_by_either_path() {
    let mut config = config();
    config.ttl_s = 60;
    config.category_ttl_s.insert("law".into(), 5);
    let (cache, clock) = cache_with(config);
    put(&cache, "What is a tort?", &vector(1), Some("law"));
    put(&cache, "What is an integral?", &vector(2), Some("math"));
    let law = request(&cache, "What is a tort?");
    let math = request(&cache, "What is an integral?");

    clock.advance(4_999);
    assert!(cache.lookup_exact(&law).is_some());
    assert!(cache
        .lookup_semantic(&law, &vector(1), Some("law"))
        .unwrap()
        .is_some());
    clock.advance(1);
    assert!(cache.lookup_exact(&law).is_none(), "the law TTL is 5 s");
    assert!(
        cache
            .lookup_semantic(&law, &vector(1), Some("law"))
            .unwrap()
            .is_none(),
        "not from the index either"
    );
    let hit = cache.lookup_exact(&math).unwrap();
    assert_eq!(hit.ttl_left_ms, 55_000);

    clock.advance(55_000);
    // Not looked up by key first: the index alone must refuse it.
    assert!(cache
        .lookup_semantic(&math, &vector(2), None)
        .unwrap()
        .is_none());
    assert!(cache.lookup_exact(&math).is_none());
    let stats = cache.stats();
    assert_eq!(stats.counters.expirations, 2);
    assert_eq!(stats.entries, 0);
    assert_eq!(
        stats.index_dead_points, 2,
        "their points are dead, awaiting their segment's end"
    );

    // The sweep removes what nobody looked up.
    put(&cache, "Who wrote Hamlet?", &vector(3), None);
    clock.advance(60_000);
    assert_eq!(cache.maintain().expired, 1);
    assert_eq!(cache.stats().entries, 0);
}

#[test]
fn scopes_never_share_answers() {
    let (cache, _clock) = cache_with(config());
    let text = "Summarise the French Revolution.";
    let v = vector(7);
    let base = body(text);
    cache
        .insert(
            &request_in(&cache, &base, "qwen3-8b", Some("acme")),
            Some(&v),
            None,
            answer("acme's"),
        )
        .unwrap();

    let mut other_system = base.clone();
    other_system["messages"][0]["content"] = json!("You are verbose.");
    let mut tools = base.clone();
    tools["tools"] = json!([{"type": "function", "function": {"name": "search"}}]);
    let mut format = base.clone();
    format["response_format"] = json!({"type": "json_object"});
    let mut history = base.clone();
    history["messages"] = json!([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": text}]);
    let others = [
        request_in(&cache, &base, "qwen3-8b", Some("globex")),
        request_in(&cache, &base, "qwen3-8b", None),
        request_in(&cache, &base, "deepseek-v3.1", Some("acme")),
        request_in(&cache, &other_system, "qwen3-8b", Some("acme")),
        request_in(&cache, &tools, "qwen3-8b", Some("acme")),
        request_in(&cache, &format, "qwen3-8b", Some("acme")),
        request_in(&cache, &history, "qwen3-8b", Some("acme")),
    ];
    for (i, other) in others.iter().enumerate() {
        assert!(cache.lookup_exact(other).is_none(), "exact, scope {i}");
        assert!(
            cache.lookup_semantic(other, &v, None).unwrap().is_none(),
            "semantic, scope {i}"
        );
    }
    let same = request_in(&cache, &base, "qwen3-8b", Some("acme"));
    assert_eq!(cache.lookup_exact(&same).unwrap().answer.content, "acme's");
    assert_eq!(
        cache
            .lookup_semantic(&same, &v, None)
            .unwrap()
            .unwrap()
            .answer
            .content,
        "acme's"
    );
}

#[test]
fn a_crowd_of_other_scopes_does_not_hide_the_match() {
    let (cache, _clock) = cache_with(config());
    let base = vector(11);
    let text = "Explain entropy.";
    // 300 tenants stored the same question with nearer vectors than ours.
    for t in 0..300u64 {
        let near = at_similarity(&base, 0.995, 1000 + t);
        let tenant = format!("tenant-{t}");
        cache
            .insert(
                &request_in(&cache, &body(text), "m", Some(&tenant)),
                Some(&near),
                None,
                answer("theirs"),
            )
            .unwrap();
    }
    let ours = at_similarity(&base, 0.95, 5);
    cache
        .insert(
            &request_in(&cache, &body(text), "m", Some("us")),
            Some(&ours),
            None,
            answer("ours"),
        )
        .unwrap();
    let hit = cache
        .lookup_semantic(
            &request_in(&cache, &body(text), "m", Some("us")),
            &base,
            None,
        )
        .unwrap()
        .unwrap();
    assert_eq!(hit.answer.content, "ours");
    assert!((hit.similarity - 0.95).abs() < 0.01, "{}", hit.similarity);
}

#[test]
fn the_guard_vetoes_grey_band_matches_that_differ_and_counts_them() {
    let (cache, _clock) = cache_with(config());
    let threshold = cache.config().similarity_threshold;
    let stored = vector(21);
    put(
        &cache,
        "Which of these statements about Paris is true for 1900?",
        &stored,
        None,
    );
    let grey = at_similarity(&stored, (threshold + 1.0) / 2.0, 22);

    let cases = [
        (
            "Which of these statements about Paris is not true for 1900?",
            "negation",
        ),
        (
            "Which of these statements about Paris is true for 1901?",
            "number",
        ),
        (
            "Which of these statements about Berlin is true for 1900?",
            "entity",
        ),
    ];
    for (text, _) in &cases {
        assert!(semantic(&cache, text, &grey).is_none(), "{text}");
    }
    let guard = cache.stats().counters.guard_rejections;
    assert_eq!((guard.negation, guard.number, guard.entity), (1, 1, 1));

    // A paraphrase with the same negations, numbers and names passes the guard.
    assert!(semantic(
        &cache,
        "For 1900, which statement about Paris is true?",
        &grey
    )
    .is_some());
    // Below the threshold nothing matches, guard or not.
    let far = at_similarity(&stored, threshold - 0.02, 23);
    assert!(semantic(
        &cache,
        "Which of these statements about Paris is true for 1900?",
        &far
    )
    .is_none());
    // By default every match is checked, however similar: a changed number barely moves
    // an embedding.
    let identical = at_similarity(&stored, 0.9999, 24);
    assert!(semantic(
        &cache,
        "Which of these statements about Paris is true for 1901?",
        &identical
    )
    .is_none());
    // With a lower band edge, matches at or above it skip the lexical checks.
    let mut banded = config();
    banded.guard.band_upper = 0.999;
    let (cache, _clock) = cache_with(banded);
    put(
        &cache,
        "Which of these statements about Paris is true for 1900?",
        &stored,
        None,
    );
    assert!(semantic(
        &cache,
        "Which of these statements about Paris is true for 1901?",
        &identical
    )
    .is_some());
    assert!(semantic(
        &cache,
        "Which of these statements about Paris is true for 1901?",
        &grey
    )
    .is_none());
}

#[test]
fn category_thresholds_override_the_default() {
    let mut config = config();
    config.category_thresholds.insert("law".into(), 0.99);
    let (cache, _clock) = cache_with(config);
    let stored = vector(31);
    put(&cache, "Define negligence.", &stored, Some("law"));
    let q = at_similarity(&stored, 0.95, 32);
    let req = request(&cache, "Define negligence.");
    assert!(cache
        .lookup_semantic(&req, &q, Some("law"))
        .unwrap()
        .is_none());
    assert!(cache
        .lookup_semantic(&req, &q, Some("math"))
        .unwrap()
        .is_some());
}

#[test]
fn least_recently_used_goes_first() {
    let mut config = config();
    config.max_entries = 3;
    let (cache, _clock) = cache_with(config);
    for (i, t) in ["a", "b", "c"].iter().enumerate() {
        put(&cache, t, &vector(i as u64), None);
    }
    assert!(cache.lookup_exact(&request(&cache, "a")).is_some());
    put(&cache, "d", &vector(3), None);
    assert!(
        cache.lookup_exact(&request(&cache, "b")).is_none(),
        "b was least recently used"
    );
    // A semantic hit refreshes too.
    assert!(semantic(&cache, "c", &vector(2)).is_some());
    put(&cache, "e", &vector(4), None);
    assert!(
        cache.lookup_exact(&request(&cache, "a")).is_none(),
        "a was least recently used"
    );
    for t in ["c", "d", "e"] {
        assert!(cache.lookup_exact(&request(&cache, t)).is_some(), "{t}");
    }
    assert_eq!(cache.stats().counters.evictions, 2);
}

#[test]
fn replies_are_stored_only_when_complete_and_replayed_in_both_forms() {
    let (cache, _clock) = cache_with(config());
    let req = request(&cache, "Say hello.");
    let ok = json!({"id": "c1", "object": "chat.completion", "model": "qwen3-8b",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}]});
    let cut = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n";
    assert!(matches!(
        cache.store_reply(
            &req,
            None,
            None,
            Reply::Sse {
                status: 200,
                body: cut
            },
            false
        ),
        Err(WriteSkip::Unstorable(_))
    ));
    assert_eq!(
        cache.store_reply(
            &req,
            None,
            None,
            Reply::Json {
                status: 200,
                body: &ok
            },
            true
        ),
        Err(WriteSkip::Pii)
    );
    assert!(cache.lookup_exact(&req).is_none());
    cache
        .store_reply(
            &req,
            Some(&vector(1)),
            None,
            Reply::Json {
                status: 200,
                body: &ok,
            },
            false,
        )
        .unwrap();
    let hit = cache.lookup_exact(&req).unwrap();
    assert_eq!(hit.kind, HitKind::Exact);
    let replay = hit.answer.to_completion("auto");
    assert_eq!(replay["choices"][0]["message"]["content"], "Hello!");
    assert!(hit
        .answer
        .to_sse("auto", false)
        .ends_with("data: [DONE]\n\n"));
    let skips = cache.stats().counters.write_skips;
    assert_eq!(skips.get("incomplete_stream"), Some(&1));
    assert_eq!(skips.get("pii"), Some(&1));
}

#[test]
fn client_controls_and_uncacheable_requests() {
    let (cache, _clock) = cache_with(config());
    assert!(!directives([("x-semrouter-cache", "bypass")]).lookup);
    let mut hot = body("Write a poem.");
    hot["temperature"] = json!(1.5);
    assert!(cache.request(hot.as_object().unwrap(), "m", None).is_err());
    // A cached answer longer than the client allows is not served.
    put(&cache, "Explain DNS.", &vector(1), None);
    let mut short = body("Explain DNS.");
    short["max_tokens"] = json!(5);
    let short = request_in(&cache, &short, "qwen3-8b", None);
    assert!(cache.lookup_exact(&short).is_none());
    assert!(cache
        .lookup_semantic(&short, &vector(1), None)
        .unwrap()
        .is_none());
    // A prompt the encoder truncated is served by the exact path only.
    let mut long = request(&cache, "Explain DNS.");
    long.embedding_truncated = true;
    assert!(cache
        .lookup_semantic(&long, &vector(1), None)
        .unwrap()
        .is_none());
    assert!(cache.lookup_exact(&long).is_some());
    // A disabled cache neither serves nor stores.
    let (off, _clock) = cache_with(CacheConfig::default());
    assert_eq!(
        off.insert(&request(&off, "x"), None, None, answer("y")),
        Err(WriteSkip::Disabled)
    );
    assert!(off.lookup_exact(&request(&off, "x")).is_none());
}

#[test]
fn flush_by_scope_by_tenant_and_all() {
    let (cache, _clock) = cache_with(config());
    let a = request_in(&cache, &body("q"), "m", Some("a"));
    let b = request_in(&cache, &body("q"), "m", Some("b"));
    let b2 = request_in(&cache, &body("q2"), "m", Some("b"));
    for (r, s) in [(&a, 1), (&b, 2), (&b2, 3)] {
        cache
            .insert(r, Some(&vector(s)), None, answer("x"))
            .unwrap();
    }
    assert_eq!(cache.flush(&FlushFilter::scope(a.scope.id)), 1);
    assert!(cache.lookup_exact(&a).is_none());
    assert!(cache
        .lookup_semantic(&a, &vector(1), None)
        .unwrap()
        .is_none());
    assert!(cache.lookup_exact(&b).is_some());
    let tenant_b = FlushFilter {
        tenant: Some("b".into()),
        ..FlushFilter::default()
    };
    assert_eq!(cache.flush(&tenant_b), 2);
    cache.insert(&a, None, None, answer("x")).unwrap();
    assert_eq!(cache.flush(&FlushFilter::all()), 1);
    let stats = cache.stats();
    assert_eq!(
        (stats.entries, stats.bytes, stats.counters.flushed),
        (0, 0, 4)
    );
}

#[test]
fn snapshots_round_trip_and_bad_ones_are_refused_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.snap");
    let (cache, clock) = cache_with(config());
    let store = |text: &str, v: &[f32], category: Option<&str>| {
        cache
            .insert(
                &request(&cache, text),
                Some(v),
                category,
                answer("a nucleic acid"),
            )
            .unwrap();
    };
    store("What is DNA?", &vector(1), Some("biology"));
    store("What is RNA?", &vector(2), None);
    cache
        .insert(&request(&cache, "exact only"), None, None, answer("e"))
        .unwrap();
    assert_eq!(cache.save_snapshot(&path).unwrap(), 3);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("What is DNA"),
        "snapshots hold no prompt text"
    );

    let fresh = || SemanticCache::with_clock(&config(), space(), clock.clone()).unwrap();
    let restored = fresh();
    let loaded = restored.load_snapshot(&path).unwrap();
    assert_eq!((loaded.loaded, loaded.skipped), (3, 0));
    assert!(restored
        .lookup_exact(&request(&restored, "exact only"))
        .is_some());
    let hit = restored
        .lookup_semantic(&request(&restored, "What is DNA?"), &vector(1), None)
        .unwrap()
        .unwrap();
    assert_eq!(
        (hit.answer.content.as_str(), hit.kind),
        ("a nucleic acid", HitKind::Semantic)
    );
    assert!(hit.similarity > 0.999);

    // Corrupt: one byte changed inside an entry.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.iter().position(|&b| b == b'\n').unwrap() + 20;
    bytes[at] ^= 0x01;
    let corrupt = dir.path().join("corrupt.snap");
    std::fs::write(&corrupt, &bytes).unwrap();
    let target = fresh();
    assert!(matches!(
        target.load_snapshot(&corrupt),
        Err(SnapshotError::Corrupt { .. })
    ));
    assert_eq!(
        target.stats().entries,
        0,
        "nothing is loaded from a bad file"
    );

    // Truncated: the end line is missing.
    let cut = dir.path().join("cut.snap");
    std::fs::write(&cut, &text[..text.trim_end().rfind('\n').unwrap() + 1]).unwrap();
    let err = target.load_snapshot(&cut).unwrap_err();
    assert!(
        matches!(err, SnapshotError::Corrupt { .. }) && err.to_string().contains("truncated"),
        "{err}"
    );

    // Garbage and a missing file.
    let garbage = dir.path().join("garbage.snap");
    std::fs::write(&garbage, b"\x00\x01not json at all").unwrap();
    assert!(matches!(
        target.load_snapshot(&garbage),
        Err(SnapshotError::Corrupt { .. })
    ));
    assert!(matches!(
        target.load_snapshot(&dir.path().join("none")),
        Err(SnapshotError::Io { .. })
    ));

    // Another embedding model or dimension.
    let other = SemanticCache::new(
        &config(),
        EmbeddingSpace {
            model_id: "other".into(),
            dimension: DIM,
        },
    )
    .unwrap();
    assert!(matches!(
        other.load_snapshot(&path),
        Err(SnapshotError::Incompatible { .. })
    ));
    let narrow = SemanticCache::new(
        &config(),
        EmbeddingSpace {
            model_id: "test-model".into(),
            dimension: 8,
        },
    )
    .unwrap();
    assert!(matches!(
        narrow.load_snapshot(&path),
        Err(SnapshotError::Incompatible { .. })
    ));
    // Another format version.
    let future = dir.path().join("future.snap");
    std::fs::write(&future, text.replacen("\"version\":1", "\"version\":99", 1)).unwrap();
    assert!(matches!(
        target.load_snapshot(&future),
        Err(SnapshotError::Incompatible { .. })
    ));

    // Entries that expired since the snapshot are skipped.
    clock.advance(3_600_000);
    let later = fresh();
    let loaded = later.load_snapshot(&path).unwrap();
    assert_eq!((loaded.loaded, loaded.skipped), (0, 3));

    // The configured load logs and goes on.
    let mut configured = config();
    configured.snapshot.path = Some(corrupt.clone());
    configured.snapshot.load_on_start = true;
    let cache = SemanticCache::new(&configured, space()).unwrap();
    assert_eq!(cache.load_configured_snapshot(), 0);
}

#[test]
fn lookups_stay_correct_and_fast_under_concurrent_writes() {
    let mut config = config();
    config.max_entries = 20_000;
    let cache = Arc::new(cache_with(config).0);
    for i in 0..2000u64 {
        put(&cache, &format!("seed {i}"), &vector(i), None);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (cache, stop) = (Arc::clone(&cache), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 100_000u64;
            while !stop.load(Ordering::Relaxed) {
                put(&cache, &format!("new {i}"), &vector(i), None);
                i += 1;
            }
            i - 100_000
        })
    };
    let mut times = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for _ in 0..2000 {
        let i = rng.random_range(0..2000u64);
        let t = Instant::now();
        let hit = semantic(&cache, &format!("seed {i}"), &vector(i));
        times.push(t.elapsed());
        assert_eq!(hit.as_deref(), Some(format!("answer to seed {i}").as_str()));
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    times.sort();
    let p99 = times[times.len() * 99 / 100];
    println!(
        "{written} concurrent inserts; lookup p50 {:?}, p99 {p99:?}",
        times[times.len() / 2]
    );
    assert!(written > 0);
    // Loose: a lookup never waits for an insert to finish (inserts take ~1 ms each).
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
}
