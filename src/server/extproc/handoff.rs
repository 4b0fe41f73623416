//! Routed requests whose answers a second ext_proc stream observes. With an observe-only
//! filter (`observability_mode`) for the response phases, Envoy sends the answer to semrouter
//! without waiting for a reply, so observing it costs the client nothing. The routing stream
//! then sees no response; it leaves what the answer is checked against here, under a fresh
//! id it adds to the request as header [`EXCHANGE_HEADER`], and the observer stream, which sees
//! the request headers as the router filter forwards them, claims it by that id.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::server::routing::PendingWrite;

/// The request header that carries the hand-off id from the routing filter to the observer.
pub const EXCHANGE_HEADER: &str = "x-semrouter-exchange";

/// How long a hand-off waits to be claimed. The observer's request headers follow the routing
/// decision within milliseconds; one unclaimed this long has no observer (a filter missing
/// from the Envoy config) and is dropped.
const UNCLAIMED_TTL: Duration = Duration::from_secs(10);

/// What the observer needs of a routed request.
pub struct Handoff {
    /// The model it went to.
    pub model: String,
    /// How to store its answer, when it may be stored.
    pub write: Option<PendingWrite>,
    /// When it was released to the upstream.
    pub sent: Instant,
    /// The client asked for SSE.
    pub stream: bool,
}

/// Hand-offs waiting for their observer.
pub struct Handoffs {
    inner: Mutex<Waiting>,
    /// Keys the ids: unpredictable, so a client cannot claim another request's hand-off by
    /// sending the header itself.
    keys: RandomState,
    next: AtomicU64,
}

#[derive(Default)]
struct Waiting {
    by_id: HashMap<String, Handoff>,
    /// Ids in the order they were left, for dropping the unclaimed.
    order: VecDeque<(Instant, String)>,
}

impl Default for Handoffs {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Waiting::default()),
            keys: RandomState::new(),
            next: AtomicU64::new(0),
        }
    }
}

impl Handoffs {
    /// Leaves `handoff` for its observer; returns the id to send as [`EXCHANGE_HEADER`].
    pub fn put(&self, handoff: Handoff) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{:016x}{:016x}",
            self.keys.hash_one(n),
            self.keys.hash_one(!n)
        );
        let now = Instant::now();
        let mut waiting = self.inner.lock();
        while let Some((at, _)) = waiting.order.front() {
            if now.duration_since(*at) < UNCLAIMED_TTL {
                break;
            }
            if let Some((_, old)) = waiting.order.pop_front() {
                if waiting.by_id.remove(&old).is_some() {
                    metrics::counter!("semrouter_extproc_handoffs_unclaimed_total").increment(1);
                }
            }
        }
        waiting.by_id.insert(id.clone(), handoff);
        waiting.order.push_back((now, id.clone()));
        id
    }

    /// Claims the hand-off left under `id`, once.
    pub fn take(&self, id: &str) -> Option<Handoff> {
        self.inner.lock().by_id.remove(id)
    }

    /// Hand-offs waiting now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.inner.lock().by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff(model: &str) -> Handoff {
        Handoff {
            model: model.into(),
            write: None,
            sent: Instant::now(),
            stream: false,
        }
    }

    #[test]
    fn a_handoff_is_claimed_once_by_its_own_id() {
        let handoffs = Handoffs::default();
        let a = handoffs.put(handoff("a"));
        let b = handoffs.put(handoff("b"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(handoffs.take("0123456789abcdef0123456789abcdef").is_none());
        assert_eq!(handoffs.take(&b).map(|h| h.model).as_deref(), Some("b"));
        assert!(handoffs.take(&b).is_none(), "claimed once");
        assert_eq!(handoffs.waiting(), 1);
    }

    #[test]
    fn unclaimed_handoffs_are_dropped_after_their_time() {
        let handoffs = Handoffs::default();
        let stale = handoffs.put(handoff("stale"));
        let claimed = handoffs.put(handoff("claimed"));
        assert!(handoffs.take(&claimed).is_some());
        // Age both entries past the limit, as if the observer never came.
        for (at, _) in handoffs.inner.lock().order.iter_mut() {
            *at = at
                .checked_sub(UNCLAIMED_TTL)
                .expect("the machine has been up longer than the limit");
        }
        let fresh = handoffs.put(handoff("fresh"));
        assert!(handoffs.take(&stale).is_none(), "dropped");
        assert_eq!(handoffs.waiting(), 1);
        assert!(handoffs.take(&fresh).is_some());
    }
}
