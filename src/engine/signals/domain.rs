//! The domain classifier: category probabilities for a text, from a linear head over the
//! shared embedding or from a separate sequence-classification model. Labels are matched to
//! categories by name.

use std::sync::Arc;

use semrouter_embedder::{BackendError, Encoded, TextClassifier};
use serde::Serialize;

use crate::categories::{Category, CATEGORIES};
use crate::heads::{softmax, LinearHead};

/// Probabilities over the 14 categories, in canonical order.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryScores {
    probabilities: [f32; Category::COUNT],
}

/// One category and its probability, as reported to clients.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryProbability {
    /// Category name.
    pub name: &'static str,
    /// Its probability.
    pub probability: f32,
}

impl CategoryScores {
    /// Scores from explicit (category, probability) pairs; unlisted categories get 0.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Category, f32)>) -> Self {
        let mut probabilities = [0f32; Category::COUNT];
        for (category, p) in pairs {
            probabilities[category.index()] = p;
        }
        Self { probabilities }
    }

    /// Places label probabilities (`rows[i]` is the category of label `i`) into category order.
    fn from_rows(rows: &[Category], probabilities: &[f32]) -> Self {
        Self::from_pairs(rows.iter().copied().zip(probabilities.iter().copied()))
    }

    /// Probability of `category`.
    pub fn probability(&self, category: Category) -> f32 {
        self.probabilities[category.index()]
    }

    /// The most likely category and its probability.
    pub fn top(&self) -> (Category, f32) {
        // The first maximum, so ties go to the canonical order as in `ranked`.
        let mut best = (Category::default(), f32::NEG_INFINITY);
        for c in Category::all() {
            let p = self.probability(c);
            if p > best.1 {
                best = (c, p);
            }
        }
        best
    }

    /// All categories, most likely first (ties in canonical order).
    pub fn ranked(&self) -> Vec<(Category, f32)> {
        let mut all: Vec<(Category, f32)> =
            Category::all().map(|c| (c, self.probability(c))).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all
    }

    /// The `n` most likely categories, for replies.
    pub fn top_n(&self, n: usize) -> Vec<CategoryProbability> {
        self.ranked()
            .into_iter()
            .take(n)
            .map(|(c, p)| CategoryProbability {
                name: c.name(),
                probability: p,
            })
            .collect()
    }

    /// Normalised entropy of the probabilities: 0 when one category is certain, 1 when all
    /// are equally likely.
    pub fn uncertainty(&self) -> f32 {
        let entropy: f32 = self
            .probabilities
            .iter()
            .filter(|&&p| p > 0.0)
            .map(|&p| -p * p.ln())
            .sum();
        (entropy / (Category::COUNT as f32).ln()).clamp(0.0, 1.0)
    }

    /// Every category with its probability, in canonical order.
    pub fn all(&self) -> impl Iterator<Item = (Category, f32)> + '_ {
        Category::all().map(|c| (c, self.probability(c)))
    }
}

/// Why a classifier's labels cannot be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    /// A label names no category.
    #[error("label `{0}` is not one of the categories ({list})", list = CATEGORIES.join(", "))]
    Unknown(String),
    /// Two labels name the same category.
    #[error("labels `{0}` and `{1}` name the same category")]
    Duplicate(String, String),
}

/// Maps each label to its category, by name.
fn label_rows(labels: &[String]) -> Result<Vec<Category>, LabelError> {
    let mut rows: Vec<Category> = Vec::with_capacity(labels.len());
    for (i, label) in labels.iter().enumerate() {
        let category = Category::parse(label).ok_or_else(|| LabelError::Unknown(label.clone()))?;
        if let Some(j) = rows.iter().position(|&c| c == category) {
            return Err(LabelError::Duplicate(labels[j].clone(), labels[i].clone()));
        }
        rows.push(category);
    }
    Ok(rows)
}

/// A domain classifier of either kind.
pub enum DomainClassifier {
    /// A linear head over the shared embedding: no extra model pass.
    Linear {
        /// The trained head (boxed: it is much larger than the other variant).
        head: Box<LinearHead>,
        /// Category of each head label.
        rows: Vec<Category>,
    },
    /// A sequence-classification model with its own forward pass.
    Sequence {
        /// The model.
        model: Arc<dyn TextClassifier>,
        /// Category of each logit.
        rows: Vec<Category>,
    },
}

impl DomainClassifier {
    /// A classifier from a trained head.
    pub fn linear(head: LinearHead) -> Result<Self, LabelError> {
        let rows = label_rows(&head.labels)?;
        Ok(Self::Linear {
            head: Box::new(head),
            rows,
        })
    }

    /// A classifier from a sequence-classification model; its labels are read by name.
    pub fn sequence(model: Arc<dyn TextClassifier>) -> Result<Self, LabelError> {
        let rows = label_rows(model.labels())?;
        Ok(Self::Sequence { model, rows })
    }

    /// Category probabilities: from the shared `embedding` (linear head), or from the
    /// sequence model's own pass over `text`, whose output is returned for its timing.
    pub async fn classify(
        &self,
        embedding: &[f32],
        text: &str,
    ) -> Result<(CategoryScores, Option<Encoded>), BackendError> {
        match self {
            Self::Linear { head, rows } => Ok((
                CategoryScores::from_rows(rows, &head.probabilities(embedding, text)),
                None,
            )),
            Self::Sequence { model, rows } => {
                let encoded = model
                    .classify(vec![text.to_string()])
                    .await?
                    .pop()
                    .ok_or_else(|| BackendError::Inference("the model returned no row".into()))?;
                let mut probabilities = encoded.values.clone();
                softmax(&mut probabilities);
                Ok((
                    CategoryScores::from_rows(rows, &probabilities),
                    Some(encoded),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_by_name_in_any_order() {
        let labels: Vec<String> = ["math", "law", "Computer_Science"].map(String::from).into();
        let rows = label_rows(&labels).unwrap();
        let scores = CategoryScores::from_rows(&rows, &[0.7, 0.2, 0.1]);
        assert_eq!(scores.probability(Category::parse("math").unwrap()), 0.7);
        assert_eq!(
            scores.probability(Category::parse("computer science").unwrap()),
            0.1
        );
        assert_eq!(scores.top().0.name(), "math");
        assert_eq!(scores.top_n(2)[1].name, "law");
    }

    #[test]
    fn uncertainty_is_normalised_entropy() {
        let certain = CategoryScores::from_pairs([(Category::parse("math").unwrap(), 1.0)]);
        assert_eq!(certain.uncertainty(), 0.0);
        let flat =
            CategoryScores::from_pairs(Category::all().map(|c| (c, 1.0 / Category::COUNT as f32)));
        assert!((flat.uncertainty() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn unknown_and_duplicate_labels_are_errors() {
        let unknown: Vec<String> = vec!["astrology".into()];
        assert!(matches!(label_rows(&unknown), Err(LabelError::Unknown(_))));
        let dup: Vec<String> = vec!["math".into(), "Math".into()];
        assert!(matches!(label_rows(&dup), Err(LabelError::Duplicate(..))));
    }
}
