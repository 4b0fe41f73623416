//! The decision engine: from a parsed request to a [`Decision`].
//!
//! It knows the embedding backend only through the [`Embedder`] trait and never sees HTTP.
//! One embedding per request feeds every signal; policies choose the candidates and the
//! action; the scorer ranks the candidates; the chosen model's family decides how reasoning
//! is written into the body; tool pre-selection trims the tool list.

pub mod decision;
pub mod fleet;
pub mod map;
pub mod policy;
pub mod privacy;
pub mod reasoning;
pub mod scorer;
pub mod signals;
pub mod stats;
pub mod text;
pub mod tools;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use semrouter_embedder::{BackendError, Embedder, Encoded, StageTiming};
use serde_json::Value;

use crate::config::{ClassifyText, PiiViolation, PolicyAction, ReasoningLevel, UnknownModels};
use crate::openai::{ChatRequest, Message};
pub use decision::{Action, CategoryPick, Decision, EngineTiming};
use fleet::{Fleet, ModelCard};
use policy::{Policies, Policy};
use privacy::{PiiScan, PrivacyGuard};
use reasoning::{Families, ReasoningPlan};
use scorer::{Demand, NoEligibleModel, Scorer};
use signals::domain::{CategoryScores, DomainClassifier};
use signals::{Context, SignalSet, Signals};
use stats::ModelStats;
use tools::ToolSelector;

/// Categories reported in a decision besides the top one.
const REPORTED_CATEGORIES: usize = 3;

/// Why the engine could not decide.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    /// The model backend failed or refused (overload, shutdown, inference error).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The conversation has no text where the configured choice looks.
    #[error("the request has no user text to classify")]
    NoText,
    /// The request names a model that is not configured (and unknown models are rejected).
    #[error("the model `{model}` does not exist; use one of: {}", known.join(", "))]
    UnknownModel {
        /// The requested name.
        model: String,
        /// Names that are accepted.
        known: Vec<String>,
    },
    /// Hard limits left no model and the fallback is an error.
    #[error(transparent)]
    NoEligibleModel(#[from] NoEligibleModel),
}

/// What a front end passes besides the body: preferences and identity from headers.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// A named scoring preference (`quality`, `balanced`, `cost`, or a configured one).
    pub preference: Option<String>,
    /// An explicit cost weight in [0, 1].
    pub cost_weight: Option<f64>,
    /// The tenant, from the configured header.
    pub tenant: Option<String>,
    /// Report every signal in the decision.
    pub explain: bool,
}

/// Which request models are routed, and which text is classified.
#[derive(Debug, Clone)]
pub struct Routing {
    /// Request `model` values that ask for routing.
    pub auto_models: Vec<String>,
    auto_set: HashSet<String>,
    /// Requests naming an unconfigured model.
    pub unknown_models: UnknownModels,
    /// Which text is classified.
    pub classify_text: ClassifyText,
}

impl Routing {
    /// Resolves routing settings.
    pub fn new(
        auto_models: Vec<String>,
        unknown_models: UnknownModels,
        classify_text: ClassifyText,
    ) -> Self {
        Self {
            auto_set: auto_models.iter().cloned().collect(),
            auto_models,
            unknown_models,
            classify_text,
        }
    }
}

/// Category probabilities for a text, with the cost of getting them.
#[derive(Debug, Clone)]
pub struct Classification {
    /// Probabilities over categories.
    pub scores: CategoryScores,
    /// Tokens the model saw.
    pub tokens: usize,
    /// Where the time went.
    pub timing: EngineTiming,
}

/// The signals of a request with the embedding they came from: computed once, then turned
/// into a decision (or several, when an evaluation sweeps the scoring weights).
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The text that was classified.
    pub text: String,
    /// Its embedding.
    pub embedding: Encoded,
    /// Every signal.
    pub signals: Signals,
    /// Personal data found, where detection ran (kept for masking the body).
    pub pii: Option<PiiScan>,
    /// Where the time went so far.
    pub timing: EngineTiming,
    /// The embedding backend was unavailable: `embedding` is empty, the semantic signals
    /// (domain, complexity, jailbreak) are absent, and only the default policy applies.
    pub degraded: bool,
}

