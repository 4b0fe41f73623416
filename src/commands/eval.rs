//! `semrouter eval domain|jailbreak|complexity`: how well a head does on data it never saw.
//!
//! `domain` goes through the same engine the service runs. `jailbreak` and `complexity` load
//! the head as the engine would ([`LinearHead::load_for`], refused when bound to another
//! embedding model), embed each text once through the configured backend and apply the head.
//! Every report gives per-label precision, recall and F1 and the confusion matrix.

use std::path::{Path, PathBuf};

use anyhow::Context;
use futures_util::{stream, StreamExt};
use semrouter::assemble::{self, assemble};
use semrouter::categories::CATEGORIES;
use semrouter::config;
use semrouter::data::mmlu::{self, Split as MmluSplit};
use semrouter::data::{
    complexity, instructions, neuralchemy, slabs, smalltalk, LabelledText, Split, JAILBREAK_LABELS,
};
use semrouter::heads::{self, LinearHead};
use serde_json::json;

use super::embed::embed_all;
use super::report::{Confusion, Progress};

/// Which MMLU split to evaluate on.
#[derive(Clone, Copy, clap::ValueEnum)]
enum SplitArg {
    Val,
    Test,
    Dev,
}

/// Arguments of `semrouter eval domain`.
#[derive(clap::Args)]
pub struct DomainArgs {
    /// Config whose classifier is evaluated; the built-in default when omitted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Folder holding MMLU's splits.
    #[arg(long, default_value = mmlu::DEFAULT_DIR)]
    data: PathBuf,
    /// Split to evaluate on (val is never used in training).
    #[arg(long, value_enum, default_value = "val")]
    split: SplitArg,
    /// Questions classified concurrently (they share forward passes).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Exit with an error when accuracy is below this.
    #[arg(long)]
    min_accuracy: Option<f64>,
}

/// Classifies every question of the split through the same engine the service runs.
pub async fn domain(args: DomainArgs) -> anyhow::Result<()> {
    let config = config::load(args.config.as_deref())?;
    let router = assemble(&config).await?;
    let split = match args.split {
        SplitArg::Val => MmluSplit::Val,
        SplitArg::Test => MmluSplit::Test,
        SplitArg::Dev => MmluSplit::Dev,
    };
    let questions = mmlu::load(&args.data, split)?;
    let mut progress = Progress::new(
        questions.len() as u64,
        &format!("classifying MMLU {}", split.name()),
    );
    let mut results = stream::iter(&questions)
        .map(|q| async {
            (
                q.category,
                router.classify_text(q.prompt().to_string()).await,
            )
        })
        .buffered(args.concurrency.max(1));
    let mut pairs = Vec::with_capacity(questions.len());
    while let Some((truth, result)) = results.next().await {
        let classification = result.context("classification failed")?;
        pairs.push((truth.index(), classification.scores.top().0.index()));
        progress.advance(1);
    }
    progress.finish();
    let confusion = Confusion::new(CATEGORIES.iter().map(|c| c.to_string()).collect(), pairs);
    println!("{}", confusion.render());
    let accuracy = confusion.accuracy();
    println!(
        "MMLU {} accuracy {accuracy:.4} on {} questions",
        split.name(),
        questions.len()
    );
    if let Some(min) = args.min_accuracy {
        anyhow::ensure!(
            accuracy >= min,
            "accuracy {accuracy:.4} is below the required {min}"
        );
    }
    Ok(())
}

/// Which prompt-injection test split(s) to evaluate on.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum JailbreakSet {
    /// Both test splits, each reported on its own.
    Both,
    /// NeurAlchemy core-test (942 texts).
    Neuralchemy,
    /// S-Labs test (2,101 texts).
    Slabs,
    /// The held-out quarter of the chatterbot-corpus small talk, all benign: its accuracy is
    /// one minus the share of greetings and chat flagged.
    SmallTalk,
    /// The held-out quarter of the natural instructions (Arena-Hard, AlpacaEval, IFEval), all
    /// benign: one minus the share of ordinary requests flagged.
    Instructions,
}

