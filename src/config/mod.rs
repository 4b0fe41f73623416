//! Typed configuration, loaded once and validated as a whole before anything starts.
//!
//! The example file `config/semrouter.yaml` is compiled in and is the default; every key is
//! documented there. Any key can be overridden from the environment as
//! `SEMROUTER__SECTION__KEY` (e.g. `SEMROUTER__SERVER__HTTP_ADDR=0.0.0.0:9000`), items of lists
//! by index (`SEMROUTER__MODELS__0__UPSTREAM__BASE_URL`).

mod dashboard;
mod extproc;
mod load;
mod locate;
mod policy;
mod proxy;
mod reasoning;
mod scoring;
mod signals;
mod telemetry;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use semrouter_onnx::OnnxModelConfig;
use semrouter_vllm::VllmConfig;
use serde::{Deserialize, Serialize};

pub use dashboard::DashboardConfig;
pub use extproc::ExtProcConfig;
pub use load::{load, load_str, ConfigError, DEFAULT_CONFIG};
pub use policy::{Condition, PolicyAction, PolicyConfig, Range, ReasoningOverride};
pub use proxy::{ProxyConfig, UpstreamConfig};
pub use reasoning::{FamilyTemplate, NeedWeights, ReasoningConfig, ReasoningLevel};
pub use scoring::{Fallback, ScoringConfig, Weights};
pub use signals::{HeadSignalConfig, KeywordRuleConfig, PiiConfig, PiiViolation, SignalsConfig};
pub use telemetry::TelemetryConfig;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP listener and request limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where native runtimes are loaded from.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// The embedding backend every semantic signal shares.
    pub embedding: EmbeddingConfig,
    /// The domain classifier.
    pub classifier: ClassifierConfig,
    /// Which request models are routed, and where the tenant comes from.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Signals beyond the domain: complexity, jailbreak, keywords.
    #[serde(default)]
    pub signals: SignalsConfig,
    /// How the reasoning need is computed and written.
    #[serde(default)]
    pub reasoning: ReasoningConfig,
    /// Rules over signals that choose candidates and an action; the first match decides.
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// How candidates are scored and limited.
    #[serde(default)]
    pub scoring: ScoringConfig,
    /// Tool pre-selection.
    #[serde(default)]
    pub tools: ToolsConfig,
    /// The models requests can be routed to.
    pub models: Vec<ModelConfig>,
    /// The semantic cache (off unless `cache.enabled`).
    #[serde(default)]
    pub cache: crate::cache::CacheConfig,
    /// Timeouts and retries of the OpenAI-compatible proxy (`POST /v1/chat/completions`).
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// The Envoy ext_proc gRPC front end (off unless `extproc.enabled`).
    #[serde(default)]
    pub extproc: ExtProcConfig,
    /// OpenTelemetry traces (off unless `telemetry.enabled`).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The built-in dashboard at `/dashboard` (on unless `dashboard.enabled: false`).
    #[serde(default)]
    pub dashboard: DashboardConfig,
}

/// HTTP listener and request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address of the REST API; `--http-addr` overrides it.
    pub http_addr: SocketAddr,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Largest request body accepted; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout_s: u64,
    /// Most requests worked on at once (REST decision endpoints, proxy, ext_proc together);
    /// one more is refused at once with 429 and `Retry-After` instead of queueing.
    pub max_in_flight: usize,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
    /// Which decision headers the proxy and ext_proc front ends emit (default: all).
    pub decision_headers: Vec<DecisionHeader>,
    /// The admin endpoints (reload, cache store and flush) and their bearer token.
    pub admin: AdminConfig,
    /// Whether the config file is watched and reloaded when it changes.
    pub reload: ReloadConfig,
    /// TLS on the REST listener (absent: plain HTTP).
    pub tls: Option<TlsConfig>,
    /// Logs prompt text at debug level. Off by default: prompts, API keys and PII values
    /// never reach the log unless an operator asks for prompts explicitly.
    pub log_prompts: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            workers: 0,
            max_body_bytes: 1 << 20,
            shutdown_timeout_s: 30,
            max_in_flight: 1024,
            log_format: LogFormat::Text,
            decision_headers: DecisionHeader::ALL.to_vec(),
            admin: AdminConfig::default(),
            reload: ReloadConfig::default(),
            log_prompts: false,
            tls: None,
        }
    }
}

