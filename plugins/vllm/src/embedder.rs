//! [`VllmEmbedder`]: the remote implementation of the [`Embedder`] trait.
//!
//! Callers put their texts on a bounded queue; one dispatcher task takes batches of up to
//! `max_batch_size` texts and starts a call for each, at most `max_in_flight` at once. While
//! calls are in flight, a new batch waits up to `max_wait_us` to fill; a text arriving at an
//! idle backend is sent at once, since waiting could only add latency. Every wait is bounded:
//! each attempt by `timeout_ms`, a caller by [`VllmConfig::request_budget`]. A call whose
//! callers have all gone away is cancelled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use semrouter_embedder::{BackendError, BackendInfo, Embedder, Encoded, Health, StageTiming};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::breaker::{Admit, Breaker, BreakerState};
use crate::client::Client;
use crate::config::{FallbackMode, VllmConfig};
use crate::error::{CallError, VllmError};
use crate::queue::{Front, Job, Queue};
use crate::reply::apportion;
use crate::stats::{Stats, VllmStats};

/// The text of the start-up call that learns the dimension, and of health probes.
const PROBE_TEXT: &str = "semrouter embedding probe";

/// Embeddings from a remote OpenAI-compatible endpoint (vLLM), batched, with timeouts,
/// retries, a circuit breaker and a configured fallback.
pub struct VllmEmbedder {
    shared: Arc<Shared>,
    info: BackendInfo,
    fallback: Option<Arc<dyn Embedder>>,
    mode: FallbackMode,
    budget: Duration,
    config: VllmConfig,
}

/// What the dispatcher and the call tasks share with the embedder.
struct Shared {
    client: Client,
    breaker: Breaker,
    stats: Stats,
    queue: Queue,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    max_batch_size: usize,
    max_wait: Duration,
    dimension: usize,
    model: String,
}

/// Why the remote path did not produce embeddings.
enum Failure {
    /// Local refusal (queue full, shutting down): returned as is, never a fallback.
    Local(BackendError),
    /// The endpoint failed: the fallback applies.
    Remote(CallError),
}

impl VllmEmbedder {
    /// Connects with `fallback: degraded` or `error`: checks that `GET /v1/models` lists the
    /// model and makes one embedding to learn its dimension (which must equal a configured
    /// `dimensions`). Must run inside a Tokio runtime (it starts the dispatcher task).
    pub async fn connect(config: VllmConfig) -> Result<Self, VllmError> {
        Self::build(config, None).await
    }

    /// Connects with `fallback: onnx`, delegating to `fallback` while the endpoint is
    /// unavailable. The fallback must report the same dimension, and the same model id or one
    /// of `same_model_ids`, so that heads and cache entries stay valid for its embeddings.
    pub async fn connect_with_fallback(
        config: VllmConfig,
        fallback: Arc<dyn Embedder>,
    ) -> Result<Self, VllmError> {
        Self::build(config, Some(fallback)).await
    }

