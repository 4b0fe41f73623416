//! Small talk from chatterbot-corpus 1.2.0 (BSD-3-Clause, Gunther Cox): `make setup` unpacks
//! its English `greetings`, `conversations`, `emotion` and `humor` files to
//! `onnx/fetched/chatterbot/`. Neither prompt-injection set holds greetings or thanks, so
//! without these a jailbreak head has never seen "hello!" as benign, and flagged it.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use super::{require, stratified_partition, DataError, DistinctBenign, LabelledText};

/// Where the files are after `make setup`.
pub const DEFAULT_DIR: &str = "onnx/fetched/chatterbot";

/// The corpus files read, all of them conversation with a bot, none an instruction to it.
pub const FILES: [&str; 4] = ["greetings", "conversations", "emotion", "humor"];

/// Share of the utterances held out for evaluation (seeded, the same on every run).
pub const HELD_OUT_FRACTION: f64 = 0.25;
/// Seed of the held-out split.
pub const SPLIT_SEED: u64 = 7;

/// Every distinct utterance of the files (case and spacing folded for the comparison), in
/// file order, labelled benign (0).
pub fn load(dir: &Path) -> Result<Vec<LabelledText>, DataError> {
    let mut rows = DistinctBenign::default();
    for name in FILES {
        let path = require("chatterbot-corpus file", dir.join(format!("{name}.yml")))?;
        let bad = |reason: String| DataError::File {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let docs = YamlLoader::load_from_str(&text).map_err(|e| bad(e.to_string()))?;
        let Some(Yaml::Array(conversations)) = docs.first().map(|d| &d["conversations"]) else {
            return Err(bad("no `conversations` list".into()));
        };
        for utterance in conversations
            .iter()
            .filter_map(Yaml::as_vec)
            .flatten()
            .filter_map(Yaml::as_str)
        {
            rows.push(utterance.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    Ok(rows.into_rows())
}

/// The utterances as (training, held out): training never sees the held-out part.
pub fn partition(rows: Vec<LabelledText>) -> (Vec<LabelledText>, Vec<LabelledText>) {
    stratified_partition(&rows, |r| r.label, HELD_OUT_FRACTION, SPLIT_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_utterance_once_and_splits_the_same_way_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let body = "categories:\n- greetings\nconversations:\n- - Hello\n  - Hi,   there\n- - hello\n  - 'a long answer\n    on two lines'\n";
        for name in FILES {
            std::fs::write(dir.path().join(format!("{name}.yml")), body).unwrap();
        }
        let rows = load(dir.path()).unwrap();
        let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["Hello", "Hi, there", "a long answer on two lines"]);
        assert!(rows.iter().all(|r| r.label == 0));
        let (train, held) = partition(rows.clone());
        assert_eq!(train.len() + held.len(), rows.len());
        assert_eq!(partition(rows).1, held);
        std::fs::write(dir.path().join("humor.yml"), "categories: [humor]\n").unwrap();
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("conversations"));
        std::fs::remove_file(dir.path().join("emotion.yml")).unwrap();
        assert!(matches!(load(dir.path()), Err(DataError::Missing { .. })));
    }
}
