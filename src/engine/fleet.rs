//! The configured models and their ranking for a request.
//!
//! A model's expected quality for a request is the sum over categories of the category's
//! probability times the model's quality score for it. The best expected quality wins; exact
//! ties go to the cheaper model, then to the one listed first.

use std::collections::HashMap;

use serde::Serialize;

use crate::categories::Category;
use crate::config::{ModelConfig, Price};
use crate::engine::domain::CategoryScores;
use crate::engine::reasoning::ReasoningFamily;

/// A routable model with its per-category quality resolved.
#[derive(Debug, Clone)]
pub struct ModelCard {
    /// Name written into requests.
    pub name: String,
    /// How its body switches reasoning.
    pub family: ReasoningFamily,
    /// Price per million tokens.
    pub price: Price,
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
        Self {
            name: model.name.clone(),
            family: model.reasoning_family,
            price: model.price,
            quality,
        }
    }

    fn unit_price(&self) -> f64 {
        self.price.input_per_million + self.price.output_per_million
    }
}

/// One candidate's score, reported in the decision so it can be explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Model name.
    pub model: String,
    /// Sum over categories of probability times quality.
    pub expected_quality: f32,
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
        let by_name = models.iter().enumerate().map(|(i, m)| (m.name.clone(), i)).collect();
        Self { models, by_name }
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Option<&ModelCard> {
        self.by_name.get(name).map(|&i| &self.models[i])
    }

    /// All models in config order.
    pub fn models(&self) -> &[ModelCard] {
        &self.models
    }

    /// Models ranked for `scores`: best expected quality first, then cheaper, then config order.
    /// Never empty (validation requires at least one model).
    pub fn rank(&self, scores: &CategoryScores) -> Vec<(&ModelCard, f32)> {
        let mut ranked: Vec<(usize, &ModelCard, f32)> = self
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| (i, m, scores.all().map(|(c, p)| p * m.quality[c.index()]).sum::<f32>()))
            .collect();
        ranked.sort_by(|a, b| {
            b.2.total_cmp(&a.2)
                .then(a.1.unit_price().total_cmp(&b.1.unit_price()))
                .then(a.0.cmp(&b.0))
        });
        ranked.into_iter().map(|(_, m, q)| (m, q)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn card(name: &str, price: f64, scores: &[(&str, f64)]) -> ModelCard {
        let quality: BTreeMap<String, f64> = scores.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        ModelCard::from_config(&ModelConfig {
            name: name.into(),
            reasoning_family: ReasoningFamily::None,
            price: Price {
                input_per_million: price,
                output_per_million: price,
            },
            quality,
        })
    }

    fn scores(pairs: &[(&str, f32)]) -> CategoryScores {
        CategoryScores::from_pairs(pairs.iter().map(|(name, p)| (Category::parse(name).unwrap(), *p)))
    }

    #[test]
    fn expected_quality_weighs_categories_by_probability() {
        let fleet = Fleet::new(vec![
            card("mathy", 1.0, &[("default", 0.5), ("math", 0.9)]),
            card("wordy", 1.0, &[("default", 0.8), ("math", 0.4)]),
        ]);
        let math = fleet.rank(&scores(&[("math", 0.9), ("law", 0.1)]));
        assert_eq!(math[0].0.name, "mathy");
        assert!((math[0].1 - (0.9 * 0.9 + 0.1 * 0.5)).abs() < 1e-5);
        let law = fleet.rank(&scores(&[("math", 0.2), ("law", 0.8)]));
        assert_eq!(law[0].0.name, "wordy");
    }

    #[test]
    fn ties_go_to_the_cheaper_model_then_config_order() {
        let fleet = Fleet::new(vec![
            card("dear", 5.0, &[("default", 0.7)]),
            card("cheap", 1.0, &[("default", 0.7)]),
            card("cheap-too", 1.0, &[("default", 0.7)]),
        ]);
        let ranked = fleet.rank(&scores(&[("math", 1.0)]));
        let names: Vec<&str> = ranked.iter().map(|(m, _)| m.name.as_str()).collect();
        assert_eq!(names, ["cheap", "cheap-too", "dear"]);
    }
}
