//! The domain classifier: category probabilities for a text, from a linear head over the
//! shared embedding or from a separate sequence-classification model. Labels are matched to
//! categories by name.

use std::sync::Arc;
use std::time::{Duration, Instant};

use semrouter_embedder::{BackendError, Embedder, Encoded, TextClassifier};
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
        self.ranked()[0]
    }

    /// All categories, most likely first (ties in canonical order).
    pub fn ranked(&self) -> Vec<(Category, f32)> {
        let mut all: Vec<(Category, f32)> = Category::all().map(|c| (c, self.probability(c))).collect();
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

    /// Category probabilities for `text`: through the shared embedding (linear head) or the
    /// sequence model. Returns the backend output (for its tokens and timing) and the time
    /// spent applying the head.
    pub async fn classify(&self, embedder: &dyn Embedder, text: String) -> Result<(CategoryScores, Encoded, Duration), BackendError> {
        let no_row = || BackendError::Inference("the model returned no row".into());
        match self {
            Self::Linear { head, rows } => {
                let encoded = embedder.embed(vec![text.clone()]).await?.pop().ok_or_else(no_row)?;
                let started = Instant::now();
                let scores = CategoryScores::from_rows(rows, &head.probabilities(&encoded.values, &text));
                Ok((scores, encoded, started.elapsed()))
            }
            Self::Sequence { model, rows } => {
                let encoded = model.classify(vec![text]).await?.pop().ok_or_else(no_row)?;
                let started = Instant::now();
                let mut probabilities = encoded.values.clone();
                softmax(&mut probabilities);
                Ok((CategoryScores::from_rows(rows, &probabilities), encoded, started.elapsed()))
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
        assert_eq!(scores.probability(Category::parse("computer science").unwrap()), 0.1);
        assert_eq!(scores.top().0.name(), "math");
        assert_eq!(scores.top_n(2)[1].name, "law");
    }

    #[test]
    fn unknown_and_duplicate_labels_are_errors() {
        let unknown: Vec<String> = vec!["astrology".into()];
        assert!(matches!(label_rows(&unknown), Err(LabelError::Unknown(_))));
        let dup: Vec<String> = vec!["math".into(), "Math".into()];
        assert!(matches!(label_rows(&dup), Err(LabelError::Duplicate(..))));
    }
}
