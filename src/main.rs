//! The `semrouter` binary: serve, train, evaluate, check a config.

use std::net::SocketAddr;
use std::path::PathBuf;

mod commands;

use anyhow::Context;
use clap::{Parser, Subcommand};
use semrouter::config::{self, LogFormat};
use semrouter::telemetry::Telemetry;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// A semantic router for LLM inference.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve {
        /// Config file; the built-in default (config/semrouter.yaml) when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, overriding `server.http_addr`.
        #[arg(long)]
        http_addr: Option<SocketAddr>,
    },
    /// Validate a config file without starting anything.
    CheckConfig {
        /// Config file.
        file: PathBuf,
    },
    /// Train a head.
    Train {
        #[command(subcommand)]
        head: TrainHead,
    },
    /// Evaluate: `semrouter eval FILE.jsonl` replays labelled requests through the engine;
    /// `semrouter eval domain|jailbreak|complexity|pii` scores one signal on its test data.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Eval {
        #[command(subcommand)]
        head: Option<EvalHead>,
        #[command(flatten)]
        replay: Option<commands::replay::ReplayArgs>,
    },
    /// Prepare data files.
    Data {
        #[command(subcommand)]
        what: DataCommand,
    },
}

#[derive(Subcommand)]
enum TrainHead {
    /// Train the domain head on MMLU's test and dev splits; report accuracy on val.
    Domain(commands::train::DomainArgs),
    /// Train the jailbreak head on the prompt-injection train splits; report precision, recall
    /// and F1 on each test split.
    Jailbreak(commands::train::JailbreakArgs),
    /// Train the complexity head on the task-complexity data; report accuracy on the held-out
    /// split.
    Complexity(commands::train::ComplexityArgs),
}

#[derive(Subcommand)]
enum EvalHead {
    /// Accuracy and confusion matrix of the configured domain classifier on an MMLU split.
    Domain(commands::eval::DomainArgs),
    /// Precision, recall, F1 and confusion matrix of the jailbreak head on the prompt-injection
    /// test splits.
    Jailbreak(commands::eval::JailbreakArgs),
    /// Accuracy, per-label scores and confusion matrix of the complexity head on its held-out
    /// split.
    Complexity(commands::eval::ComplexityArgs),
    /// Entity-level precision, recall and F1 of the PII detector on the generated sentences.
    Pii(commands::eval_pii::PiiArgs),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Write the eval sets (MMLU val, prompt-injection tests, complexity held-out) as JSONL
    /// chat requests with labels into onnx/fetched/eval/.
    Evals(commands::data::EvalsArgs),
    /// Labelled PII sentences from presidio-evaluator's templates (onnx/fetched/eval/pii.jsonl).
    Pii(commands::data::PiiArgs),
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line with the whole chain of causes: what an operator greps for in a log.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            config: path,
            http_addr,
        } => {
            let config = config::load(path.as_deref())?;
            let telemetry = Telemetry::start(&config.telemetry)?;
            init_logging(config.server.log_format, telemetry.as_ref());
            if telemetry.is_some() {
                tracing::info!(endpoint = %config.telemetry.otlp_endpoint, sample_ratio = config.telemetry.sample_ratio, "exporting traces");
            }
            // The config keeps the file's address, so a reload does not see it as changed.
            let addr = http_addr.unwrap_or(config.server.http_addr);
            let served =
                actix_web::rt::System::new().block_on(semrouter::server::serve(config, addr, path));
            // Buffered spans go out on every exit, the failed ones included.
            if let Some(telemetry) = telemetry {
                telemetry.shutdown();
            }
            served.context("semrouter stopped")?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::CheckConfig { file } => {
            config::load(Some(&file))?;
            println!("{}: ok", file.display());
            Ok(())
        }
        Command::Train { head } => {
            init_logging(LogFormat::Text, None);
            runtime()?.block_on(async {
                match head {
                    TrainHead::Domain(args) => commands::train::domain(args).await,
                    TrainHead::Jailbreak(args) => commands::train::jailbreak(args).await,
                    TrainHead::Complexity(args) => commands::train::complexity(args).await,
                }
            })
        }
        Command::Eval { head, replay } => {
            init_logging(LogFormat::Text, None);
            runtime()?.block_on(async {
                match (head, replay) {
                    (Some(EvalHead::Domain(args)), _) => commands::eval::domain(args).await,
                    (Some(EvalHead::Jailbreak(args)), _) => commands::eval::jailbreak(args).await,
                    (Some(EvalHead::Complexity(args)), _) => commands::eval::complexity(args).await,
                    (Some(EvalHead::Pii(args)), _) => commands::eval_pii::pii(args).await,
                    (None, Some(args)) => commands::replay::replay(args).await,
                    (None, None) => anyhow::bail!(
                        "give a labelled JSONL file or a signal; see `semrouter eval --help`"
                    ),
                }
            })
        }
        Command::Data {
            what: DataCommand::Evals(args),
        } => commands::data::evals(args),
        Command::Data {
            what: DataCommand::Pii(args),
        } => commands::data::pii(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Logs to stderr; `RUST_LOG` refines the level (default `info`). With `telemetry` the spans
/// also go to its exporter; the log filter applies to the log alone.
fn init_logging(format: LogFormat, telemetry: Option<&Telemetry>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => log.with_filter(filter).boxed(),
        LogFormat::Json => log.json().with_filter(filter).boxed(),
    };
    tracing_subscriber::registry()
        .with(log)
        .with(telemetry.map(|t| t.layer()))
        .init();
}
