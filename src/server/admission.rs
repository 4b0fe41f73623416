//! The front door's admission limit (`server.max_in_flight`): at most that many requests are
//! worked on at once across the REST decision endpoints, the proxy and ext_proc; one more is
//! refused at once with 429 and `Retry-After` rather than queued, so that the admitted ones
//! keep their latency under overload. A slot is taken once the request's body has been read
//! (a slow client holds none, and a 429 leaves its connection usable) and held while the
//! router works on it: for the proxy until the upstream's reply head, for ext_proc during the
//! decision.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::error::ApiError;

/// Counts the requests being worked on and refuses those beyond the limit.
#[derive(Debug)]
pub struct Admission {
    limit: usize,
    in_flight: Arc<AtomicUsize>,
}

/// One admitted request; its slot is released when this drops (also on an error or a client
/// that goes away mid-request).
#[derive(Debug)]
pub struct Admitted {
    in_flight: Arc<AtomicUsize>,
}

impl Admission {
    /// A limit of `limit` requests at once.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Admits one request, or 429 `overloaded` at once when `limit` are already in flight.
    /// `front_end` labels the rejection metric (`rest`, `proxy`, `extproc`).
    pub fn admit(&self, front_end: &'static str) -> Result<Admitted, ApiError> {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            metrics::counter!("semrouter_admission_rejections_total", "front_end" => front_end)
                .increment(1);
            return Err(ApiError::overloaded(self.limit));
        }
        Ok(Admitted {
            in_flight: Arc::clone(&self.in_flight),
        })
    }

    /// The limit (`server.max_in_flight`).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError as _;

    #[test]
    fn the_request_beyond_the_limit_is_refused_and_a_released_slot_is_reused() {
        let admission = Admission::new(2);
        let a = admission.admit("rest").unwrap();
        let _b = admission.admit("rest").unwrap();
        let refused = admission.admit("rest").unwrap_err();
        assert_eq!(refused.status_code().as_u16(), 429);
        assert_eq!(refused.retry_after_s(), Some(1));
        assert_eq!(refused.code(), "overloaded");
        assert_eq!(admission.in_flight(), 2);
        drop(a);
        assert_eq!(admission.in_flight(), 1);
        assert!(admission.admit("proxy").is_ok());
    }
}
