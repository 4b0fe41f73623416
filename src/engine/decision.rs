//! What the engine decided for one request, with enough to explain it.

use std::time::Duration;

use semrouter_embedder::StageTiming;
use serde::Serialize;
use serde_json::Value;

use crate::config::Fallback;
use crate::engine::reasoning::{Reasoning, ReasoningPlan};
use crate::engine::scorer::{Excluded, ScoredCandidate};
use crate::engine::signals::domain::CategoryProbability;
use crate::engine::signals::SignalsReport;
use crate::engine::tools::ToolSelection;

/// What the front end should do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Send it to `model` with the rewritten body.
    Route,
    /// Refuse it (403 on the proxy and ext_proc paths).
    Block,
    /// Personal data was masked in the body; send it to `model`.
    Mask,
}

impl Action {
    /// The lower-case name, as replies serialise it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Route => "route",
            Action::Block => "block",
            Action::Mask => "mask",
        }
    }
}

/// The category chosen for a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryPick {
    /// Category name.
    pub name: &'static str,
    /// Its probability.
    pub confidence: f32,
}

/// Where the engine's time went for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineTiming {
    /// Backend stages (tokenise, queue, infer).
    pub backend: StageTiming,
    /// Heads and lexical signals from the embedding.
    pub signals: Duration,
    /// Personal-data detection (zero when it did not run).
    pub pii: Duration,
    /// Policy, scoring, body rewrite and tool selection.
    pub decide: Duration,
    /// Everything inside the engine.
    pub total: Duration,
}

/// The decision for one request.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Route, block or mask.
    pub action: Action,
    /// The model that should answer; `None` when blocked.
    pub model: Option<String>,
    /// True when the router chose the model; false when the request named it.
    pub routed: bool,
    /// The policy rule that decided (absent for pass-through requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// The chosen category (absent for pass-through requests).
    pub category: Option<CategoryPick>,
    /// The most likely categories.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<CategoryProbability>,
    /// What reasoning was written (absent for pass-through and blocked requests).
    pub reasoning: Option<Reasoning>,
    /// Candidates that survived the limits, best first, with each factor's contribution.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<ScoredCandidate>,
    /// Candidates a hard limit dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<Excluded>,
    /// Set when the fallback chose the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// Tool pre-selection, when the request carried more tools than are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolSelection>,
    /// Flags set by policies (e.g. `jailbreak`), sent as header `x-semrouter-flags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// The request body to send to `model`; `None` when blocked.
    pub request: Option<Value>,
    /// Tokens classified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<usize>,
    /// Every signal, when the caller asked to explain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signals: Option<SignalsReport>,
    /// Where the time went (rendered by each front end).
    #[serde(skip)]
    pub timing: EngineTiming,
    /// The reasoning planned before a model was chosen (routed decisions only), so the body
    /// can be rewritten for another candidate ([`crate::engine::Router::retarget`]).
    #[serde(skip)]
    pub plan: Option<ReasoningPlan>,
}