/// Options shared by the evaluations of heads over the shared embedding.
#[derive(clap::Args)]
pub struct HeadEvalArgs {
    /// Config whose embedding backend feeds the head; the built-in default when omitted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The head file; `onnx/heads/TASK-MODEL_ID.json` for the configured embedding model when
    /// omitted.
    #[arg(long)]
    head: Option<PathBuf>,
    /// Exit with an error when an evaluated split's F1 is below this (jailbreak: F1 of the
    /// `jailbreak` label on each split; complexity: macro-F1).
    #[arg(long)]
    min_f1: Option<f64>,
    /// Exit with an error when an evaluated split's accuracy is below this.
    #[arg(long)]
    min_accuracy: Option<f64>,
}

/// Arguments of `semrouter eval jailbreak`.
#[derive(clap::Args)]
pub struct JailbreakArgs {
    #[command(flatten)]
    common: HeadEvalArgs,
    /// Test split(s) to evaluate on.
    #[arg(long, value_enum, default_value = "both")]
    split: JailbreakSet,
    /// Folder of the NeurAlchemy parquet files.
    #[arg(long, default_value = neuralchemy::DEFAULT_DIR)]
    neuralchemy: PathBuf,
    /// Folder of the S-Labs CSV files.
    #[arg(long, default_value = slabs::DEFAULT_DIR)]
    slabs: PathBuf,
    /// Folder of the chatterbot-corpus YAML files.
    #[arg(long, default_value = smalltalk::DEFAULT_DIR)]
    smalltalk: PathBuf,
    /// Folder of the natural instruction files.
    #[arg(long, default_value = instructions::DEFAULT_DIR)]
    instructions: PathBuf,
}

/// Arguments of `semrouter eval complexity`.
#[derive(clap::Args)]
pub struct ComplexityArgs {
    #[command(flatten)]
    common: HeadEvalArgs,
    /// The dynamic-model-router task file.
    #[arg(long, default_value = complexity::DEFAULT_PATH)]
    data: PathBuf,
}

/// A named labelled split and the names of its labels.
pub struct EvalSet {
    /// Shown in reports, e.g. `neuralchemy core-test`.
    pub name: String,
    /// The texts and their labels.
    pub items: Vec<LabelledText>,
    /// Label names the items' label indices refer to.
    pub labels: Vec<String>,
}

/// The scores of a head on one split.
pub struct EvalResult {
    /// Counts over the head's labels.
    pub confusion: Confusion,
    /// Index (in the head's labels) of the label whose F1 is the split's F1; macro-F1 if `None`.
    pub positive: Option<usize>,
}

impl EvalResult {
    /// The split's headline F1: the positive label's, or the macro average.
    pub fn f1(&self) -> f64 {
        self.positive.map_or_else(
            || self.confusion.macro_f1(),
            |p| self.confusion.scores(p).f1,
        )
    }

    /// The one-line summary printed after the report (tests read it).
    pub fn summary(&self, task: &str, name: &str) -> String {
        let c = &self.confusion;
        match self.positive {
            Some(p) => {
                let s = c.scores(p);
                format!(
                    "{task} {name}: {} precision {:.4} recall {:.4} f1 {:.4}, accuracy {:.4} on {} texts",
                    c.labels()[p],
                    s.precision,
                    s.recall,
                    s.f1,
                    c.accuracy(),
                    c.total()
                )
            }
            None => format!(
                "{task} {name}: accuracy {:.4} macro-f1 {:.4} on {} texts",
                c.accuracy(),
                c.macro_f1(),
                c.total()
            ),
        }
    }

