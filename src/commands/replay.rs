//! `semrouter eval FILE.jsonl`: replays labelled prompts through the same decision engine the
//! service runs, in-process, and reports how well the signals match the labels, where the
//! decisions went, and what they cost against fixed baselines.
//!
//! Each line is `{"task": T, "messages": [...] | "text": "...", "label": L}` with T one of
//! `domain` (L a category), `jailbreak` (`jailbreak` or `benign`), `complexity` (a complexity
//! label) or `route` (the expected model). A file of `pii` records (`semrouter data pii`) is
//! scored by the PII detector, as `semrouter eval pii --data FILE` would.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use futures_util::{stream, StreamExt};
use semrouter::assemble::assemble;
use semrouter::categories::Category;
use semrouter::config::{self, Config};
use semrouter::engine::signals::Signals;
use semrouter::engine::{Action, Decision, RequestOptions, Router};
use semrouter::openai::{parse_chat_request, ChatRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use super::report::{Confusion, Progress};

/// Arguments of `semrouter eval FILE.jsonl`.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Labelled prompts, one JSON object per line.
    pub file: PathBuf,
    /// Config whose engine is evaluated; the built-in default when omitted.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Evaluate with only these models (comma-separated); two give RouteLLM's APGR.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Prompts analysed concurrently.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Exit with an error when accuracy is below this.
    #[arg(long)]
    pub min_accuracy: Option<f64>,
}

/// The signal a task's label is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Task {
    Domain,
    Jailbreak,
    Complexity,
    Route,
    /// Whether the decision switched reasoning on (`on`, `off`; `blocked` when it blocked).
    Reasoning,
}

#[derive(Debug, Deserialize)]
struct Record {
    task: Task,
    #[serde(default)]
    messages: Option<Value>,
    #[serde(default)]
    text: Option<String>,
    label: String,
}

/// One replayed record.
struct Outcome {
    label: String,
    predicted: String,
    decision: Decision,
    request: ChatRequest,
    analysis: semrouter::engine::Analysis,
}

fn read_records(file: &PathBuf) -> anyhow::Result<(Task, Vec<(Record, ChatRequest)>)> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
    );
    let mut records = Vec::new();
    let mut task = None;
    for (n, line) in reader.lines().enumerate() {
        let line =
            line.with_context(|| format!("{}: cannot read line {}", file.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a labelled record", file.display(), n + 1))?;
        anyhow::ensure!(
            task.is_none_or(|t| t == record.task),
            "{}:{}: one file holds one task",
            file.display(),
            n + 1
        );
        task = Some(record.task);
        let messages = match (&record.messages, &record.text) {
            (Some(m), _) => m.clone(),
            (None, Some(t)) => json!([{"role": "user", "content": t}]),
            (None, None) => {
                anyhow::bail!("{}:{}: needs `messages` or `text`", file.display(), n + 1)
            }
        };
        let body = json!({"model": "auto", "messages": messages}).to_string();
        let request = parse_chat_request(body.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}:{}: {}", file.display(), n + 1, e.message))?;
        records.push((record, request));
    }
    let task = task.with_context(|| format!("{} holds no records", file.display()))?;
    Ok((task, records))
}

/// Keeps only `models` in `config` (and the policies that use nothing else).
fn restrict(config: &mut Config, models: &[String]) -> anyhow::Result<()> {
    if models.is_empty() {
        return Ok(());
    }
    for m in models {
        anyhow::ensure!(
            config.models.iter().any(|c| &c.name == m),
            "--models: `{m}` is not a configured model"
        );
    }
    config.models.retain(|m| models.contains(&m.name));
    config.policies.retain(|p| {
        p.models
            .as_ref()
            .is_none_or(|list| list.iter().all(|m| models.contains(m)))
    });
    if config
        .scoring
        .default_model
        .as_ref()
        .is_some_and(|m| !models.contains(m))
    {
        config.scoring.default_model = None;
    }
    Ok(())
}

fn predicted(task: Task, signals: &Signals, decision: &Decision) -> String {
    match task {
        Task::Domain => signals.domain.top().0.name().to_string(),
        Task::Jailbreak => if signals.jailbreak_detected {
            "jailbreak"
        } else {
            "benign"
        }
        .to_string(),
        Task::Complexity => signals
            .complexity
            .as_ref()
            .map_or("none", |c| c.top().0)
            .to_string(),
        Task::Route => decision.model.clone().unwrap_or_else(|| "blocked".into()),
        Task::Reasoning => match (&decision.reasoning, decision.action) {
            (Some(r), _) => if r.enabled { "on" } else { "off" }.to_string(),
            (None, Action::Block) => "blocked".to_string(),
            (None, _) => "off".to_string(),
        },
    }
}

/// Whether the file's first record is a `pii` one (entity spans, scored by the PII detector
/// rather than replayed through the engine).
fn holds_pii_records(file: &PathBuf) -> anyhow::Result<bool> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
    );
    let first = reader
        .lines()
        .map_while(Result::ok)
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    Ok(serde_json::from_str::<Value>(&first).is_ok_and(|v| v["task"] == "pii"))
}

