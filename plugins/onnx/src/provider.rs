//! Building a session on the configured execution provider, with the configured fallback.
//!
//! ONNX Runtime silently falls back to CPU when a provider fails to register. semrouter
//! registers the provider with `error_on_failure`, so it knows which provider really runs:
//! a required provider that fails stops start-up, a preferred one falls back to CPU and says so.

use std::path::Path;

use ort::environment::Environment;
use ort::ep::{self, ExecutionProviderDispatch};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::config::{OnnxModelConfig, ProviderKind, ProviderPolicy};
use crate::OnnxError;

/// Builds one session for `model` with `threads` intra-op threads and returns it with the
/// provider that really runs it.
pub(crate) fn build_session(
    env: &Environment,
    model: &Path,
    config: &OnnxModelConfig,
    threads: usize,
) -> Result<(Session, ProviderKind), OnnxError> {
    let model_error = |e: ort::Error| OnnxError::Model {
        path: model.to_path_buf(),
        reason: e.to_string(),
    };
    let requested = config.execution_provider;
    if requested == ProviderKind::Cpu {
        return commit(env, model, config, threads, &[])
            .map(|s| (s, ProviderKind::Cpu))
            .map_err(model_error);
    }
    match commit(
        env,
        model,
        config,
        threads,
        &accelerated(requested, config.device_id),
    ) {
        Ok(session) => Ok((session, requested)),
        Err(e) if config.provider_policy == ProviderPolicy::Required => {
            Err(OnnxError::ProviderUnavailable {
                provider: requested.as_str().to_string(),
                reason: e.to_string(),
            })
        }
        Err(e) => {
            tracing::warn!(
                provider = requested.as_str(),
                reason = %e,
                "preferred execution provider could not be loaded; running on cpu"
            );
            commit(env, model, config, threads, &[])
                .map(|s| (s, ProviderKind::Cpu))
                .map_err(model_error)
        }
    }
}

/// The provider list for an accelerated session: the requested provider must register; for
/// TensorRT, CUDA follows it to take the nodes TensorRT does not support.
fn accelerated(kind: ProviderKind, device_id: i32) -> Vec<ExecutionProviderDispatch> {
    let cuda = ep::CUDA::default().with_device_id(device_id).build();
    match kind {
        ProviderKind::Cpu => Vec::new(),
        ProviderKind::Cuda => vec![cuda.error_on_failure()],
        ProviderKind::Tensorrt => vec![
            ep::TensorRT::default()
                .with_device_id(device_id)
                .build()
                .error_on_failure(),
            cuda.fail_silently(),
        ],
    }
}

// ort's builder errors carry the builder and are not Send; keeping the chain in one function
// that returns `ort::Result` converts them to plain errors.
fn commit(
    env: &Environment,
    model: &Path,
    config: &OnnxModelConfig,
    threads: usize,
    providers: &[ExecutionProviderDispatch],
) -> ort::Result<Session> {
    // Memory patterns are planned per input shape and kept; with a new shape on nearly every
    // request they only add memory (measured: 570 MB against 215 MB over MMLU val).
    let mut builder = Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::All)?
        .with_memory_pattern(false)?
        .with_inter_threads(1)?
        .with_intra_threads(threads)?
        .with_intra_op_spinning(config.spinning)?
        // Measured with the ext_proc bench: spinning on after a run cost 1.3-2.6 ms of CPU per
        // request beside Envoy on two cores; stopping it kept the run itself as fast.
        .with_config_entry(
            "session.force_spinning_stop",
            if config.spin_after_run { "0" } else { "1" },
        )?;
    if !providers.is_empty() {
        builder = builder.with_execution_providers(providers)?;
    }
    builder.commit_from_file(model)
}
