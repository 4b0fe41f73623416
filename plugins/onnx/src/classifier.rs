//! [`OnnxClassifier`]: an ONNX sequence-classification model (e.g. a fine-tuned ModernBERT)
//! implementing [`TextClassifier`]. Label names come from the model's `config.json`.

use std::path::Path;

use async_trait::async_trait;
use semrouter_embedder::{BackendError, BackendInfo, Encoded, TextClassifier};

use crate::config::OnnxModelConfig;
use crate::model::OnnxModel;
use crate::session::OutputKind;
use crate::{OnnxError, OnnxRuntime};

/// A sequence classifier whose logits are labelled by its Hugging Face `config.json`.
pub struct OnnxClassifier {
    model: OnnxModel,
    labels: Vec<String>,
}

impl OnnxClassifier {
    /// Loads the model and reads `id2label` from `labels_config` (a Hugging Face `config.json`).
    pub fn load(
        runtime: &OnnxRuntime,
        config: &OnnxModelConfig,
        labels_config: &Path,
    ) -> Result<Self, OnnxError> {
        runtime.require_file("classifier config.json", labels_config)?;
        let labels = read_id2label(labels_config)?;
        let model = OnnxModel::load(runtime, config, OutputKind::Logits)?;
        if model.info().dimension != labels.len() {
            return Err(OnnxError::Model {
                path: config.model.clone(),
                reason: format!(
                    "the model outputs {} logits but {} names {} labels",
                    model.info().dimension,
                    labels_config.display(),
                    labels.len()
                ),
            });
        }
        Ok(Self { model, labels })
    }
}

/// Reads `id2label` as a list indexed by logit position; every position must be named once.
pub(crate) fn read_id2label(path: &Path) -> Result<Vec<String>, OnnxError> {
    let error = |reason: String| OnnxError::Model {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| error(format!("not valid JSON: {e}")))?;
    let map = json
        .get("id2label")
        .and_then(|v| v.as_object())
        .ok_or_else(|| error("has no `id2label` object".into()))?;
    let mut labels = vec![None; map.len()];
    for (id, label) in map {
        let index: usize = id
            .parse()
            .map_err(|_| error(format!("id2label key `{id}` is not an index")))?;
        let name = label
            .as_str()
            .ok_or_else(|| error(format!("id2label[{id}] is not a string")))?;
        let slot = labels.get_mut(index).ok_or_else(|| {
            error(format!(
                "id2label index {index} is out of range for {} labels",
                map.len()
            ))
        })?;
        *slot = Some(name.to_string());
    }
    labels
        .into_iter()
        .enumerate()
        .map(|(i, l)| l.ok_or_else(|| error(format!("id2label has no label for index {i}"))))
        .collect()
}

#[async_trait]
impl TextClassifier for OnnxClassifier {
    async fn classify(&self, texts: Vec<String>) -> Result<Vec<Encoded>, BackendError> {
        self.model.run(texts).await
    }

    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn info(&self) -> &BackendInfo {
        self.model.info()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::read_id2label;

    fn write(json: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(json.as_bytes()).expect("write temp file");
        file
    }

    #[test]
    fn labels_follow_their_ids_not_file_order() {
        let f = write(r#"{"id2label": {"1": "math", "0": "law", "2": "other"}}"#);
        assert_eq!(
            read_id2label(f.path()).unwrap(),
            vec!["law", "math", "other"]
        );
    }

    #[test]
    fn gaps_and_bad_keys_are_errors() {
        let gap = write(r#"{"id2label": {"0": "law", "2": "math"}}"#);
        assert!(read_id2label(gap.path())
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        let bad = write(r#"{"id2label": {"zero": "law"}}"#);
        assert!(read_id2label(bad.path())
            .unwrap_err()
            .to_string()
            .contains("not an index"));
        let none = write(r#"{"labels": []}"#);
        assert!(read_id2label(none.path())
            .unwrap_err()
            .to_string()
            .contains("id2label"));
    }
}