    async fn build(
        config: VllmConfig,
        fallback: Option<Arc<dyn Embedder>>,
    ) -> Result<Self, VllmError> {
        config.validate("embedding.vllm")?;
        match (config.fallback, &fallback) {
            (FallbackMode::Onnx, None) => {
                return Err(VllmError::FallbackSetup(
                    "embedding.vllm.fallback is `onnx` but no local embedder was given (use connect_with_fallback)".into(),
                ))
            }
            (FallbackMode::Degraded | FallbackMode::Error, Some(_)) => {
                return Err(VllmError::FallbackSetup(format!(
                    "a local fallback embedder was given but embedding.vllm.fallback is `{}`; set it to `onnx` to use it",
                    config.fallback.as_str()
                )))
            }
            _ => {}
        }
        let client = Client::new(&config)?;
        let served = client.models().await.map_err(|e| VllmError::Endpoint {
            url: client.models_url().to_string(),
            reason: e.to_string(),
        })?;
        if !served.iter().any(|id| id == &config.model) {
            return Err(VllmError::ModelNotServed {
                url: client.models_url().to_string(),
                model: config.model.clone(),
                served: if served.is_empty() {
                    "nothing".into()
                } else {
                    served.join(", ")
                },
            });
        }
        let probe =
            client
                .embed_once(&[PROBE_TEXT], None)
                .await
                .map_err(|e| VllmError::Endpoint {
                    url: client.embeddings_url().to_string(),
                    reason: e.to_string(),
                })?;
        let dimension = probe.rows.first().map_or(0, Vec::len);
        if let Some(configured) = config.dimensions {
            if configured != dimension {
                return Err(VllmError::DimensionMismatch {
                    model: config.model.clone(),
                    configured,
                    served: dimension,
                });
            }
        }
        if let Some(local) = &fallback {
            check_fallback(&config, dimension, local.info())?;
        }

        let info = BackendInfo {
            backend: "vllm".into(),
            model_id: config.model.clone(),
            dimension,
            max_tokens: config.max_tokens,
            execution_provider: "remote".into(),
            requested_provider: "remote".into(),
        };
        let shared = Arc::new(Shared {
            client,
            breaker: Breaker::new(
                config.failure_threshold,
                Duration::from_millis(config.open_ms),
                config.model.clone(),
                config.fallback.as_str(),
            ),
            stats: Stats::default(),
            queue: Queue::new(config.queue_capacity, config.model.clone()),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            max_in_flight: config.max_in_flight,
            max_batch_size: config.max_batch_size,
            max_wait: Duration::from_micros(config.max_wait_us),
            dimension,
            model: config.model.clone(),
        });
        tokio::spawn(dispatch(Arc::clone(&shared)));
        tracing::info!(
            model = %config.model,
            url = %shared.client.embeddings_url(),
            dimension,
            fallback = config.fallback.as_str(),
            max_batch_size = config.max_batch_size,
            max_in_flight = config.max_in_flight,
            "remote embeddings backend ready"
        );
        Ok(Self {
            shared,
            info,
            fallback,
            mode: config.fallback,
            budget: config.request_budget(),
            config,
        })
    }

    /// The configured fallback: the service maps `Degraded` to routing without semantic
    /// signals and `Error` to 503 when `embed` returns `Unavailable`.
    pub fn fallback_mode(&self) -> FallbackMode {
        self.mode
    }

    /// The circuit breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        self.shared.breaker.state()
    }

    /// Counters since start-up.
    pub fn stats(&self) -> VllmStats {
        self.shared.stats.snapshot()
    }

    /// The configuration this backend runs with.
    pub fn config(&self) -> &VllmConfig {
        &self.config
    }

    /// Queues `texts` and awaits one embedding each, within the request budget.
    async fn remote(&self, texts: &[Arc<str>]) -> Result<Vec<Encoded>, Failure> {
        let enqueued = Instant::now();
        let mut receivers = Vec::with_capacity(texts.len());
        let jobs = texts
            .iter()
            .map(|text| {
                let (reply, rx) = oneshot::channel();
                receivers.push(rx);
                Job {
                    text: Arc::clone(text),
                    enqueued,
                    reply,
                }
            })
            .collect();
        if let Err(e) = self.shared.queue.push_all(jobs) {
            if matches!(e, BackendError::Overloaded { .. }) {
                self.shared.stats.rejected(&self.shared.model);
            }
            return Err(Failure::Local(e));
        }
        let deadline = tokio::time::Instant::from_std(enqueued + self.budget);
        let mut out = Vec::with_capacity(receivers.len());
        // Returning early drops the remaining receivers: their texts are skipped if still
        // queued, and calls that only they waited for are cancelled.
        for rx in receivers {
            match tokio::time::timeout_at(deadline, rx).await {
                Err(_) => {
                    return Err(Failure::Remote(CallError::Timeout(
                        self.budget.as_millis() as u64
                    )))
                }
                Ok(Err(_)) => return Err(Failure::Local(BackendError::ShuttingDown)),
                Ok(Ok(Err(e))) => return Err(Failure::Remote(e)),
                Ok(Ok(Ok(encoded))) => out.push(encoded),
            }
        }
        Ok(out)
    }

    /// Serves a request the endpoint could not: through the local embedder for `onnx`,
    /// otherwise `Unavailable` (which the service maps to its degraded route or a 503).
    async fn fall_back(
        &self,
        texts: Vec<String>,
        why: CallError,
    ) -> Result<Vec<Encoded>, BackendError> {
        self.shared
            .stats
            .fallback(&self.shared.model, self.mode.as_str(), why.reason());
        tracing::debug!(model = %self.shared.model, reason = why.reason(), fallback = self.mode.as_str(), "embedding request handed to the fallback");
        match (&self.fallback, self.mode) {
            (Some(local), FallbackMode::Onnx) => local.embed(texts).await,
            _ => Err(BackendError::Unavailable(format!(
                "vLLM embeddings endpoint {}: {why}",
                self.shared.client.embeddings_url()
            ))),
        }
    }

    /// One direct call of the probe text, made by `health()` when the breaker is due for a probe
    /// and no request came to make it.
    async fn probe(&self) {
        let started = Instant::now();
        let result = self
            .shared
            .client
            .embed_once(&[PROBE_TEXT], Some(self.shared.dimension))
            .await;
        self.shared.stats.attempt(
            &self.shared.model,
            1,
            started.elapsed(),
            result.as_ref().err(),
        );
        match result {
            Ok(_) => self.shared.breaker.success(),
            Err(e) if !e.counts_against_endpoint() => self.shared.breaker.success(),
            Err(e) => self.shared.breaker.failure(e.reason()),
        }
    }
}

