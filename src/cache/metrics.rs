//! The cache's counters, its stats report, and its Prometheus metrics.
//!
//! Counters are kept in atomics (so `GET /v1/cache/stats` works without a recorder) and
//! mirrored to the `metrics` facade under `semrouter_cache_*`. Labels are closed sets
//! (kind, reason, check): no prompt text, tenant or model name ever becomes a label.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::guard::GuardCheck;

/// Lookup latency buckets in seconds: 5 µs to 50 ms (the exact path takes microseconds,
/// so the service's 100 µs-first latency buckets would hide it). Register them with
/// `PrometheusBuilder::set_buckets_for_metric(Matcher::Full(LOOKUP_SECONDS.into()), &LOOKUP_BUCKETS)`.
pub const LOOKUP_BUCKETS: [f64; 14] = [
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.002, 0.005,
    0.01, 0.025, 0.05,
];

/// Name of the lookup latency histogram.
pub const LOOKUP_SECONDS: &str = "semrouter_cache_lookup_duration_seconds";

/// Which lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HitKind {
    /// Same scope, same normalised last user text.
    Exact,
    /// Nearest neighbour above the threshold in the same scope.
    Semantic,
}

impl HitKind {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            HitKind::Exact => "exact",
            HitKind::Semantic => "semantic",
        }
    }
}

/// Every write-skip reason, as metric labels; the index in this list is the counter slot.
pub const WRITE_SKIP_REASONS: [&str; 19] = [
    "disabled",
    "no_store",
    "temperature",
    "multiple_choices",
    "logprobs",
    "no_user_text",
    "no_messages",
    "pii",
    "pii_unchecked",
    "blocked",
    "status",
    "malformed",
    "finish_reason",
    "tool_calls",
    "empty",
    "incomplete_stream",
    "too_large",
    "bad_embedding",
    "index_backlog",
];

/// Registers help text for every cache metric (call once, after installing the recorder).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "semrouter_cache_hits_total",
        "Cache hits by kind (exact, semantic)"
    );
    describe_counter!(
        "semrouter_cache_misses_total",
        "Cache misses by kind (exact, semantic)"
    );
    describe_histogram!(
        LOOKUP_SECONDS,
        Unit::Seconds,
        "Cache lookup latency by kind (exact, semantic)"
    );
    describe_gauge!("semrouter_cache_entries", "Entries held by the local tier");
    describe_gauge!(
        "semrouter_cache_bytes",
        "Bytes held by the local tier (estimated)"
    );
    describe_gauge!(
        "semrouter_cache_index_points",
        "HNSW points by state (live, dead)"
    );
    describe_gauge!(
        "semrouter_cache_index_segments",
        "HNSW segments searched per lookup"
    );
    describe_counter!("semrouter_cache_inserts_total", "Entries stored");
    describe_counter!(
        "semrouter_cache_evictions_total",
        "Entries evicted as least recently used"
    );
    describe_counter!(
        "semrouter_cache_expirations_total",
        "Entries removed past their TTL"
    );
    describe_counter!(
        "semrouter_cache_flushed_total",
        "Entries removed by flushes"
    );
    describe_counter!(
        "semrouter_cache_guard_rejections_total",
        "Semantic matches vetoed by the false-hit guard, by check"
    );
    describe_counter!(
        "semrouter_cache_write_skips_total",
        "Answers not stored, by reason"
    );
    describe_counter!(
        "semrouter_cache_compactions_total",
        "HNSW segments compacted"
    );
    describe_counter!(
        "semrouter_cache_shared_errors_total",
        "Shared-tier (Redis) failures by operation"
    );
    describe_gauge!(
        "semrouter_cache_shared_connected",
        "1 while the shared tier (Redis) is reachable"
    );
}

/// The counters of one cache.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: [AtomicU64; 2],
    misses: [AtomicU64; 2],
    inserts: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    flushed: AtomicU64,
    compactions: AtomicU64,
    guard: [AtomicU64; 4],
    skips: [AtomicU64; WRITE_SKIP_REASONS.len()],
}

fn kind_slot(kind: HitKind) -> usize {
    match kind {
        HitKind::Exact => 0,
        HitKind::Semantic => 1,
    }
}

impl Counters {
    pub(crate) fn lookup(&self, kind: HitKind, hit: bool, took: Duration) {
        let (counters, name) = if hit {
            (&self.hits, "semrouter_cache_hits_total")
        } else {
            (&self.misses, "semrouter_cache_misses_total")
        };
        counters[kind_slot(kind)].fetch_add(1, Ordering::Relaxed);
        metrics::counter!(name, "kind" => kind.label()).increment(1);
        metrics::histogram!(LOOKUP_SECONDS, "kind" => kind.label()).record(took.as_secs_f64());
    }

    pub(crate) fn inserted(&self) {
        self.inserts.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("semrouter_cache_inserts_total").increment(1);
    }

