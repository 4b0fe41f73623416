//! The decision engine: from a parsed request to a [`Decision`].
//!
//! It knows the embedding backend only through the [`Embedder`] trait and never sees HTTP.
//! One embedding per request feeds the domain classifier; the fleet ranks models by expected
//! quality over the category probabilities; the chosen model's family decides how reasoning
//! is written into the body.

pub mod domain;
pub mod fleet;
pub mod reasoning;
pub mod signals;
pub mod text;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use semrouter_embedder::{BackendError, Embedder, Encoded, StageTiming};
use serde::Serialize;
use serde_json::Value;

use crate::categories::Category;
use crate::config::{CategoryRoute, ClassifyText, RoutingConfig, UnknownModels};
use crate::openai::{ChatRequest, Message};
use domain::{CategoryProbability, CategoryScores, DomainClassifier};
use fleet::{Candidate, Fleet};
use reasoning::{Effort, Reasoning};

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
}

/// Routing rules resolved from config.
#[derive(Debug, Clone)]
pub struct Routing {
    auto_models: Vec<String>,
    auto_set: HashSet<String>,
    unknown_models: UnknownModels,
    per_category: [CategoryRoute; Category::COUNT],
    classify_text: ClassifyText,
}

impl Routing {
    /// Resolves validated routing config; `classify_text` says which text is classified.
    pub fn from_config(config: &RoutingConfig, classify_text: ClassifyText) -> Self {
        let mut per_category = [config.default; Category::COUNT];
        for (name, route) in &config.categories {
            if let Some(c) = Category::parse(name) {
                per_category[c.index()] = *route;
            }
        }
        Self {
            auto_models: config.auto_models.clone(),
            auto_set: config.auto_models.iter().cloned().collect(),
            unknown_models: config.unknown_models,
            per_category,
            classify_text,
        }
    }
}

/// The category chosen for a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryPick {
    /// Category name.
    pub name: &'static str,
    /// Its probability.
    pub confidence: f32,
}

/// Where the engine's time went for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineTiming {
    /// Backend stages (tokenise, queue, infer).
    pub backend: StageTiming,
    /// Applying the head and softmax.
    pub classify: Duration,
    /// Ranking models and rewriting the body.
    pub decide: Duration,
    /// Everything inside the engine.
    pub total: Duration,
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

/// What the router decided for one request, with enough to explain it.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The model that should answer.
    pub model: String,
    /// True when the router chose the model; false when the request named it.
    pub routed: bool,
    /// Why this model, in words.
    pub reason: String,
    /// The chosen category (absent for pass-through requests).
    pub category: Option<CategoryPick>,
    /// The most likely categories.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<CategoryProbability>,
    /// What reasoning was asked for (absent for pass-through requests).
    pub reasoning: Option<Reasoning>,
    /// Every model's expected quality, best first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// The request body to send to `model`.
    pub request: Value,
    /// Tokens classified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<usize>,
    /// Where the time went (rendered by each front end).
    #[serde(skip)]
    pub timing: EngineTiming,
}

/// The decision engine for one configuration.
pub struct Router {
    embedder: Arc<dyn Embedder>,
    classifier: DomainClassifier,
    fleet: Fleet,
    routing: Routing,
}

impl Router {
    /// Assembles an engine from its parts (see `crate::assemble` for building them from config).
    pub fn new(embedder: Arc<dyn Embedder>, classifier: DomainClassifier, fleet: Fleet, routing: Routing) -> Self {
        Self {
            embedder,
            classifier,
            fleet,
            routing,
        }
    }

    /// The embedding backend.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// The routable models.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Request model names that ask for routing.
    pub fn auto_models(&self) -> &[String] {
        &self.routing.auto_models
    }

