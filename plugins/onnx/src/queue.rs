//! The bounded queue between request handlers and inference workers.
//!
//! Handlers push texts and await a reply; each worker thread owns one session and takes a
//! batch whenever it is free, so requests keep arriving while batches run and no lock is held
//! during inference. A batch starts from the oldest waiting text and takes others of similar
//! length while the padded token budget allows, which bounds padding waste. A full queue
//! refuses work at once instead of growing latency.
//!
//! Workers share a budget of CPU threads so that sessions running together never
//! oversubscribe the cores. Narrow workers (few threads each) serve concurrent load in
//! parallel; an optional solo worker, as wide as the whole budget, takes a request that
//! arrives alone while everything is idle, which is when one wide forward pass is fastest.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use semrouter_embedder::BackendError;
use tokio::sync::oneshot;

/// Tokens of length difference a batch accepts on top of `max_length_ratio`, so that very
/// short texts (a few tokens) still batch together.
const LENGTH_ALLOWANCE: usize = 8;

/// What a worker sends back for one text.
#[derive(Debug)]
pub(crate) struct Done {
    pub values: Vec<f32>,
    pub tokens: usize,
    /// Byte offsets of each token (`None` for special tokens), when the tokenizer tracks them.
    pub offsets: Vec<Option<(usize, usize)>>,
    pub tokenize: Duration,
    pub queue: Duration,
    pub infer: Duration,
}

/// One text waiting for inference.
pub(crate) struct Job {
    pub text: String,
    /// Token count estimated from the text's length, for grouping before tokenisation.
    pub estimated_tokens: usize,
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

/// The kind of worker asking for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// One of the parallel sessions; `threads` of the budget each.
    Narrow { threads: usize },
    /// The session as wide as the whole budget, for a request alone on an idle machine.
    Solo,
}

struct State {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Threads of the budget not held by a running batch.
    free_threads: usize,
}

/// A bounded multi-producer, multi-worker queue that hands out length-grouped batches.
pub(crate) struct BatchQueue {
    state: Mutex<State>,
    wake: Condvar,
    capacity: usize,
    limits: BatchLimits,
    thread_budget: usize,
    has_solo: bool,
    pub(crate) model: String,
}

/// Threads a running batch holds; returned to the budget when dropped.
pub(crate) struct Permit<'q> {
    queue: &'q BatchQueue,
    threads: usize,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.queue.lock().free_threads += self.threads;
        self.queue.wake.notify_all();
    }
}

