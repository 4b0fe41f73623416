//! Chit-chat from the BYU chitchat data set 0.9.0 (MIT): 7,168 conversations between people,
//! unpacked by `make setup` to `onnx/fetched/chitchat/`. The opening turns ("whats up", "im doing
//! good, how are you doing?", "thanks!") are what people also type to a chatbot before a
//! request; neither prompt-injection set holds them, and without them the jailbreak head flagged
//! casual thanks. A seeded sample is taken, and a quarter of it held out for evaluation.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::{require, stratified_partition, DataError, DistinctBenign, LabelledText};

/// Where the file is after `make setup`.
pub const DEFAULT_PATH: &str = "onnx/fetched/chitchat/dataset.json";
/// Opening turns read from each conversation (a turn: one speaker's consecutive messages).
pub const TURNS_PER_CONVERSATION: usize = 2;
/// Utterances kept, a seeded sample of the distinct opening turns.
pub const SAMPLE: usize = 2000;
/// Share of the sample held out for evaluation.
pub const HELD_OUT_FRACTION: f64 = 0.25;
/// Seed of the sample and of the held-out split.
pub const SEED: u64 = 13;

/// A seeded sample of the distinct opening turns (case and spacing folded for the comparison),
/// labelled benign (0).
pub fn load(path: &Path) -> Result<Vec<LabelledText>, DataError> {
    let path = require("BYU chitchat file", path.to_path_buf())?;
    let bad = |reason: String| DataError::File {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let data: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let conversations = data
        .as_object()
        .ok_or_else(|| bad("not an object of conversations".into()))?;
    let mut distinct = DistinctBenign::default();
    // Object keys are sorted by serde_json, so the order, and so the sample, is stable.
    for conversation in conversations.values() {
        let Some(turns) = conversation["messages"].as_array() else {
            continue;
        };
        for turn in turns
            .iter()
            .take(TURNS_PER_CONVERSATION)
            .filter_map(Value::as_array)
        {
            let utterance = turn
                .iter()
                .filter_map(|m| m["text"].as_str())
                .collect::<Vec<_>>()
                .join(" ");
            distinct.push(utterance.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    let mut rows = distinct.into_rows();
    rows.shuffle(&mut ChaCha8Rng::seed_from_u64(SEED));
    rows.truncate(SAMPLE);
    Ok(rows)
}

/// The sample as (training, held out): training never sees the held-out part.
pub fn partition(rows: Vec<LabelledText>) -> (Vec<LabelledText>, Vec<LabelledText>) {
    stratified_partition(&rows, |r| r.label, HELD_OUT_FRACTION, SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_opening_turns_once_each_as_benign() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dataset.json");
        let turn = |texts: &[&str]| {
            Value::Array(
                texts
                    .iter()
                    .map(|t| serde_json::json!({"text": t, "sender": "a"}))
                    .collect(),
            )
        };
        let data = serde_json::json!({
            "a": {"messages": [turn(&["Hello", "How are you?"]), turn(&["im good"]), turn(&["third turn, not read"])]},
            "b": {"messages": [turn(&["hello  how are you?"])]},
        });
        std::fs::write(&path, data.to_string()).unwrap();
        let mut texts: Vec<String> = load(&path).unwrap().into_iter().map(|r| r.text).collect();
        texts.sort();
        assert_eq!(texts, ["Hello How are you?", "im good"]);
        assert!(matches!(
            load(&dir.path().join("nope.json")),
            Err(DataError::Missing { .. })
        ));
    }
}