    /// The scores as recorded in a head file.
    pub fn record(&self) -> serde_json::Value {
        let c = &self.confusion;
        let per_label: serde_json::Map<String, serde_json::Value> = c
            .labels()
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), json!(c.scores(i))))
            .collect();
        json!({"examples": c.total(), "accuracy": c.accuracy(), "macro_f1": c.macro_f1(), "labels": per_label})
    }
}

/// Maps each data-set label to the head's label of the same name.
fn label_rows(head: &LinearHead, data_labels: &[String]) -> anyhow::Result<Vec<usize>> {
    data_labels
        .iter()
        .map(|name| {
            head.labels()
                .iter()
                .position(|l| l == name)
                .with_context(|| {
                    format!(
                        "the head has no label `{name}` (its labels: {})",
                        head.labels().join(", ")
                    )
                })
        })
        .collect()
}

/// Applies `head` to every text of `set` given their embeddings; prints the report and the
/// summary line.
pub fn score_head(
    head: &LinearHead,
    set: &EvalSet,
    embeddings: &[Vec<f32>],
    positive: Option<&str>,
) -> anyhow::Result<EvalResult> {
    let rows = label_rows(head, &set.labels)?;
    let pairs = set.items.iter().zip(embeddings).map(|(item, embedding)| {
        let p = head.probabilities(embedding, &item.text);
        let predicted = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        (rows[item.label], predicted)
    });
    let confusion = Confusion::new(head.labels().to_vec(), pairs);
    let positive = match positive {
        Some(name) => {
            let index = head.labels().iter().position(|l| l == name);
            Some(index.with_context(|| format!("the head has no label `{name}`"))?)
        }
        None => None,
    };
    let result = EvalResult {
        confusion,
        positive,
    };
    println!(
        "== {} {} ==\n{}",
        head.task,
        set.name,
        result.confusion.render()
    );
    println!("{}\n", result.summary(&head.task, &set.name));
    Ok(result)
}

/// Loads the head bound to the configured embedder, embeds and scores every set, and checks
/// the thresholds.
async fn eval_head(
    task: &str,
    args: &HeadEvalArgs,
    sets: Vec<EvalSet>,
    positive: Option<&str>,
    held_out_lines: Option<&[usize]>,
) -> anyhow::Result<()> {
    let config = config::load(args.config.as_deref())?;
    let runtime = assemble::runtime(&config)?;
    let embedder = assemble::build_embedder(&config, &runtime).await?;
    let info = embedder.info().clone();
    let path = args
        .head
        .clone()
        .unwrap_or_else(|| heads::default_path(task, &info.model_id));
    let head = LinearHead::load_for(&path, &info)?;
    anyhow::ensure!(
        head.task == task,
        "{} is a `{}` head, not a `{task}` head",
        path.display(),
        head.task
    );
    eprintln!(
        "{task} head {} on embedding model {} ({})",
        path.display(),
        info.model_id,
        info.execution_provider
    );
    if let Some(lines) = held_out_lines {
        check_held_out(&head, &path, lines)?;
    }

    let mut failures = Vec::new();
    for set in &sets {
        let texts: Vec<&str> = set.items.iter().map(|i| i.text.as_str()).collect();
        let embeddings = embed_all(
            embedder.as_ref(),
            &texts,
            &format!("embedding {}", set.name),
        )
        .await?;
        let result = score_head(&head, set, &embeddings, positive)?;
        if let Some(min) = args.min_f1.filter(|&m| result.f1() < m) {
            failures.push(format!(
                "{}: f1 {:.4} is below the required {min}",
                set.name,
                result.f1()
            ));
        }
        let accuracy = result.confusion.accuracy();
        if let Some(min) = args.min_accuracy.filter(|&m| accuracy < m) {
            failures.push(format!(
                "{}: accuracy {accuracy:.4} is below the required {min}",
                set.name
            ));
        }
    }
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

/// A head that records the rows it held out (complexity) must be evaluated on exactly those:
/// another split would score it on its own training data.
fn check_held_out(head: &LinearHead, path: &Path, expected: &[usize]) -> anyhow::Result<()> {
    let recorded = &head.training["data"]["held_out_lines"];
    if recorded.is_null() {
        return Ok(());
    }
    anyhow::ensure!(
        *recorded == json!(expected),
        "{} was trained with another held-out split than the one evaluated here; retrain it with `semrouter train {}`",
        path.display(),
        head.task
    );
    Ok(())
}

/// Line numbers of held-out complexity rows, as recorded in the head file.
pub fn complexity_held_out_lines(held: &[complexity::Task]) -> Vec<usize> {
    let mut lines: Vec<usize> = held.iter().map(|t| t.line).collect();
    lines.sort_unstable();
    lines
}

fn names(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|l| l.to_string()).collect()
}

