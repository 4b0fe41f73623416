//! The jailbreak and complexity heads on data training never saw, through the real encoder and
//! the same head API the engine calls (`semrouter eval jailbreak|complexity`); their binding to
//! the embedding model; the committed head files; the eval files (`semrouter data evals`).

mod common;

use common::{repo, run_cli};
use serde_json::Value;

/// F1 the jailbreak head must reach on each prompt-injection test split.
const MIN_JAILBREAK_F1: f64 = 0.93;
/// Floor for the complexity head's held-out accuracy (0.8797 when trained; a little under).
const MIN_COMPLEXITY_ACCURACY: f64 = 0.85;

/// The number after `key` in a summary line such as `... f1 0.9729, accuracy ...`.
fn score_after(line: &str, key: &str) -> f64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| *w == key)
        .unwrap_or_else(|| panic!("no `{key}` in {line}"));
    words[i + 1]
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|_| panic!("no number after `{key}` in {line}"))
}

#[test]
fn jailbreak_head_reaches_093_f1_on_both_test_splits() {
    let min = MIN_JAILBREAK_F1.to_string();
    let (status, stdout, stderr) = run_cli(&["eval", "jailbreak", "--min-f1", &min], &[]);
    assert!(status.success(), "eval failed:\n{stdout}\n{stderr}");
    for (split, texts) in [("neuralchemy core-test", 942), ("s-labs test", 2101)] {
        let prefix = format!("jailbreak {split}: jailbreak precision");
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no summary for {split}:\n{stdout}"));
        let (precision, recall, f1) = (
            score_after(line, "precision"),
            score_after(line, "recall"),
            score_after(line, "f1"),
        );
        assert!(f1 >= MIN_JAILBREAK_F1, "{line}");
        assert!(precision >= 0.9 && recall >= 0.9, "{line}");
        assert!(
            line.ends_with(&format!("on {texts} texts")),
            "the whole split: {line}"
        );
        assert!(
            stderr.contains(&format!("embedding {split}")),
            "progress is shown"
        );
    }
    assert!(stdout.contains("confusion matrix"));
}

/// Share of held-out small talk (greetings, thanks, chat) the jailbreak head must let pass
/// (0.972 when trained; the head before small talk was in its data let 0.514 pass).
const MIN_SMALL_TALK_ACCURACY: f64 = 0.85;

/// Runs `semrouter eval jailbreak --split SPLIT` on a held-out benign set and checks that the
/// head lets at least `min` of its `texts` texts pass, the whole set evaluated.
fn assert_held_out_benign_pass(split: &str, name: &str, min: f64, texts: usize) {
    let min_arg = min.to_string();
    let (status, stdout, stderr) = run_cli(
        &[
            "eval",
            "jailbreak",
            "--split",
            split,
            "--min-accuracy",
            &min_arg,
        ],
        &[],
    );
    assert!(status.success(), "eval failed:\n{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("jailbreak {name} (held out):")))
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    assert!(score_after(line, "accuracy") >= min, "{line}");
    assert!(
        line.ends_with(&format!("on {texts} texts")),
        "the whole held-out quarter: {line}"
    );
}

#[test]
fn jailbreak_head_lets_held_out_small_talk_pass() {
    assert_held_out_benign_pass(
        "small-talk",
        "chatterbot small talk",
        MIN_SMALL_TALK_ACCURACY,
        107,
    );
}

/// Share of the held-out natural instructions (Arena-Hard, AlpacaEval, IFEval, WritingBench,
/// HealthBench: ordinary requests, all benign) the jailbreak head must let pass (0.972 when
/// trained; the head before they were in its data let 0.632 pass and blocked 61 of 899).
const MIN_INSTRUCTIONS_ACCURACY: f64 = 0.95;

#[test]
fn jailbreak_head_lets_held_out_natural_instructions_pass() {
    assert_held_out_benign_pass(
        "instructions",
        "natural instructions",
        MIN_INSTRUCTIONS_ACCURACY,
        899,
    );
}

#[test]
fn complexity_head_holds_its_held_out_accuracy() {
    let min = MIN_COMPLEXITY_ACCURACY.to_string();
    let (status, stdout, stderr) = run_cli(&["eval", "complexity", "--min-accuracy", &min], &[]);
    assert!(status.success(), "eval failed:\n{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("complexity held-out:"))
        .expect("summary line");
    assert!(
        score_after(line, "accuracy") >= MIN_COMPLEXITY_ACCURACY,
        "{line}"
    );
    assert!(line.ends_with("on 399 texts"), "{line}");
    for label in ["simple", "standard", "complex", "research"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(label)),
            "per-label scores for {label}:\n{stdout}"
        );
    }
}