/// Replays the file and prints the report.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    if holds_pii_records(&args.file)? {
        return super::eval_pii::pii(super::eval_pii::PiiArgs::for_file(args.file, args.config))
            .await;
    }
    let mut config = config::load(args.config.as_deref())?;
    restrict(&mut config, &args.models)?;
    let router = assemble(&config).await?;
    let (task, records) = read_records(&args.file)?;
    if task == Task::Jailbreak {
        anyhow::ensure!(
            config.signals.jailbreak.is_some(),
            "jailbreak records need `signals.jailbreak` in the config"
        );
    }
    if task == Task::Complexity {
        anyhow::ensure!(
            config.signals.complexity.is_some(),
            "complexity records need `signals.complexity` in the config"
        );
    }
    println!(
        "semrouter eval {} ({} records, task {task:?})",
        args.file.display(),
        records.len()
    );

    let options = RequestOptions::default();
    let mut progress = Progress::new(records.len() as u64, "replaying");
    let mut results = stream::iter(records)
        .map(|(record, request)| {
            let router = &router;
            let options = &options;
            async move {
                let analysis = router.analyse(&request, options).await?;
                let decision = router.decide_with(&request, &analysis, options).await?;
                anyhow::Ok((record, request, analysis, decision))
            }
        })
        .buffered(args.concurrency.max(1));
    let mut outcomes = Vec::new();
    while let Some(result) = results.next().await {
        let (record, request, analysis, decision) =
            result.context("a record could not be decided")?;
        outcomes.push(Outcome {
            predicted: predicted(task, &analysis.signals, &decision),
            label: record.label,
            decision,
            request,
            analysis,
        });
        progress.advance(1);
    }
    progress.finish();

    let accuracy = report_labels(&outcomes);
    report_decisions(&outcomes);
    report_cost(&router, &outcomes);
    if router.fleet().models().len() == 2 {
        report_two_models(&router, &outcomes).await?;
    }
    if let Some(min) = args.min_accuracy {
        anyhow::ensure!(
            accuracy >= min,
            "accuracy {accuracy:.4} is below the required {min}"
        );
    }
    Ok(())
}

/// Accuracy, per-label precision and recall, and the confusion matrix; returns the accuracy.
fn report_labels(outcomes: &[Outcome]) -> f64 {
    let mut labels: Vec<String> = outcomes
        .iter()
        .flat_map(|o| [o.label.clone(), o.predicted.clone()])
        .collect();
    labels.sort();
    labels.dedup();
    let index = |l: &str| labels.iter().position(|x| x == l).unwrap_or(0);
    let pairs: Vec<(usize, usize)> = outcomes
        .iter()
        .map(|o| (index(&o.label), index(&o.predicted)))
        .collect();
    let confusion = Confusion::new(labels.clone(), pairs);
    println!("\n{}", confusion.render());
    let accuracy = confusion.accuracy();
    println!("accuracy {accuracy:.4} on {} records", outcomes.len());
    accuracy
}

