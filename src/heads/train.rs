//! Training a [`LinearHead`](super::LinearHead): multinomial logistic regression with L2
//! regularisation, fitted by mini-batch Adam.
//!
//! The inputs are the embedding and, optionally, hashed n-grams of the text (sparse), in one
//! linear model. Hyper-parameters (L2 strength, epochs) are chosen on data held out for that
//! purpose (a validation split, or a stratified slice of the training data), never on the
//! evaluation split. Everything is seeded, so the same data and options give the same head.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::linear::row_logit;
use crate::data::stratified_split;

/// What a head reads for one text: its embedding and, for heads with lexical features, the
/// text's hashed n-grams (sorted `(bucket, value)` pairs; empty otherwise).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    /// The text's embedding.
    pub embedding: Vec<f32>,
    /// Its lexical features, from [`LexicalFeatures::features`](super::LexicalFeatures::features).
    pub lexical: Vec<(u32, f32)>,
}

/// Labelled examples: row `i` of `x` has class `y[i]`.
#[derive(Debug, Clone, Default)]
pub struct Examples {
    /// Features, all with embeddings of one dimension.
    pub x: Vec<Features>,
    /// Class index per example.
    pub y: Vec<usize>,
    /// Number of lexical buckets (0 for an embedding-only head).
    pub buckets: usize,
}

impl Examples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// The examples at `rows`, in that order.
    pub fn subset(&self, rows: &[usize]) -> Examples {
        Examples {
            x: rows.iter().map(|&i| self.x[i].clone()).collect(),
            y: rows.iter().map(|&i| self.y[i]).collect(),
            buckets: self.buckets,
        }
    }

    /// These examples followed by `other`'s.
    pub fn concat(mut self, other: &Examples) -> Examples {
        self.x.extend(other.x.iter().cloned());
        self.y.extend(&other.y);
        self
    }

    /// Splits off a stratified `fraction` of each class as a held-out set
    /// ([`stratified_split`]).
    pub fn split_stratified(&self, fraction: f64, seed: u64) -> (Examples, Examples) {
        let (kept, held) = stratified_split(&self.y, fraction, seed);
        (self.subset(&kept), self.subset(&held))
    }
}

/// Options of one training run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TrainOptions {
    /// L2 penalty on the weights (not the bias), per example.
    pub l2: f64,
    /// Passes over the data.
    pub epochs: usize,
    /// Adam step size.
    pub learning_rate: f64,
    /// Examples per update.
    pub batch_size: usize,
    /// Seed for shuffling.
    pub seed: u64,
}

/// A trained linear model: `weights[class][dim]`, `bias[class]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// One row per class.
    pub weights: Vec<Vec<f32>>,
    /// One bias per class.
    pub bias: Vec<f32>,
}

impl Fitted {
    /// Index of the highest-scoring class for `x`.
    pub fn predict(&self, x: &Features) -> usize {
        let mut best = (0, f32::NEG_INFINITY);
        for (c, (row, &b)) in self.weights.iter().zip(&self.bias).enumerate() {
            let score = row_logit(row, b, &x.embedding, &x.lexical);
            if score > best.1 {
                best = (c, score);
            }
        }
        best.0
    }

    /// Share of `examples` predicted correctly.
    pub fn accuracy(&self, examples: &Examples) -> f64 {
        if examples.is_empty() {
            return 0.0;
        }
        let correct = examples
            .x
            .iter()
            .zip(&examples.y)
            .filter(|(x, &y)| self.predict(x) == y)
            .count();
        correct as f64 / examples.len() as f64
    }
}

/// Adam state for one parameter block.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    const BETA1: f32 = 0.9;
    const BETA2: f32 = 0.999;
    const EPS: f32 = 1e-8;

    fn new(len: usize) -> Self {
        Self {
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }

    fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32, t: i32) {
        let c1 = 1.0 - Self::BETA1.powi(t);
        let c2 = 1.0 - Self::BETA2.powi(t);
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = Self::BETA1 * *m + (1.0 - Self::BETA1) * g;
            *v = Self::BETA2 * *v + (1.0 - Self::BETA2) * g * g;
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + Self::EPS);
        }
    }
}

/// Fits a model on `train`; `after_epoch(epoch, &model)` runs after every epoch (for progress
/// and held-out scoring). Each weight row has the embedding's dimension plus
/// `train.buckets` columns.
pub fn fit(
    train: &Examples,
    classes: usize,
    options: TrainOptions,
    mut after_epoch: impl FnMut(usize, &Fitted),
) -> Fitted {
    let dim = train.x.first().map_or(0, |x| x.embedding.len());
    let width = dim + train.buckets;
    let mut weights = vec![0f32; classes * width];
    let mut bias = vec![0f32; classes];
    let mut adam_w = Adam::new(weights.len());
    let mut adam_b = Adam::new(classes);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut grad_w = vec![0f32; weights.len()];
    let mut grad_b = vec![0f32; classes];
    let mut probs = vec![0f32; classes];
    let mut t = 0;
    let mut fitted = Fitted {
        weights: Vec::new(),
        bias: Vec::new(),
    };
    for epoch in 1..=options.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(options.batch_size.max(1)) {
            grad_w.fill(0.0);
            grad_b.fill(0.0);
            for &i in batch {
                let x = &train.x[i];
                for (c, p) in probs.iter_mut().enumerate() {
                    *p = row_logit(
                        &weights[c * width..(c + 1) * width],
                        bias[c],
                        &x.embedding,
                        &x.lexical,
                    );
                }
                super::softmax(&mut probs);
                probs[train.y[i]] -= 1.0;
                for (c, &err) in probs.iter().enumerate() {
                    grad_b[c] += err;
                    let row = &mut grad_w[c * width..(c + 1) * width];
                    row.iter_mut()
                        .zip(&x.embedding)
                        .for_each(|(g, v)| *g += err * v);
                    for &(bucket, v) in &x.lexical {
                        if let Some(g) = row.get_mut(dim + bucket as usize) {
                            *g += err * v;
                        }
                    }
                }
            }
            let scale = 1.0 / batch.len() as f32;
            let l2 = options.l2 as f32;
            grad_w
                .iter_mut()
                .zip(&weights)
                .for_each(|(g, w)| *g = *g * scale + l2 * w);
            grad_b.iter_mut().for_each(|g| *g *= scale);
            t += 1;
            let lr = options.learning_rate as f32;
            adam_w.step(&mut weights, &grad_w, lr, t);
            adam_b.step(&mut bias, &grad_b, lr, t);
        }
        fitted = Fitted {
            weights: weights.chunks(width.max(1)).map(<[f32]>::to_vec).collect(),
            bias: bias.clone(),
        };
        after_epoch(epoch, &fitted);
    }
    fitted
}