impl std::fmt::Debug for VllmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VllmEmbedder")
            .field("info", &self.info)
            .field("fallback", &self.mode)
            .field("breaker", &self.breaker_state())
            .finish_non_exhaustive()
    }
}

impl Drop for VllmEmbedder {
    fn drop(&mut self) {
        // The dispatcher sees the closed queue and ends; calls in flight end within their timeout.
        self.shared.queue.close();
    }
}

/// The fallback must be the same model, or heads and cache entries made from the remote
/// model's embeddings would be applied to another model's.
fn check_fallback(
    config: &VllmConfig,
    dimension: usize,
    local: &BackendInfo,
) -> Result<(), VllmError> {
    let mismatch = |reason: String| VllmError::FallbackMismatch {
        model: config.model.clone(),
        dimension,
        fallback_model: local.model_id.clone(),
        fallback_dimension: local.dimension,
        reason,
    };
    if local.dimension != dimension {
        return Err(mismatch("the dimensions differ".into()));
    }
    if local.model_id != config.model
        && !config.same_model_ids.iter().any(|id| id == &local.model_id)
    {
        return Err(mismatch(format!(
            "the model ids differ; if they are the same model, list `{}` in embedding.vllm.same_model_ids",
            local.model_id
        )));
    }
    Ok(())
}

#[async_trait]
impl Embedder for VllmEmbedder {
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Encoded>, BackendError> {
        if let Some(index) = texts.iter().position(|t| t.trim().is_empty()) {
            return Err(BackendError::EmptyInput { index });
        }
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // An open breaker answers at once: no queueing behind an endpoint known to be down.
        if self.shared.breaker.rejects_now() {
            return self.fall_back(texts, CallError::BreakerOpen).await;
        }
        let shared_texts: Vec<Arc<str>> = texts.into_iter().map(Arc::from).collect();
        match self.remote(&shared_texts).await {
            Ok(rows) => Ok(rows),
            Err(Failure::Local(e)) => Err(e),
            Err(Failure::Remote(why)) => {
                self.fall_back(shared_texts.iter().map(|t| t.to_string()).collect(), why)
                    .await
            }
        }
    }

    fn info(&self) -> &BackendInfo {
        &self.info
    }