    /// Embeds `texts` through the backend, recording stage latencies.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Encoded>, EngineError> {
        let out = self.embedder.embed(texts).await?;
        if let Some(first) = out.first() {
            record_backend_stages(&first.timing);
        }
        Ok(out)
    }

    /// Category probabilities for the text the configuration picks from `messages`.
    pub async fn classify_messages(&self, messages: &[Message]) -> Result<Classification, EngineError> {
        let text = text::text_to_classify(messages, self.routing.classify_text).ok_or(EngineError::NoText)?;
        self.classify_text(text).await
    }

    /// Category probabilities for `text`.
    pub async fn classify_text(&self, text: String) -> Result<Classification, EngineError> {
        let started = Instant::now();
        if text.trim().is_empty() {
            return Err(EngineError::NoText);
        }
        let (scores, encoded, classify) = self.classifier.classify(self.embedder.as_ref(), text).await?;
        record_backend_stages(&encoded.timing);
        Ok(Classification {
            scores,
            tokens: encoded.tokens,
            timing: EngineTiming {
                backend: encoded.timing,
                classify,
                decide: Duration::ZERO,
                total: started.elapsed(),
            },
        })
    }

    /// Decides the model and reasoning for `request` and rewrites its body accordingly.
    pub async fn decide(&self, request: &ChatRequest) -> Result<Decision, EngineError> {
        let started = Instant::now();
        if !self.routing.auto_set.contains(&request.model) {
            return self.pass_through(request, started);
        }
        let classification = self.classify_messages(&request.messages).await?;
        let decide_started = Instant::now();
        let scores = &classification.scores;
        let ranked = self.fleet.rank(scores);
        let (chosen, _) = ranked[0];
        let (category, confidence) = scores.top();
        let route = self.routing.per_category[category.index()];
        let mut body = request.body.clone();
        let reasoning = reasoning::rewrite(
            &mut body,
            &chosen.name,
            chosen.family,
            route.reasoning,
            route.effort.unwrap_or(Effort::Medium),
        );
        let decide = decide_started.elapsed();
        metrics::histogram!("semrouter_stage_duration_seconds", "stage" => "decide").record(decide.as_secs_f64());
        metrics::counter!(
            "semrouter_decisions_total",
            "model" => chosen.name.clone(),
            "category" => category.name(),
            "reasoning" => if reasoning.enabled { "on" } else { "off" }
        )
        .increment(1);

        Ok(Decision {
            model: chosen.name.clone(),
            routed: true,
            reason: format!("best expected quality for category `{category}` ({confidence:.2})"),
            category: Some(CategoryPick {
                name: category.name(),
                confidence,
            }),
            categories: scores.top_n(REPORTED_CATEGORIES),
            reasoning: Some(reasoning),
            candidates: ranked
                .iter()
                .map(|(m, q)| Candidate {
                    model: m.name.clone(),
                    expected_quality: *q,
                })
                .collect(),
            request: Value::Object(body),
            tokens: Some(classification.tokens),
            timing: EngineTiming {
                decide,
                total: started.elapsed(),
                ..classification.timing
            },
        })
    }

    /// A request that names a model: forwarded unchanged if the model is known (or unknown
    /// models are passed), without running any model.
    fn pass_through(&self, request: &ChatRequest, started: Instant) -> Result<Decision, EngineError> {
        let known = self.fleet.get(&request.model).is_some();
        if !known && self.routing.unknown_models == UnknownModels::Reject {
            let mut names = self.routing.auto_models.clone();
            names.extend(self.fleet.models().iter().map(|m| m.name.clone()));
            return Err(EngineError::UnknownModel {
                model: request.model.clone(),
                known: names,
            });
        }
        metrics::counter!(
            "semrouter_decisions_total",
            "model" => if known { request.model.clone() } else { "unconfigured".to_string() },
            "category" => "none",
            "reasoning" => "unchanged"
        )
        .increment(1);
        Ok(Decision {
            model: request.model.clone(),
            routed: false,
            reason: if known {
                "the request names a configured model; passed through unchanged".into()
            } else {
                "the request names a model that is not configured; passed through unchanged".into()
            },
            category: None,
            categories: Vec::new(),
            reasoning: None,
            candidates: Vec::new(),
            request: Value::Object(request.body.clone()),
            tokens: None,
            timing: EngineTiming {
                total: started.elapsed(),
                ..EngineTiming::default()
            },
        })
    }
}

/// Records tokenise, queue and infer latencies of one backend call.
fn record_backend_stages(timing: &StageTiming) {
    for (stage, duration) in [("tokenize", timing.tokenize), ("queue", timing.queue), ("infer", timing.infer)] {
        metrics::histogram!("semrouter_stage_duration_seconds", "stage" => stage).record(duration.as_secs_f64());
    }
}
