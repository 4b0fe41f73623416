//! Task complexity labels from `dynamic-model-router` 0.4.0 (MIT): `make setup` unpacks
//! `classifier/data/synthetic_tasks.jsonl` into `onnx/fetched/dynamic-model-router/`, 1,997
//! short synthetic prompts `{"task", "task_type", "complexity"}` with complexity one of
//! [`LABELS`].
//!
//! The file has no splits, so [`partition`] makes one: exact duplicate prompts are dropped
//! (first kept), then a stratified [`HELD_OUT_FRACTION`] is held out with [`SPLIT_SEED`]. Training
//! never sees the held-out rows; the head file records their line numbers.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use super::{require, stratified_partition, DataError, LabelledText};

/// Where the file is after `make setup`.
pub const DEFAULT_PATH: &str = "onnx/fetched/dynamic-model-router/synthetic_tasks.jsonl";

/// Complexity labels, from least to most demanding.
pub const LABELS: [&str; 4] = ["simple", "standard", "complex", "research"];

/// Share of each label held out for evaluation.
pub const HELD_OUT_FRACTION: f64 = 0.2;

/// Seed of the held-out split: fixed, so every run holds out the same rows.
pub const SPLIT_SEED: u64 = 20261123;

/// One prompt with its complexity and where it is in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// 1-based line number in the file.
    pub line: usize,
    /// The prompt and its label (an index into [`LABELS`]).
    pub item: LabelledText,
}

#[derive(Deserialize)]
struct Row {
    task: String,
    complexity: String,
}

/// Reads every row, dropping exact duplicate prompts (the first is kept).
pub fn load(path: &Path) -> Result<Vec<Task>, DataError> {
    let path = require("task complexity data", path.to_path_buf())?;
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::File {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let mut seen = HashSet::new();
    let mut tasks = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |reason: String| DataError::File {
            path: path.clone(),
            reason: format!("line {}: {reason}", i + 1),
        };
        let row: Row = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let label = LABELS
            .iter()
            .position(|&l| l == row.complexity)
            .ok_or_else(|| {
                bad(format!(
                    "complexity `{}` is not one of {}",
                    row.complexity,
                    LABELS.join(", ")
                ))
            })?;
        if seen.insert(row.task.clone()) {
            tasks.push(Task {
                line: i + 1,
                item: LabelledText {
                    text: row.task,
                    label,
                },
            });
        }
    }
    Ok(tasks)
}

/// The fixed split of the data set into (training rows, held-out rows).
pub fn partition(tasks: Vec<Task>) -> (Vec<Task>, Vec<Task>) {
    stratified_partition(&tasks, |t| t.item.label, HELD_OUT_FRACTION, SPLIT_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_drops_duplicates_and_rejects_unknown_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"task": "Sum 2 and 2.", "task_type": "math", "complexity": "simple"}"#,
                "\n",
                r#"{"task": "Design a study.", "task_type": "research", "complexity": "research"}"#,
                "\n",
                r#"{"task": "Sum 2 and 2.", "task_type": "math", "complexity": "simple"}"#,
                "\n"
            ),
        )
        .unwrap();
        let tasks = load(&path).unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!((tasks[1].line, tasks[1].item.label), (2, 3));
        std::fs::write(&path, r#"{"task": "x", "complexity": "hard"}"#).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("line 1"));
    }

    #[test]
    fn partition_holds_out_a_fifth_of_each_label() {
        let tasks: Vec<Task> = (0..100)
            .map(|i| Task {
                line: i + 1,
                item: LabelledText {
                    text: format!("t{i}"),
                    label: i % 4,
                },
            })
            .collect();
        let (train, held) = partition(tasks.clone());
        assert_eq!((train.len(), held.len()), (80, 20));
        assert!((0..4).all(|l| held.iter().filter(|t| t.item.label == l).count() == 5));
        assert_eq!(partition(tasks).1, held);
    }
}
