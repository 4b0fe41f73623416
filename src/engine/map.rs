//! The loaded policy as data: which signals feed which rules, which models each rule makes
//! candidates, and how the scorer weighs and limits them. The dashboard draws it, so an
//! operator sees where prompts go without reading the YAML.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::categories::Category;
use crate::config::{Fallback, PolicyAction, Price, ReasoningLevel, Weights};
use crate::engine::policy::Policy;
use crate::engine::signals::domain::DomainClassifier;
use crate::engine::Router;

/// The whole picture of one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyMap {
    /// Signals computed for every request, in the order they are drawn.
    pub signals: Vec<SignalNode>,
    /// Rules in evaluation order, ending with `default`.
    pub rules: Vec<RuleNode>,
    /// The models, in config order.
    pub models: Vec<ModelNode>,
    /// Weights, preferences, limits and fallback of the scorer.
    pub scoring: ScoringView,
    /// Reasoning levels by need, lowest first.
    pub reasoning_levels: Vec<ReasoningLevel>,
}

/// One signal.
#[derive(Debug, Clone, Serialize)]
pub struct SignalNode {
    /// The name rules refer to (`domain`, `keyword:code`, ...).
    pub name: String,
    /// What computes it, in words.
    pub detail: String,
}

/// One rule.
#[derive(Debug, Clone, Serialize)]
pub struct RuleNode {
    /// Its name, as decisions report it.
    pub name: String,
    /// The condition in words; absent when it always matches.
    pub when: Option<String>,
    /// The signals the condition reads.
    pub signals: Vec<String>,
    /// Route, block or mask.
    pub action: PolicyAction,
    /// Candidate models: every model when the rule names none; empty when it blocks.
    pub models: Vec<String>,
    /// Reasoning the rule imposes, in words; absent when the signals decide it.
    pub reasoning: Option<String>,
    /// Flag the rule adds to decisions.
    pub flag: Option<String>,
    /// Scoring preference the rule sets.
    pub preference: Option<String>,
}

/// One model and its limits.
#[derive(Debug, Clone, Serialize)]
pub struct ModelNode {
    /// Name written into requests.
    pub name: String,
    /// Reasoning family.
    pub family: String,
    /// Price per million tokens.
    pub price: Price,
    /// Longest prompt plus completion, when known.
    pub context_window: Option<u64>,
    /// Personal-data types it may see; absent means all.
    pub pii_allowed: Option<Vec<String>>,
    /// Tenants that may use it; absent means all.
    pub tenants: Option<Vec<String>>,
    /// Quality per category.
    pub quality: BTreeMap<&'static str, f32>,
}

/// The scorer's settings.
#[derive(Debug, Clone, Serialize)]
pub struct ScoringView {
    /// Weights when a request states no preference.
    pub weights: Weights,
    /// Preferences a request may name, with their weights.
    pub preferences: BTreeMap<String, Weights>,
    /// Candidates whose latency EWMA is above this are dropped.
    pub max_latency_ms: Option<f64>,
    /// Candidates whose p95 latency is above this are dropped.
    pub max_latency_p95_ms: Option<f64>,
    /// Candidates whose estimated cost is above this are dropped.
    pub max_cost: Option<f64>,
    /// What happens when no candidate survives.
    pub fallback: Fallback,
}

impl Router {
    /// The configuration this engine runs, as a picture's data.
    pub fn policy_map(&self) -> PolicyMap {
        let parts = &self.parts;
        let all_models: Vec<String> = parts
            .fleet
            .models()
            .iter()
            .map(|m| m.name.clone())
            .collect();
        let classifier = match &parts.classifier {
            DomainClassifier::Linear { .. } => "linear head over the shared embedding",
            DomainClassifier::Sequence { .. } => "sequence-classification model",
        };
        let mut signals = vec![SignalNode {
            name: "domain".into(),
            detail: format!("{} categories, {classifier}", Category::COUNT),
        }];
        if let Some(head) = &parts.signals.complexity {
            signals.push(SignalNode {
                name: "complexity".into(),
                detail: format!("head: {}", head.labels().join(", ")),
            });
        }
        signals.push(SignalNode {
            name: "reasoning_need".into(),
            detail: "complexity, category prior and uncertainty, weighted".into(),
        });
        signals.push(SignalNode {
            name: "uncertainty".into(),
            detail: "normalised entropy of the category".into(),
        });
        if let Some((_, threshold)) = &parts.signals.jailbreak {
            signals.push(SignalNode {
                name: "jailbreak".into(),
                detail: format!("head, detected at {threshold}"),
            });
        }
        if parts.privacy.is_some() {
            signals.push(SignalNode {
                name: "pii".into(),
                detail: "regexes and the token classifier, over every message".into(),
            });
        }
        signals.extend(parts.signals.keywords.names().map(|name| SignalNode {
            name: format!("keyword:{name}"),
            detail: "keyword rule".into(),
        }));
        signals.push(SignalNode {
            name: "request".into(),
            detail: "tokens, turns, tools, stream, tenant".into(),
        });
        let rules = parts
            .policies
            .rules()
            .iter()
            .chain(std::iter::once(parts.policies.default_rule()))
            .map(|rule| rule_node(rule, &all_models))
            .collect();
        let models = parts
            .fleet
            .models()
            .iter()
            .map(|m| {
                let sorted = |set: &std::collections::HashSet<String>| {
                    let mut v: Vec<String> = set.iter().cloned().collect();
                    v.sort_unstable();
                    v
                };
                ModelNode {
                    name: m.name.clone(),
                    family: m.family.clone(),
                    price: m.price,
                    context_window: m.context_window,
                    pii_allowed: m.pii_allowed.as_ref().map(sorted),
                    tenants: m.tenants.as_ref().map(sorted),
                    quality: Category::all()
                        .map(|c| (c.name(), m.quality[c.index()]))
                        .collect(),
                }
            })
            .collect();
        let config = parts.scorer.config();
        let preferences = parts
            .scorer
            .preference_names()
            .into_iter()
            .filter_map(|name| config.preference(name).map(|w| (name.to_string(), w)))
            .collect();
        PolicyMap {
            signals,
            rules,
            models,
            scoring: ScoringView {
                weights: config.weights,
                preferences,
                max_latency_ms: config.max_latency_ms,
                max_latency_p95_ms: config.max_latency_p95_ms,
                max_cost: config.max_cost,
                fallback: config.fallback,
            },
            reasoning_levels: parts.levels.clone(),
        }
    }
}

fn rule_node(rule: &Policy, all_models: &[String]) -> RuleNode {
    let models = match (rule.action, &rule.models) {
        (PolicyAction::Block, _) => Vec::new(),
        (_, Some(models)) => models.clone(),
        (_, None) => all_models.to_vec(),
    };
    RuleNode {
        name: rule.name.clone(),
        when: rule.condition(),
        signals: rule.signals(),
        action: rule.action,
        models,
        reasoning: rule.reasoning.map(|r| match (r.enabled, r.effort) {
            (false, _) => "off".to_string(),
            (true, Some(effort)) => format!("on, {}", effort.as_str()),
            (true, None) => "on".to_string(),
        }),
        flag: rule.flag.clone(),
        preference: rule.preference.clone(),
    }
}
