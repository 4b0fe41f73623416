//! Data sets used to train and evaluate heads, one file per data set. Each loader returns
//! [`LabelledText`]s whose label indexes its data set's label list.

pub mod chitchat;
pub mod complexity;
pub mod instructions;
pub mod mmlu;
pub mod mtbench;
pub mod natural;
pub mod neuralchemy;
pub mod pii;
pub mod slabs;
pub mod smalltalk;

use std::collections::HashSet;
use std::path::PathBuf;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The jailbreak head's labels: what both prompt-injection data sets call 0 and 1.
pub const JAILBREAK_LABELS: [&str; 2] = ["benign", "jailbreak"];

/// One text and its label (an index into its data set's label list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledText {
    /// The text, as a user would send it.
    pub text: String,
    /// Index of its label.
    pub label: usize,
}

/// A text as compared for duplicates: spacing collapsed, lower case.
pub fn fold(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Benign (label 0) rows, each text once by [`fold`], in the order first seen.
#[derive(Default)]
pub(crate) struct DistinctBenign {
    seen: HashSet<String>,
    rows: Vec<LabelledText>,
}

impl DistinctBenign {
    /// Adds `text` unless it is empty or a duplicate.
    pub(crate) fn push(&mut self, text: String) {
        let folded = fold(&text);
        if !folded.is_empty() && self.seen.insert(folded) {
            self.rows.push(LabelledText { text, label: 0 });
        }
    }

    /// The rows kept.
    pub(crate) fn into_rows(self) -> Vec<LabelledText> {
        self.rows
    }
}

/// The usual three splits of a data set that ships them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training data.
    Train,
    /// Model selection (hyper-parameters); never trained on directly while choosing.
    Validation,
    /// Evaluation only: training never sees it.
    Test,
}

impl Split {
    /// The split's name as the data sets spell it.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

/// Why a data set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder the data set needs is missing.
    #[error("{what} not found at {path}; run `make setup` to fetch it")]
    Missing {
        /// What it is, e.g. `MMLU split folder`.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file could not be read or parsed.
    #[error("data file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An MMLU subject has no category in the mapping.
    #[error("MMLU subject `{0}` has no category in onnx/heads/mmlu-categories.json")]
    UnmappedSubject(String),
}

/// Checks that `path` is a file, naming it when it is not.
pub(crate) fn require(what: &'static str, path: PathBuf) -> Result<PathBuf, DataError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(DataError::Missing { what, path })
    }
}

/// Splits row indices into (kept, held out), holding out a `fraction` of each class (rounded)
/// chosen by a seeded shuffle: the same labels and seed always give the same split.
pub fn stratified_split(labels: &[usize], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let (mut kept, mut held) = (Vec::new(), Vec::new());
    for class in 0..classes {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rows.shuffle(&mut rng);
        let n_held = ((rows.len() as f64) * fraction).round() as usize;
        held.extend_from_slice(&rows[..n_held]);
        kept.extend_from_slice(&rows[n_held..]);
    }
    (kept, held)
}

/// `rows` as (kept, held out) by [`stratified_split`] on each row's `label`.
pub fn stratified_partition<T: Clone>(
    rows: &[T],
    label: impl Fn(&T) -> usize,
    fraction: f64,
    seed: u64,
) -> (Vec<T>, Vec<T>) {
    let labels: Vec<usize> = rows.iter().map(label).collect();
    let (kept, held) = stratified_split(&labels, fraction, seed);
    let pick = |indices: Vec<usize>| indices.into_iter().map(|i| rows[i].clone()).collect();
    (pick(kept), pick(held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_is_seeded_and_per_class() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i % 4 == 0)).collect();
        let (kept, held) = stratified_split(&labels, 0.2, 9);
        assert_eq!(held.len(), 20);
        assert_eq!(held.iter().filter(|&&i| labels[i] == 1).count(), 5);
        assert_eq!(kept.len() + held.len(), 100);
        assert_eq!(
            (kept.clone(), held.clone()),
            stratified_split(&labels, 0.2, 9)
        );
        assert_ne!(held, stratified_split(&labels, 0.2, 10).1);
    }
}
