//! Signals: everything the policies and the scorer know about a request, computed once per
//! request from its one shared embedding and its text.
//!
//! Heads (domain, complexity, jailbreak) are linear models over the embedding, so adding a
//! signal adds microseconds, not another encoder pass.

pub mod context;
pub mod domain;
pub mod keywords;
pub mod pii;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::categories::Category;
use crate::config::ReasoningConfig;
use crate::heads::LinearHead;
pub use context::Context;
use domain::CategoryScores;
pub use keywords::{KeywordError, KeywordRules};

/// A probability distribution over a head's labels.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScores {
    labels: std::sync::Arc<[String]>,
    probabilities: Vec<f32>,
}

impl LabelScores {
    /// The most likely label and its probability.
    pub fn top(&self) -> (&str, f32) {
        let mut best = (0, f32::NEG_INFINITY);
        for (i, &p) in self.probabilities.iter().enumerate() {
            if p > best.1 {
                best = (i, p);
            }
        }
        (
            self.labels.get(best.0).map_or("", String::as_str),
            best.1.max(0.0),
        )
    }

    /// Probability of `label` (0 for an unknown label).
    pub fn probability(&self, label: &str) -> f32 {
        self.labels
            .iter()
            .position(|l| l == label)
            .map_or(0.0, |i| self.probabilities[i])
    }

    /// Every label with its probability.
    pub fn all(&self) -> impl Iterator<Item = (&str, f32)> + '_ {
        self.labels
            .iter()
            .map(String::as_str)
            .zip(self.probabilities.iter().copied())
    }
}

/// A trained head that produces a [`LabelScores`].
pub struct HeadSignal {
    head: LinearHead,
    labels: std::sync::Arc<[String]>,
}

impl HeadSignal {
    /// Wraps a loaded head.
    pub fn new(head: LinearHead) -> Self {
        let labels = head.labels().to_vec().into();
        Self { head, labels }
    }

    /// The head's labels.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The head applied to `embedding` (and `text`, for heads with lexical features).
    pub fn scores(&self, embedding: &[f32], text: &str) -> LabelScores {
        LabelScores {
            labels: self.labels.clone(),
            probabilities: self.head.probabilities(embedding, text),
        }
    }
}

/// How the reasoning need is computed from the signals.
#[derive(Debug, Clone)]
pub struct NeedModel {
    complexity_weight: f32,
    domain_weight: f32,
    uncertainty_weight: f32,
    complexity_scores: BTreeMap<String, f32>,
    category_prior: [f32; Category::COUNT],
}

impl NeedModel {
    /// Resolves validated reasoning config.
    pub fn from_config(config: &ReasoningConfig) -> Self {
        let default = config.category_prior.get("default").copied().unwrap_or(0.0) as f32;
        let mut category_prior = [default; Category::COUNT];
        for (name, &p) in &config.category_prior {
            if let Some(c) = Category::parse(name) {
                category_prior[c.index()] = p as f32;
            }
        }
        Self {
            complexity_weight: config.weights.complexity as f32,
            domain_weight: config.weights.domain as f32,
            uncertainty_weight: config.weights.uncertainty as f32,
            complexity_scores: config
                .complexity_scores
                .iter()
                .map(|(k, &v)| (k.clone(), v as f32))
                .collect(),
            category_prior,
        }
    }

    /// The expected complexity score of `complexity` (labels without a score count 0).
    fn complexity_score(&self, complexity: &LabelScores) -> f32 {
        complexity
            .all()
            .map(|(label, p)| p * self.complexity_scores.get(label).copied().unwrap_or(0.0))
            .sum()
    }

