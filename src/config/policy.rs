//! Policy configuration: rules over signals that choose candidate models and an action.
//!
//! A rule is `when` (a condition tree) plus what to do. Conditions are YAML maps with one key,
//! e.g. `{all: [{category: [math]}, {complexity: [complex, research]}]}`.

use serde::{Deserialize, Serialize};

use crate::engine::reasoning::Effort;

/// What a matching policy does with the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyAction {
    /// Route to the best surviving candidate.
    #[default]
    Route,
    /// Refuse the request (403 on the proxy and ext_proc paths).
    Block,
    /// Replace detected personal data with `<TYPE>` placeholders, then route.
    Mask,
}

/// A numeric range; either bound may be absent. Both bounds are inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// Lower bound.
    #[serde(default)]
    pub min: Option<f64>,
    /// Upper bound.
    #[serde(default)]
    pub max: Option<f64>,
}

impl Range {
    /// Whether `value` lies within the range.
    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

/// A condition over the signals of one request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Every condition holds.
    All(Vec<Condition>),
    /// At least one condition holds.
    Any(Vec<Condition>),
    /// The condition does not hold.
    Not(Box<Condition>),
    /// The most likely category is one of these.
    Category(Vec<String>),
    /// The most likely complexity label is one of these.
    Complexity(Vec<String>),
    /// The reasoning need (0 to 1) lies in the range.
    ReasoningNeed(Range),
    /// The normalised entropy of the category probabilities lies in the range.
    Uncertainty(Range),
    /// The jailbreak score (0 to 1) lies in the range.
    Jailbreak(Range),
    /// Personal data of one of these types was found (`any` for any type).
    Pii(Vec<String>),
    /// One of these keyword rules matched.
    Keyword(Vec<String>),
    /// The estimated prompt tokens lie in the range.
    Tokens(Range),
    /// The number of user turns lies in the range.
    Turns(Range),
    /// The request carries tools (true) or not (false).
    Tools(bool),
    /// The request asks for a streamed answer (true) or not (false).
    Stream(bool),
    /// The tenant (from the configured header) is one of these.
    Tenant(Vec<String>),
}

/// A reasoning choice a policy imposes instead of the one derived from the signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasoningOverride {
    /// Reasoning on or off.
    pub enabled: bool,
    /// Effort when on (`medium` when unset).
    #[serde(default)]
    pub effort: Option<Effort>,
    /// Thinking-token budget when on, for families that take one.
    #[serde(default)]
    pub budget_tokens: Option<u32>,
}

/// One policy rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Name reported in decisions and metrics.
    pub name: String,
    /// Higher priorities are evaluated first; the first rule that matches decides.
    #[serde(default)]
    pub priority: i32,
    /// When the rule applies; a rule without `when` always applies.
    #[serde(default)]
    pub when: Option<Condition>,
    /// What to do.
    #[serde(default)]
    pub action: PolicyAction,
    /// Candidate models (all configured models when absent).
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Reasoning imposed by the rule (derived from the signals when absent).
    #[serde(default)]
    pub reasoning: Option<ReasoningOverride>,
    /// A flag added to the decision (e.g. `jailbreak`), sent as header `x-semrouter-flags`.
    #[serde(default)]
    pub flag: Option<String>,
    /// A scoring preference (`quality`, `balanced`, `cost`) for requests this rule matches.
    #[serde(default)]
    pub preference: Option<String>,
}
