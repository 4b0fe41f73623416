//! The route flow every front end shares (REST `/v1/route`, the ext_proc callout, the proxy):
//! exact cache probe before the encoder, one analysis, semantic lookup, decision. Front ends
//! only read their protocol into [`RequestHeaders`] and a [`ChatRequest`], and render the
//! [`Routed`] they get back; what they learn from the upstream's answer goes back through
//! [`PendingWrite`].

use std::collections::BTreeMap;
use std::time::Instant;

use crate::cache::{directives, CacheHit, CacheRequest, Reply, WriteSkip};
use crate::config::{ClassifyText, DecisionHeader};
use crate::engine::text::text_to_classify;
use crate::engine::{Decision, EngineTiming, RequestOptions, Router};
use crate::openai::ChatRequest;

use super::cache::{CacheReport, CacheService, Prepared};
use super::dashboard::{now_ms, DecisionFeed, DecisionRecord};
use super::error::ApiError;
use super::AppState;

/// Header naming a scoring preference (`quality`, `balanced`, `cost`, or a configured one).
pub const PREFERENCE_HEADER: &str = "x-semrouter-preference";
/// Header giving an explicit cost weight in [0, 1].
pub const COST_WEIGHT_HEADER: &str = "x-semrouter-cost-weight";
/// Header asking for every signal in the reply.
pub const EXPLAIN_HEADER: &str = "x-semrouter-explain";

/// A request's headers, read once from whichever protocol carried them (actix, Envoy's
/// `HeaderMap`), names lower-cased.
#[derive(Debug, Clone, Default)]
pub struct RequestHeaders {
    pairs: Vec<(String, String)>,
}

impl RequestHeaders {
    /// From `(name, value)` pairs in any case; values that are not UTF-8 are dropped by the caller.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            pairs: pairs
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect(),
        }
    }

    /// From actix-web's header map.
    pub fn from_actix(headers: &actix_web::http::header::HeaderMap) -> Self {
        Self::from_pairs(
            headers
                .iter()
                .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v))),
        )
    }

    /// The first value of `name` (lower case), trimmed, when not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every pair, names lower-cased.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// The per-request options a front end reads from headers; `explain_query` is the REST
/// API's `?explain=true`.
pub fn request_options(
    headers: &RequestHeaders,
    explain_query: Option<&str>,
    tenant_header: &str,
) -> Result<RequestOptions, ApiError> {
    let cost_weight = headers
        .get(COST_WEIGHT_HEADER)
        .map(|v| match v.parse::<f64>() {
            Ok(w) if (0.0..=1.0).contains(&w) => Ok(w),
            _ => Err(ApiError::invalid_param(
                COST_WEIGHT_HEADER,
                format!("header `{COST_WEIGHT_HEADER}` must be a number from 0 to 1"),
            )),
        })
        .transpose()?;
    let truthy = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes");
    let explain =
        headers.get(EXPLAIN_HEADER).is_some_and(truthy) || explain_query.is_some_and(truthy);
    Ok(RequestOptions {
        preference: headers.get(PREFERENCE_HEADER).map(str::to_string),
        cost_weight,
        tenant: headers.get(tenant_header).map(str::to_string),
        explain,
    })
}

/// `?explain=` from a query string.
pub fn explain_query(query: &str) -> Option<String> {
    actix_web::web::Query::<BTreeMap<String, String>>::from_query(query)
        .ok()
        .and_then(|q| q.get("explain").cloned())
}

/// What the flow produced for one chat request.
pub enum Routed {
    /// The cache answered: no model needs to run.
    Cached {
        /// The stored answer and how it matched.
        hit: CacheHit,
        /// The request as the cache saw it (replay form: JSON or SSE).
        request: CacheRequest,
        /// Engine stages run before the hit (none for an exact hit).
        timing: EngineTiming,
    },
    /// The engine decided (route, mask or block).
    Decided {
        /// The decision.
        decision: Decision,
        /// The cache's part, when the cache is on.
        cache: Option<CacheReport>,
        /// How to store the upstream's answer, when it may be stored.
        write: Option<PendingWrite>,
    },
}

/// What the response path needs to store the upstream's answer to a routed request, kept
/// from the request's own analysis so that no second encoder pass is needed.
pub struct PendingWrite {
    request: CacheRequest,
    embedding: Option<Vec<f32>>,
    category: Option<&'static str>,
    pii: bool,
}

impl PendingWrite {
    /// Stores the upstream's answer (only complete, successful ones without PII in prompt or
    /// answer are kept; the error says why one was not). See [`CacheService::store_reply`].
    pub fn complete(&self, service: &CacheService, reply: Reply<'_>) -> Result<(), WriteSkip> {
        service.store_reply(
            &self.request,
            self.embedding.as_deref(),
            self.category,
            reply,
            self.pii,
        )
    }
}