impl BatchQueue {
    /// A queue of `capacity` texts whose workers share `thread_budget` threads.
    pub(crate) fn new(
        capacity: usize,
        limits: BatchLimits,
        thread_budget: usize,
        has_solo: bool,
        model: String,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                jobs: VecDeque::with_capacity(capacity),
                closed: false,
                free_threads: thread_budget,
            }),
            wake: Condvar::new(),
            capacity,
            limits,
            thread_budget,
            has_solo,
            model,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few VecDeque operations and counter updates, so a
        // panic cannot leave the state inconsistent and a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
            return Err(BackendError::Overloaded {
                capacity: self.capacity,
            });
        }
        state.jobs.extend(jobs);
        metrics::gauge!("semrouter_onnx_queue_depth", "model" => self.model.clone())
            .set(state.jobs.len() as f64);
        drop(state);
        // Which worker should take the work depends on the load, so every idle worker looks.
        self.wake.notify_all();
        Ok(())
    }

    /// Blocks until `lane` may run a batch; `None` once the queue is closed and drained.
    pub(crate) fn next_batch(&self, lane: Lane) -> Option<(Vec<Job>, Permit<'_>)> {
        let threads = match lane {
            Lane::Narrow { threads } => threads.min(self.thread_budget),
            Lane::Solo => self.thread_budget,
        };
        let mut state = self.lock();
        loop {
            // The caller went away: never spend inference on it.
            while state.jobs.front().is_some_and(|job| job.reply.is_closed()) {
                state.jobs.pop_front();
            }
            let pending = state.jobs.len();
            let idle = state.free_threads == self.thread_budget;
            let eligible = pending > 0
                && state.free_threads >= threads
                && match lane {
                    // A lone request on an idle machine is the solo worker's, if there is one.
                    Lane::Narrow { .. } => !(self.has_solo && idle && pending == 1),
                    Lane::Solo => idle && pending == 1,
                };
            if eligible {
                if let Some(first) = state.jobs.pop_front() {
                    let batch = match lane {
                        Lane::Narrow { .. } => self.fill_batch(&mut state.jobs, first),
                        Lane::Solo => vec![first],
                    };
                    state.free_threads -= threads;
                    metrics::gauge!("semrouter_onnx_queue_depth", "model" => self.model.clone())
                        .set(state.jobs.len() as f64);
                    return Some((
                        batch,
                        Permit {
                            queue: self,
                            threads,
                        },
                    ));
                }
            }
            if state.closed && pending == 0 {
                return None;
            }
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Starting from `first`, takes waiting jobs of similar length while the limits allow.
    fn fill_batch(&self, jobs: &mut VecDeque<Job>, first: Job) -> Vec<Job> {
        let limits = self.limits;
        let mut shortest = first.estimated_tokens.max(1);
        let mut longest = shortest;
        let mut batch = vec![first];
        let mut i = 0;
        while i < jobs.len() && batch.len() < limits.max_batch_size {
            if jobs[i].reply.is_closed() {
                jobs.remove(i);
                continue;
            }
            let len = jobs[i].estimated_tokens.max(1);
            let (lo, hi) = (shortest.min(len), longest.max(len));
            let within_budget = (batch.len() + 1) * hi <= limits.max_batch_tokens;
            let similar =
                hi as f32 <= lo as f32 * limits.max_length_ratio + LENGTH_ALLOWANCE as f32;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(tokens: usize) -> (Job, oneshot::Receiver<Result<Done, BackendError>>) {
        let (tx, rx) = oneshot::channel();
        (
            Job {
                text: "x".repeat(tokens),
                estimated_tokens: tokens,
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
        BatchQueue::new(capacity, limits, 2, false, "test".into())
    }

    const NARROW: Lane = Lane::Narrow { threads: 1 };

    fn lengths(batch: &[Job]) -> Vec<usize> {
        batch.iter().map(|j| j.estimated_tokens).collect()
    }

    #[test]
    fn full_queue_refuses_at_once() {
        let q = queue(2, 8, 1024);
        let (a, _ra) = job(4);
        let (b, _rb) = job(4);
        let (c, _rc) = job(4);
        q.push_all(vec![a, b]).unwrap();
        assert_eq!(
            q.push_all(vec![c]).unwrap_err(),
            BackendError::Overloaded { capacity: 2 }
        );
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
        let (first, permit) = q.next_batch(NARROW).unwrap();
        assert_eq!(lengths(&first), vec![10, 12, 9]);
        drop(permit);
        let (second, _permit) = q.next_batch(NARROW).unwrap();
        assert_eq!(lengths(&second), vec![200, 150]);
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
        assert_eq!(q.next_batch(NARROW).unwrap().0.len(), 3);
        assert_eq!(q.next_batch(NARROW).unwrap().0.len(), 3);
        let q = queue(16, 8, 25);
        let (a, _ra) = job(10);
        let (b, _rb) = job(10);
        let (c, _rc) = job(10);
        q.push_all(vec![a, b, c]).unwrap();
        assert_eq!(
            q.next_batch(NARROW).unwrap().0.len(),
            2,
            "3 x 10 tokens exceed a budget of 25"
        );
    }

    #[test]
    fn abandoned_jobs_are_skipped() {
        let q = queue(16, 8, 1024);
        let (a, ra) = job(5);
        let (b, _rb) = job(5);
        drop(ra);
        q.push_all(vec![a, b]).unwrap();
        assert_eq!(q.next_batch(NARROW).unwrap().0.len(), 1);
    }

    #[test]
    fn closed_queue_drains_then_stops() {
        let q = queue(16, 1, 1024);
        let (a, _ra) = job(5);
        q.push_all(vec![a]).unwrap();
        q.close();
        assert!(q.next_batch(NARROW).is_some());
        assert!(q.next_batch(NARROW).is_none());
        let (b, _rb) = job(5);
        assert_eq!(q.push_all(vec![b]).unwrap_err(), BackendError::ShuttingDown);
    }

    #[test]
    fn a_lone_request_goes_solo_and_concurrent_ones_go_narrow() {
        let limits = BatchLimits {
            max_batch_size: 1,
            max_batch_tokens: 1024,
            max_length_ratio: 2.0,
        };
        let q = std::sync::Arc::new(BatchQueue::new(16, limits, 2, true, "test".into()));
        let (a, _ra) = job(5);
        q.push_all(vec![a]).unwrap();
        // Alone on an idle machine: the solo worker takes it, holding the whole budget.
        let (batch, permit) = q.next_batch(Lane::Solo).unwrap();
        assert_eq!(batch.len(), 1);
        // While it runs, new work waits for threads; once it is done, two narrow workers share.
        let (b, _rb) = job(5);
        let (c, _rc) = job(5);
        q.push_all(vec![b, c]).unwrap();
        let waiter = {
            let q = std::sync::Arc::clone(&q);
            std::thread::spawn(move || q.next_batch(NARROW).map(|(b, _)| b.len()))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "no thread is free while the solo batch runs"
        );
        drop(permit);
        assert_eq!(waiter.join().unwrap(), Some(1));
        // The last one is alone again on an idle machine.
        assert_eq!(q.next_batch(Lane::Solo).unwrap().0.len(), 1);
    }
}
