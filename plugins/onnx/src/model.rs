//! A loaded ONNX model: tokenizer, worker sessions and their queue. The encoder, the sequence
//! classifier and the token classifier are all this, with a different [`OutputKind`].

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use semrouter_embedder::{BackendError, BackendInfo, Encoded, StageTiming};
use tokio::sync::oneshot;

use crate::config::{OnnxModelConfig, ProviderKind};
use crate::provider::build_session;
use crate::queue::{BatchLimits, BatchQueue, Done, Job, Lane};
use crate::session::{ModelSession, OutputKind};
use crate::tokenize::{TextTokenizer, Tokens};
use crate::worker;
use crate::{OnnxError, OnnxRuntime};

/// Texts run through each session before it serves traffic, so the first requests do not pay
/// for ONNX Runtime's lazy allocations: one short and one long shape.
const WARMUP_TEXTS: [&str; 2] = [
    "warm up",
    "Warm-up text long enough to exercise a realistic sequence length through every layer of the model once before serving traffic.",
];

pub(crate) struct OnnxModel {
    tokenizer: Arc<TextTokenizer>,
    queue: Arc<BatchQueue>,
    info: BackendInfo,
    uses_token_type_ids: bool,
}

impl OnnxModel {
    /// Loads the tokenizer, `config.sessions` parallel sessions and the optional solo session,
    /// warms each up, and starts one worker thread per session. Returns once the model can serve.
    pub(crate) fn load(
        runtime: &OnnxRuntime,
        config: &OnnxModelConfig,
        kind: OutputKind,
    ) -> Result<Self, OnnxError> {
        runtime.require_file("ONNX model", &config.model)?;
        runtime.require_file("tokenizer", &config.tokenizer)?;
        let mut tokenizer = TextTokenizer::from_file(&config.tokenizer, config.max_tokens)?;
        if kind == OutputKind::TokenProbabilities {
            tokenizer = tokenizer.with_offsets();
        }
        let tokenizer = Arc::new(tokenizer);
        let warmup: Vec<Tokens> = WARMUP_TEXTS
            .iter()
            .map(|t| tokenizer.encode(t))
            .collect::<Result<_, _>>()
            .map_err(|reason| OnnxError::Tokenizer {
                path: config.tokenizer.clone(),
                reason,
            })?;

        let model_id = config.resolved_model_id();
        let limits = BatchLimits {
            max_batch_size: config.max_batch_size,
            max_batch_tokens: config.max_batch_tokens,
            max_length_ratio: config.max_length_ratio,
        };
        let narrow_threads = config.threads_per_session();
        let thread_budget = (config.sessions * narrow_threads).max(config.solo_threads);
        let has_solo = config.solo_threads > 0;
        let queue = Arc::new(BatchQueue::new(
            config.queue_capacity,
            limits,
            thread_budget,
            has_solo,
            model_id.clone(),
        ));

        let mut lanes: Vec<(Lane, usize)> = vec![
            (
                Lane::Narrow {
                    threads: narrow_threads
                },
                narrow_threads
            );
            config.sessions
        ];
        if has_solo {
            lanes.push((Lane::Solo, config.solo_threads));
        }
        let mut active = config.execution_provider;
        let mut dimension = 0;
        let mut uses_token_type_ids = false;
        for (index, (lane, threads)) in lanes.into_iter().enumerate() {
            let (session, provider) =
                build_session(runtime.environment(), &config.model, config, threads)?;
            let arenas = match provider {
                ProviderKind::Cpu => "cpu:0".to_string(),
                _ => format!("cpu:0;gpu:{}", config.device_id),
            };
            let mut session = ModelSession::new(session, &config.model, kind, &arenas)?;
            dimension = warm_up(&mut session, &warmup, &config.model, kind)?;
            uses_token_type_ids = session.uses_token_type_ids();
            active = provider;
            let name = format!("onnx-{index}-{model_id}");
            worker::spawn(
                name,
                Arc::clone(&queue),
                Arc::clone(&tokenizer),
                session,
                lane,
            )
            .map_err(|e| OnnxError::Model {
                path: config.model.clone(),
                reason: format!("cannot start a worker thread: {e}"),
            })?;
        }
        let info = BackendInfo {
            backend: "onnx".into(),
            model_id,
            dimension,
            max_tokens: config.max_tokens,
            execution_provider: active.as_str().into(),
            requested_provider: config.execution_provider.as_str().into(),
        };
        tracing::info!(
            model = %info.model_id,
            path = %config.model.display(),
            dimension,
            token_type_ids = uses_token_type_ids,
            sessions = config.sessions,
            threads_per_session = narrow_threads,
            solo_threads = config.solo_threads,
            execution_provider = %info.execution_provider,
            requested_provider = %info.requested_provider,
            "ONNX model loaded"
        );
        Ok(Self {
            tokenizer,
            queue,
            info,
            uses_token_type_ids,
        })
    }

