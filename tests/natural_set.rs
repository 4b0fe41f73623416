//! The natural-prompt evaluation set in `eval/natural/` holds what docs/evaluation.md promises:
//! at least 600 prompts, at least 30 per domain and per task type, both reasoning labels, each
//! with its provenance; and none of its prompts is in the data the heads train on.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use semrouter::categories::CATEGORIES;

mod common;
use semrouter::data::{complexity, fold, mmlu, natural, smalltalk};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Share of the natural prompts (all benign) the default config may flag as jailbreaks: 3.1%
/// with the current head, 10.5% before natural instructions and chit-chat were in its training
/// data. The target is 2%.
const MAX_NATURAL_FLAGGED: f64 = 0.05;

#[test]
fn the_set_meets_its_quotas_and_names_its_sources() {
    let prompts = natural::load(&repo().join(natural::DEFAULT_DIR)).expect("eval/natural/");
    assert!(
        prompts.len() >= 600,
        "{} prompts; at least 600 promised",
        prompts.len()
    );
    let count = |key: fn(&natural::NaturalPrompt) -> String| {
        let mut counts = BTreeMap::new();
        for p in &prompts {
            *counts.entry(key(p)).or_insert(0usize) += 1;
        }
        counts
    };
    let domains = count(|p| p.domain.clone());
    for domain in CATEGORIES {
        assert!(
            domains.get(domain).copied().unwrap_or(0) >= 30,
            "domain `{domain}`: {domains:?}"
        );
    }
    let tasks = count(|p| p.task.clone());
    for task in natural::TASKS {
        assert!(
            tasks.get(task).copied().unwrap_or(0) >= 30,
            "task `{task}`: {tasks:?}"
        );
    }
    let reasoning = count(|p| p.reasoning.to_string());
    assert!(
        reasoning.values().all(|&n| n >= 100) && reasoning.len() == 2,
        "both reasoning labels, each at least 100 times: {reasoning:?}"
    );
    let mut texts = HashSet::new();
    for p in &prompts {
        assert!(
            texts.insert(fold(&p.text)),
            "`{}` appears twice (id {})",
            p.text,
            p.id
        );
    }
}

/// Training data and evaluation data stay apart: no natural prompt is an MMLU training
/// question (test and dev splits), a chatterbot utterance or a task-complexity row.
#[test]
fn no_prompt_is_in_the_training_data() {
    let prompts = natural::load(&repo().join(natural::DEFAULT_DIR)).unwrap();
    let mut training: HashSet<String> = HashSet::new();
    let dir = repo().join(mmlu::DEFAULT_DIR);
    for split in [mmlu::Split::Test, mmlu::Split::Dev] {
        training.extend(
            mmlu::load(&dir, split)
                .expect("MMLU (make setup)")
                .iter()
                .map(|q| fold(q.prompt())),
        );
    }
    training.extend(
        smalltalk::load(Path::new(&repo().join(smalltalk::DEFAULT_DIR)))
            .expect("chatterbot-corpus (make setup)")
            .iter()
            .map(|t| fold(&t.text)),
    );
    training.extend(
        complexity::load(&repo().join(complexity::DEFAULT_PATH))
            .expect("task complexity data (make setup)")
            .iter()
            .map(|t| fold(&t.item.text)),
    );
    let leaked: Vec<&str> = prompts
        .iter()
        .filter(|p| training.contains(&fold(&p.text)))
        .map(|p| p.id.as_str())
        .collect();
    assert!(
        leaked.is_empty(),
        "natural prompts found in training data: {leaked:?}"
    );
}

/// Ordinary prompts are not attacks: replayed through the default config, few are flagged.
#[test]
fn few_natural_prompts_are_flagged_as_jailbreaks() {
    let file = repo().join("onnx/fetched/eval/natural-jailbreak.jsonl");
    assert!(
        file.is_file(),
        "{} is missing: run `make setup` (semrouter data evals)",
        file.display()
    );
    let min = (1.0 - MAX_NATURAL_FLAGGED).to_string();
    let (status, stdout, stderr) = common::run_cli(
        &["eval", file.to_str().unwrap(), "--min-accuracy", &min],
        &[],
    );
    assert!(
        status.success(),
        "more than {MAX_NATURAL_FLAGGED} of the natural prompts flagged:\n{stdout}\n{stderr}"
    );
    let n = natural::load(&repo().join(natural::DEFAULT_DIR))
        .unwrap()
        .len();
    assert!(
        stdout.contains(&format!("on {n} records")),
        "the whole set replayed:\n{stdout}"
    );
}
