//! Reasoning configuration: how the reasoning need is computed, the levels it maps to, and
//! the body fields each model family uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::reasoning::Effort;

/// How much each signal contributes to the reasoning need.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeedWeights {
    /// The complexity head's expected score.
    #[serde(default)]
    pub complexity: f64,
    /// The category prior, weighted by the category probabilities.
    #[serde(default)]
    pub domain: f64,
    /// The normalised entropy of the category probabilities.
    #[serde(default)]
    pub uncertainty: f64,
}

/// One reasoning level: used when the need is at least `min_need`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasoningLevel {
    /// Lowest need for this level.
    pub min_need: f64,
    /// Reasoning on or off.
    pub enabled: bool,
    /// Effort when on.
    #[serde(default)]
    pub effort: Option<Effort>,
    /// Thinking-token budget when on.
    #[serde(default)]
    pub budget_tokens: Option<u32>,
}

/// The body fields a model family uses to switch reasoning, as templates.
///
/// Keys are dotted paths into the request body (`chat_template_kwargs.enable_thinking`);
/// values are JSON, where the strings `"{effort}"` and `"{budget_tokens}"` are replaced.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyTemplate {
    /// Fields written when reasoning is on.
    #[serde(default)]
    pub on: BTreeMap<String, Value>,
    /// Fields written when reasoning is off.
    #[serde(default)]
    pub off: BTreeMap<String, Value>,
}

/// Reasoning control.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReasoningConfig {
    /// Contributions to the need.
    pub weights: NeedWeights,
    /// Score of each complexity label (the need takes their expectation).
    pub complexity_scores: BTreeMap<String, f64>,
    /// Prior reasoning need per category; `default` covers the rest.
    pub category_prior: BTreeMap<String, f64>,
    /// Levels, each applying from its `min_need`.
    pub levels: Vec<ReasoningLevel>,
    /// Model families beyond the built-in `qwen3`, `deepseek`, `gpt-oss` and `none`.
    pub families: BTreeMap<String, FamilyTemplate>,
}

impl Default for ReasoningConfig {
    fn default() -> Self {
        Self {
            weights: NeedWeights {
                complexity: 0.5,
                domain: 0.4,
                uncertainty: 0.1,
            },
            complexity_scores: BTreeMap::new(),
            category_prior: BTreeMap::from([("default".to_string(), 0.2)]),
            levels: vec![ReasoningLevel {
                min_need: 0.0,
                enabled: false,
                effort: None,
                budget_tokens: None,
            }],
            families: BTreeMap::new(),
        }
    }
}