/// Flag set on decisions made without semantic signals (header `x-semrouter-flags`).
pub const DEGRADED_FLAG: &str = "degraded";

/// Everything an engine is built from (see `crate::assemble`).
pub struct RouterParts {
    /// The embedding backend.
    pub embedder: Arc<dyn Embedder>,
    /// The domain classifier.
    pub classifier: DomainClassifier,
    /// The other signals.
    pub signals: SignalSet,
    /// Policy rules.
    pub policies: Policies,
    /// The scorer.
    pub scorer: Scorer,
    /// Reasoning families.
    pub families: Families,
    /// Reasoning levels by need.
    pub levels: Vec<ReasoningLevel>,
    /// Tool pre-selection.
    pub tools: ToolSelector,
    /// Personal-data detection, when a policy or a model's allow-list needs it.
    pub privacy: Option<PrivacyGuard>,
    /// The models.
    pub fleet: Fleet,
    /// Live per-model figures.
    pub stats: Arc<ModelStats>,
    /// Which models are routed.
    pub routing: Routing,
    /// While the embedding backend is unavailable, route by the default policy without
    /// semantic signals instead of failing (the `vllm` backend's `fallback: degraded`).
    pub degraded_routing: bool,
}

/// The decision engine for one configuration.
pub struct Router {
    parts: RouterParts,
}

impl Router {
    /// An engine from its parts.
    pub fn new(parts: RouterParts) -> Self {
        Self { parts }
    }

