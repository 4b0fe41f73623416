//! The decisions the dashboard shows: a bounded ring of what each front end decided, newest
//! last, and the distribution over a recent window computed from it.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::DashboardConfig;

/// Longest prompt excerpt kept with `dashboard.show_prompts`, in characters.
const PROMPT_CHARS: usize = 200;

/// One decision as the live view lists it: what was decided, never what was asked (unless
/// `dashboard.show_prompts`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord {
    /// When it was decided, Unix milliseconds.
    pub at_ms: u64,
    /// `rest`, `proxy` or `extproc`.
    pub front_end: &'static str,
    /// `route`, `block`, `mask`, or `cache` for an answer served from the cache.
    pub action: &'static str,
    /// The model chosen (or whose answer the cache served); absent when blocked.
    pub model: Option<String>,
    /// The top category; absent for pass-through requests and exact cache hits.
    pub category: Option<&'static str>,
    /// `off`, the effort, or `on`; absent when no reasoning was planned.
    pub reasoning: Option<&'static str>,
    /// `hit`, `miss` or `skipped`; absent with the cache off.
    pub cache: Option<&'static str>,
    /// `exact` or `semantic` on a hit.
    pub cache_kind: Option<&'static str>,
    /// Time to decide (or to find the cached answer), microseconds.
    pub latency_us: u64,
    /// The policy rule that decided.
    pub policy: Option<String>,
    /// Flags the policy set.
    pub flags: Vec<String>,
    /// The last user message, cut short; only with `dashboard.show_prompts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// How the decisions of a window were spread.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Distribution {
    /// Decisions in the window.
    pub decisions: usize,
    /// Counts by chosen model (`none` when blocked).
    pub by_model: BTreeMap<String, usize>,
    /// Counts by category (`none` when there was none).
    pub by_category: BTreeMap<String, usize>,
    /// Counts by reasoning label (`none` when none was planned).
    pub by_reasoning: BTreeMap<String, usize>,
    /// Counts by action.
    pub by_action: BTreeMap<String, usize>,
    /// Counts by front end.
    pub by_front_end: BTreeMap<String, usize>,
    /// Answers served from the cache.
    pub cache_hits: usize,
    /// Decisions the cache was consulted for (hits and misses).
    pub cache_lookups: usize,
    /// Median decision latency, microseconds.
    pub latency_p50_us: u64,
    /// 99th percentile decision latency, microseconds.
    pub latency_p99_us: u64,
}

/// The ring of recent decisions, shared by every front end.
pub struct DecisionFeed {
    ring: Mutex<VecDeque<DecisionRecord>>,
    capacity: usize,
    recent: usize,
    window: Duration,
    show_prompts: bool,
}

impl DecisionFeed {
    /// An empty feed sized by `config`.
    pub fn new(config: &DashboardConfig) -> Self {
        Self {
            ring: Mutex::new(VecDeque::with_capacity(config.history.min(4096))),
            capacity: config.history,
            recent: config.recent_decisions,
            window: Duration::from_secs(config.window_s),
            show_prompts: config.show_prompts,
        }
    }

    /// Whether records keep a prompt excerpt.
    pub fn shows_prompts(&self) -> bool {
        self.show_prompts
    }

    /// The window the distribution covers.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The excerpt of the prompt `text` gives, which a record may keep: `None`, and `text` not
    /// called, unless prompts are shown.
    pub fn excerpt(&self, text: impl FnOnce() -> Option<String>) -> Option<String> {
        if !self.show_prompts {
            return None;
        }
        text().map(|t| match t.char_indices().nth(PROMPT_CHARS) {
            Some((cut, _)) => format!("{}\u{2026}", &t[..cut]),
            None => t,
        })
    }

    /// Adds a decision, dropping the oldest when full.
    pub fn record(&self, record: DecisionRecord) {
        let mut ring = self.ring.lock();
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(record);
    }

    /// The newest decisions, newest first, at most `dashboard.recent_decisions`.
    pub fn recent(&self) -> Vec<DecisionRecord> {
        self.ring
            .lock()
            .iter()
            .rev()
            .take(self.recent)
            .cloned()
            .collect()
    }

