//! [`LinearHead`]: a softmax classifier over an embedding and, optionally, hashed n-grams of
//! the text, stored as JSON.
//!
//! A head is only meaningful for the embedding model it was trained on, so the file records
//! that model's id and dimension and [`LinearHead::check_binding`] refuses any other. The
//! engine's entry point is [`LinearHead::load_for`], then [`LinearHead::probabilities`] per
//! request: a few microseconds, no model pass.

use std::path::{Path, PathBuf};

use semrouter_embedder::BackendInfo;
use serde::{Deserialize, Serialize};

use super::lexical::LexicalFeatures;

/// Format tag written into every head file: v2 may carry lexical features.
pub const HEAD_FORMAT: &str = "semrouter.linear-head.v2";

/// The earlier format (embedding only), still read.
const HEAD_FORMAT_V1: &str = "semrouter.linear-head.v1";

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
    #[error("head {path} was trained on embeddings of `{trained}` ({trained_dim}-d) but the embedding backend serves `{served}` ({served_dim}-d); retrain it with `semrouter train {task}`")]
    WrongEmbedding {
        /// Head file.
        path: PathBuf,
        /// What the head predicts (names the training command).
        task: String,
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

/// A linear softmax classifier: `softmax(W [x; f(text)] + b)` over an embedding `x` and, when
/// the head has [`LexicalFeatures`], the text's hashed n-grams `f(text)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearHead {
    /// [`HEAD_FORMAT`] (or the earlier embedding-only v1).
    pub format: String,
    /// What the head predicts, e.g. `domain`, `jailbreak`, `complexity`.
    pub task: String,
    /// The embedding model the head was trained on.
    pub embedding: EmbeddingBinding,
    /// Hashed n-gram features of the text; `None` for an embedding-only head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lexical: Option<LexicalFeatures>,
    /// Output labels, in row order of `weights`.
    pub labels: Vec<String>,
    /// One row per label: `dimension` embedding weights, then `lexical.buckets` weights.
    pub weights: Vec<Vec<f32>>,
    /// One bias per label.
    pub bias: Vec<f32>,
    /// How the head was made: data, command, scores.
    #[serde(default)]
    pub training: serde_json::Value,
}