    /// The reasoning need in [0, 1]: the weighted mean of the complexity score (when a head is
    /// configured), the category prior under the category probabilities, and the uncertainty.
    pub fn need(
        &self,
        domain: &CategoryScores,
        uncertainty: f32,
        complexity: Option<&LabelScores>,
    ) -> f32 {
        let prior: f32 = domain
            .all()
            .map(|(c, p)| p * self.category_prior[c.index()])
            .sum();
        let mut total = self.domain_weight * prior + self.uncertainty_weight * uncertainty;
        let mut weight = self.domain_weight + self.uncertainty_weight;
        if let Some(complexity) = complexity {
            total += self.complexity_weight * self.complexity_score(complexity);
            weight += self.complexity_weight;
        }
        if weight > 0.0 {
            (total / weight).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Every signal of one request.
#[derive(Debug, Clone)]
pub struct Signals {
    /// Category probabilities.
    pub domain: CategoryScores,
    /// Normalised entropy of `domain`.
    pub uncertainty: f32,
    /// Complexity label probabilities, when a complexity head is configured.
    pub complexity: Option<LabelScores>,
    /// How much the request needs reasoning, 0 to 1.
    pub reasoning_need: f32,
    /// Probability that the prompt is an injection or jailbreak, when a head is configured.
    pub jailbreak: Option<f32>,
    /// Whether `jailbreak` reaches the configured threshold.
    pub jailbreak_detected: bool,
    /// Keyword rules that matched.
    pub keywords: Vec<String>,
    /// Size, turns, tools, streaming, tenant.
    pub context: Context,
    /// Personal data found, when detection ran (only when a policy or a model needs it).
    pub pii: Option<PiiSignal>,
}

/// Personal data found in a request: types only, never the values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PiiSignal {
    /// Entity types found (canonical upper-case names), sorted, without repeats.
    pub types: Vec<String>,
    /// Number of entities found.
    pub entities: usize,
    /// Time detection took.
    #[serde(skip)]
    pub elapsed: Duration,
}

/// The signals as reported with `explain`.
#[derive(Debug, Clone, Serialize)]
pub struct SignalsReport {
    domain: DomainReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    complexity: Option<ComplexityReport>,
    reasoning_need: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    jailbreak: Option<JailbreakReport>,
    keywords: Vec<String>,
    context: Context,
    #[serde(skip_serializing_if = "Option::is_none")]
    pii: Option<PiiSignal>,
}

#[derive(Debug, Clone, Serialize)]
struct DomainReport {
    category: &'static str,
    confidence: f32,
    uncertainty: f32,
}

#[derive(Debug, Clone, Serialize)]
struct ComplexityReport {
    label: String,
    score: f32,
    probabilities: BTreeMap<String, f32>,
}

#[derive(Debug, Clone, Serialize)]
struct JailbreakReport {
    score: f32,
    detected: bool,
}

impl Signals {
    /// The report given with `explain`.
    pub fn report(&self) -> SignalsReport {
        let (category, confidence) = self.domain.top();
        SignalsReport {
            domain: DomainReport {
                category: category.name(),
                confidence,
                uncertainty: self.uncertainty,
            },
            complexity: self.complexity.as_ref().map(|c| {
                let (label, score) = c.top();
                ComplexityReport {
                    label: label.to_string(),
                    score,
                    probabilities: c.all().map(|(l, p)| (l.to_string(), p)).collect(),
                }
            }),
            reasoning_need: self.reasoning_need,
            jailbreak: self.jailbreak.map(|score| JailbreakReport {
                score,
                detected: self.jailbreak_detected,
            }),
            keywords: self.keywords.clone(),
            context: self.context.clone(),
            pii: self.pii.clone(),
        }
    }
}

/// The label of a jailbreak head that means "attack".
pub const JAILBREAK_LABEL: &str = "jailbreak";

/// The signal extractors of one configuration, built once.
pub struct SignalSet {
    /// The complexity head.
    pub complexity: Option<HeadSignal>,
    /// The jailbreak head and its detection threshold.
    pub jailbreak: Option<(HeadSignal, f32)>,
    /// Keyword rules.
    pub keywords: KeywordRules,
    /// The reasoning need.
    pub need: NeedModel,
}

impl SignalSet {
    /// Computes every signal but the domain (given) from the shared embedding and the text.
    pub fn compute(
        &self,
        domain: CategoryScores,
        embedding: &[f32],
        text: &str,
        context: Context,
    ) -> Signals {
        let uncertainty = domain.uncertainty();
        let complexity = self.complexity.as_ref().map(|h| h.scores(embedding, text));
        let reasoning_need = self.need.need(&domain, uncertainty, complexity.as_ref());
        let jailbreak = self
            .jailbreak
            .as_ref()
            .map(|(h, _)| h.scores(embedding, text).probability(JAILBREAK_LABEL));
        let jailbreak_detected = match (&self.jailbreak, jailbreak) {
            (Some((_, threshold)), Some(score)) => score >= *threshold,
            _ => false,
        };
        let keywords = if self.keywords.is_empty() {
            Vec::new()
        } else {
            self.keywords.matching(text)
        };
        Signals {
            domain,
            uncertainty,
            complexity,
            reasoning_need,
            jailbreak,
            jailbreak_detected,
            keywords,
            context,
            pii: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NeedWeights;

    fn scores(labels: &[&str], p: &[f32]) -> LabelScores {
        LabelScores {
            labels: labels
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into(),
            probabilities: p.to_vec(),
        }
    }

    fn model() -> NeedModel {
        NeedModel::from_config(&ReasoningConfig {
            weights: NeedWeights {
                complexity: 0.5,
                domain: 0.5,
                uncertainty: 0.0,
            },
            complexity_scores: BTreeMap::from([("simple".into(), 0.0), ("complex".into(), 1.0)]),
            category_prior: BTreeMap::from([("math".into(), 1.0), ("default".into(), 0.0)]),
            ..ReasoningConfig::default()
        })
    }

    #[test]
    fn need_weighs_complexity_and_the_domain_prior() {
        let math = CategoryScores::from_pairs([(Category::parse("math").unwrap(), 1.0)]);
        let law = CategoryScores::from_pairs([(Category::parse("law").unwrap(), 1.0)]);
        let complex = scores(&["simple", "complex"], &[0.0, 1.0]);
        let simple = scores(&["simple", "complex"], &[1.0, 0.0]);
        let m = model();
        assert!((m.need(&math, 0.0, Some(&complex)) - 1.0).abs() < 1e-6);
        assert!((m.need(&math, 0.0, Some(&simple)) - 0.5).abs() < 1e-6);
        assert!((m.need(&law, 0.0, Some(&complex)) - 0.5).abs() < 1e-6);
        // Without a complexity head the domain prior decides alone.
        assert!((m.need(&math, 0.0, None) - 1.0).abs() < 1e-6);
        assert_eq!(m.need(&law, 0.0, None), 0.0);
    }

    #[test]
    fn label_scores_top_and_lookup() {
        let s = scores(&["benign", "jailbreak"], &[0.2, 0.8]);
        assert_eq!(s.top(), ("jailbreak", 0.8));
        assert_eq!(s.probability("jailbreak"), 0.8);
        assert_eq!(s.probability("nope"), 0.0);
    }
}
