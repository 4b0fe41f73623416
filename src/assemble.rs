//! The one place that turns a [`Config`] into a running [`Router`]: it chooses the concrete
//! backends (plugins), loads the models and heads, and checks they belong together.

use std::path::Path;
use std::sync::Arc;

use semrouter_embedder::Embedder;
use semrouter_onnx::{OnnxClassifier, OnnxEncoder, OnnxError, OnnxRuntime};

use crate::config::{ClassifierKind, Config, EmbeddingBackend};
use crate::engine::domain::{DomainClassifier, LabelError};
use crate::engine::fleet::{Fleet, ModelCard};
use crate::engine::{Router, Routing};
use crate::heads::{HeadError, LinearHead};

/// Said after every missing fetched file.
pub const FETCH_HINT: &str = "run `make setup` to fetch it";

/// Why the engine could not be built. Each message is one line naming the file or key.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// An ONNX model or the runtime could not be loaded.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
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
}

/// Builds the decision engine described by `config` (loads and warms every model).
pub fn assemble(config: &Config) -> Result<Router, AssembleError> {
    let runtime = runtime(config)?;
    let embedder = build_embedder(config, &runtime)?;

    let classifier = match config.classifier.kind {
        ClassifierKind::Linear => {
            let path = config.classifier.head.as_deref().ok_or(AssembleError::MissingSection("classifier.head"))?;
            require_file("domain head", path, "train one with `semrouter train domain`")?;
            let head = LinearHead::load_for(path, embedder.info())?;
            DomainClassifier::linear(head).map_err(|source| AssembleError::Labels {
                origin: path.display().to_string(),
                source,
            })?
        }
        ClassifierKind::Onnx => {
            let onnx = config.classifier.onnx.as_ref().ok_or(AssembleError::MissingSection("classifier.onnx"))?;
            let labels = config.classifier.labels.as_deref().ok_or(AssembleError::MissingSection("classifier.labels"))?;
            let model = OnnxClassifier::load(&runtime, onnx, labels)?;
            DomainClassifier::sequence(Arc::new(model)).map_err(|source| AssembleError::Labels {
                origin: labels.display().to_string(),
                source,
            })?
        }
    };

    let fleet = Fleet::new(config.models.iter().map(ModelCard::from_config).collect());
    let routing = Routing::from_config(&config.routing, config.classifier.text);
    Ok(Router::new(embedder, classifier, fleet, routing))
}

/// Loads the ONNX Runtime library the configuration names.
pub fn runtime(config: &Config) -> Result<OnnxRuntime, AssembleError> {
    Ok(OnnxRuntime::load(&config.runtime.onnxruntime_library, FETCH_HINT)?)
}

/// Builds the configured embedding backend alone (training needs no classifier).
pub fn build_embedder(config: &Config, runtime: &OnnxRuntime) -> Result<Arc<dyn Embedder>, AssembleError> {
    match config.embedding.backend {
        EmbeddingBackend::Onnx => {
            let onnx = config.embedding.onnx.as_ref().ok_or(AssembleError::MissingSection("embedding.onnx"))?;
            Ok(Arc::new(OnnxEncoder::load(runtime, onnx)?))
        }
    }
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
