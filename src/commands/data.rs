//! `semrouter data evals` writes the evaluation sets as JSONL request files, one request per
//! line, for replaying through the router (`semrouter eval FILE.jsonl`); `semrouter data pii`
//! writes the labelled PII sentences generated from presidio-evaluator's templates.
//!
//! The eval files:
//!
//! ```json
//! {"task": "jailbreak", "messages": [{"role": "user", "content": "..."}], "label": "benign"}
//! ```
//!
//! `mmlu-val.jsonl` (domain, MMLU val), `jailbreak-neuralchemy-test.jsonl` and
//! `jailbreak-slabs-test.jsonl` (the prompt-injection test splits) and `complexity-heldout.jsonl`
//! (the complexity split training never sees); from the natural-prompt set in `eval/natural/`,
//! `natural-domain.jsonl`, `natural-reasoning.jsonl` and `natural-jailbreak.jsonl` (every prompt
//! benign); and `mtbench-reasoning.jsonl` (MT-Bench's first turns, reasoning on or off by
//! category). Idempotent: a file whose content would not change is left alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use semrouter::data::pii::{self, PiiSources};
use semrouter::data::{
    complexity, instructions, mmlu, mtbench, natural, neuralchemy, slabs, smalltalk, LabelledText,
    JAILBREAK_LABELS,
};
use serde::Serialize;

use super::eval::jailbreak_test_sets;

/// Arguments of `semrouter data evals`.
#[derive(clap::Args)]
pub struct EvalsArgs {
    /// Folder the JSONL files are written to.
    #[arg(long, default_value = "onnx/fetched/eval")]
    out: PathBuf,
    /// Folder holding MMLU's splits.
    #[arg(long, default_value = mmlu::DEFAULT_DIR)]
    mmlu: PathBuf,
    /// Folder of the NeurAlchemy parquet files.
    #[arg(long, default_value = neuralchemy::DEFAULT_DIR)]
    neuralchemy: PathBuf,
    /// Folder of the S-Labs CSV files.
    #[arg(long, default_value = slabs::DEFAULT_DIR)]
    slabs: PathBuf,
    /// Folder of the chatterbot-corpus YAML files.
    #[arg(long, default_value = smalltalk::DEFAULT_DIR)]
    smalltalk: PathBuf,
    /// The dynamic-model-router task file.
    #[arg(long, default_value = complexity::DEFAULT_PATH)]
    complexity: PathBuf,
    /// Folder of the natural instruction files.
    #[arg(long, default_value = instructions::DEFAULT_DIR)]
    instructions: PathBuf,
    /// Folder of the natural-prompt evaluation set.
    #[arg(long, default_value = natural::DEFAULT_DIR)]
    natural: PathBuf,
    /// MT-Bench's question file.
    #[arg(long, default_value = mtbench::DEFAULT_PATH)]
    mtbench: PathBuf,
}

/// One line of an eval file, fields in this order.
#[derive(Serialize)]
struct Line<'a> {
    task: &'a str,
    messages: [Message<'a>; 1],
    label: &'a str,
}

/// An OpenAI chat message.
#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

/// One request line per (text, label name).
fn jsonl<'a>(
    task: &str,
    rows: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    for (content, label) in rows {
        let line = Line {
            task,
            messages: [Message {
                role: "user",
                content,
            }],
            label,
        };
        out.push_str(&serde_json::to_string(&line)?);
        out.push('\n');
    }
    Ok(out)
}

fn labelled<'a>(
    items: &'a [LabelledText],
    labels: &'a [&'a str],
) -> impl Iterator<Item = (&'a str, &'a str)> {
    items
        .iter()
        .map(move |i| (i.text.as_str(), labels[i.label]))
}

/// Writes `content` to `path` unless it is already there; says which.
fn write_if_changed(path: &Path, content: &str, rows: usize) -> anyhow::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        println!("{} ({rows} rows): unchanged", path.display());
        return Ok(());
    }
    let tmp = path.with_extension("jsonl.part");
    std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    println!("{} ({rows} rows): written", path.display());
    Ok(())
}

