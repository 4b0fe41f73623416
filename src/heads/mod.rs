//! Trained heads over the shared embedding: small linear models that turn one embedding (and,
//! for some heads, cheap hashed n-grams of the text) into a signal without another encoder
//! pass. The domain, jailbreak and complexity heads are all [`LinearHead`]s.

mod lexical;
mod linear;
pub mod train;

pub use lexical::LexicalFeatures;
pub use linear::{softmax, EmbeddingBinding, HeadError, LinearHead, HEAD_FORMAT};

/// Folder of the committed head files.
pub const HEADS_DIR: &str = "onnx/heads";

/// Where the head for `task` over embedding model `model_id` is kept unless configured
/// otherwise: `onnx/heads/{task}-{model_id}.json`, e.g.
/// `onnx/heads/jailbreak-all-MiniLM-L6-v2-int8.json`.
pub fn default_path(task: &str, model_id: &str) -> std::path::PathBuf {
    std::path::Path::new(HEADS_DIR).join(format!("{task}-{model_id}.json"))
}
