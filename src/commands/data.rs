//! `semrouter data pii`: writes the labelled PII evaluation sentences.

use std::collections::BTreeMap;
use std::path::PathBuf;

use semrouter::data::pii::{self, PiiSources};

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
