//! `semrouter eval pii`: entity-level precision, recall and F1 of the PII detector on the
//! sentences `semrouter data pii` generates.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{stream, StreamExt};
use semrouter::assemble::FETCH_HINT;
use semrouter::config;
use semrouter::data::pii as pii_data;
use semrouter::engine::signals::pii::{Matching, PiiDetector, PiiSettings, PiiSpan, Scoreboard};
use semrouter_embedder::TokenClassifier;
use semrouter_onnx::{OnnxModelConfig, OnnxRuntime, OnnxTokenClassifier};

use super::report::Progress;

/// How findings are matched to labels.
#[derive(Clone, Copy, clap::ValueEnum)]
enum MatchingArg {
    /// Same type and exactly the same span.
    Exact,
    /// Same type and any overlap.
    Overlap,
}

/// Arguments of `semrouter eval pii`.
#[derive(clap::Args)]
pub struct PiiArgs {
    /// Config whose ONNX Runtime library is used; the built-in default when omitted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The labelled sentences, as `semrouter data pii` writes them.
    #[arg(long, default_value = pii_data::DEFAULT_OUT)]
    data: PathBuf,
    /// Folder of the token classifier: model_q4.onnx, tokenizer.json, config.json.
    #[arg(long, default_value = "onnx/fetched/rampart")]
    model: PathBuf,
    /// Run the regex recognisers alone, without the model.
    #[arg(long)]
    no_model: bool,
    /// Word probability below which a model label counts as not PII.
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Exact span matching, or any overlap of the same type.
    #[arg(long, value_enum, default_value = "exact")]
    matching: MatchingArg,
    /// Sentences detected concurrently (1 measures a lone request's latency).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Intra-op threads of the model's session (one was fastest on a busy 2-core machine).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Exit with an error when the overall F1 is below this.
    #[arg(long)]
    min_f1: Option<f64>,
    /// Print up to this many sentences whose findings differ from their labels (the
    /// sentences are generated fake data).
    #[arg(long, default_value_t = 0)]
    errors: usize,
}

impl PiiArgs {
    /// The defaults of `semrouter eval pii`, on `data` (how `semrouter eval FILE.jsonl` scores a
    /// file of `pii` records).
    pub fn for_file(data: PathBuf, config: Option<PathBuf>) -> Self {
        Self {
            config,
            data,
            model: PathBuf::from("onnx/fetched/rampart"),
            no_model: false,
            threshold: 0.5,
            matching: MatchingArg::Exact,
            concurrency: 1,
            threads: 1,
            min_f1: None,
            errors: 0,
        }
    }
}

/// Runs the detector over every sentence and prints per-type precision, recall and F1.
pub async fn pii(args: PiiArgs) -> anyhow::Result<()> {
    let samples = pii_data::load_jsonl(&args.data)
        .context("run `semrouter data pii` (make setup does) to write the sentences")?;
    let model: Option<Arc<dyn TokenClassifier>> = if args.no_model {
        None
    } else {
        let config = config::load(args.config.as_deref())?;
        let runtime = OnnxRuntime::load(&config.runtime.onnxruntime_library, FETCH_HINT)?;
        let settings: OnnxModelConfig = serde_json::from_value(serde_json::json!({
            "model": args.model.join("model_q4.onnx"),
            "tokenizer": args.model.join("tokenizer.json"),
            "max_tokens": 512,
            "intra_threads": args.threads,
            "max_batch_size": 8,
        }))?;
        Some(Arc::new(OnnxTokenClassifier::load(
            &runtime,
            &settings,
            &args.model.join("config.json"),
        )?))
    };
    let settings = PiiSettings {
        model_threshold: args.threshold,
        ..PiiSettings::default()
    };
    let detector = PiiDetector::new(model, settings)?;
    let matching = match args.matching {
        MatchingArg::Exact => Matching::Exact,
        MatchingArg::Overlap => Matching::Overlap,
    };

    let mut progress = Progress::new(samples.len() as u64, "detecting PII");
    let mut results = stream::iter(&samples)
        .map(|s| {
            let detector = &detector;
            async move { (s, detector.detect(&s.text).await) }
        })
        .buffered(args.concurrency.max(1));
    let mut board = Scoreboard::new(matching);
    let mut other = Scoreboard::new(match matching {
        Matching::Exact => Matching::Overlap,
        Matching::Overlap => Matching::Exact,
    });
    let mut latencies: Vec<Duration> = Vec::with_capacity(samples.len());
    let mut tokens = 0;
    let mut shown = 0;
    while let Some((sample, found)) = results.next().await {
        let found = found.context("PII detection failed")?;
        if shown < args.errors {
            let mut one = Scoreboard::new(matching);
            one.add(&found.spans(), &sample.entities);
            let counts = one.overall();
            if counts.fp + counts.fn_ > 0 {
                shown += 1;
                let show = |spans: &[PiiSpan]| {
                    spans
                        .iter()
                        .map(|s| format!("{}={:?}", s.kind, &sample.text[s.start..s.end]))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                eprintln!(
                    "--- {:?}\n  gold:  {}\n  found: {}",
                    sample.text,
                    show(&sample.entities),
                    show(&found.spans())
                );
            }
        }
        board.add(&found.spans(), &sample.entities);
        other.add(&found.spans(), &sample.entities);
        latencies.push(found.elapsed);
        tokens += found.model_tokens;
        progress.advance(1);
    }
    progress.finish();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let name = |m: Matching| match m {
        Matching::Exact => "exact span and type",
        Matching::Overlap => "overlapping span, same type",
    };
    println!("{}", board.render());
    let (overall, relaxed) = (board.overall(), other.overall());
    println!(
        "PII entity-level F1 {:.4} ({}) on {} sentences; {} F1 {:.4}",
        overall.f1(),
        name(matching),
        samples.len(),
        name(if matching == Matching::Exact {
            Matching::Overlap
        } else {
            Matching::Exact
        }),
        relaxed.f1()
    );
    println!(
        "detect latency p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms; {:.1} model tokens per sentence ({})",
        at(0.5).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        tokens as f64 / samples.len().max(1) as f64,
        if detector.has_model() { "regexes and model" } else { "regexes only" }
    );
    if let Some(min) = args.min_f1 {
        anyhow::ensure!(
            overall.f1() >= min,
            "F1 {:.4} is below the required {min}",
            overall.f1()
        );
    }
    Ok(())
}
