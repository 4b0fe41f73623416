//! Scoring configuration: factor weights, per-request preferences, hard limits and fallback.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Weights of the scoring factors; they need not sum to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Expected quality over the category probabilities.
    #[serde(default)]
    pub quality: f64,
    /// Estimated cost of the request.
    #[serde(default)]
    pub cost: f64,
    /// Observed latency (EWMA).
    #[serde(default)]
    pub latency: f64,
    /// Requests in flight to the model.
    #[serde(default)]
    pub load: f64,
}

impl Weights {
    /// The sum of the weights.
    pub fn total(&self) -> f64 {
        self.quality + self.cost + self.latency + self.load
    }
}

/// What to do when hard limits leave no candidate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// The cheapest candidate that still fits the context and privacy limits.
    #[default]
    Cheapest,
    /// `scoring.default_model`.
    DefaultModel,
    /// Refuse with 400 `no_eligible_model`, naming why each model was excluded.
    Error,
}

/// How candidates are scored and limited.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    /// Weights used when the request states no preference.
    pub weights: Weights,
    /// Named weight sets a request picks with header `x-semrouter-preference`.
    pub preferences: BTreeMap<String, Weights>,
    /// Completion tokens expected when the request sets no `max_tokens`.
    pub expected_completion_tokens: u32,
    /// Completion tokens are multiplied by this when reasoning is on.
    pub reasoning_multiplier: f64,
    /// Smoothing of the latency EWMA: the weight of each new observation.
    pub latency_alpha: f64,
    /// Candidates whose latency EWMA is above this are dropped.
    pub max_latency_ms: Option<f64>,
    /// Candidates whose p95 latency over their latest answers (their `latency_prior_ms` before
    /// the first) is above this are dropped: a latency SLO.
    pub max_latency_p95_ms: Option<f64>,
    /// Candidates whose estimated cost per request is above this are dropped.
    pub max_cost: Option<f64>,
    /// When no candidate survives the limits.
    pub fallback: Fallback,
    /// The model `fallback: default_model` uses.
    pub default_model: Option<String>,
}

impl ScoringConfig {
    /// The weights of a named preference: a configured one, or the built-in `quality`,
    /// `balanced` (the default weights) and `cost`.
    pub fn preference(&self, name: &str) -> Option<Weights> {
        self.preferences.get(name).copied().or(match name {
            "quality" => Some(Weights {
                quality: 1.0,
                cost: 0.0,
                latency: 0.05,
                load: 0.05,
            }),
            "balanced" => Some(self.weights),
            "cost" => Some(Weights {
                quality: 0.35,
                cost: 0.55,
                latency: 0.05,
                load: 0.05,
            }),
            _ => None,
        })
    }

    /// Every preference name a request or policy may use.
    pub fn preference_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = ["quality", "balanced", "cost"]
            .into_iter()
            .chain(self.preferences.keys().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            weights: Weights {
                quality: 0.75,
                cost: 0.15,
                latency: 0.05,
                load: 0.05,
            },
            preferences: BTreeMap::new(),
            expected_completion_tokens: 400,
            reasoning_multiplier: 4.0,
            latency_alpha: 0.2,
            max_latency_ms: None,
            max_latency_p95_ms: None,
            max_cost: None,
            fallback: Fallback::Cheapest,
            default_model: None,
        }
    }
}