/// The prompt-injection test splits, as evaluated and shipped as eval files.
pub fn jailbreak_test_sets(
    neuralchemy_dir: &Path,
    slabs_dir: &Path,
    which: (bool, bool),
) -> anyhow::Result<Vec<EvalSet>> {
    let mut sets = Vec::new();
    if which.0 {
        sets.push(EvalSet {
            name: "neuralchemy core-test".into(),
            items: neuralchemy::load(neuralchemy_dir, Split::Test)?,
            labels: names(&JAILBREAK_LABELS),
        });
    }
    if which.1 {
        sets.push(EvalSet {
            name: "s-labs test".into(),
            items: slabs::load(slabs_dir, Split::Test)?,
            labels: names(&JAILBREAK_LABELS),
        });
    }
    Ok(sets)
}

/// The held-out small talk (all benign, [`smalltalk::partition`]'s second part), which the
/// jailbreak head must let pass.
pub fn smalltalk_test_set(held: Vec<LabelledText>) -> EvalSet {
    EvalSet {
        name: "chatterbot small talk (held out)".into(),
        items: held,
        labels: names(&JAILBREAK_LABELS),
    }
}

/// The held-out natural instructions (all benign, [`instructions::partition`]'s second part),
/// which the jailbreak head must let pass.
pub fn instructions_test_set(held: Vec<LabelledText>) -> EvalSet {
    EvalSet {
        name: "natural instructions (held out)".into(),
        items: held,
        labels: names(&JAILBREAK_LABELS),
    }
}

/// Precision, recall and F1 of the jailbreak head on the prompt-injection test splits, or
/// its accuracy on held-out small talk or natural instructions.
pub async fn jailbreak(args: JailbreakArgs) -> anyhow::Result<()> {
    let injection = |which| jailbreak_test_sets(&args.neuralchemy, &args.slabs, which);
    let sets = match args.split {
        JailbreakSet::Both => injection((true, true))?,
        JailbreakSet::Neuralchemy => injection((true, false))?,
        JailbreakSet::Slabs => injection((false, true))?,
        JailbreakSet::SmallTalk => vec![smalltalk_test_set(
            smalltalk::partition(smalltalk::load(&args.smalltalk)?).1,
        )],
        JailbreakSet::Instructions => vec![instructions_test_set(
            instructions::partition(instructions::load(&args.instructions)?).1,
        )],
    };
    eval_head(
        "jailbreak",
        &args.common,
        sets,
        Some(JAILBREAK_LABELS[1]),
        None,
    )
    .await
}

/// Accuracy, per-label scores and confusion matrix of the complexity head on the held-out
/// split that training never saw.
pub async fn complexity(args: ComplexityArgs) -> anyhow::Result<()> {
    let (_, held) = complexity::partition(complexity::load(&args.data)?);
    let set = EvalSet {
        name: "held-out".into(),
        items: held.iter().map(|t| t.item.clone()).collect(),
        labels: names(&complexity::LABELS),
    };
    let lines = complexity_held_out_lines(&held);
    eval_head("complexity", &args.common, vec![set], None, Some(&lines)).await
}