    pub(crate) fn info(&self) -> &BackendInfo {
        &self.info
    }

    /// Whether the model takes `token_type_ids` (BERT) or not (ModernBERT).
    pub(crate) fn uses_token_type_ids(&self) -> bool {
        self.uses_token_type_ids
    }

    /// Queues `texts` (the workers tokenise them) and awaits one row per text.
    pub(crate) async fn run(&self, texts: Vec<String>) -> Result<Vec<Encoded>, BackendError> {
        Ok(self
            .run_raw(texts)
            .await?
            .into_iter()
            .map(|done| Encoded {
                values: done.values,
                tokens: done.tokens,
                timing: StageTiming {
                    tokenize: done.tokenize,
                    queue: done.queue,
                    infer: done.infer,
                },
            })
            .collect())
    }

    /// Like [`Self::run`], with everything a worker reports (token offsets included).
    pub(crate) async fn run_raw(&self, texts: Vec<String>) -> Result<Vec<Done>, BackendError> {
        if let Some(index) = texts.iter().position(|t| t.trim().is_empty()) {
            return Err(BackendError::EmptyInput { index });
        }
        let enqueued = Instant::now();
        let mut waiting = Vec::with_capacity(texts.len());
        let jobs = texts
            .into_iter()
            .map(|text| {
                let (reply, rx) = oneshot::channel();
                waiting.push(rx);
                Job {
                    estimated_tokens: self.tokenizer.estimate_tokens(&text),
                    text,
                    enqueued,
                    reply,
                }
            })
            .collect();
        self.queue.push_all(jobs)?;

        let mut out = Vec::with_capacity(waiting.len());
        for rx in waiting {
            out.push(rx.await.map_err(|_| BackendError::ShuttingDown)??);
        }
        Ok(out)
    }
}

impl Drop for OnnxModel {
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// Runs the warm-up texts alone and together; returns the output row width (labels per token
/// for a token classifier, whose rows hold one group of labels per token).
fn warm_up(
    session: &mut ModelSession,
    texts: &[Tokens],
    path: &Path,
    kind: OutputKind,
) -> Result<usize, OnnxError> {
    let error = |reason: String| OnnxError::Model {
        path: path.to_path_buf(),
        reason: format!("warm-up run failed: {reason}"),
    };
    let all: Vec<&Tokens> = texts.iter().collect();
    let mut width = 0;
    for batch in all.iter().map(std::slice::from_ref).chain([all.as_slice()]) {
        let rows = session.run(batch).map_err(error)?;
        let per_token = kind == OutputKind::TokenProbabilities;
        width = match (rows.first(), batch.first()) {
            (Some(row), Some(tokens)) if per_token => row.len() / tokens.len().max(1),
            (Some(row), _) => row.len(),
            _ => 0,
        };
        if width == 0 {
            return Err(error("the model returned an empty row".into()));
        }
        if per_token {
            if let Some((row, tokens)) = rows
                .iter()
                .zip(batch)
                .find(|(row, tokens)| row.len() != tokens.len() * width)
            {
                return Err(error(format!(
                    "a row of {} values does not hold {width} labels for each of {} tokens",
                    row.len(),
                    tokens.len()
                )));
            }
        }
        if session.width.is_some_and(|declared| declared != width) {
            return Err(error(format!(
                "output rows have width {width}, the model declares {:?}",
                session.width
            )));
        }
    }
    Ok(width)
}
