//! The bounded queue between request handlers and inference workers.
//!
//! Handlers push tokenised texts and await a reply; each worker thread owns one session and
//! takes a batch whenever it is free. So requests keep arriving while a batch runs, and the
//! texts that arrived meanwhile share the next forward pass. A batch starts from the oldest
//! waiting text and takes others of similar length while the padded token budget allows,
//! which bounds padding waste. A full queue refuses work at once instead of growing latency.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use semrouter_embedder::BackendError;
use tokio::sync::oneshot;

use crate::session::ModelSession;
use crate::tokenize::Tokens;

/// Tokens of length difference a batch accepts on top of `max_length_ratio`, so that very
/// short texts (a few tokens) still batch together.
const LENGTH_ALLOWANCE: usize = 8;

/// What a worker sends back for one text.
#[derive(Debug)]
pub(crate) struct Done {
    pub values: Vec<f32>,
    pub queue: Duration,
    pub infer: Duration,
}

/// One text waiting for inference.
pub(crate) struct Job {
    pub tokens: Tokens,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Result<Done, BackendError>>,
}

/// How big a forward pass may get.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub max_batch_size: usize,
    pub max_batch_tokens: usize,
    pub max_length_ratio: f32,
}

struct State {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// A bounded multi-producer, multi-worker queue that hands out length-grouped batches.
pub(crate) struct BatchQueue {
    state: Mutex<State>,
    wake: Condvar,
    capacity: usize,
    limits: BatchLimits,
    model: String,
}

impl BatchQueue {
    pub(crate) fn new(capacity: usize, limits: BatchLimits, model: String) -> Self {
        Self {
            state: Mutex::new(State {
                jobs: VecDeque::with_capacity(capacity),
                closed: false,
            }),
            wake: Condvar::new(),
            capacity,
            limits,
            model,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent (every critical
        // section is a few VecDeque operations), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Enqueues all of `jobs` or none: a request is either accepted whole or refused at once.
    /// A request larger than the capacity is accepted only into an empty queue.
    pub(crate) fn push_all(&self, jobs: Vec<Job>) -> Result<(), BackendError> {
        let mut state = self.lock();
        if state.closed {
            return Err(BackendError::ShuttingDown);
        }
        if !state.jobs.is_empty() && state.jobs.len() + jobs.len() > self.capacity {
            metrics::counter!("semrouter_onnx_queue_rejections_total", "model" => self.model.clone()).increment(1);
            return Err(BackendError::Overloaded { capacity: self.capacity });
        }
        let many = jobs.len() > 1;
        state.jobs.extend(jobs);
        metrics::gauge!("semrouter_onnx_queue_depth", "model" => self.model.clone()).set(state.jobs.len() as f64);
        drop(state);
        if many {
            self.wake.notify_all();
        } else {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Blocks until a batch is available; `None` once the queue is closed and drained.
    pub(crate) fn next_batch(&self) -> Option<Vec<Job>> {
        let mut state = self.lock();
        loop {
            while let Some(first) = state.jobs.pop_front() {
                if first.reply.is_closed() {
                    continue; // the caller went away: never spend inference on it
                }
                let batch = self.fill_batch(&mut state.jobs, first);
                metrics::gauge!("semrouter_onnx_queue_depth", "model" => self.model.clone()).set(state.jobs.len() as f64);
                let more = !state.jobs.is_empty();
                drop(state);
                if more {
                    self.wake.notify_one();
                }
                return Some(batch);
            }
            if state.closed {
                return None;
            }
            state = self.wake.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Starting from `first`, takes waiting jobs of similar length while the limits allow.
    fn fill_batch(&self, jobs: &mut VecDeque<Job>, first: Job) -> Vec<Job> {
        let limits = self.limits;
        let mut shortest = first.tokens.len().max(1);
        let mut longest = shortest;
        let mut batch = vec![first];
        let mut i = 0;
        while i < jobs.len() && batch.len() < limits.max_batch_size {
            if jobs[i].reply.is_closed() {
                jobs.remove(i);
                continue;
            }
            let len = jobs[i].tokens.len().max(1);
            let (lo, hi) = (shortest.min(len), longest.max(len));
            let within_budget = (batch.len() + 1) * hi <= limits.max_batch_tokens;
            let similar = hi as f32 <= lo as f32 * limits.max_length_ratio + LENGTH_ALLOWANCE as f32;
            if within_budget && similar {
                if let Some(job) = jobs.remove(i) {
                    batch.push(job);
                }
                shortest = lo;
                longest = hi;
            } else {
                i += 1;
            }
        }
        batch
    }

    /// Stops accepting work; workers finish what is queued and exit.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }
}

/// Starts a worker thread that owns `session` and serves batches from `queue` until it closes.
pub(crate) fn spawn_worker(name: String, queue: Arc<BatchQueue>, mut session: ModelSession) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(move || {
        while let Some(batch) = queue.next_batch() {
            let started = Instant::now();
            let tokens: Vec<&Tokens> = batch.iter().map(|job| &job.tokens).collect();
            // A panic inside the model must not kill the worker: its callers would wait forever.
            let result = catch_unwind(AssertUnwindSafe(|| session.run(&tokens)))
                .unwrap_or_else(|_| Err("the model panicked while running a batch".to_string()));
            let infer = started.elapsed();
            metrics::histogram!("semrouter_onnx_batch_size", "model" => queue.model.clone()).record(batch.len() as f64);
            match result {
                Ok(rows) if rows.len() == batch.len() => {
                    for (job, values) in batch.into_iter().zip(rows) {
                        let queue_time = started.saturating_duration_since(job.enqueued);
                        // The caller may have gone away meanwhile; nothing to do then.
                        let _ = job.reply.send(Ok(Done {
                            values,
                            queue: queue_time,
                            infer,
                        }));
                    }
                }
                other => {
                    let reason = match other {
                        Err(reason) => reason,
                        Ok(rows) => format!("the model returned {} rows for a batch of {}", rows.len(), batch.len()),
                    };
                    tracing::error!(model = %queue.model, %reason, "inference failed");
                    for job in batch {
                        let _ = job.reply.send(Err(BackendError::Inference(reason.clone())));
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(len: usize) -> (Job, oneshot::Receiver<Result<Done, BackendError>>) {
        let (tx, rx) = oneshot::channel();
        let tokens = Tokens {
            ids: vec![1; len],
            type_ids: vec![0; len],
        };
        (
            Job {
                tokens,
                enqueued: Instant::now(),
                reply: tx,
            },
            rx,
        )
    }

    fn queue(capacity: usize, max_batch_size: usize, max_batch_tokens: usize) -> BatchQueue {
        let limits = BatchLimits {
            max_batch_size,
            max_batch_tokens,
            max_length_ratio: 2.0,
        };
        BatchQueue::new(capacity, limits, "test".into())
    }

    #[test]
    fn full_queue_refuses_at_once() {
        let q = queue(2, 8, 1024);
        let (a, _ra) = job(4);
        let (b, _rb) = job(4);
        let (c, _rc) = job(4);
        q.push_all(vec![a, b]).unwrap();
        assert_eq!(q.push_all(vec![c]), Err(BackendError::Overloaded { capacity: 2 }));
    }

    #[test]
    fn batch_groups_similar_lengths_and_leaves_the_rest() {
        let q = queue(16, 8, 1024);
        let mut receivers = Vec::new();
        let mut jobs = Vec::new();
        for len in [10, 200, 12, 9, 150] {
            let (j, r) = job(len);
            jobs.push(j);
            receivers.push(r);
        }
        q.push_all(jobs).unwrap();
        let first: Vec<usize> = q.next_batch().unwrap().iter().map(|j| j.tokens.len()).collect();
        assert_eq!(first, vec![10, 12, 9]);
        let second: Vec<usize> = q.next_batch().unwrap().iter().map(|j| j.tokens.len()).collect();
        assert_eq!(second, vec![200, 150]);
    }

    #[test]
    fn batch_respects_token_budget_and_size() {
        let q = queue(16, 3, 40);
        let mut receivers = Vec::new();
        let mut jobs = Vec::new();
        for _ in 0..6 {
            let (j, r) = job(10);
            jobs.push(j);
            receivers.push(r);
        }
        q.push_all(jobs).unwrap();
        assert_eq!(q.next_batch().unwrap().len(), 3);
        assert_eq!(q.next_batch().unwrap().len(), 3);
        let q = queue(16, 8, 25);
        let (a, _ra) = job(10);
        let (b, _rb) = job(10);
        let (c, _rc) = job(10);
        q.push_all(vec![a, b, c]).unwrap();
        assert_eq!(q.next_batch().unwrap().len(), 2, "3 x 10 tokens exceed a budget of 25");
    }

    #[test]
    fn abandoned_jobs_are_skipped() {
        let q = queue(16, 8, 1024);
        let (a, ra) = job(5);
        let (b, _rb) = job(5);
        drop(ra);
        q.push_all(vec![a, b]).unwrap();
        assert_eq!(q.next_batch().unwrap().len(), 1);
    }

    #[test]
    fn closed_queue_drains_then_stops() {
        let q = queue(16, 1, 1024);
        let (a, _ra) = job(5);
        q.push_all(vec![a]).unwrap();
        q.close();
        assert!(q.next_batch().is_some());
        assert!(q.next_batch().is_none());
        let (b, _rb) = job(5);
        assert_eq!(q.push_all(vec![b]), Err(BackendError::ShuttingDown));
    }
}
