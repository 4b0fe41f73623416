//! The natural-prompt evaluation set, committed under `eval/natural/`: prompts written the way
//! people write to a chatbot, each labelled with its domain, task type and whether a good answer
//! needs step-by-step reasoning, and with its provenance. Evaluation only: no head trains on it
//! (`eval/natural/README.md`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::DataError;
use crate::categories::Category;

/// Where the set lives in the repository.
pub const DEFAULT_DIR: &str = "eval/natural";

/// The task types a prompt is labelled with.
pub const TASKS: [&str; 12] = [
    "chat",
    "creative_writing",
    "rewriting",
    "roleplay",
    "extraction",
    "summarization",
    "classification",
    "brainstorming",
    "open_qa",
    "coding",
    "math",
    "reasoning",
];

/// One labelled prompt.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NaturalPrompt {
    /// Unique across the set.
    pub id: String,
    /// The prompt as a user would send it.
    pub text: String,
    /// One of the 14 categories.
    pub domain: String,
    /// One of [`TASKS`].
    pub task: String,
    /// Whether a good answer needs step-by-step reasoning.
    pub reasoning: bool,
    /// Where the prompt came from.
    pub source: String,
}

/// Every prompt of every `*.jsonl` file in `dir` (files in name order), checked: labels from
/// the lists, ids unique, no empty text.
pub fn load(dir: &Path) -> Result<Vec<NaturalPrompt>, DataError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|_| DataError::Missing {
            what: "natural eval set folder",
            path: dir.to_path_buf(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut ids = HashSet::new();
    let mut prompts = Vec::new();
    for path in files {
        let bad = |line: usize, reason: String| DataError::File {
            path: path.clone(),
            reason: format!("line {line}: {reason}"),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(0, e.to_string()))?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let prompt: NaturalPrompt =
                serde_json::from_str(line).map_err(|e| bad(n + 1, e.to_string()))?;
            if Category::parse(&prompt.domain).is_none() {
                return Err(bad(n + 1, format!("unknown domain `{}`", prompt.domain)));
            }
            if !TASKS.contains(&prompt.task.as_str()) {
                return Err(bad(n + 1, format!("unknown task `{}`", prompt.task)));
            }
            if prompt.text.trim().is_empty() || prompt.source.trim().is_empty() {
                return Err(bad(n + 1, "empty text or source".into()));
            }
            if !ids.insert(prompt.id.clone()) {
                return Err(bad(n + 1, format!("duplicate id `{}`", prompt.id)));
            }
            prompts.push(prompt);
        }
    }
    Ok(prompts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, lines: &[&str]) {
        std::fs::write(dir.join(name), lines.join("\n")).unwrap();
    }

    #[test]
    fn reads_every_file_and_refuses_bad_labels_and_duplicate_ids() {
        let dir = tempfile::tempdir().unwrap();
        let good = r#"{"id":"x-1","text":"hi there","domain":"other","task":"chat","reasoning":false,"source":"hand-written"}"#;
        write(dir.path(), "a.jsonl", &[good]);
        write(
            dir.path(),
            "b.jsonl",
            &[
                r#"{"id":"x-2","text":"2+2*3?","domain":"math","task":"math","reasoning":true,"source":"hand-written"}"#,
            ],
        );
        let prompts = load(dir.path()).unwrap();
        assert_eq!(prompts.len(), 2);
        assert_eq!(
            (prompts[1].domain.as_str(), prompts[1].reasoning),
            ("math", true)
        );

        write(dir.path(), "c.jsonl", &[good]);
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("duplicate id `x-1`"));
        write(
            dir.path(),
            "c.jsonl",
            &[
                r#"{"id":"x-3","text":"t","domain":"astrology","task":"chat","reasoning":false,"source":"s"}"#,
            ],
        );
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("unknown domain `astrology`"));
        write(
            dir.path(),
            "c.jsonl",
            &[
                r#"{"id":"x-3","text":"t","domain":"other","task":"gossip","reasoning":false,"source":"s"}"#,
            ],
        );
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("unknown task `gossip`"));
        assert!(matches!(
            load(&dir.path().join("nope")),
            Err(DataError::Missing { .. })
        ));
    }
}
