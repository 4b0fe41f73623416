//! The one place that turns a [`Config`] into a running [`Router`]: it chooses the concrete
//! backends (plugins), loads the models and heads, and checks they belong together.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use semrouter_embedder::TokenClassifier;
use semrouter_embedder::{BackendInfo, Embedder};
use semrouter_onnx::{OnnxClassifier, OnnxEncoder, OnnxError, OnnxRuntime, OnnxTokenClassifier};
use semrouter_vllm::{FallbackMode as VllmFallback, VllmEmbedder, VllmError};

use crate::config::{ClassifierKind, Config, EmbeddingBackend, HeadSignalConfig};
use crate::engine::fleet::{Fleet, ModelCard};
use crate::engine::policy::{Policies, PolicyError, PolicyScope};
use crate::engine::privacy::PrivacyGuard;
use crate::engine::reasoning::{Families, FamilyError};
use crate::engine::scorer::Scorer;
use crate::engine::signals::domain::{DomainClassifier, LabelError};
use crate::engine::signals::pii::{PiiConfigError, PiiDetector};
use crate::engine::signals::{
    HeadSignal, KeywordError, KeywordRules, NeedModel, SignalSet, JAILBREAK_LABEL,
};
use crate::engine::stats::ModelStats;
use crate::engine::tools::ToolSelector;
use crate::engine::{Router, RouterParts, Routing};
use crate::heads::{HeadError, LinearHead};

/// Said after every missing fetched file.
pub const FETCH_HINT: &str = "run `make setup` to fetch it";