/// The outcome of hyper-parameter selection on the held-out slice.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    /// Chosen L2 strength.
    pub l2: f64,
    /// Chosen number of epochs.
    pub epochs: usize,
    /// Held-out accuracy of the chosen setting.
    pub held_out_accuracy: f64,
    /// Held-out accuracy of every L2 strength tried (at its best epoch).
    pub tried: Vec<(f64, usize, f64)>,
}

/// Tries each L2 strength on `train`, scoring on `held_out` after each epoch; returns the best
/// (L2, epochs). `progress` is told after each epoch of each trial.
pub fn select(
    train: &Examples,
    held_out: &Examples,
    classes: usize,
    l2_grid: &[f64],
    base: TrainOptions,
    mut progress: impl FnMut(),
) -> Selection {
    let mut tried = Vec::new();
    for &l2 in l2_grid {
        let mut best = (0, 0.0f64);
        fit(
            train,
            classes,
            TrainOptions { l2, ..base },
            |epoch, model| {
                let acc = model.accuracy(held_out);
                if acc > best.1 {
                    best = (epoch, acc);
                }
                progress();
            },
        );
        tried.push((l2, best.0, best.1));
    }
    let (l2, epochs, held_out_accuracy) =
        tried
            .iter()
            .copied()
            .fold((base.l2, base.epochs, -1.0), |acc, t| {
                if t.2 > acc.2 {
                    t
                } else {
                    acc
                }
            });
    Selection {
        l2,
        epochs,
        held_out_accuracy,
        tried,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two well-separated clusters per class in 3 dimensions.
    fn clusters() -> Examples {
        let mut ex = Examples::default();
        let centres = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        for i in 0..300 {
            let c = i % 3;
            let jitter = (i as f32 * 0.37).sin() * 0.2;
            let mut x = centres[c].to_vec();
            x[(c + 1) % 3] += jitter;
            ex.x.push(Features {
                embedding: x,
                lexical: Vec::new(),
            });
            ex.y.push(c);
        }
        ex
    }

    fn options() -> TrainOptions {
        TrainOptions {
            l2: 1e-4,
            epochs: 20,
            learning_rate: 0.05,
            batch_size: 32,
            seed: 7,
        }
    }

    #[test]
    fn learns_separable_classes() {
        let data = clusters();
        let model = fit(&data, 3, options(), |_, _| {});
        assert_eq!(model.accuracy(&data), 1.0);
    }

    #[test]
    fn same_seed_same_model() {
        let data = clusters();
        assert_eq!(
            fit(&data, 3, options(), |_, _| {}),
            fit(&data, 3, options(), |_, _| {})
        );
    }

    #[test]
    fn stratified_split_keeps_every_class_in_both_parts() {
        let (kept, held) = clusters().split_stratified(0.1, 1);
        assert_eq!(kept.len() + held.len(), 300);
        assert_eq!(held.len(), 30);
        for c in 0..3 {
            assert_eq!(held.y.iter().filter(|&&y| y == c).count(), 10);
        }
    }

    #[test]
    fn lexical_features_are_learned_beside_the_embedding() {
        // The embedding says nothing; bucket 3 (class 1) or bucket 5 (class 0) decides.
        let mut data = Examples {
            buckets: 8,
            ..Examples::default()
        };
        for i in 0..200 {
            let class = i % 2;
            data.x.push(Features {
                embedding: vec![0.5, 0.5],
                lexical: vec![(if class == 1 { 3 } else { 5 }, 1.0)],
            });
            data.y.push(class);
        }
        let model = fit(&data, 2, options(), |_, _| {});
        assert_eq!(model.weights[0].len(), 2 + 8);
        assert_eq!(model.accuracy(&data), 1.0);
        assert!(model.weights[1][2 + 3] > model.weights[0][2 + 3]);
    }

    #[test]
    fn subset_and_concat_keep_rows_and_buckets() {
        let data = Examples {
            buckets: 4,
            ..clusters()
        };
        let part = data.subset(&[2, 0]);
        assert_eq!(part.y, vec![2, 0]);
        assert_eq!(part.buckets, 4);
        assert_eq!(part.clone().concat(&part).len(), 4);
    }

    #[test]
    fn selection_reports_every_trial() {
        let (train, held) = clusters().split_stratified(0.2, 3);
        let mut calls = 0;
        let s = select(&train, &held, 3, &[1e-4, 1e-2], options(), || calls += 1);
        assert_eq!(s.tried.len(), 2);
        assert_eq!(calls, 40);
        assert!(s.held_out_accuracy > 0.9);
    }
}