/// Builds every eval file from the fetched data sets.
pub fn evals(args: EvalsArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let val = mmlu::load(&args.mmlu, mmlu::Split::Val)?;
    let content = jsonl(
        "domain",
        val.iter().map(|q| (q.prompt(), q.category.name())),
    )?;
    write_if_changed(&args.out.join("mmlu-val.jsonl"), &content, val.len())?;

    let sets = jailbreak_test_sets(&args.neuralchemy, &args.slabs, (true, true))?;
    for (set, file) in sets.iter().zip([
        "jailbreak-neuralchemy-test.jsonl",
        "jailbreak-slabs-test.jsonl",
    ]) {
        let content = jsonl("jailbreak", labelled(&set.items, &JAILBREAK_LABELS))?;
        write_if_changed(&args.out.join(file), &content, set.items.len())?;
    }
    let (_, talk) = smalltalk::partition(smalltalk::load(&args.smalltalk)?);
    let content = jsonl("jailbreak", labelled(&talk, &JAILBREAK_LABELS))?;
    write_if_changed(
        &args.out.join("jailbreak-smalltalk-heldout.jsonl"),
        &content,
        talk.len(),
    )?;
    let (_, asks) = instructions::partition(instructions::load(&args.instructions)?);
    let content = jsonl("jailbreak", labelled(&asks, &JAILBREAK_LABELS))?;
    write_if_changed(
        &args.out.join("jailbreak-instructions-heldout.jsonl"),
        &content,
        asks.len(),
    )?;

    let (_, held) = complexity::partition(complexity::load(&args.complexity)?);
    let items: Vec<LabelledText> = held.into_iter().map(|t| t.item).collect();
    let content = jsonl("complexity", labelled(&items, &complexity::LABELS))?;
    write_if_changed(
        &args.out.join("complexity-heldout.jsonl"),
        &content,
        items.len(),
    )?;

    // The natural set: its domains, its reasoning labels, and every prompt as benign (none is
    // an attack), so the jailbreak head's false positives on ordinary prompts are counted.
    let prompts = natural::load(&args.natural)?;
    let content = jsonl(
        "domain",
        prompts.iter().map(|p| (p.text.as_str(), p.domain.as_str())),
    )?;
    write_if_changed(
        &args.out.join("natural-domain.jsonl"),
        &content,
        prompts.len(),
    )?;
    let content = jsonl(
        "reasoning",
        prompts
            .iter()
            .map(|p| (p.text.as_str(), on_off(p.reasoning))),
    )?;
    write_if_changed(
        &args.out.join("natural-reasoning.jsonl"),
        &content,
        prompts.len(),
    )?;
    let content = jsonl(
        "jailbreak",
        prompts
            .iter()
            .map(|p| (p.text.as_str(), JAILBREAK_LABELS[0])),
    )?;
    write_if_changed(
        &args.out.join("natural-jailbreak.jsonl"),
        &content,
        prompts.len(),
    )?;

    let questions: Vec<(String, bool)> = mtbench::load(&args.mtbench)?
        .into_iter()
        .filter_map(|q| q.needs_reasoning().map(|r| (q.first_turn, r)))
        .collect();
    let content = jsonl(
        "reasoning",
        questions
            .iter()
            .map(|(text, r)| (text.as_str(), on_off(*r))),
    )?;
    write_if_changed(
        &args.out.join("mtbench-reasoning.jsonl"),
        &content,
        questions.len(),
    )?;
    Ok(())
}

/// A reasoning label as the `reasoning` task spells it.
fn on_off(reasoning: bool) -> &'static str {
    if reasoning {
        "on"
    } else {
        "off"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_chat_requests_with_a_label() {
        let text = jsonl("jailbreak", [("say \"hi\"\nnow", "benign")]).unwrap();
        assert!(
            text.starts_with(r#"{"task":"jailbreak","messages":[{"role":"user","#),
            "{text}"
        );
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(value["task"], "jailbreak");
        assert_eq!(value["messages"][0]["role"], "user");
        assert_eq!(value["messages"][0]["content"], "say \"hi\"\nnow");
        assert_eq!(value["label"], "benign");
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn unchanged_files_are_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        write_if_changed(&path, "a\n", 1).unwrap();
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_if_changed(&path, "a\n", 1).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
        write_if_changed(&path, "b\n", 1).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
    }
}

/// Arguments of `semrouter data pii`.
#[derive(clap::Args)]
pub struct PiiArgs {
    /// Folder holding presidio-evaluator's templates and fake identities.
    #[arg(long, default_value = pii::DEFAULT_DIR)]
    data: PathBuf,
    /// The JSONL file to write.
    #[arg(long, default_value = pii::DEFAULT_OUT)]
    out: PathBuf,
    /// Sentences to generate.
    #[arg(long, default_value_t = pii::DEFAULT_COUNT)]
    count: usize,
    /// Random seed: the same seed gives the same sentences.
    #[arg(long, default_value_t = pii::DEFAULT_SEED)]
    seed: u64,
}

/// Generates the sentences and writes them, with a count of entities per type.
pub fn pii(args: PiiArgs) -> anyhow::Result<()> {
    let sources = PiiSources::load(&args.data)?;
    let samples = pii::generate(&sources, args.count, args.seed);
    pii::write_jsonl(&args.out, &samples)?;
    let mut by_type: BTreeMap<_, usize> = BTreeMap::new();
    for entity in samples.iter().flat_map(|s| &s.entities) {
        *by_type.entry(entity.kind).or_default() += 1;
    }
    let summary: Vec<String> = by_type.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "wrote {} sentences from {} templates (seed {}) to {}: {}",
        samples.len(),
        sources.templates(),
        args.seed,
        args.out.display(),
        summary.join(", ")
    );
    Ok(())
}