/// Where the decisions went.
fn report_decisions(outcomes: &[Outcome]) {
    let mut by_model: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut by_action: BTreeMap<&'static str, usize> = BTreeMap::new();
    for o in outcomes {
        let action = match o.decision.action {
            Action::Route => "route",
            Action::Block => "block",
            Action::Mask => "mask",
        };
        *by_action.entry(action).or_default() += 1;
        let entry = by_model
            .entry(
                o.decision
                    .model
                    .clone()
                    .unwrap_or_else(|| "(blocked)".into()),
            )
            .or_default();
        entry.0 += 1;
        entry.1 += usize::from(o.decision.reasoning.as_ref().is_some_and(|r| r.enabled));
    }
    let n = outcomes.len().max(1) as f64;
    println!("\ndecisions");
    println!("  {:<24} {:>7} {:>14}", "model", "share", "reasoning on");
    for (model, (count, reasoning)) in &by_model {
        println!(
            "  {model:<24} {:>6.1}% {:>13.1}%",
            100.0 * *count as f64 / n,
            100.0 * *reasoning as f64 / n
        );
    }
    let actions: Vec<String> = by_action.iter().map(|(a, c)| format!("{a} {c}")).collect();
    println!("  actions: {}", actions.join(", "));
}

/// The strongest model: the highest mean quality over the categories.
fn strongest(router: &Router) -> Option<&str> {
    router
        .fleet()
        .models()
        .iter()
        .max_by(|a, b| {
            let mean = |q: &[f32]| q.iter().sum::<f32>();
            mean(&a.quality).total_cmp(&mean(&b.quality))
        })
        .map(|m| m.name.as_str())
}

/// Quality of `model` for a record: the quality for its labelled category when it has one,
/// else the expected quality over the predicted probabilities.
fn quality(router: &Router, model: &str, outcome: &Outcome, labelled: Option<Category>) -> f64 {
    let Some(card) = router.fleet().get(model) else {
        return 0.0;
    };
    match labelled {
        Some(c) => card.quality[c.index()] as f64,
        None => card.expected_quality(&outcome.analysis.signals.domain) as f64,
    }
}

/// Estimated cost against always the strongest model and always reasoning.
fn report_cost(router: &Router, outcomes: &[Outcome]) {
    let Some(strong) = strongest(router) else {
        return;
    };
    let (mut routed, mut always_strong, mut always_reasoning) = (0.0, 0.0, 0.0);
    let (mut q_routed, mut q_strong) = (0.0, 0.0);
    for o in outcomes {
        let Some(model) = o.decision.model.as_deref() else {
            continue;
        };
        let reasoning = o.decision.reasoning.as_ref().is_some_and(|r| r.enabled);
        routed += router
            .estimated_cost(model, &o.analysis.signals, reasoning)
            .unwrap_or(0.0);
        always_strong += router
            .estimated_cost(strong, &o.analysis.signals, reasoning)
            .unwrap_or(0.0);
        always_reasoning += router
            .estimated_cost(model, &o.analysis.signals, true)
            .unwrap_or(0.0);
        let labelled = Category::parse(&o.label);
        q_routed += quality(router, model, o, labelled);
        q_strong += quality(router, strong, o, labelled);
    }
    let saving = |baseline: f64| {
        if baseline > 0.0 {
            100.0 * (1.0 - routed / baseline)
        } else {
            0.0
        }
    };
    println!(
        "\nestimated cost over all records (price units; prompt plus expected completion tokens)"
    );
    println!("  router                          {routed:>10.4}");
    println!(
        "  always the strongest ({strong:<10}) {always_strong:>10.4}   router saves {:.1}%",
        saving(always_strong)
    );
    println!(
        "  always reasoning on             {always_reasoning:>10.4}   router saves {:.1}%",
        saving(always_reasoning)
    );
    let n = outcomes.len().max(1) as f64;
    println!(
        "  mean configured quality: router {:.3}, always the strongest {:.3}",
        q_routed / n,
        q_strong / n
    );
}

/// A point of the cost-quality curve: the share of strong-model calls and the performance
/// gap recovered.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CurvePoint {
    strong_share: f64,
    pgr: f64,
}

/// RouteLLM's APGR: the area under PGR against the share of strong calls, from (0, 0) to
/// (1, 1), by trapezoids over the points sorted by share.
fn apgr(points: &[CurvePoint]) -> f64 {
    let mut all: Vec<CurvePoint> = points.to_vec();
    all.push(CurvePoint {
        strong_share: 0.0,
        pgr: 0.0,
    });
    all.push(CurvePoint {
        strong_share: 1.0,
        pgr: 1.0,
    });
    all.sort_by(|a, b| {
        a.strong_share
            .total_cmp(&b.strong_share)
            .then(a.pgr.total_cmp(&b.pgr))
    });
    all.windows(2)
        .map(|w| (w[1].strong_share - w[0].strong_share) * (w[0].pgr + w[1].pgr) / 2.0)
        .sum()
}