    /// The distribution of the decisions made within the window before `now_ms`.
    pub fn distribution(&self, now_ms: u64) -> Distribution {
        let since = now_ms.saturating_sub(self.window.as_millis() as u64);
        let mut out = Distribution::default();
        let mut latencies = Vec::new();
        {
            let ring = self.ring.lock();
            for r in ring.iter().rev().take_while(|r| r.at_ms >= since) {
                out.decisions += 1;
                *out.by_model
                    .entry(r.model.clone().unwrap_or_else(|| "none".into()))
                    .or_default() += 1;
                *out.by_category
                    .entry(r.category.unwrap_or("none").to_string())
                    .or_default() += 1;
                *out.by_reasoning
                    .entry(r.reasoning.unwrap_or("none").to_string())
                    .or_default() += 1;
                *out.by_action.entry(r.action.to_string()).or_default() += 1;
                *out.by_front_end.entry(r.front_end.to_string()).or_default() += 1;
                match r.cache {
                    Some("hit") => {
                        out.cache_hits += 1;
                        out.cache_lookups += 1;
                    }
                    Some("miss") => out.cache_lookups += 1,
                    _ => {}
                }
                latencies.push(r.latency_us);
            }
        }
        latencies.sort_unstable();
        let quantile = |q: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        out.latency_p50_us = quantile(0.5);
        out.latency_p99_us = quantile(0.99);
        out
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        at_ms: u64,
        model: &str,
        cache: Option<&'static str>,
        latency_us: u64,
    ) -> DecisionRecord {
        DecisionRecord {
            at_ms,
            front_end: "rest",
            action: if cache == Some("hit") {
                "cache"
            } else {
                "route"
            },
            model: Some(model.into()),
            category: Some("math"),
            reasoning: Some("high"),
            cache,
            cache_kind: None,
            latency_us,
            policy: None,
            flags: Vec::new(),
            prompt: None,
        }
    }

    fn feed(history: usize, recent: usize, show_prompts: bool) -> DecisionFeed {
        DecisionFeed::new(&DashboardConfig {
            history,
            recent_decisions: recent,
            window_s: 10,
            show_prompts,
            ..DashboardConfig::default()
        })
    }

    #[test]
    fn the_ring_keeps_the_newest_and_lists_them_newest_first() {
        let feed = feed(3, 2, false);
        for (i, model) in ["a", "b", "c", "d"].into_iter().enumerate() {
            feed.record(record(i as u64, model, None, 1));
        }
        let recent: Vec<_> = feed
            .recent()
            .into_iter()
            .map(|r| r.model.unwrap())
            .collect();
        assert_eq!(recent, ["d", "c"]);
        assert_eq!(feed.distribution(10).decisions, 3, "a fell out of the ring");
    }

    #[test]
    fn the_distribution_counts_only_the_window() {
        let feed = feed(100, 10, false);
        feed.record(record(1_000, "old", None, 5));
        for (i, latency) in (1..=100).enumerate() {
            let model = if i % 4 == 0 { "big" } else { "small" };
            let cache = if i % 2 == 0 {
                Some("hit")
            } else {
                Some("miss")
            };
            feed.record(record(20_000 + i as u64, model, cache, latency));
        }
        let d = feed.distribution(25_000);
        assert_eq!(d.decisions, 100, "`old` fell out of the full ring");
        assert!(!d.by_model.contains_key("old"));
        assert_eq!((d.by_model["big"], d.by_model["small"]), (25, 75));
        assert_eq!((d.cache_hits, d.cache_lookups), (50, 100));
        assert_eq!(
            feed.distribution(40_000).decisions,
            0,
            "all older than the 10 s window"
        );
        assert_eq!(d.by_action["cache"], d.cache_hits);
        assert_eq!(d.latency_p50_us, 51);
        assert_eq!(d.latency_p99_us, 99);
    }

    #[test]
    fn prompts_are_kept_only_when_shown_and_cut_short() {
        assert_eq!(feed(10, 10, false).excerpt(|| Some("secret".into())), None);
        let shown = feed(10, 10, true);
        assert_eq!(
            shown.excerpt(|| Some("hello".into())).as_deref(),
            Some("hello")
        );
        let long = "é".repeat(300);
        let cut = shown.excerpt(|| Some(long)).unwrap();
        assert_eq!(cut.chars().count(), PROMPT_CHARS + 1);
        assert!(cut.ends_with('\u{2026}'));
    }
}
