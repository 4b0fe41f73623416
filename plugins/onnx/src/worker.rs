//! Inference worker threads: each owns one session, takes batches from the queue, tokenises
//! them (off the async runtime, without another thread hand-off), runs them and replies.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use semrouter_embedder::BackendError;

use crate::queue::{BatchQueue, Done, Job, Lane};
use crate::session::ModelSession;
use crate::tokenize::{TextTokenizer, Tokens};

/// Starts a worker thread that owns `session` and serves `lane` batches until the queue closes.
pub(crate) fn spawn(
    name: String,
    queue: Arc<BatchQueue>,
    tokenizer: Arc<TextTokenizer>,
    mut session: ModelSession,
    lane: Lane,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(move || {
        while let Some((batch, _permit)) = queue.next_batch(lane) {
            serve(&queue.model, &tokenizer, &mut session, batch);
        }
    })
}

/// Tokenises, runs and answers one batch. Every job gets a reply, whatever happens.
fn serve(model: &str, tokenizer: &TextTokenizer, session: &mut ModelSession, batch: Vec<Job>) {
    let picked = Instant::now();
    let mut jobs = Vec::with_capacity(batch.len());
    let mut tokens: Vec<Tokens> = Vec::with_capacity(batch.len());
    for job in batch {
        match tokenizer.encode(&job.text) {
            Ok(t) => {
                tokens.push(t);
                jobs.push(job);
            }
            Err(reason) => {
                let _ = job.reply.send(Err(BackendError::Inference(format!(
                    "tokenisation failed: {reason}"
                ))));
            }
        }
    }
    if jobs.is_empty() {
        return;
    }
    let tokenized = Instant::now();
    let refs: Vec<&Tokens> = tokens.iter().collect();
    // A panic inside the model must not kill the worker: its callers would wait forever.
    let result = catch_unwind(AssertUnwindSafe(|| session.run(&refs)))
        .unwrap_or_else(|_| Err("the model panicked while running a batch".to_string()));
    let infer = tokenized.elapsed();
    let tokenize = tokenized.duration_since(picked);
    metrics::histogram!("semrouter_onnx_batch_size", "model" => model.to_string())
        .record(jobs.len() as f64);
    match result {
        Ok(rows) if rows.len() == jobs.len() => {
            for ((job, values), t) in jobs.into_iter().zip(rows).zip(tokens) {
                // The caller may have gone away meanwhile; nothing to do then.
                let _ = job.reply.send(Ok(Done {
                    values,
                    tokens: t.len(),
                    offsets: t.offsets,
                    tokenize,
                    queue: picked.saturating_duration_since(job.enqueued),
                    infer,
                }));
            }
        }
        other => {
            let reason = match other {
                Err(reason) => reason,
                Ok(rows) => format!(
                    "the model returned {} rows for a batch of {}",
                    rows.len(),
                    jobs.len()
                ),
            };
            tracing::error!(%model, %reason, "inference failed");
            for job in jobs {
                let _ = job.reply.send(Err(BackendError::Inference(reason.clone())));
            }
        }
    }
}