/// Why the engine could not be built. Each message is one line naming the file or key.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// An ONNX model or the runtime could not be loaded.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// The remote (vLLM) embeddings endpoint failed its start-up checks.
    #[error(transparent)]
    Vllm(#[from] VllmError),
    /// The head file is unusable or belongs to another embedding model.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// A classifier's labels do not name categories.
    #[error("{origin}: {source}")]
    Labels {
        /// The head or model whose labels are wrong.
        origin: String,
        /// What is wrong.
        source: LabelError,
    },
    /// A head lacks a label the signal needs.
    #[error("head {path}: {message}")]
    HeadLabels {
        /// Head file.
        path: String,
        /// What is missing.
        message: String,
    },
    /// A file the configuration names is missing.
    #[error("{what} not found at {path}; {hint}")]
    MissingFile {
        /// What the file is.
        what: &'static str,
        /// Its configured path.
        path: String,
        /// How to get it.
        hint: &'static str,
    },
    /// A section validation requires is absent (validation was skipped).
    #[error("config key `{0}` is required")]
    MissingSection(&'static str),
    /// A policy refers to something that does not exist.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A keyword rule does not compile.
    #[error("config key `signals.keywords`: {0}")]
    Keyword(#[from] KeywordError),
    /// A reasoning family is unusable.
    #[error("config key `reasoning.families`: {0}")]
    Family(#[from] FamilyError),
    /// The personal-data detector cannot be built.
    #[error("config key `signals.pii`: {0}")]
    Pii(#[from] PiiConfigError),
}

/// Builds the decision engine described by `config` (loads and warms every model; for the
/// `vllm` backend, checks the endpoint). Loading blocks: run it where blocking is allowed
/// (`spawn_blocking` plus `Handle::block_on`, or a command's own runtime).
pub async fn assemble(config: &Config) -> Result<Router, AssembleError> {
    let runtime = runtime(config)?;
    let embedder = build_embedder(config, &runtime).await?;
    assemble_with(config, &runtime, embedder)
}

/// Builds the engine around an embedding backend that is already running (benches and tests
/// use a fixed one; `assemble` uses the configured one).
pub fn assemble_with(
    config: &Config,
    runtime: &OnnxRuntime,
    embedder: Arc<dyn Embedder>,
) -> Result<Router, AssembleError> {
    let info = embedder.info().clone();

    let classifier = match config.classifier.kind {
        ClassifierKind::Linear => {
            let path = config
                .classifier
                .head
                .as_deref()
                .ok_or(AssembleError::MissingSection("classifier.head"))?;
            let head = load_head(
                path,
                "domain head",
                "train one with `semrouter train domain`",
                &info,
            )?;
            DomainClassifier::linear(head).map_err(|source| AssembleError::Labels {
                origin: path.display().to_string(),
                source,
            })?
        }
        ClassifierKind::Onnx => {
            let onnx = config
                .classifier
                .onnx
                .as_ref()
                .ok_or(AssembleError::MissingSection("classifier.onnx"))?;
            let labels = config
                .classifier
                .labels
                .as_deref()
                .ok_or(AssembleError::MissingSection("classifier.labels"))?;
            let model = OnnxClassifier::load(runtime, onnx, labels)?;
            DomainClassifier::sequence(Arc::new(model)).map_err(|source| AssembleError::Labels {
                origin: labels.display().to_string(),
                source,
            })?
        }
    };

    let complexity = config
        .signals
        .complexity
        .as_ref()
        .map(|c| {
            head_signal(
                c,
                "complexity head",
                "train one with `semrouter train complexity`",
                &info,
            )
        })
        .transpose()?;
    if let (Some(head), Some(c)) = (&complexity, &config.signals.complexity) {
        if let Some(label) = config
            .reasoning
            .complexity_scores
            .keys()
            .find(|l| !head.labels().contains(l))
        {
            return Err(AssembleError::HeadLabels {
                path: c.head.display().to_string(),
                message: format!("reasoning.complexity_scores names `{label}`, which is not one of its labels ({})", head.labels().join(", ")),
            });
        }
    }
    let jailbreak = config
        .signals
        .jailbreak
        .as_ref()
        .map(|c| {
            let head = head_signal(
                c,
                "jailbreak head",
                "train one with `semrouter train jailbreak`",
                &info,
            )?;
            if !head.labels().iter().any(|l| l == JAILBREAK_LABEL) {
                return Err(AssembleError::HeadLabels {
                    path: c.head.display().to_string(),
                    message: format!("a jailbreak head needs a label named `{JAILBREAK_LABEL}`"),
                });
            }
            Ok((head, c.threshold as f32))
        })
        .transpose()?;

    let keywords = KeywordRules::new(&config.signals.keywords)?;
    let policies = Policies::new(
        &config.policies,
        &PolicyScope {
            models: config.models.iter().map(|m| m.name.as_str()).collect(),
            has_complexity: complexity.is_some(),
            complexity_labels: complexity.as_ref().map(|h| {
                h.labels()
                    .iter()
                    .map(String::as_str)
                    .collect::<HashSet<_>>()
            }),
            has_jailbreak: jailbreak.is_some(),
            keywords: config
                .signals
                .keywords
                .iter()
                .map(|k| k.name.as_str())
                .collect(),
            preferences: config.scoring.preference_names().into_iter().collect(),
        },
    )?;
    let signals = SignalSet {
        complexity,
        jailbreak,
        keywords,
        need: NeedModel::from_config(&config.reasoning),
    };

    let fleet = Fleet::new(config.models.iter().map(ModelCard::from_config).collect());
    // Detection runs only when something uses it: a policy, or a model's allow-list.
    let needs_pii = policies.needs_pii() || fleet.models().iter().any(|m| m.pii_allowed.is_some());
    let privacy = match (&config.signals.pii, needs_pii) {
        (Some(pii), true) => {
            let model: Option<Arc<dyn TokenClassifier>> = match (&pii.model, &pii.labels) {
                (Some(onnx), Some(labels)) => {
                    Some(Arc::new(OnnxTokenClassifier::load(runtime, onnx, labels)?))
                }
                (Some(_), None) => return Err(AssembleError::MissingSection("signals.pii.labels")),
                (None, _) => None,
            };
            Some(PrivacyGuard::new(
                PiiDetector::new(model, pii.detector.clone())?,
                pii.on_violation,
            ))
        }
        (None, true) => return Err(AssembleError::MissingSection("signals.pii")),
        (_, false) => None,
    };
    let stats = Arc::new(ModelStats::new(
        config
            .models
            .iter()
            .map(|m| (m.name.clone(), m.latency_prior_ms)),
        config.scoring.latency_alpha,
    ));
    Ok(Router::new(RouterParts {
        embedder,
        classifier,
        signals,
        policies,
        scorer: Scorer::new(config.scoring.clone()),
        families: Families::new(&config.reasoning.families)?,
        levels: config.reasoning.levels.clone(),
        tools: ToolSelector::new(config.tools.clone()),
        privacy,
        fleet,
        stats,
        routing: Routing::new(
            config.routing.auto_models.clone(),
            config.routing.unknown_models,
            config.classifier.text,
        ),
        degraded_routing: degraded_routing(config),
    }))
}

/// Loads the ONNX Runtime library the configuration names.
pub fn runtime(config: &Config) -> Result<OnnxRuntime, AssembleError> {
    Ok(OnnxRuntime::load(
        &config.runtime.onnxruntime_library,
        FETCH_HINT,
    )?)
}

/// Builds the configured embedding backend alone (training needs no classifier).
///
/// For `vllm` it checks `GET /v1/models` for the model and learns the dimension from one
/// embedding (the remote backend's start-up checks); with `fallback: onnx` it also loads the
/// local encoder of `embedding.onnx` and refuses one that is not the same model. Must run
/// inside a Tokio runtime: the remote backend starts its dispatcher task on it.
pub async fn build_embedder(
    config: &Config,
    runtime: &OnnxRuntime,
) -> Result<Arc<dyn Embedder>, AssembleError> {
    let local = || -> Result<Arc<dyn Embedder>, AssembleError> {
        let onnx = config
            .embedding
            .onnx
            .as_ref()
            .ok_or(AssembleError::MissingSection("embedding.onnx"))?;
        Ok(Arc::new(OnnxEncoder::load(runtime, onnx)?))
    };
    match config.embedding.backend {
        EmbeddingBackend::Onnx => local(),
        EmbeddingBackend::Vllm => {
            let vllm = config
                .embedding
                .vllm
                .clone()
                .ok_or(AssembleError::MissingSection("embedding.vllm"))?;
            let remote = match vllm.fallback {
                VllmFallback::Onnx => VllmEmbedder::connect_with_fallback(vllm, local()?).await?,
                VllmFallback::Degraded | VllmFallback::Error => VllmEmbedder::connect(vllm).await?,
            };
            Ok(Arc::new(remote))
        }
    }
}

/// Whether requests are routed without semantic signals (the default policy) while the
/// embedding backend is unavailable: the `vllm` backend with `fallback: degraded`.
pub fn degraded_routing(config: &Config) -> bool {
    config.embedding.backend == EmbeddingBackend::Vllm
        && config
            .embedding
            .vllm
            .as_ref()
            .is_some_and(|v| v.fallback == VllmFallback::Degraded)
}

/// Loads a head file bound to the served embedding model.
fn load_head(
    path: &Path,
    what: &'static str,
    hint: &'static str,
    served: &BackendInfo,
) -> Result<LinearHead, AssembleError> {
    require_file(what, path, hint)?;
    Ok(LinearHead::load_for(path, served)?)
}

fn head_signal(
    config: &HeadSignalConfig,
    what: &'static str,
    hint: &'static str,
    served: &BackendInfo,
) -> Result<HeadSignal, AssembleError> {
    Ok(HeadSignal::new(load_head(
        &config.head,
        what,
        hint,
        served,
    )?))
}

fn require_file(what: &'static str, path: &Path, hint: &'static str) -> Result<(), AssembleError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(AssembleError::MissingFile {
            what,
            path: path.display().to_string(),
            hint,
        })
    }
}