    pub(crate) fn removed(&self, evicted: u64, expired: u64, flushed: u64) {
        if evicted > 0 {
            self.evictions.fetch_add(evicted, Ordering::Relaxed);
            metrics::counter!("semrouter_cache_evictions_total").increment(evicted);
        }
        if expired > 0 {
            self.expirations.fetch_add(expired, Ordering::Relaxed);
            metrics::counter!("semrouter_cache_expirations_total").increment(expired);
        }
        if flushed > 0 {
            self.flushed.fetch_add(flushed, Ordering::Relaxed);
            metrics::counter!("semrouter_cache_flushed_total").increment(flushed);
        }
    }

    pub(crate) fn compacted(&self) {
        self.compactions.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("semrouter_cache_compactions_total").increment(1);
    }

    pub(crate) fn guard_rejection(&self, check: GuardCheck) {
        let slot = match check {
            GuardCheck::Negation => 0,
            GuardCheck::Number => 1,
            GuardCheck::Entity => 2,
            GuardCheck::Content => 3,
        };
        self.guard[slot].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("semrouter_cache_guard_rejections_total", "check" => check.label())
            .increment(1);
    }

    pub(crate) fn write_skip(&self, reason: &'static str) {
        if let Some(slot) = WRITE_SKIP_REASONS.iter().position(|r| *r == reason) {
            self.skips[slot].fetch_add(1, Ordering::Relaxed);
        }
        metrics::counter!("semrouter_cache_write_skips_total", "reason" => reason).increment(1);
    }

    pub(crate) fn gauges(
        &self,
        entries: usize,
        bytes: u64,
        points: usize,
        dead: usize,
        segments: usize,
    ) {
        metrics::gauge!("semrouter_cache_entries").set(entries as f64);
        metrics::gauge!("semrouter_cache_bytes").set(bytes as f64);
        metrics::gauge!("semrouter_cache_index_points", "state" => "live")
            .set(points.saturating_sub(dead) as f64);
        metrics::gauge!("semrouter_cache_index_points", "state" => "dead").set(dead as f64);
        metrics::gauge!("semrouter_cache_index_segments").set(segments as f64);
    }

    pub(crate) fn snapshot(&self) -> CounterStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterStats {
            hits: KindCounts {
                exact: load(&self.hits[0]),
                semantic: load(&self.hits[1]),
            },
            misses: KindCounts {
                exact: load(&self.misses[0]),
                semantic: load(&self.misses[1]),
            },
            inserts: load(&self.inserts),
            evictions: load(&self.evictions),
            expirations: load(&self.expirations),
            flushed: load(&self.flushed),
            compactions: load(&self.compactions),
            guard_rejections: GuardCounts {
                negation: load(&self.guard[0]),
                number: load(&self.guard[1]),
                entity: load(&self.guard[2]),
                content: load(&self.guard[3]),
            },
            write_skips: WRITE_SKIP_REASONS
                .iter()
                .zip(&self.skips)
                .filter(|(_, c)| load(c) > 0)
                .map(|(r, c)| ((*r).to_string(), load(c)))
                .collect(),
        }
    }
}

/// Counts per lookup kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    /// Exact path.
    pub exact: u64,
    /// Semantic path.
    pub semantic: u64,
}

/// Guard rejections per check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GuardCounts {
    /// Negation or polar words differed.
    pub negation: u64,
    /// Numbers differed.
    pub number: u64,
    /// Entities differed.
    pub entity: u64,
    /// Many content words differed.
    pub content: u64,
}

/// Counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CounterStats {
    /// Hits by kind.
    pub hits: KindCounts,
    /// Misses by kind.
    pub misses: KindCounts,
    /// Entries stored.
    pub inserts: u64,
    /// Entries evicted (LRU, by entries or bytes).
    pub evictions: u64,
    /// Entries removed past their TTL.
    pub expirations: u64,
    /// Entries removed by flushes.
    pub flushed: u64,
    /// Index segments compacted.
    pub compactions: u64,
    /// Guard vetoes by check.
    pub guard_rejections: GuardCounts,
    /// Answers not stored, by reason (reasons never seen are left out).
    pub write_skips: BTreeMap<String, u64>,
}

/// What `GET /v1/cache/stats` reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CacheStats {
    /// Entries held.
    pub entries: usize,
    /// Bytes held (estimated: answers, metadata, vectors, index links).
    pub bytes: u64,
    /// The configured bounds.
    pub max_entries: usize,
    /// The configured byte bound.
    pub max_bytes: u64,
    /// HNSW segments.
    pub index_segments: usize,
    /// HNSW points, live and dead.
    pub index_points: usize,
    /// HNSW points whose entry is gone (reclaimed by segment drops and compaction).
    pub index_dead_points: usize,
    /// Hits over lookups that reached the exact path (0 before any lookup).
    pub hit_ratio: f64,
    /// Counters since start.
    #[serde(flatten)]
    pub counters: CounterStats,
    /// The shared tier, when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedStats>,
}

/// The shared tier's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SharedStats {
    /// Whether Redis answered the last command.
    pub connected: bool,
    /// Entries written to Redis.
    pub published: u64,
    /// Entries received from other replicas (stream and warm-up).
    pub received: u64,
    /// Writes dropped because the queue was full or Redis failed.
    pub dropped: u64,
    /// Reconnections after a failure.
    pub reconnects: u64,
}