#[test]
fn heads_are_refused_for_another_embedding_model() {
    for task in ["jailbreak", "complexity"] {
        let head = format!("onnx/heads/{task}-all-MiniLM-L6-v2-int8.json");
        let (status, stdout, stderr) = run_cli(
            &["eval", task, "--head", &head],
            &[("SEMROUTER__EMBEDDING__ONNX__MODEL_ID", "another-384d-model")],
        );
        assert!(!status.success(), "{task} head was accepted:\n{stdout}");
        assert!(
            stderr.contains("trained on embeddings of `all-MiniLM-L6-v2-int8`")
                && stderr.contains("`another-384d-model`")
                && stderr.contains(&format!("semrouter train {task}")),
            "{stderr}"
        );
        assert!(
            !stderr.contains("embedding held-out") && !stderr.contains("embedding s-labs"),
            "refused before any work"
        );
    }
}

#[test]
fn committed_heads_are_small_bound_and_record_how_they_were_made() {
    for (task, labels, min_kb) in [
        ("jailbreak", vec!["benign", "jailbreak"], 150),
        (
            "complexity",
            vec!["simple", "standard", "complex", "research"],
            150,
        ),
    ] {
        let path = repo().join(format!("onnx/heads/{task}-all-MiniLM-L6-v2-int8.json"));
        let size = std::fs::metadata(&path).expect("head file").len();
        assert!(size < min_kb * 1024, "{task} head is {size} bytes");
        let head = semrouter::heads::LinearHead::load(&path).expect("valid head");
        assert_eq!(head.task, task);
        assert_eq!(head.labels(), labels.as_slice());
        assert_eq!(head.embedding.model_id, "all-MiniLM-L6-v2-int8");
        assert!(head.uses_text(), "{task} head reads lexical features");
        let command = head.training["command"].as_str().expect("command");
        assert!(
            command.starts_with(&format!("semrouter train {task} ")),
            "{command}"
        );
        assert!(head.training["scores"].is_object() && head.training["data"].is_object());
    }
    let path = repo().join("onnx/heads/jailbreak-all-MiniLM-L6-v2-int8.json");
    let jailbreak: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for split in ["neuralchemy core-test", "s-labs test"] {
        let f1 = jailbreak["training"]["scores"][split]["labels"]["jailbreak"]["f1"]
            .as_f64()
            .expect("recorded f1");
        assert!(f1 >= MIN_JAILBREAK_F1, "{split}: {f1}");
    }
}

#[test]
fn eval_files_are_labelled_chat_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().to_str().expect("utf-8 path");
    let (status, stdout, stderr) = run_cli(&["data", "evals", "--out", out], &[]);
    assert!(status.success(), "{stdout}\n{stderr}");
    let natural =
        semrouter::data::natural::load(&repo().join(semrouter::data::natural::DEFAULT_DIR))
            .expect("eval/natural/")
            .len();
    for (file, task, rows, labels) in [
        (
            "mmlu-val.jsonl",
            "domain",
            1531,
            vec!["math", "law", "other"],
        ),
        (
            "jailbreak-neuralchemy-test.jsonl",
            "jailbreak",
            942,
            vec!["benign", "jailbreak"],
        ),
        (
            "jailbreak-slabs-test.jsonl",
            "jailbreak",
            2101,
            vec!["benign", "jailbreak"],
        ),
        (
            "jailbreak-smalltalk-heldout.jsonl",
            "jailbreak",
            107,
            vec!["benign"],
        ),
        (
            "complexity-heldout.jsonl",
            "complexity",
            399,
            vec!["simple", "standard", "complex", "research"],
        ),
        (
            "jailbreak-instructions-heldout.jsonl",
            "jailbreak",
            899,
            vec!["benign"],
        ),
        (
            "natural-domain.jsonl",
            "domain",
            natural,
            vec!["math", "other", "computer science"],
        ),
        (
            "natural-reasoning.jsonl",
            "reasoning",
            natural,
            vec!["on", "off"],
        ),
        (
            "natural-jailbreak.jsonl",
            "jailbreak",
            natural,
            vec!["benign"],
        ),
        (
            "mtbench-reasoning.jsonl",
            "reasoning",
            70,
            vec!["on", "off"],
        ),
    ] {
        let text = std::fs::read_to_string(dir.path().join(file)).expect(file);
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(lines.len(), rows, "{file}");
        for line in &lines {
            assert_eq!(line["task"], task);
            assert_eq!(line["messages"][0]["role"], "user");
            assert!(line["messages"][0]["content"].is_string());
        }
        for label in labels {
            assert!(
                lines.iter().any(|l| l["label"] == label),
                "{file} has label {label}"
            );
        }
    }
    let (status, stdout, _) = run_cli(&["data", "evals", "--out", out], &[]);
    assert!(
        status.success() && stdout.matches("unchanged").count() == 10,
        "idempotent:\n{stdout}"
    );
}
