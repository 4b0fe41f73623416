//! [`OnnxEncoder`]: the ONNX Runtime implementation of the [`Embedder`] trait.

use async_trait::async_trait;
use semrouter_embedder::{BackendError, BackendInfo, Embedder, Encoded, Health};

use crate::config::OnnxModelConfig;
use crate::model::OnnxModel;
use crate::session::OutputKind;
use crate::{OnnxError, OnnxRuntime};

/// A BERT-family text encoder (BERT, MiniLM, ModernBERT) run by ONNX Runtime.
pub struct OnnxEncoder {
    model: OnnxModel,
}

impl OnnxEncoder {
    /// Loads and warms the encoder; pooling and normalisation come from `config`.
    pub fn load(runtime: &OnnxRuntime, config: &OnnxModelConfig) -> Result<Self, OnnxError> {
        let kind = OutputKind::Embedding {
            pooling: config.pooling,
            normalize: config.normalize,
        };
        Ok(Self {
            model: OnnxModel::load(runtime, config, kind)?,
        })
    }

    /// Whether the model takes `token_type_ids` (BERT, MiniLM) or not (ModernBERT).
    pub fn uses_token_type_ids(&self) -> bool {
        self.model.uses_token_type_ids()
    }
}

#[async_trait]
impl Embedder for OnnxEncoder {
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Encoded>, BackendError> {
        self.model.run(texts).await
    }

    fn info(&self) -> &BackendInfo {
        self.model.info()
    }

    async fn health(&self) -> Health {
        // A loaded ONNX model has no remote dependency; running on CPU when a GPU was asked
        // for still serves, but not as configured.
        let info = self.model.info();
        if info.execution_provider == info.requested_provider {
            Health::Ready
        } else {
            Health::Degraded(format!(
                "running on {} instead of the requested {}",
                info.execution_provider, info.requested_provider
            ))
        }
    }
}
