//! Live figures per model that the scorer uses: a latency EWMA fed back from the response
//! paths, and the requests in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One model's live figures.
#[derive(Debug)]
struct ModelStat {
    /// Latency EWMA in milliseconds, as `f64` bits.
    latency_ms: AtomicU64,
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
                        in_flight: AtomicUsize::new(0),
                    },
                )
            })
            .collect();
        Self { models, alpha }
    }

    /// The latency EWMA of `model` in milliseconds (0 for an unknown model).
    pub fn latency_ms(&self, model: &str) -> f64 {
        self.models.get(model).map_or(0.0, |s| f64::from_bits(s.latency_ms.load(Ordering::Relaxed)))
    }

    /// Requests in flight to `model`.
    pub fn in_flight(&self, model: &str) -> usize {
        self.models.get(model).map_or(0, |s| s.in_flight.load(Ordering::Relaxed))
    }

    /// Folds an observed latency of `model` into its EWMA.
    pub fn observe_latency(&self, model: &str, latency: Duration) {
        let Some(stat) = self.models.get(model) else {
            return;
        };
        let observed = latency.as_secs_f64() * 1e3;
        let _ = stat.latency_ms.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            let old = f64::from_bits(bits);
            Some((old + self.alpha * (observed - old)).to_bits())
        });
        metrics::gauge!("semrouter_model_latency_ewma_seconds", "model" => model.to_string()).set(self.latency_ms(model) / 1e3);
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
