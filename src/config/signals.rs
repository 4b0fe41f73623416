//! Signal configuration: the optional trained heads and the keyword rules.

use std::path::PathBuf;

use semrouter_onnx::OnnxModelConfig;
use serde::Deserialize;

use crate::engine::signals::pii::PiiSettings;

/// The signals computed for each routed request besides the domain.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalsConfig {
    /// The complexity head; without it the reasoning need comes from the domain prior and the
    /// uncertainty alone.
    #[serde(default)]
    pub complexity: Option<HeadSignalConfig>,
    /// The prompt-injection / jailbreak head.
    #[serde(default)]
    pub jailbreak: Option<HeadSignalConfig>,
    /// Keyword and regex rules.
    #[serde(default)]
    pub keywords: Vec<KeywordRuleConfig>,
    /// Personal-data detection; it runs only when a policy or a model's `pii_allowed` needs it.
    #[serde(default)]
    pub pii: Option<PiiConfig>,
}

/// What happens when a request carries personal data no candidate may see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiViolation {
    /// Replace the data with `<TYPE>` placeholders and route.
    #[default]
    Mask,
    /// Refuse the request (403 on the proxy and ext_proc paths).
    Block,
}

/// Personal-data detection: validated regexes, plus a token classifier when configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiConfig {
    /// The token classifier (the Rampart model); the regexes run alone when absent.
    #[serde(default)]
    pub model: Option<OnnxModelConfig>,
    /// The classifier's Hugging Face `config.json`, whose `id2label` names its labels.
    #[serde(default)]
    pub labels: Option<PathBuf>,
    /// Detector settings: model threshold, recognisers, bytes the model reads.
    #[serde(default)]
    pub detector: PiiSettings,
    /// When no candidate may see what was found and no policy masks it.
    #[serde(default)]
    pub on_violation: PiiViolation,
}

/// A signal computed by a trained head over the shared embedding.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSignalConfig {
    /// The head file.
    pub head: PathBuf,
    /// Score at or above which the signal counts as detected (jailbreak).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
}

fn default_threshold() -> f64 {
    0.5
}

/// A keyword rule: matches when any of `any` occurs, all of `all` occur, or a `regex` matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordRuleConfig {
    /// Name used by policies (`keyword: [NAME]`).
    pub name: String,
    /// Words or phrases of which one must occur (OR).
    #[serde(default)]
    pub any: Vec<String>,
    /// Words or phrases that must all occur (AND).
    #[serde(default)]
    pub all: Vec<String>,
    /// Regular expressions of which one must match.
    #[serde(default)]
    pub regex: Vec<String>,
    /// Match words with their case (default: ignore case).
    #[serde(default)]
    pub case_sensitive: bool,
}