    async fn health(&self) -> Health {
        let breaker = &self.shared.breaker;
        if breaker.state() != BreakerState::Closed {
            // With no traffic nothing would probe: let readiness checks do it, at most once
            // per `open_ms`, bounded by the call timeout.
            match breaker.admit() {
                Admit::Probe => self.probe().await,
                Admit::Call | Admit::Reject => {}
            }
        }
        match (breaker.state(), &self.fallback) {
            (BreakerState::Closed, _) => Health::Ready,
            (state, Some(local)) => Health::Degraded(format!(
                "vLLM endpoint unavailable (circuit breaker {}); embeddings come from the local fallback `{}`",
                state.as_str(),
                local.info().model_id
            )),
            // `degraded`: the service still answers, by its default route.
            (state, None) if self.mode == FallbackMode::Degraded => Health::Degraded(format!(
                "vLLM endpoint unavailable (circuit breaker {}); routing without semantic signals (fallback `degraded`)",
                state.as_str()
            )),
            (state, None) => Health::Unavailable(format!(
                "vLLM endpoint unavailable (circuit breaker {}); fallback `{}`",
                state.as_str(),
                self.mode.as_str()
            )),
        }
    }
}

/// The dispatcher: takes batches off the queue whenever a call slot is free.
async fn dispatch(shared: Arc<Shared>) {
    loop {
        let Ok(permit) = Arc::clone(&shared.in_flight).acquire_owned().await else {
            return;
        };
        let first = loop {
            match shared.queue.front() {
                Front::Job(enqueued) => break enqueued,
                Front::Closed => return,
                Front::Empty => shared.queue.wake.notified().await,
            }
        };
        // Other calls in flight mean more texts are likely coming: wait (bounded) for a
        // fuller batch. Alone, send at once.
        let others_in_flight = shared.in_flight.available_permits() + 1 < shared.max_in_flight;
        if others_in_flight && !shared.max_wait.is_zero() {
            let deadline = tokio::time::Instant::from_std(first + shared.max_wait);
            while shared.queue.len() < shared.max_batch_size {
                if tokio::time::timeout_at(deadline, shared.queue.wake.notified())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        let jobs = shared.queue.take(shared.max_batch_size);
        if jobs.is_empty() {
            continue;
        }
        tokio::spawn(call(Arc::clone(&shared), jobs, permit));
    }
}

/// One batch: through the breaker, the call with its retries, and the replies.
async fn call(shared: Arc<Shared>, mut jobs: Vec<Job>, _permit: OwnedSemaphorePermit) {
    let dispatched = Instant::now();
    let admit = shared.breaker.admit();
    if admit == Admit::Reject {
        for job in jobs {
            let _ = job.reply.send(Err(CallError::BreakerOpen));
        }
        return;
    }
    let texts: Vec<Arc<str>> = jobs.iter().map(|j| Arc::clone(&j.text)).collect();
    let refs: Vec<&str> = texts.iter().map(|t| &**t).collect();
    let outcome = tokio::select! {
        result = shared.client.embed(&refs, Some(shared.dimension), &shared.breaker, &shared.stats) => Some(result),
        _ = all_gone(&mut jobs) => None,
    };
    let infer = dispatched.elapsed();
    match outcome {
        None => {
            shared.stats.cancelled();
            if admit == Admit::Probe {
                shared.breaker.probe_abandoned();
            }
        }
        Some(Ok(parsed)) => {
            shared.breaker.success();
            let lengths: Vec<usize> = texts.iter().map(|t| t.len()).collect();
            let tokens = parsed
                .prompt_tokens
                .map_or_else(|| vec![0; jobs.len()], |total| apportion(total, &lengths));
            for ((job, values), tokens) in jobs.into_iter().zip(parsed.rows).zip(tokens) {
                let timing = StageTiming {
                    tokenize: Duration::ZERO,
                    queue: dispatched.saturating_duration_since(job.enqueued),
                    infer,
                };
                let _ = job.reply.send(Ok(Encoded {
                    values,
                    tokens,
                    timing,
                }));
            }
        }
        Some(Err(e)) => {
            if e.counts_against_endpoint() {
                shared.breaker.failure(e.reason());
            } else {
                shared.breaker.success();
            }
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Resolves once every caller of the batch has gone away.
async fn all_gone(jobs: &mut [Job]) {
    for job in jobs.iter_mut() {
        job.reply.closed().await;
    }
}