/// TLS on a listener (`server.tls`, `extproc.tls`): a PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate first, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The admin endpoints: on only when the environment variable `token_env` holds a token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Environment variable holding the bearer token; unset or empty turns the endpoints off
    /// (403 `admin_disabled`), never open.
    pub token_env: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token_env: "SEMROUTER_ADMIN_TOKEN".to_string(),
        }
    }
}

/// Watching the config file (`serve --config FILE`) for changes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Reload when the file's content changes (also through a swapped symlink, as a Kubernetes
    /// ConfigMap update does); `POST /admin/reload` works either way.
    pub watch: bool,
    /// How often the file is checked, in milliseconds.
    pub poll_interval_ms: u64,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: true,
            poll_interval_ms: 1000,
        }
    }
}

/// A header the proxy and ext_proc front ends can emit with a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DecisionHeader {
    /// The chosen model, as vLLM Semantic Router's Envoy configs match it.
    #[serde(rename = "x-selected-model")]
    SelectedModel,
    /// The chosen model, for Gateway API Inference Extension `HTTPRoute`s (body-based routing).
    #[serde(rename = "x-gateway-model-name")]
    GatewayModelName,
    /// The chosen category.
    #[serde(rename = "x-semrouter-category")]
    Category,
    /// `off`, or the reasoning effort.
    #[serde(rename = "x-semrouter-reasoning")]
    Reasoning,
    /// `hit` or `miss`, when the cache is on.
    #[serde(rename = "x-semrouter-cache")]
    Cache,
    /// Flags set by policies (comma-separated), when there are any.
    #[serde(rename = "x-semrouter-flags")]
    Flags,
}

impl DecisionHeader {
    /// Every header, the default.
    pub const ALL: [DecisionHeader; 6] = [
        DecisionHeader::SelectedModel,
        DecisionHeader::GatewayModelName,
        DecisionHeader::Category,
        DecisionHeader::Reasoning,
        DecisionHeader::Cache,
        DecisionHeader::Flags,
    ];

    /// The header name.
    pub fn name(self) -> &'static str {
        match self {
            DecisionHeader::SelectedModel => "x-selected-model",
            DecisionHeader::GatewayModelName => "x-gateway-model-name",
            DecisionHeader::Category => "x-semrouter-category",
            DecisionHeader::Reasoning => "x-semrouter-reasoning",
            DecisionHeader::Cache => "x-semrouter-cache",
            DecisionHeader::Flags => "x-semrouter-flags",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where native runtimes are loaded from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// The ONNX Runtime shared library (`make setup` fetches the CPU build here).
    pub onnxruntime_library: PathBuf,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            onnxruntime_library: PathBuf::from("onnx/fetched/onnxruntime/libonnxruntime.so.1.31.1"),
        }
    }
}

/// Which embedding backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingBackend {
    /// A local ONNX Runtime encoder.
    Onnx,
    /// A remote OpenAI-compatible embeddings endpoint (a vLLM server), with `embedding.onnx`
    /// as its local fallback when `embedding.vllm.fallback` is `onnx`.
    Vllm,
}

/// The embedding backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// Backend kind.
    pub backend: EmbeddingBackend,
    /// Settings of the `onnx` backend (and of the `vllm` backend's `onnx` fallback).
    pub onnx: Option<OnnxModelConfig>,
    /// Settings of the `vllm` backend.
    #[serde(default)]
    pub vllm: Option<VllmConfig>,
}

