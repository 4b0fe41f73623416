//! The bounded queue between callers and the dispatcher: one entry per text, accepted whole
//! per request or refused at once when full, so load is shed instead of growing latency.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use semrouter_embedder::{BackendError, Encoded};
use tokio::sync::{oneshot, Notify};

use crate::error::CallError;

/// One text waiting for a call.
pub(crate) struct Job {
    pub text: Arc<str>,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Result<Encoded, CallError>>,
}

struct State {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// What the head of the queue holds.
pub(crate) enum Front {
    /// A job that has waited since this instant.
    Job(Instant),
    Empty,
    Closed,
}

pub(crate) struct Queue {
    state: Mutex<State>,
    /// Wakes the dispatcher on every push and on close (a stored permit covers a push that
    /// lands between its check and its wait).
    pub(crate) wake: Notify,
    capacity: usize,
    model: String,
}

impl Queue {
    pub(crate) fn new(capacity: usize, model: String) -> Self {
        Self {
            state: Mutex::new(State {
                jobs: VecDeque::with_capacity(capacity),
                closed: false,
            }),
            wake: Notify::new(),
            capacity,
            model,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections are VecDeque operations that cannot leave it inconsistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Enqueues all of `jobs` or none. A request larger than the capacity is accepted only
    /// into an empty queue, so that it can run at all.
    pub(crate) fn push_all(&self, jobs: Vec<Job>) -> Result<(), BackendError> {
        let mut state = self.lock();
        if state.closed {
            return Err(BackendError::ShuttingDown);
        }
        if !state.jobs.is_empty() && state.jobs.len() + jobs.len() > self.capacity {
            return Err(BackendError::Overloaded {
                capacity: self.capacity,
            });
        }
        state.jobs.extend(jobs);
        metrics::gauge!("semrouter_vllm_queue_depth", "model" => self.model.clone())
            .set(state.jobs.len() as f64);
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// The oldest live job's enqueue time; jobs whose caller went away are dropped on the way.
    pub(crate) fn front(&self) -> Front {
        let mut state = self.lock();
        while state.jobs.front().is_some_and(|job| job.reply.is_closed()) {
            state.jobs.pop_front();
        }
        match state.jobs.front() {
            Some(job) => Front::Job(job.enqueued),
            None if state.closed => Front::Closed,
            None => Front::Empty,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Up to `max` live jobs, oldest first.
    pub(crate) fn take(&self, max: usize) -> Vec<Job> {
        let mut state = self.lock();
        let mut batch = Vec::with_capacity(max.min(state.jobs.len()));
        while batch.len() < max {
            match state.jobs.pop_front() {
                Some(job) if job.reply.is_closed() => continue,
                Some(job) => batch.push(job),
                None => break,
            }
        }
        metrics::gauge!("semrouter_vllm_queue_depth", "model" => self.model.clone())
            .set(state.jobs.len() as f64);
        batch
    }

    /// Refuses new work and drops what waits (its callers see `ShuttingDown`).
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.jobs.clear();
        drop(state);
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(text: &str) -> (Job, oneshot::Receiver<Result<Encoded, CallError>>) {
        let (reply, rx) = oneshot::channel();
        (
            Job {
                text: Arc::from(text),
                enqueued: Instant::now(),
                reply,
            },
            rx,
        )
    }

    #[test]
    fn full_queue_refuses_the_whole_request_at_once() {
        let q = Queue::new(2, "m".into());
        let (a, _ra) = job("a");
        let (b, _rb) = job("b");
        q.push_all(vec![a]).unwrap();
        let (c, _rc) = job("c");
        assert_eq!(
            q.push_all(vec![b, c]).unwrap_err(),
            BackendError::Overloaded { capacity: 2 }
        );
        assert_eq!(q.len(), 1, "nothing of the refused request was queued");
    }

    #[test]
    fn an_oversized_request_runs_alone() {
        let q = Queue::new(2, "m".into());
        let jobs: Vec<_> = (0..5).map(|_| job("x")).collect();
        let (jobs, _receivers): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        q.push_all(jobs).unwrap();
        assert_eq!(q.take(3).len(), 3);
        assert_eq!(q.take(3).len(), 2);
    }

    #[test]
    fn abandoned_jobs_are_never_sent() {
        let q = Queue::new(8, "m".into());
        let (a, ra) = job("a");
        let (b, _rb) = job("b");
        let (c, rc) = job("c");
        q.push_all(vec![a, b, c]).unwrap();
        drop(ra);
        drop(rc);
        assert!(matches!(q.front(), Front::Job(_)));
        let batch = q.take(8);
        assert_eq!(
            batch.iter().map(|j| &*j.text).collect::<Vec<_>>(),
            vec!["b"]
        );
    }

    #[test]
    fn close_drops_waiting_work() {
        let q = Queue::new(8, "m".into());
        let (a, ra) = job("a");
        q.push_all(vec![a]).unwrap();
        q.close();
        assert!(matches!(q.front(), Front::Closed));
        assert!(ra.blocking_recv().is_err(), "the caller learns at once");
        let (b, _rb) = job("b");
        assert_eq!(q.push_all(vec![b]).unwrap_err(), BackendError::ShuttingDown);
    }
}