/// Runs the shared flow: the exact path before the encoder, then for routed requests one
/// analysis whose embedding serves both the semantic lookup and the decision. `front_end`
/// (`rest`, `proxy`, `extproc`) labels the dashboard's record of what was decided.
pub async fn route_chat(
    state: &AppState,
    engine: &Router,
    chat: &ChatRequest,
    headers: &RequestHeaders,
    options: &RequestOptions,
    front_end: &'static str,
) -> Result<Routed, ApiError> {
    let started = Instant::now();
    let routed = decide_chat(state, engine, chat, headers, options).await?;
    if let Some(feed) = &state.feed {
        feed.record(dashboard_record(
            feed,
            &routed,
            chat,
            front_end,
            started.elapsed(),
        ));
    }
    Ok(routed)
}

/// What the dashboard keeps of one routed request: the outcome, never the prompt unless
/// `dashboard.show_prompts`.
fn dashboard_record(
    feed: &DecisionFeed,
    routed: &Routed,
    chat: &ChatRequest,
    front_end: &'static str,
    elapsed: std::time::Duration,
) -> DecisionRecord {
    let prompt = feed.excerpt(|| text_to_classify(&chat.messages, ClassifyText::LastUser));
    let base = DecisionRecord {
        at_ms: now_ms(),
        front_end,
        action: "route",
        model: None,
        category: None,
        reasoning: None,
        cache: None,
        cache_kind: None,
        latency_us: elapsed.as_micros() as u64,
        policy: None,
        flags: Vec::new(),
        prompt,
    };
    match routed {
        Routed::Cached { hit, .. } => DecisionRecord {
            action: "cache",
            model: Some(
                hit.answer
                    .upstream_model
                    .clone()
                    .unwrap_or_else(|| chat.model.clone()),
            ),
            cache: Some("hit"),
            cache_kind: Some(hit.kind.label()),
            ..base
        },
        Routed::Decided {
            decision, cache, ..
        } => DecisionRecord {
            action: decision.action.as_str(),
            model: decision.model.clone(),
            category: decision.category.as_ref().map(|c| c.name),
            reasoning: decision.reasoning.as_ref().map(|r| r.label()),
            cache: cache.as_ref().map(|c| {
                if c.skipped.is_some() {
                    "skipped"
                } else {
                    "miss"
                }
            }),
            policy: decision.policy.clone(),
            flags: decision.flags.clone(),
            ..base
        },
    }
}