/// The smallest share of strong calls whose PGR reaches `target`, interpolating between points.
fn share_for(points: &[CurvePoint], target: f64) -> Option<f64> {
    let mut all: Vec<CurvePoint> = points.to_vec();
    all.push(CurvePoint {
        strong_share: 0.0,
        pgr: 0.0,
    });
    all.push(CurvePoint {
        strong_share: 1.0,
        pgr: 1.0,
    });
    all.sort_by(|a, b| a.strong_share.total_cmp(&b.strong_share));
    all.windows(2).find_map(|w| {
        let (a, b) = (w[0], w[1]);
        if a.pgr >= target {
            Some(a.strong_share)
        } else if b.pgr >= target {
            let t = (target - a.pgr) / (b.pgr - a.pgr);
            Some(a.strong_share + t * (b.strong_share - a.strong_share))
        } else {
            None
        }
    })
}

/// For a two-model fleet: sweep the cost weight and report APGR and the strong-call shares
/// needed for 50% and 80% of the quality gap.
async fn report_two_models(router: &Router, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let Some(strong) = strongest(router).map(str::to_string) else {
        return Ok(());
    };
    let Some(weak) = router
        .fleet()
        .models()
        .iter()
        .map(|m| m.name.clone())
        .find(|m| *m != strong)
    else {
        return Ok(());
    };
    let n = outcomes.len().max(1) as f64;
    let mean_quality = |model: &str| {
        outcomes
            .iter()
            .map(|o| quality(router, model, o, Category::parse(&o.label)))
            .sum::<f64>()
            / n
    };
    let (q_weak, q_strong) = (mean_quality(&weak), mean_quality(&strong));
    println!("\ntwo-model fleet: weak `{weak}` (mean quality {q_weak:.3}), strong `{strong}` ({q_strong:.3}); cost-weight sweep");
    if q_strong <= q_weak {
        println!("  the strong model is not better on these records; APGR is undefined");
        return Ok(());
    }
    println!(
        "  {:>11} {:>13} {:>7}",
        "cost weight", "strong share", "PGR"
    );
    let mut points = Vec::new();
    for step in 0..=20 {
        let cost_weight = step as f64 / 20.0;
        let options = RequestOptions {
            cost_weight: Some(cost_weight),
            ..RequestOptions::default()
        };
        let (mut strong_calls, mut total_quality) = (0usize, 0.0);
        for o in outcomes {
            let decision = router
                .decide_with(&o.request, &o.analysis, &options)
                .await?;
            let model = decision.model.unwrap_or_default();
            strong_calls += usize::from(model == strong);
            total_quality += quality(router, &model, o, Category::parse(&o.label));
        }
        let point = CurvePoint {
            strong_share: strong_calls as f64 / n,
            pgr: (total_quality / n - q_weak) / (q_strong - q_weak),
        };
        println!(
            "  {cost_weight:>11.2} {:>12.1}% {:>7.3}",
            100.0 * point.strong_share,
            point.pgr
        );
        points.push(point);
    }
    let show = |share: Option<f64>| {
        share.map_or("not reached".to_string(), |s| format!("{:.1}%", 100.0 * s))
    };
    println!(
        "  APGR {:.3}; strong-model calls needed for 50% of the quality gap: {}, for 80%: {}",
        apgr(&points),
        show(share_for(&points, 0.5)),
        show(share_for(&points, 0.8))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(strong_share: f64, pgr: f64) -> CurvePoint {
        CurvePoint { strong_share, pgr }
    }

    #[test]
    fn a_random_router_has_apgr_one_half_and_a_perfect_one_more() {
        let random = [p(0.25, 0.25), p(0.5, 0.5), p(0.75, 0.75)];
        assert!((apgr(&random) - 0.5).abs() < 1e-9);
        let good = [p(0.2, 0.8), p(0.5, 1.0)];
        assert!(apgr(&good) > 0.8);
        assert!((share_for(&random, 0.5).unwrap() - 0.5).abs() < 1e-9);
        assert!((share_for(&good, 0.5).unwrap() - 0.125).abs() < 1e-9);
        assert!((share_for(&good, 0.8).unwrap() - 0.2).abs() < 1e-9);
    }
}