/// Dot product in eight independent lanes. A plain `zip().sum()` over `f32` is one chain of
/// dependent additions (the compiler may not reorder float sums), which made a 14-label head
/// cost microseconds; eight accumulators let it vectorise.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The logit of one weight row: embedding part, lexical part, bias. Shared by training and
/// serving so both compute the same thing.
pub(crate) fn row_logit(row: &[f32], bias: f32, embedding: &[f32], lexical: &[(u32, f32)]) -> f32 {
    let dim = embedding.len();
    let dense = dot(&row[..dim.min(row.len())], embedding);
    let sparse: f32 = lexical
        .iter()
        .map(|&(bucket, v)| row.get(dim + bucket as usize).map_or(0.0, |w| w * v))
        .sum();
    dense + sparse + bias
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
        match (head.format.as_str(), &head.lexical) {
            (HEAD_FORMAT, _) | (HEAD_FORMAT_V1, None) => {}
            (HEAD_FORMAT_V1, Some(_)) => {
                return Err(format(format!(
                    "format `{HEAD_FORMAT_V1}` has no lexical features"
                )))
            }
            (other, _) => {
                return Err(format(format!(
                    "format is `{other}`, expected `{HEAD_FORMAT}`"
                )))
            }
        }
        if let Some(lexical) = &head.lexical {
            lexical.validate().map_err(format)?;
        }
        let rows = head.labels.len();
        let width = head.embedding.dimension + head.lexical.as_ref().map_or(0, |l| l.buckets);
        if rows == 0 || head.weights.len() != rows || head.bias.len() != rows {
            return Err(format(format!(
                "{} labels, {} weight rows and {} biases must be equal and non-zero",
                rows,
                head.weights.len(),
                head.bias.len()
            )));
        }
        if let Some(i) = head.weights.iter().position(|r| r.len() != width) {
            return Err(format(format!(
                "weight row {i} has {} values, expected {width}",
                head.weights[i].len()
            )));
        }
        if head
            .weights
            .iter()
            .flatten()
            .chain(&head.bias)
            .any(|v| !v.is_finite())
        {
            return Err(format("weights contain NaN or infinity".into()));
        }
        Ok(head)
    }

    /// Reads a head file and refuses it unless it was trained on the embedding model `served`:
    /// what the engine calls once per configuration.
    pub fn load_for(path: &Path, served: &BackendInfo) -> Result<Self, HeadError> {
        let head = Self::load(path)?;
        head.check_binding(path, served)?;
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
        if self.embedding.model_id == served.model_id
            && self.embedding.dimension == served.dimension
        {
            return Ok(());
        }
        Err(HeadError::WrongEmbedding {
            path: path.to_path_buf(),
            task: self.task.clone(),
            trained: self.embedding.model_id.clone(),
            trained_dim: self.embedding.dimension,
            served: served.model_id.clone(),
            served_dim: served.dimension,
        })
    }

    /// Output labels; [`LinearHead::probabilities`] follows their order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// True when the head reads the text as well as the embedding.
    pub fn uses_text(&self) -> bool {
        self.lexical.is_some()
    }

    /// Class probabilities, in label order, for a text and its embedding (from the model the
    /// head is bound to). The text is read only by heads with lexical features.
    pub fn probabilities(&self, embedding: &[f32], text: &str) -> Vec<f32> {
        let lexical = self
            .lexical
            .as_ref()
            .map(|l| l.features(text))
            .unwrap_or_default();
        let mut logits: Vec<f32> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(row, &b)| row_logit(row, b, embedding, &lexical))
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
            lexical: None,
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
        let p = head().probabilities(&[3.0, 1.0], "ignored by an embedding-only head");
        assert!(p[0] > p[1]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(p, head().probabilities(&[3.0, 1.0], ""));
    }

    #[test]
    fn the_lane_dot_product_matches_the_plain_one() {
        for n in [0, 1, 7, 8, 9, 384, 389] {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let b: Vec<f32> = (0..n)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0)
                .collect();
            let plain: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            assert!((f64::from(dot(&a, &b)) - plain).abs() < 1e-4, "n = {n}");
        }
    }

    fn lexical_head() -> LinearHead {
        let lexical = LexicalFeatures {
            buckets: 64,
            word_ngrams: [1, 1],
            char_ngrams: [0, 0],
            max_bytes: 1024,
            scale: 1.0,
        };
        // Label `b` gets weight on the bucket of the word `pwned` only.
        let bucket = lexical.features("pwned")[0].0 as usize;
        let mut weights = vec![vec![0.0; 2 + 64], vec![0.0; 2 + 64]];
        weights[1][2 + bucket] = 10.0;
        LinearHead {
            format: HEAD_FORMAT.into(),
            lexical: Some(lexical),
            weights,
            ..head()
        }
    }

    #[test]
    fn lexical_heads_read_the_text() {
        let h = lexical_head();
        assert!(h.uses_text() && !head().uses_text());
        let plain = h.probabilities(&[0.0, 0.0], "hello there");
        let hit = h.probabilities(&[0.0, 0.0], "say PWNED");
        assert!((plain[0] - 0.5).abs() < 1e-6, "{plain:?}");
        assert!(hit[1] > 0.99, "{hit:?}");
        assert_eq!(h.labels(), ["a", "b"]);
    }

    #[test]
    fn lexical_heads_round_trip_and_need_wide_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.json");
        lexical_head().save(&path).unwrap();
        assert_eq!(LinearHead::load(&path).unwrap(), lexical_head());
        let mut narrow = lexical_head();
        narrow.weights = head().weights;
        narrow.save(&path).unwrap();
        assert!(LinearHead::load(&path)
            .unwrap_err()
            .to_string()
            .contains("expected 66"));
    }

    #[test]
    fn v1_files_load_but_may_not_carry_lexical_features() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.json");
        let v1 = LinearHead {
            format: HEAD_FORMAT_V1.into(),
            ..head()
        };
        v1.save(&path).unwrap();
        assert_eq!(LinearHead::load(&path).unwrap(), v1);
        LinearHead {
            format: HEAD_FORMAT_V1.into(),
            ..lexical_head()
        }
        .save(&path)
        .unwrap();
        assert!(LinearHead::load(&path).is_err());
    }

    #[test]
    fn binding_is_checked_by_id_not_only_dimension() {
        let h = head();
        let path = Path::new("h.json");
        assert!(h.check_binding(path, &info("m", 2)).is_ok());
        assert!(matches!(
            h.check_binding(path, &info("other-2d-model", 2)),
            Err(HeadError::WrongEmbedding { .. })
        ));
        assert!(h.check_binding(path, &info("m", 3)).is_err());
        let message = h
            .check_binding(path, &info("other", 2))
            .unwrap_err()
            .to_string();
        assert!(message.contains("`semrouter train domain`"), "{message}");
    }

    #[test]
    fn load_for_refuses_another_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.json");
        head().save(&path).unwrap();
        assert!(LinearHead::load_for(&path, &info("m", 2)).is_ok());
        assert!(matches!(
            LinearHead::load_for(&path, &info("x", 2)),
            Err(HeadError::WrongEmbedding { .. })
        ));
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
        assert!(LinearHead::load(&path)
            .unwrap_err()
            .to_string()
            .contains("weight row 1"));
    }

    #[test]
    fn softmax_is_stable_for_large_logits() {
        let mut v = [1000.0, 1000.0];
        softmax(&mut v);
        assert_eq!(v, [0.5, 0.5]);
    }
}
