//! Live figures per model that the scorer uses: a latency EWMA and the p95 of the latest
//! answers, fed back from the response paths, and the requests in flight.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

/// Answers per model the p95 is taken over: enough for a stable tail, few enough to follow a
/// change within minutes at modest traffic.
const LATENCY_WINDOW: usize = 200;

/// One model's live figures.
#[derive(Debug)]
struct ModelStat {
    /// Latency EWMA in milliseconds, as `f64` bits.
    latency_ms: AtomicU64,
    /// The seed: what the p95 reports before the first answer.
    prior_ms: f64,
    /// The latest observed latencies (ms), oldest first.
    recent: Mutex<VecDeque<f64>>,
    in_flight: AtomicUsize,
}

/// Live figures of every configured model, shared by all front ends.
#[derive(Debug)]
pub struct ModelStats {
    models: HashMap<String, ModelStat>,
    alpha: f64,
}

impl ModelStats {
    /// Stats seeded with each model's latency prior (milliseconds); `alpha` is the weight of
    /// each new observation in the EWMA.
    pub fn new(priors: impl IntoIterator<Item = (String, f64)>, alpha: f64) -> Self {
        let models = priors
            .into_iter()
            .map(|(name, prior)| {
                (
                    name,
                    ModelStat {
                        latency_ms: AtomicU64::new(prior.to_bits()),
                        prior_ms: prior,
                        recent: Mutex::new(VecDeque::with_capacity(LATENCY_WINDOW)),
                        in_flight: AtomicUsize::new(0),
                    },
                )
            })
            .collect();
        Self { models, alpha }
    }

    /// The latency EWMA of `model` in milliseconds (0 for an unknown model).
    pub fn latency_ms(&self, model: &str) -> f64 {
        self.models.get(model).map_or(0.0, |s| {
            f64::from_bits(s.latency_ms.load(Ordering::Relaxed))
        })
    }

    /// The 95th percentile of `model`'s latest observed latencies in milliseconds (its prior
    /// before the first answer; 0 for an unknown model).
    pub fn latency_p95_ms(&self, model: &str) -> f64 {
        let Some(stat) = self.models.get(model) else {
            return 0.0;
        };
        let mut latencies: Vec<f64> = stat.recent.lock().iter().copied().collect();
        if latencies.is_empty() {
            return stat.prior_ms;
        }
        latencies.sort_unstable_by(f64::total_cmp);
        latencies[((latencies.len() - 1) as f64 * 0.95).round() as usize]
    }

    /// Requests in flight to `model`.
    pub fn in_flight(&self, model: &str) -> usize {
        self.models
            .get(model)
            .map_or(0, |s| s.in_flight.load(Ordering::Relaxed))
    }

    /// Folds an observed latency of `model` into its EWMA.
    pub fn observe_latency(&self, model: &str, latency: Duration) {
        let Some(stat) = self.models.get(model) else {
            return;
        };
        let observed = latency.as_secs_f64() * 1e3;
        {
            let mut recent = stat.recent.lock();
            if recent.len() == LATENCY_WINDOW {
                recent.pop_front();
            }
            recent.push_back(observed);
        }
        let _ = stat
            .latency_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                Some((old + self.alpha * (observed - old)).to_bits())
            });
        metrics::gauge!("semrouter_model_latency_ewma_seconds", "model" => model.to_string())
            .set(self.latency_ms(model) / 1e3);
    }

    /// Counts a request to `model` in flight until the guard drops.
    pub fn start(self: &Arc<Self>, model: &str) -> InFlight {
        if let Some(stat) = self.models.get(model) {
            stat.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        InFlight {
            stats: Arc::clone(self),
            model: model.to_string(),
        }
    }
}

/// A request in flight to a model; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight {
    stats: Arc<ModelStats>,
    model: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(stat) = self.stats.models.get(&self.model) {
            stat.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_moves_towards_observations_from_the_prior() {
        let stats = ModelStats::new([("m".to_string(), 1000.0)], 0.5);
        assert_eq!(stats.latency_ms("m"), 1000.0);
        stats.observe_latency("m", Duration::from_millis(200));
        assert_eq!(stats.latency_ms("m"), 600.0);
        stats.observe_latency("m", Duration::from_millis(200));
        assert_eq!(stats.latency_ms("m"), 400.0);
        stats.observe_latency("unknown", Duration::from_millis(1));
        assert_eq!(stats.latency_ms("unknown"), 0.0);
    }

    #[test]
    fn the_p95_follows_the_latest_answers_from_the_prior() {
        let stats = ModelStats::new([("m".to_string(), 900.0)], 0.2);
        assert_eq!(stats.latency_p95_ms("m"), 900.0, "no answer yet: the prior");
        for i in 1..=100 {
            stats.observe_latency("m", Duration::from_millis(i * 10));
        }
        assert_eq!(stats.latency_p95_ms("m"), 950.0);
        // A window later only the new, fast answers count.
        for _ in 0..LATENCY_WINDOW {
            stats.observe_latency("m", Duration::from_millis(50));
        }
        assert_eq!(stats.latency_p95_ms("m"), 50.0);
        assert_eq!(stats.latency_p95_ms("unknown"), 0.0);
    }

    #[test]
    fn in_flight_counts_until_the_guard_drops() {
        let stats = Arc::new(ModelStats::new([("m".to_string(), 1.0)], 0.5));
        let a = stats.start("m");
        let b = stats.start("m");
        assert_eq!(stats.in_flight("m"), 2);
        drop(a);
        assert_eq!(stats.in_flight("m"), 1);
        drop(b);
        assert_eq!(stats.in_flight("m"), 0);
    }
}
