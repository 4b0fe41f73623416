//! The configured models: what each costs, what it may see, and how good it is per category.

use std::collections::{HashMap, HashSet};

use crate::categories::Category;
use crate::config::{ModelConfig, Price};
use crate::engine::signals::domain::CategoryScores;
use crate::engine::signals::pii::PiiType;

/// A routable model with its configuration resolved.
#[derive(Debug, Clone)]
pub struct ModelCard {
    /// Name written into requests.
    pub name: String,
    /// Reasoning family (a built-in or configured template name).
    pub family: String,
    /// Price per million tokens.
    pub price: Price,
    /// Longest prompt plus completion, when known.
    pub context_window: Option<u64>,
    /// Personal-data types the model may see; `None` means all.
    pub pii_allowed: Option<HashSet<String>>,
    /// Tenants that may use it; `None` means all.
    pub tenants: Option<HashSet<String>>,
    /// Quality per category, canonical order.
    pub quality: [f32; Category::COUNT],
}

impl ModelCard {
    /// Resolves a validated model config (`default` fills unlisted categories).
    pub fn from_config(model: &ModelConfig) -> Self {
        let default = model.quality.get("default").copied().unwrap_or(0.0);
        let mut quality = [default as f32; Category::COUNT];
        for (name, &score) in &model.quality {
            if let Some(c) = Category::parse(name) {
                quality[c.index()] = score as f32;
            }
        }
        let pii_allowed = model
            .pii_allowed
            .as_ref()
            .filter(|types| !types.iter().any(|t| t.eq_ignore_ascii_case("any")))
            .map(|types| {
                types
                    .iter()
                    .map(|t| {
                        PiiType::parse(t)
                            .map_or_else(|_| t.to_ascii_uppercase(), |p| p.as_str().to_string())
                    })
                    .collect()
            });
        Self {
            name: model.name.clone(),
            family: model.reasoning_family.clone(),
            price: model.price,
            context_window: model.context_window,
            pii_allowed,
            tenants: model.tenants.as_ref().map(|t| t.iter().cloned().collect()),
            quality,
        }
    }

    /// Expected quality for a request: the sum over categories of probability times quality.
    pub fn expected_quality(&self, scores: &CategoryScores) -> f32 {
        scores.all().map(|(c, p)| p * self.quality[c.index()]).sum()
    }

    /// Estimated cost of a request of `prompt` and `completion` tokens.
    pub fn cost(&self, prompt: u64, completion: f64) -> f64 {
        (prompt as f64 * self.price.input_per_million + completion * self.price.output_per_million)
            / 1e6
    }

    /// Whether the model may see personal data of every type in `types`.
    pub fn may_see(&self, types: &[String]) -> bool {
        self.pii_allowed
            .as_ref()
            .is_none_or(|allowed| types.iter().all(|t| allowed.contains(t)))
    }
}

/// The routable models.
#[derive(Debug, Clone)]
pub struct Fleet {
    models: Vec<ModelCard>,
    by_name: HashMap<String, usize>,
}

impl Fleet {
    /// A fleet from resolved model cards (config order is the final tie-break).
    pub fn new(models: Vec<ModelCard>) -> Self {
        let by_name = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        Self { models, by_name }
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Option<&ModelCard> {
        self.by_name.get(name).map(|&i| &self.models[i])
    }

    /// Position of `name` in config order.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// All models in config order.
    pub fn models(&self) -> &[ModelCard] {
        &self.models
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config(pii: Option<Vec<&str>>) -> ModelConfig {
        ModelConfig {
            name: "m".into(),
            reasoning_family: "none".into(),
            price: Price {
                input_per_million: 1.0,
                output_per_million: 2.0,
            },
            context_window: None,
            latency_prior_ms: 1.0,
            pii_allowed: pii.map(|v| v.into_iter().map(String::from).collect()),
            tenants: None,
            quality: BTreeMap::from([("default".to_string(), 0.5), ("math".to_string(), 0.9)]),
            upstream: None,
        }
    }

    #[test]
    fn expected_quality_weighs_categories_by_probability() {
        let card = ModelCard::from_config(&config(None));
        let scores = CategoryScores::from_pairs([
            (Category::parse("math").unwrap(), 0.9),
            (Category::parse("law").unwrap(), 0.1),
        ]);
        assert!((card.expected_quality(&scores) - (0.9 * 0.9 + 0.1 * 0.5)).abs() < 1e-6);
        assert!((card.cost(1_000_000, 500_000.0) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn pii_allow_lists() {
        let all = ModelCard::from_config(&config(None));
        assert!(all.may_see(&["EMAIL".into()]));
        let any = ModelCard::from_config(&config(Some(vec!["any"])));
        assert!(any.may_see(&["US_SSN".into()]));
        let some = ModelCard::from_config(&config(Some(vec!["email"])));
        assert!(some.may_see(&["EMAIL".into()]));
        assert!(!some.may_see(&["EMAIL".into(), "PHONE".into()]));
        assert!(some.may_see(&[]));
    }
}
