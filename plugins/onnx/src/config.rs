//! Typed configuration of one ONNX model, as it appears in semrouter's config file.

use std::path::PathBuf;

use serde::Deserialize;

/// How token vectors become one text vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean of the token vectors under the attention mask (sentence-transformers models).
    #[default]
    Mean,
    /// The first token's vector (models trained with a [CLS] objective).
    Cls,
}

/// Which ONNX Runtime execution provider runs the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The CPU provider, always available.
    #[default]
    Cpu,
    /// NVIDIA CUDA (needs the onnxruntime-gpu library and a GPU).
    Cuda,
    /// NVIDIA TensorRT, with CUDA for the nodes TensorRT does not take.
    Tensorrt,
}

impl ProviderKind {
    /// The name used in config, logs and `/v1/models`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Cpu => "cpu",
            ProviderKind::Cuda => "cuda",
            ProviderKind::Tensorrt => "tensorrt",
        }
    }
}

/// What to do when the configured provider cannot be loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderPolicy {
    /// Use it if it loads, otherwise fall back to CPU and say so.
    #[default]
    Preferred,
    /// Refuse to start without it.
    Required,
}

/// One ONNX model with its tokenizer, and how to run it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxModelConfig {
    /// The `.onnx` file.
    pub model: PathBuf,
    /// Its Hugging Face `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// Identity reported to clients and bound into trained heads; defaults to the model's folder name.
    #[serde(default)]
    pub model_id: Option<String>,
    /// Inputs are truncated to this many tokens (special tokens included).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Pooling of token vectors (encoders only).
    #[serde(default)]
    pub pooling: Pooling,
    /// L2-normalise pooled vectors (encoders only).
    #[serde(default = "default_true")]
    pub normalize: bool,
    /// Execution provider.
    #[serde(default)]
    pub execution_provider: ProviderKind,
    /// Whether the provider is required or preferred.
    #[serde(default)]
    pub provider_policy: ProviderPolicy,
    /// GPU index for CUDA and TensorRT.
    #[serde(default)]
    pub device_id: i32,
    /// Sessions that run batches in parallel, each on its own worker thread.
    #[serde(default = "default_one")]
    pub sessions: usize,
    /// Intra-op threads per session; 0 means one per core.
    #[serde(default)]
    pub intra_threads: usize,
    /// Threads of an extra "solo" session that runs a request arriving alone on an idle
    /// machine, when one wide forward pass is fastest; 0 turns it off. Sessions never run
    /// more threads together than the larger of this and `sessions * intra_threads`.
    #[serde(default)]
    pub solo_threads: usize,
    /// Let intra-op threads spin while waiting for work: lower latency, more CPU.
    #[serde(default = "default_true")]
    pub spinning: bool,
    /// With `spinning`, keep spinning after a run ends until the next one starts (ONNX
    /// Runtime's own default). Off, the threads stop when a run returns, so the CPU between
    /// requests goes to what shares the host (Envoy, the HTTP and gRPC front ends).
    #[serde(default)]
    pub spin_after_run: bool,
    /// Most texts in one forward pass.
    #[serde(default = "default_max_batch_size")]
    pub max_batch_size: usize,
    /// Most padded tokens (batch size times longest text) in one forward pass.
    #[serde(default = "default_max_batch_tokens")]
    pub max_batch_tokens: usize,
    /// A text joins a batch only if the batch's longest and shortest texts stay within this ratio
    /// (plus a small allowance), to bound padding.
    #[serde(default = "default_max_length_ratio")]
    pub max_length_ratio: f32,
    /// Texts waiting for a batch; beyond it requests are refused at once.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
}

fn default_max_tokens() -> usize {
    256
}
fn default_true() -> bool {
    true
}
fn default_one() -> usize {
    1
}
fn default_max_batch_size() -> usize {
    16
}
fn default_max_batch_tokens() -> usize {
    4096
}
fn default_max_length_ratio() -> f32 {
    2.0
}
fn default_queue_capacity() -> usize {
    512
}

/// A setting with an unacceptable value: the full key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting {
    /// Dotted key, e.g. `embedding.onnx.sessions`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl OnnxModelConfig {
    /// Threads one parallel session uses (`intra_threads`, or one per core when 0).
    pub fn threads_per_session(&self) -> usize {
        match self.intra_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Checks values that serde cannot; errors name the offending key under `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<(), InvalidSetting> {
        let invalid = |key: &str, message: String| InvalidSetting {
            key: format!("{prefix}.{key}"),
            message,
        };
        let positive = [
            ("max_tokens", self.max_tokens),
            ("sessions", self.sessions),
            ("max_batch_size", self.max_batch_size),
            ("max_batch_tokens", self.max_batch_tokens),
            ("queue_capacity", self.queue_capacity),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        if self.max_batch_tokens < self.max_tokens {
            return Err(invalid(
                "max_batch_tokens",
                format!(
                    "({}) must be at least {prefix}.max_tokens ({}) so that one full-length text fits a batch",
                    self.max_batch_tokens, self.max_tokens
                ),
            ));
        }
        if !(self.max_length_ratio >= 1.0) {
            return Err(invalid("max_length_ratio", "must be 1.0 or more".into()));
        }
        if let Some(id) = &self.model_id {
            if id.trim().is_empty() {
                return Err(invalid("model_id", "must not be empty".into()));
            }
        }
        Ok(())
    }

    /// The model id: configured, or the name of the folder that holds the model file.
    pub fn resolved_model_id(&self) -> String {
        self.model_id.clone().unwrap_or_else(|| {
            self.model
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| self.model.display().to_string())
        })
    }
}