/// Which kind of domain classifier runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassifierKind {
    /// A trained linear softmax head over the shared embedding (no extra model pass).
    Linear,
    /// An ONNX sequence-classification model with its own forward pass.
    Onnx,
}

/// Which part of the conversation is classified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifyText {
    /// The last user message.
    #[default]
    LastUser,
    /// All user messages, joined.
    AllUser,
    /// The system (and developer) prompt followed by all user messages.
    WithSystem,
}

/// The domain classifier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Classifier kind.
    pub kind: ClassifierKind,
    /// `linear`: the trained head file (JSON written by `semrouter train domain`).
    pub head: Option<PathBuf>,
    /// `onnx`: the sequence-classification model.
    pub onnx: Option<OnnxModelConfig>,
    /// `onnx`: the model's Hugging Face `config.json`, whose `id2label` names the logits.
    pub labels: Option<PathBuf>,
    /// Which text is classified.
    #[serde(default)]
    pub text: ClassifyText,
}

/// What to do with a request that names a model that is not configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownModels {
    /// Answer 404 `model_not_found`.
    #[default]
    Reject,
    /// Pass the request through unchanged; the gateway knows the model.
    Pass,
}

/// Which request models are routed, and where the tenant comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Request `model` values that ask for routing.
    pub auto_models: Vec<String>,
    /// Requests naming an unconfigured model.
    pub unknown_models: UnknownModels,
    /// Request header that names the tenant (for `models[].tenants` and `tenant` conditions).
    pub tenant_header: String,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            auto_models: vec!["auto".to_string()],
            unknown_models: UnknownModels::default(),
            tenant_header: "x-semrouter-tenant".to_string(),
        }
    }
}

/// Tool pre-selection: keep the tools most similar to the prompt.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// Trim tool lists at all.
    pub enabled: bool,
    /// Most tools kept (besides `always_keep`); lists this short are left alone.
    pub top_k: usize,
    /// Tools less similar to the prompt than this are removed.
    pub threshold: f32,
    /// Tool names never removed.
    pub always_keep: Vec<String>,
    /// Tool embeddings cached, by content hash.
    pub cache_entries: usize,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            top_k: 8,
            threshold: 0.2,
            always_keep: Vec::new(),
            cache_entries: 4096,
        }
    }
}

/// Price of a model per million tokens, in any one currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million prompt tokens.
    #[serde(default)]
    pub input_per_million: f64,
    /// Per million completion tokens.
    #[serde(default)]
    pub output_per_million: f64,
}

/// A model requests can be routed to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name written into the request's `model`.
    pub name: String,
    /// How reasoning is switched in its request body: `qwen3`, `deepseek`, `gpt-oss`, `none`,
    /// or a family from `reasoning.families`.
    #[serde(default = "default_family")]
    pub reasoning_family: String,
    /// Price per million tokens.
    #[serde(default)]
    pub price: Price,
    /// Longest prompt plus completion, in tokens; longer requests never go to this model.
    #[serde(default)]
    pub context_window: Option<u64>,
    /// Latency assumed before any is observed, in milliseconds.
    #[serde(default = "default_latency_prior")]
    pub latency_prior_ms: f64,
    /// Personal-data types this model may see (`any` for all); absent means all.
    #[serde(default)]
    pub pii_allowed: Option<Vec<String>>,
    /// Tenants that may use this model; absent means every tenant.
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    /// Quality score in [0, 1] per category; `default` covers unlisted categories.
    pub quality: BTreeMap<String, f64>,
    /// Where the proxy sends requests for this model; absent: the proxy cannot serve it
    /// (`/v1/route` and ext_proc callers do the forwarding themselves).
    #[serde(default)]
    pub upstream: Option<UpstreamConfig>,
}

fn default_family() -> String {
    "none".to_string()
}

fn default_latency_prior() -> f64 {
    1000.0
}
