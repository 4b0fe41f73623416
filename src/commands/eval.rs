//! `semrouter eval domain`: accuracy of the configured domain classifier on an MMLU split.

use std::path::PathBuf;

use anyhow::Context;
use futures_util::{stream, StreamExt};
use semrouter::assemble::assemble;
use semrouter::config;
use semrouter::data::mmlu::{self, Split};

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
    let router = assemble(&config)?;
    let split = match args.split {
        SplitArg::Val => Split::Val,
        SplitArg::Test => Split::Test,
        SplitArg::Dev => Split::Dev,
    };
    let questions = mmlu::load(&args.data, split)?;
    let mut progress = Progress::new(questions.len() as u64, &format!("classifying MMLU {}", split.name()));
    let mut results = stream::iter(&questions)
        .map(|q| async { (q.category, router.classify_text(q.prompt().to_string()).await) })
        .buffered(args.concurrency.max(1));
    let mut pairs = Vec::with_capacity(questions.len());
    while let Some((truth, result)) = results.next().await {
        let classification = result.context("classification failed")?;
        pairs.push((truth, classification.scores.top().0));
        progress.advance(1);
    }
    progress.finish();
    let confusion = Confusion::new(pairs);
    println!("{}", confusion.render());
    let accuracy = confusion.accuracy();
    println!("MMLU {} accuracy {accuracy:.4} on {} questions", split.name(), questions.len());
    if let Some(min) = args.min_accuracy {
        anyhow::ensure!(accuracy >= min, "accuracy {accuracy:.4} is below the required {min}");
    }
    Ok(())
}