async fn decide_chat(
    state: &AppState,
    engine: &Router,
    chat: &ChatRequest,
    headers: &RequestHeaders,
    options: &RequestOptions,
) -> Result<Routed, ApiError> {
    if let Some(p) = options
        .preference
        .as_deref()
        .filter(|p| !engine.has_preference(p))
    {
        return Err(ApiError::invalid_param(
            PREFERENCE_HEADER,
            format!(
                "unknown preference `{p}`; use one of: {}",
                engine.preferences().join(", ")
            ),
        ));
    }
    if state.log_prompts {
        // Only with `server.log_prompts: true`: prompts may hold secrets and personal data.
        let messages = chat
            .body
            .get("messages")
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::debug!(model = %chat.model, %messages, "routing request (server.log_prompts is on)");
    }
    let service = state.cache.load_full();
    let store_allowed = directives(headers.iter()).store;
    let mut prepared = service
        .as_ref()
        .map(|s| s.prepare(headers, chat, options.tenant.as_deref()));
    if let (Some(service), Some(Prepared::Ready(cache_request))) = (&service, &prepared) {
        let exact = tracing::debug_span!("cache_lookup", kind = "exact")
            .in_scope(|| service.cache().lookup_exact(cache_request));
        if let Some(hit) = exact {
            log_hit(&chat.model, &hit);
            return Ok(Routed::Cached {
                hit,
                request: cache_request.clone(),
                timing: EngineTiming::default(),
            });
        }
    }
    let routed = engine.auto_models().contains(&chat.model);
    let mut write_parts = (None, None, false);
    let decision = match (&service, &mut prepared) {
        (Some(service), Some(Prepared::Ready(cache_request))) if routed => {
            let started = Instant::now();
            let analysis = engine.analyse(chat, options).await?;
            service.note_tokens(cache_request, analysis.embedding.tokens);
            // A degraded analysis (the embedding backend unavailable) has no embedding: the
            // exact path above is all the cache can answer from.
            let semantic_hit = if analysis.degraded {
                None
            } else {
                let category = analysis.signals.domain.top().0.name();
                tracing::debug_span!("cache_lookup", kind = "semantic").in_scope(|| {
                    service
                        .cache()
                        .lookup_semantic(cache_request, &analysis.embedding.values, Some(category))
                        .unwrap_or_else(|error| {
                            tracing::warn!(%error, "cache lookup skipped: unusable embedding");
                            None
                        })
                })
            };
            let mut decision = engine.decide_with(chat, &analysis, options).await?;
            decision.timing.total = started.elapsed();
            // A near neighbour's answer is served only to a prompt the engine would let
            // through: a blocked prompt must not read what was stored for a harmless one.
            if let Some(hit) =
                semantic_hit.filter(|_| decision.action != crate::engine::Action::Block)
            {
                log_hit(&chat.model, &hit);
                return Ok(Routed::Cached {
                    hit,
                    request: cache_request.clone(),
                    timing: analysis.timing,
                });
            }
            let pii = analysis
                .pii
                .as_ref()
                .is_some_and(|p| !p.signal.types.is_empty());
            write_parts = if analysis.degraded {
                (None, None, pii)
            } else {
                (
                    Some(analysis.embedding.values),
                    Some(analysis.signals.domain.top().0.name()),
                    pii,
                )
            };
            decision
        }
        _ => engine.decide(chat, options).await?,
    };
    let write = match prepared.as_ref() {
        Some(Prepared::Ready(request))
            if store_allowed && decision.action != crate::engine::Action::Block =>
        {
            let (embedding, category, pii) = write_parts;
            // Without a PII detector in the engine the prompt still passes the cache's regexes.
            let pii = pii
                || service
                    .as_ref()
                    .is_some_and(|s| s.screen().prompt_has_patterns(&chat.messages));
            Some(PendingWrite {
                request: request.clone(),
                embedding,
                category,
                pii,
            })
        }
        _ => None,
    };
    let cache = prepared.map(|p| match p {
        Prepared::Ready(_) => CacheReport::miss(),
        Prepared::Skipped(reason) => CacheReport::skipped(reason),
    });
    // One info line per decision (what was decided, never the prompt): operators follow
    // routing from the log, and `server.log_format: json` makes it a record.
    tracing::info!(
        model = decision.model.as_deref().unwrap_or("none"),
        action = ?decision.action,
        routed = decision.routed,
        category = decision.category.as_ref().map_or("none", |c| c.name),
        reasoning = decision.reasoning.as_ref().is_some_and(|r| r.enabled),
        "decision"
    );
    Ok(Routed::Decided {
        decision,
        cache,
        write,
    })
}

/// The info line of a request answered from the cache (in place of the decision line).
fn log_hit(requested: &str, hit: &crate::cache::CacheHit) {
    tracing::info!(
        requested,
        cache = hit.kind.label(),
        similarity = hit.similarity,
        age_ms = hit.age_ms,
        "cache hit"
    );
}

/// The decision headers a proxy or ext_proc reply carries, those in `emitted` only. `cache`
/// is `hit`/`miss` when the cache is on.
pub fn decision_headers(
    decision: &Decision,
    cache: Option<&'static str>,
    emitted: &[DecisionHeader],
) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(emitted.len());
    for &header in emitted {
        let value = match header {
            DecisionHeader::SelectedModel | DecisionHeader::GatewayModelName => {
                decision.model.clone()
            }
            DecisionHeader::Category => decision.category.as_ref().map(|c| c.name.to_string()),
            DecisionHeader::Reasoning => decision.reasoning.as_ref().map(|r| r.label().to_string()),
            DecisionHeader::Cache => cache.map(str::to_string),
            DecisionHeader::Flags => (!decision.flags.is_empty()).then(|| decision.flags.join(",")),
        };
        if let Some(value) = value {
            out.push((header.name(), value));
        }
    }
    out
}

/// What the response path learnt from one upstream answer: folds the latency into the
/// model's EWMA (the scorer's latency factor) and counts the tokens `usage` reports.
pub fn observe_answer(
    engine: &Router,
    model: &str,
    latency: std::time::Duration,
    usage: Option<&serde_json::Value>,
) {
    engine.stats().observe_latency(model, latency);
    let Some(usage) = usage else {
        return;
    };
    for (field, kind) in [
        ("prompt_tokens", "prompt"),
        ("completion_tokens", "completion"),
    ] {
        if let Some(n) = usage.get(field).and_then(serde_json::Value::as_u64) {
            metrics::counter!("semrouter_model_tokens_total", "model" => model.to_string(), "kind" => kind).increment(n);
        }
    }
}
