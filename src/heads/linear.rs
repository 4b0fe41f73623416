//! [`LinearHead`]: a softmax classifier over an embedding, stored as JSON.
//!
//! A head is only meaningful for the embedding model it was trained on, so the file records
//! that model's id and dimension and [`LinearHead::check_binding`] refuses any other.

use std::path::{Path, PathBuf};

use semrouter_embedder::BackendInfo;
use serde::{Deserialize, Serialize};

/// Format tag written into every head file.
pub const HEAD_FORMAT: &str = "semrouter.linear-head.v1";

/// Why a head file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The file could not be read or written.
    #[error("head {path}: {source}")]
    Io {
        /// Head file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid head.
    #[error("head {path}: {reason}")]
    Format {
        /// Head file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The head was trained on another embedding model.
    #[error("head {path} was trained on embeddings of `{trained}` ({trained_dim}-d) but the embedding backend serves `{served}` ({served_dim}-d); retrain it with `semrouter train domain`")]
    WrongEmbedding {
        /// Head file.
        path: PathBuf,
        /// Model id the head was trained with.
        trained: String,
        /// Its dimension.
        trained_dim: usize,
        /// Model id served now.
        served: String,
        /// Its dimension.
        served_dim: usize,
    },
}

/// The embedding model a head belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingBinding {
    /// Embedding model id, as the backend reports it.
    pub model_id: String,
    /// Embedding dimension.
    pub dimension: usize,
}

/// A linear softmax classifier: `softmax(W x + b)` over an embedding `x`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearHead {
    /// Always [`HEAD_FORMAT`].
    pub format: String,
    /// What the head predicts, e.g. `domain`.
    pub task: String,
    /// The embedding model the head was trained on.
    pub embedding: EmbeddingBinding,
    /// Output labels, in row order of `weights`.
    pub labels: Vec<String>,
    /// One row of `dimension` weights per label.
    pub weights: Vec<Vec<f32>>,
    /// One bias per label.
    pub bias: Vec<f32>,
    /// How the head was made: data, command, scores.
    #[serde(default)]
    pub training: serde_json::Value,
}

impl LinearHead {
    /// Reads and checks a head file.
    pub fn load(path: &Path) -> Result<Self, HeadError> {
        let text = std::fs::read_to_string(path).map_err(|source| HeadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let format = |reason: String| HeadError::Format {
            path: path.to_path_buf(),
            reason,
        };
        let head: LinearHead = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
        if head.format != HEAD_FORMAT {
            return Err(format(format!("format is `{}`, expected `{HEAD_FORMAT}`", head.format)));
        }
        let (rows, dim) = (head.labels.len(), head.embedding.dimension);
        if rows == 0 || head.weights.len() != rows || head.bias.len() != rows {
            return Err(format(format!(
                "{} labels, {} weight rows and {} biases must be equal and non-zero",
                rows,
                head.weights.len(),
                head.bias.len()
            )));
        }
        if let Some(i) = head.weights.iter().position(|r| r.len() != dim) {
            return Err(format(format!("weight row {i} has {} values, expected {dim}", head.weights[i].len())));
        }
        if head.weights.iter().flatten().chain(&head.bias).any(|v| !v.is_finite()) {
            return Err(format("weights contain NaN or infinity".into()));
        }
        Ok(head)
    }

    /// Writes the head as JSON.
    pub fn save(&self, path: &Path) -> Result<(), HeadError> {
        let io = |source| HeadError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let text = serde_json::to_string(self).map_err(|e| HeadError::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        std::fs::write(path, text + "\n").map_err(io)
    }

    /// Refuses a head trained on another embedding model (by id, not only by dimension).
    pub fn check_binding(&self, path: &Path, served: &BackendInfo) -> Result<(), HeadError> {
        if self.embedding.model_id == served.model_id && self.embedding.dimension == served.dimension {
            return Ok(());
        }
        Err(HeadError::WrongEmbedding {
            path: path.to_path_buf(),
            trained: self.embedding.model_id.clone(),
            trained_dim: self.embedding.dimension,
            served: served.model_id.clone(),
            served_dim: served.dimension,
        })
    }

    /// Class probabilities for embedding `x`, in label order.
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let mut logits: Vec<f32> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(row, b)| row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + b)
            .collect();
        softmax(&mut logits);
        logits
    }
}

/// Turns logits into probabilities in place (numerically stable).
pub fn softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    if sum > 0.0 {
        values.iter_mut().for_each(|v| *v /= sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> LinearHead {
        LinearHead {
            format: HEAD_FORMAT.into(),
            task: "domain".into(),
            embedding: EmbeddingBinding {
                model_id: "m".into(),
                dimension: 2,
            },
            labels: vec!["a".into(), "b".into()],
            weights: vec![vec![1.0, 0.0], vec![0.0, 1.0]],
            bias: vec![0.0, 0.0],
            training: serde_json::Value::Null,
        }
    }

    fn info(model_id: &str, dimension: usize) -> BackendInfo {
        BackendInfo {
            backend: "test".into(),
            model_id: model_id.into(),
            dimension,
            max_tokens: 8,
            execution_provider: "cpu".into(),
            requested_provider: "cpu".into(),
        }
    }

    #[test]
    fn probabilities_follow_the_weights() {
        let p = head().probabilities(&[3.0, 1.0]);
        assert!(p[0] > p[1]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn binding_is_checked_by_id_not_only_dimension() {
        let h = head();
        let path = Path::new("h.json");
        assert!(h.check_binding(path, &info("m", 2)).is_ok());
        assert!(matches!(h.check_binding(path, &info("other-2d-model", 2)), Err(HeadError::WrongEmbedding { .. })));
        assert!(h.check_binding(path, &info("m", 3)).is_err());
    }

    #[test]
    fn save_load_round_trip_and_shape_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.json");
        head().save(&path).unwrap();
        assert_eq!(LinearHead::load(&path).unwrap(), head());
        let mut bad = head();
        bad.weights[1].push(1.0);
        bad.save(&path).unwrap();
        assert!(LinearHead::load(&path).unwrap_err().to_string().contains("weight row 1"));
    }

    #[test]
    fn softmax_is_stable_for_large_logits() {
        let mut v = [1000.0, 1000.0];
        softmax(&mut v);
        assert_eq!(v, [0.5, 0.5]);
    }
}
