//! Counters of what the backend did: kept as atomics for [`VllmStats`] (tests, diagnostics) and
//! published as Prometheus metrics through the `metrics` facade.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::CallError;

/// A snapshot of the backend's counters since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VllmStats {
    /// HTTP attempts to `/v1/embeddings` after start-up (retries and health probes included).
    pub calls: u64,
    /// Texts sent in those attempts.
    pub texts_sent: u64,
    /// Attempts that failed (any [`CallError`](crate::CallError)).
    pub failed_calls: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Requests that went to the fallback (served by it, or refused as `Unavailable`).
    pub fallbacks: u64,
    /// Requests refused at once because the queue was full.
    pub rejected: u64,
    /// Calls abandoned because every caller waiting on them went away.
    pub cancelled: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    calls: AtomicU64,
    texts_sent: AtomicU64,
    failed_calls: AtomicU64,
    retries: AtomicU64,
    fallbacks: AtomicU64,
    rejected: AtomicU64,
    cancelled: AtomicU64,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> VllmStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        VllmStats {
            calls: get(&self.calls),
            texts_sent: get(&self.texts_sent),
            failed_calls: get(&self.failed_calls),
            retries: get(&self.retries),
            fallbacks: get(&self.fallbacks),
            rejected: get(&self.rejected),
            cancelled: get(&self.cancelled),
        }
    }

    /// One HTTP attempt of `texts` texts and how it ended.
    pub(crate) fn attempt(
        &self,
        model: &str,
        texts: usize,
        elapsed: Duration,
        error: Option<&CallError>,
    ) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.texts_sent.fetch_add(texts as u64, Ordering::Relaxed);
        let outcome = match error {
            None => "ok",
            Some(e) => {
                self.failed_calls.fetch_add(1, Ordering::Relaxed);
                e.reason()
            }
        };
        metrics::counter!("semrouter_vllm_calls_total", "model" => model.to_string(), "outcome" => outcome).increment(1);
        metrics::histogram!("semrouter_vllm_call_duration_seconds", "model" => model.to_string())
            .record(elapsed.as_secs_f64());
        metrics::histogram!("semrouter_vllm_batch_size", "model" => model.to_string())
            .record(texts as f64);
    }

    pub(crate) fn retry(&self, model: &str, reason: &'static str) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("semrouter_vllm_retries_total", "model" => model.to_string(), "reason" => reason).increment(1);
    }

    /// A request handed to the fallback: counted, never logged one by one.
    pub(crate) fn fallback(&self, model: &str, mode: &'static str, reason: &'static str) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(
            "semrouter_embedding_fallbacks_total",
            "backend" => "vllm", "model" => model.to_string(), "fallback" => mode, "reason" => reason
        )
        .increment(1);
    }

    pub(crate) fn rejected(&self, model: &str) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("semrouter_vllm_queue_rejections_total", "model" => model.to_string())
            .increment(1);
    }

    pub(crate) fn cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }
}
