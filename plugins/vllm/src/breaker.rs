//! The circuit breaker: closed → open after `failure_threshold` consecutive failed calls →
//! half-open after `open_ms`, when exactly one probe call goes through; its success closes the
//! breaker, its failure opens it again. While open, callers go straight to the fallback instead
//! of waiting on an endpoint that is down. Each change of state is logged once and published as
//! the `semrouter_embedding_breaker_state` gauge.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The breaker's state, as reported by [`VllmEmbedder::breaker_state`](crate::VllmEmbedder::breaker_state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go to the endpoint.
    Closed,
    /// One probe call is testing the endpoint; other calls use the fallback.
    HalfOpen,
    /// The endpoint failed repeatedly; calls use the fallback until the next probe.
    Open,
}

impl BreakerState {
    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }

    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Open => "open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is in flight.
    HalfOpen,
}

/// What a call may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Go ahead (breaker closed).
    Call,
    /// Go ahead as the one probe of a half-open breaker; report its outcome.
    Probe,
    /// Do not call; use the fallback.
    Reject,
}

pub(crate) struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    open_for: Duration,
    model: String,
    fallback: &'static str,
}

impl Breaker {
    pub(crate) fn new(
        threshold: u32,
        open_for: Duration,
        model: String,
        fallback: &'static str,
    ) -> Self {
        metrics::gauge!("semrouter_embedding_breaker_state", "backend" => "vllm", "model" => model.clone()).set(0.0);
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold,
            open_for,
            model,
            fallback,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Critical sections only assign small values, so a poisoned lock still holds a valid state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state as callers see it (an open breaker past its time is still open until probed).
    pub(crate) fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }

    /// True when a call now would be refused: open and not yet due for a probe, or probing.
    pub(crate) fn rejects_now(&self) -> bool {
        match *self.lock() {
            State::Closed { .. } => false,
            State::Open { until } => Instant::now() < until,
            State::HalfOpen => true,
        }
    }

    /// Asks to make a call; an open breaker past its time lets exactly one probe through.
    pub(crate) fn admit(&self) -> Admit {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Admit::Call,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen;
                drop(state);
                self.changed(
                    BreakerState::HalfOpen,
                    "probing the endpoint with one call",
                    false,
                );
                Admit::Probe
            }
            State::Open { .. } | State::HalfOpen => Admit::Reject,
        }
    }

    /// The endpoint answered (even with a request-specific 4xx): it is up.
    pub(crate) fn success(&self) {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => *state = State::Closed { failures: 0 },
            State::HalfOpen => {
                *state = State::Closed { failures: 0 };
                drop(state);
                self.changed(
                    BreakerState::Closed,
                    "the endpoint answered the probe; embeddings come from it again",
                    false,
                );
            }
            // A call admitted before the breaker opened: one success among failures is not
            // enough to close it; the probe decides.
            State::Open { .. } => {}
        }
    }

    /// A call failed in a way that says the endpoint is unwell.
    pub(crate) fn failure(&self, reason: &str) {
        let mut state = self.lock();
        match *state {
            State::Closed { failures } => {
                let failures = failures + 1;
                if failures >= self.threshold {
                    *state = State::Open {
                        until: Instant::now() + self.open_for,
                    };
                    drop(state);
                    self.changed(
                        BreakerState::Open,
                        &format!("{failures} consecutive calls failed (last: {reason}); embeddings come from the `{}` fallback", self.fallback),
                        true,
                    );
                } else {
                    *state = State::Closed { failures };
                }
            }
            State::HalfOpen => {
                *state = State::Open {
                    until: Instant::now() + self.open_for,
                };
                drop(state);
                self.changed(
                    BreakerState::Open,
                    &format!(
                        "the probe failed ({reason}); still using the `{}` fallback",
                        self.fallback
                    ),
                    false,
                );
            }
            State::Open { .. } => {}
        }
    }

    /// The probe's caller went away before an answer: let the next call probe at once.
    pub(crate) fn probe_abandoned(&self) {
        let mut state = self.lock();
        if let State::HalfOpen = *state {
            *state = State::Open {
                until: Instant::now(),
            };
            drop(state);
            self.changed(
                BreakerState::Open,
                "the probe was cancelled by its caller; the next call probes",
                false,
            );
        }
    }

    /// Logs a change of state once and updates the gauge: never per request.
    /// Publishes a change of state. The fallback's start (closed to open) and end (half-open to
    /// closed) are logged at warn and info, once each per outage; the probing cycle in between
    /// (open, half-open, open again every `open_ms`) only at debug.
    fn changed(&self, to: BreakerState, why: &str, outage_began: bool) {
        metrics::gauge!("semrouter_embedding_breaker_state", "backend" => "vllm", "model" => self.model.clone()).set(to.gauge());
        match to {
            BreakerState::Open if outage_began => {
                tracing::warn!(model = %self.model, state = to.as_str(), "vLLM embeddings circuit breaker open: {why}")
            }
            BreakerState::Open => {
                tracing::debug!(model = %self.model, state = to.as_str(), "vLLM embeddings circuit breaker stays open: {why}")
            }
            BreakerState::HalfOpen => {
                tracing::debug!(model = %self.model, state = to.as_str(), "vLLM embeddings circuit breaker half-open: {why}")
            }
            BreakerState::Closed => {
                tracing::info!(model = %self.model, state = to.as_str(), "vLLM embeddings circuit breaker closed: {why}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_ms: u64) -> Breaker {
        Breaker::new(3, Duration::from_millis(open_ms), "m".into(), "degraded")
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker(10_000);
        b.failure("x");
        b.failure("x");
        b.success();
        b.failure("x");
        b.failure("x");
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "a success resets the count"
        );
        assert_eq!(b.admit(), Admit::Call);
        b.failure("x");
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.rejects_now());
        assert_eq!(b.admit(), Admit::Reject);
        b.success();
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "a straggler's success does not close it"
        );
    }

    #[test]
    fn one_probe_after_open_ms_closes_or_reopens() {
        let b = breaker(20);
        for _ in 0..3 {
            b.failure("x");
        }
        std::thread::sleep(Duration::from_millis(30));
        assert!(!b.rejects_now(), "due for a probe");
        assert_eq!(b.admit(), Admit::Probe);
        assert_eq!(b.admit(), Admit::Reject, "only one probe at a time");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.failure("x");
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(), Admit::Reject, "open again for open_ms");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(b.admit(), Admit::Probe);
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(), Admit::Call);
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let b = breaker(20);
        for _ in 0..3 {
            b.failure("x");
        }
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(b.admit(), Admit::Probe);
        b.probe_abandoned();
        assert_eq!(b.admit(), Admit::Probe);
    }
}