    /// The embedding backend.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.parts.embedder
    }

    /// The routable models.
    pub fn fleet(&self) -> &Fleet {
        &self.parts.fleet
    }

    /// Live per-model latency and load, fed back by the response paths.
    pub fn stats(&self) -> &Arc<ModelStats> {
        &self.parts.stats
    }

    /// Whether requests may ask for the scoring preference `name`.
    pub fn has_preference(&self, name: &str) -> bool {
        self.parts.scorer.has_preference(name)
    }

    /// Every scoring preference requests may ask for.
    pub fn preferences(&self) -> Vec<&str> {
        self.parts.scorer.preference_names()
    }

    /// Estimated cost of sending the request behind `signals` to `model`, reasoning or not
    /// (for evaluations against fixed baselines); `None` for an unknown model.
    pub fn estimated_cost(&self, model: &str, signals: &Signals, reasoning: bool) -> Option<f64> {
        let card = self.parts.fleet.get(model)?;
        let demand = Demand {
            prompt_tokens: signals.context.prompt_tokens,
            max_completion_tokens: signals.context.max_completion_tokens,
            reasoning,
            tenant: None,
            pii_types: &[],
        };
        Some(self.parts.scorer.estimate_cost(
            card,
            &demand,
            self.parts.families.can_reason(&card.family),
        ))
    }

    /// Request model names that ask for routing.
    pub fn auto_models(&self) -> &[String] {
        &self.parts.routing.auto_models
    }

    /// The PII detector requests are scanned with, when the configuration runs one.
    pub fn pii_detector(&self) -> Option<&Arc<signals::pii::PiiDetector>> {
        self.parts.privacy.as_ref().map(PrivacyGuard::detector)
    }

    /// Embeds `texts` through the backend, recording stage latencies.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Encoded>, EngineError> {
        let out = self.parts.embedder.embed(texts).await?;
        if let Some(first) = out.first() {
            record_backend_stages(&first.timing);
        }
        Ok(out)
    }

    /// Embeds one text.
    async fn embed_one(&self, text: &str) -> Result<Encoded, EngineError> {
        self.embed(vec![text.to_string()])
            .await?
            .pop()
            .ok_or_else(|| {
                EngineError::Backend(BackendError::Inference(
                    "the backend returned no embedding".into(),
                ))
            })
    }

    /// Category probabilities for the text the configuration picks from `messages`.
    pub async fn classify_messages(
        &self,
        messages: &[Message],
    ) -> Result<Classification, EngineError> {
        let text = text::text_to_classify(messages, self.parts.routing.classify_text)
            .ok_or(EngineError::NoText)?;
        self.classify_text(text).await
    }

    /// Category probabilities for `text`.
    pub async fn classify_text(&self, text: String) -> Result<Classification, EngineError> {
        let started = Instant::now();
        if text.trim().is_empty() {
            return Err(EngineError::NoText);
        }
        let encoded = self.embed_one(&text).await?;
        let classify_started = Instant::now();
        let (scores, sequence) = self
            .parts
            .classifier
            .classify(&encoded.values, &text)
            .await?;
        let backend = sequence
            .as_ref()
            .map_or(encoded.timing, |s| add_timing(encoded.timing, s.timing));
        Ok(Classification {
            scores,
            tokens: encoded.tokens,
            timing: EngineTiming {
                backend,
                signals: classify_started.elapsed(),
                total: started.elapsed(),
                ..EngineTiming::default()
            },
        })
    }

    /// Every signal of `request`, from one embedding of its classified text. Personal-data
    /// detection, when configured, runs beside the embedding.
    pub async fn analyse(
        &self,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Result<Analysis, EngineError> {
        let started = Instant::now();
        let text = text::text_to_classify(&request.messages, self.parts.routing.classify_text)
            .ok_or(EngineError::NoText)?;
        let scan = async {
            match &self.parts.privacy {
                Some(guard) => guard.scan(&request.body).await.map(Some),
                None => Ok(None),
            }
        };
        let embed_started = std::time::SystemTime::now();
        let (embedding, pii) = futures_util::future::join(self.embed_one(&text), scan).await;
        let pii = pii?;
        let embedding = match embedding {
            Ok(embedding) => embedding,
            Err(EngineError::Backend(BackendError::Unavailable(_)))
                if self.parts.degraded_routing =>
            {
                return Ok(self.degraded_analysis(request, options, text, pii, started));
            }
            Err(e) => return Err(e),
        };
        crate::telemetry::record_backend_stages(embed_started, &embedding.timing);
        let signals_started = Instant::now();
        let span = tracing::debug_span!("signals");
        let (domain, sequence) = tracing::Instrument::instrument(
            self.parts.classifier.classify(&embedding.values, &text),
            span.clone(),
        )
        .await?;
        let context = Context::of(request, options.tenant.clone());
        let mut signals = span.in_scope(|| {
            self.parts
                .signals
                .compute(domain, &embedding.values, &text, context)
        });
        signals.pii = pii.as_ref().map(|p| p.signal.clone());
        let signals_time = signals_started.elapsed()
            - sequence.as_ref().map_or(Duration::ZERO, |s| {
                s.timing.infer + s.timing.queue + s.timing.tokenize
            });
        metrics::histogram!("semrouter_stage_duration_seconds", "stage" => "signals")
            .record(signals_time.as_secs_f64());
        let backend = sequence
            .as_ref()
            .map_or(embedding.timing, |s| add_timing(embedding.timing, s.timing));
        Ok(Analysis {
            text,
            embedding,
            signals,
            timing: EngineTiming {
                backend,
                signals: signals_time,
                pii: pii.as_ref().map_or(Duration::ZERO, |p| p.signal.elapsed),
                total: started.elapsed(),
                ..EngineTiming::default()
            },
            pii,
            degraded: false,
        })
    }

    /// The analysis of a request whose embedding could not be made: no domain (uniform),
    /// complexity or jailbreak signal and no reasoning need; keywords, context and personal
    /// data, which need no embedding, are kept.
    fn degraded_analysis(
        &self,
        request: &ChatRequest,
        options: &RequestOptions,
        text: String,
        pii: Option<PiiScan>,
        started: Instant,
    ) -> Analysis {
        let domain = CategoryScores::from_pairs(
            crate::categories::Category::all()
                .map(|c| (c, 1.0 / crate::categories::Category::COUNT as f32)),
        );
        let keywords = self.parts.signals.keywords.matching(&text);
        let signals = Signals {
            uncertainty: domain.uncertainty(),
            domain,
            complexity: None,
            reasoning_need: 0.0,
            jailbreak: None,
            jailbreak_detected: false,
            keywords,
            context: Context::of(request, options.tenant.clone()),
            pii: pii.as_ref().map(|p| p.signal.clone()),
        };
        metrics::counter!("semrouter_degraded_decisions_total").increment(1);
        Analysis {
            text,
            embedding: Encoded {
                values: Vec::new(),
                tokens: 0,
                timing: StageTiming::default(),
            },
            signals,
            timing: EngineTiming {
                pii: pii.as_ref().map_or(Duration::ZERO, |p| p.signal.elapsed),
                total: started.elapsed(),
                ..EngineTiming::default()
            },
            pii,
            degraded: true,
        }
    }

    /// Decides the model, reasoning and action for `request` and rewrites its body.
    pub async fn decide(
        &self,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Result<Decision, EngineError> {
        let started = Instant::now();
        if !self.parts.routing.auto_set.contains(&request.model) {
            return self.pass_through(request, started);
        }
        let analysis = self.analyse(request, options).await?;
        let mut decision = self.decide_with(request, &analysis, options).await?;
        decision.timing.total = started.elapsed();
        Ok(decision)
    }

    /// Turns an [`Analysis`] into a decision: policy, limits, scoring, rewrite, tools.
    #[tracing::instrument(name = "decide", level = "debug", skip_all)]
    pub async fn decide_with(
        &self,
        request: &ChatRequest,
        analysis: &Analysis,
        options: &RequestOptions,
    ) -> Result<Decision, EngineError> {
        let started = Instant::now();
        let p = &self.parts;
        let signals = &analysis.signals;
        // Without semantic signals no rule can be trusted to match: the default rule applies.
        let policy = if analysis.degraded {
            p.policies.default_rule()
        } else {
            p.policies.select(signals)
        };
        metrics::counter!("semrouter_policy_matches_total", "policy" => policy.name.clone())
            .increment(1);
        let (category, confidence) = signals.domain.top();
        let category_pick = (!analysis.degraded).then(|| CategoryPick {
            name: category.name(),
            confidence,
        });
        let mut flags: Vec<String> = policy.flag.iter().cloned().collect();
        if analysis.degraded {
            flags.push(DEGRADED_FLAG.to_string());
        }
        let report = options.explain.then(|| signals.report());

        if policy.action == PolicyAction::Block {
            return Ok(self.blocked(
                analysis,
                policy,
                format!("blocked by policy `{}`", policy.name),
                flags,
                report,
                started,
            ));
        }

        let plan = match policy.reasoning {
            Some(o) => ReasoningPlan {
                enabled: o.enabled,
                effort: o.effort.unwrap_or(reasoning::Effort::Medium),
                budget_tokens: o.budget_tokens,
            },
            None => ReasoningPlan::for_need(&p.levels, signals.reasoning_need),
        };
        let candidates: Vec<usize> = match &policy.models {
            Some(names) => names.iter().filter_map(|n| p.fleet.index(n)).collect(),
            None => (0..p.fleet.models().len()).collect(),
        };
        // Personal data: a masking policy masks; otherwise, when no candidate may see what was
        // found, the configured violation action masks or blocks.
        let found: &[String] = signals.pii.as_ref().map_or(&[], |s| s.types.as_slice());
        let nobody_may_see = !found.is_empty()
            && !candidates
                .iter()
                .any(|&i| p.fleet.models()[i].may_see(found));
        let violation = p
            .privacy
            .as_ref()
            .map_or(PiiViolation::Mask, |g| g.on_violation);
        let mask = !found.is_empty()
            && (policy.action == PolicyAction::Mask
                || (nobody_may_see && violation == PiiViolation::Mask));
        if nobody_may_see && !mask {
            let reason = format!(
                "personal data ({}) that no candidate may see",
                found.join(", ")
            );
            return Ok(self.blocked(analysis, policy, reason, flags, report, started));
        }
        let pii_types: Vec<String> = if mask { Vec::new() } else { found.to_vec() };
        let demand = Demand {
            prompt_tokens: signals.context.prompt_tokens,
            max_completion_tokens: signals.context.max_completion_tokens,
            reasoning: plan.enabled,
            tenant: signals.context.tenant.as_deref(),
            pii_types: &pii_types,
        };
        let weights = p.scorer.weights(
            options
                .preference
                .as_deref()
                .or(policy.preference.as_deref()),
            options.cost_weight,
        );
        let ranking = p.scorer.rank(
            &p.fleet,
            &candidates,
            &p.stats,
            &demand,
            weights,
            |card: &ModelCard| card.expected_quality(&signals.domain),
            |card: &ModelCard| p.families.can_reason(&card.family),
        )?;
        if ranking.fallback.is_some() {
            metrics::counter!("semrouter_scoring_fallbacks_total").increment(1);
        }
        let Some(chosen) = ranking.ranked.first().and_then(|c| p.fleet.get(&c.model)) else {
            return Err(NoEligibleModel {
                excluded: ranking.excluded,
            }
            .into());
        };

        let mut body = request.body.clone();
        if mask {
            if let Some(scan) = &analysis.pii {
                scan.mask(&mut body);
            }
        }
        let reasoning = p
            .families
            .rewrite(&mut body, &chosen.name, &chosen.family, plan);
        // Tool pre-selection needs embeddings: without them every tool is kept.
        let tools = if !analysis.degraded && p.tools.applies(&request.tools) {
            let selection = p
                .tools
                .select(p.embedder.as_ref(), &analysis.embedding.values, &mut body)
                .await?;
            metrics::counter!("semrouter_tools_removed_total")
                .increment(selection.removed.len() as u64);
            Some(selection)
        } else {
            None
        };
        if signals.jailbreak_detected && policy.flag.is_none() {
            metrics::counter!("semrouter_jailbreak_detected_total", "policy" => policy.name.clone()).increment(1);
        }
        flags.dedup();

        let decide = started.elapsed();
        let action = if mask { Action::Mask } else { Action::Route };
        let category_label = if analysis.degraded {
            "none"
        } else {
            category.name()
        };
        record_decision(
            &chosen.name,
            category_label,
            if reasoning.enabled { "on" } else { "off" },
            if mask { "mask" } else { "route" },
            decide,
        );
        Ok(Decision {
            action,
            model: Some(chosen.name.clone()),
            routed: true,
            policy: Some(policy.name.clone()),
            reason: match ranking.fallback {
                Some(fallback) => format!("no candidate met the limits; fallback `{fallback:?}` chose it"),
                None if analysis.degraded => format!(
                    "the embedding backend is unavailable: default policy `{}` without semantic signals",
                    policy.name
                ),
                None => format!(
                    "best score under policy `{}` for category `{category}` ({confidence:.2}), reasoning need {:.2}",
                    policy.name, signals.reasoning_need
                ),
            },
            category: category_pick,
            categories: if analysis.degraded { Vec::new() } else { signals.domain.top_n(REPORTED_CATEGORIES) },
            reasoning: Some(reasoning),
            candidates: ranking.ranked,
            excluded: ranking.excluded,
            fallback: ranking.fallback,
            tools,
            flags,
            request: Some(Value::Object(body)),
            tokens: Some(analysis.embedding.tokens),
            signals: report,
            timing: EngineTiming {
                decide,
                ..analysis.timing
            },
            plan: Some(plan),
        })
    }

    /// The same decision sent to `model`, another of its ranked candidates, instead (the
    /// proxy's retry after the chosen model's upstream failed): the body keeps its masking and
    /// tool trimming and is rewritten for `model`'s name and reasoning family under the same
    /// plan. `None` when `model` is not a candidate of this routed decision.
    pub fn retarget(&self, decision: &Decision, model: &str) -> Option<Decision> {
        let plan = decision.plan?;
        if !decision.candidates.iter().any(|c| c.model == model) {
            return None;
        }
        let card = self.parts.fleet.get(model)?;
        let Some(Value::Object(mut body)) = decision.request.clone() else {
            return None;
        };
        let reasoning = self
            .parts
            .families
            .rewrite(&mut body, &card.name, &card.family, plan);
        Some(Decision {
            model: Some(card.name.clone()),
            reason: format!(
                "{}; sent to `{}`, a lower-ranked candidate, after the chosen model failed",
                decision.reason, card.name
            ),
            reasoning: Some(reasoning),
            request: Some(Value::Object(body)),
            ..decision.clone()
        })
    }

    /// A blocked decision: no model, no body.
    fn blocked(
        &self,
        analysis: &Analysis,
        policy: &Policy,
        reason: String,
        flags: Vec<String>,
        report: Option<signals::SignalsReport>,
        started: Instant,
    ) -> Decision {
        let (category, confidence) = analysis.signals.domain.top();
        let decide = started.elapsed();
        record_decision(
            "blocked",
            if analysis.degraded {
                "none"
            } else {
                category.name()
            },
            "none",
            "block",
            decide,
        );
        Decision {
            action: Action::Block,
            model: None,
            routed: true,
            policy: Some(policy.name.clone()),
            reason,
            category: (!analysis.degraded).then(|| CategoryPick {
                name: category.name(),
                confidence,
            }),
            categories: if analysis.degraded {
                Vec::new()
            } else {
                analysis.signals.domain.top_n(REPORTED_CATEGORIES)
            },
            reasoning: None,
            candidates: Vec::new(),
            excluded: Vec::new(),
            fallback: None,
            tools: None,
            flags,
            request: None,
            tokens: Some(analysis.embedding.tokens),
            signals: report,
            timing: EngineTiming {
                decide,
                ..analysis.timing
            },
            plan: None,
        }
    }

    /// A request that names a model: forwarded unchanged if the model is known (or unknown
    /// models are passed), without running any model.
    fn pass_through(
        &self,
        request: &ChatRequest,
        started: Instant,
    ) -> Result<Decision, EngineError> {
        let known = self.parts.fleet.get(&request.model).is_some();
        if !known && self.parts.routing.unknown_models == UnknownModels::Reject {
            let mut names = self.parts.routing.auto_models.clone();
            names.extend(self.parts.fleet.models().iter().map(|m| m.name.clone()));
            return Err(EngineError::UnknownModel {
                model: request.model.clone(),
                known: names,
            });
        }
        record_decision(
            if known {
                &request.model
            } else {
                "unconfigured"
            },
            "none",
            "unchanged",
            "pass",
            Duration::ZERO,
        );
        Ok(Decision {
            action: Action::Route,
            model: Some(request.model.clone()),
            routed: false,
            policy: None,
            reason: if known {
                "the request names a configured model; passed through unchanged".into()
            } else {
                "the request names a model that is not configured; passed through unchanged".into()
            },
            category: None,
            categories: Vec::new(),
            reasoning: None,
            candidates: Vec::new(),
            excluded: Vec::new(),
            fallback: None,
            tools: None,
            flags: Vec::new(),
            request: Some(Value::Object(request.body.clone())),
            tokens: None,
            signals: None,
            timing: EngineTiming {
                total: started.elapsed(),
                ..EngineTiming::default()
            },
            plan: None,
        })
    }
}

fn add_timing(a: StageTiming, b: StageTiming) -> StageTiming {
    StageTiming {
        tokenize: a.tokenize + b.tokenize,
        queue: a.queue + b.queue,
        infer: a.infer + b.infer,
    }
}

fn record_decision(
    model: &str,
    category: &'static str,
    reasoning: &'static str,
    action: &'static str,
    decide: Duration,
) {
    metrics::histogram!("semrouter_stage_duration_seconds", "stage" => "decide")
        .record(decide.as_secs_f64());
    metrics::counter!(
        "semrouter_decisions_total",
        "model" => model.to_string(),
        "category" => category,
        "reasoning" => reasoning,
        "action" => action
    )
    .increment(1);
}

/// Records tokenise, queue and infer latencies of one backend call.
fn record_backend_stages(timing: &StageTiming) {
    for (stage, duration) in [
        ("tokenize", timing.tokenize),
        ("queue", timing.queue),
        ("infer", timing.infer),
    ] {
        metrics::histogram!("semrouter_stage_duration_seconds", "stage" => stage)
            .record(duration.as_secs_f64());
    }
}
