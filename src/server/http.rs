//! The REST API: routes, handlers and the JSON each one renders.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix_web::web::{self, Data, Payload, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use semrouter_embedder::Health;
use serde::Serialize;
use serde_json::{json, Value};

use super::body::read_json;
use super::cache::CacheReport;
use super::error::ApiError;
use super::routing::{explain_query, request_options, route_chat, RequestHeaders, Routed};
use super::AppState;
use crate::engine::{CategoryPick, Decision, EngineTiming};
use crate::openai::{self, EmbeddingInput, EncodingFormat};

/// Most texts one `/v1/embeddings` request may carry.
pub const MAX_EMBEDDING_INPUTS: usize = 256;

/// Registers every route. Each resource answers 405 for other methods.
pub fn routes(config: &mut ServiceConfig) {
    config
        .service(
            web::resource("/v1/route")
                .route(web::post().to(route))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/classify")
                .route(web::post().to(classify))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/embeddings")
                .route(web::post().to(embeddings))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/models")
                .route(web::get().to(models))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/health")
                .route(web::get().to(health))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/ready")
                .route(web::get().to(ready))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/metrics")
                .route(web::get().to(metrics))
                .default_service(web::to(method_not_allowed)),
        )
        .configure(super::cache::routes)
        .configure(super::admin::routes)
        .configure(super::proxy::routes)
        .configure(super::dashboard::routes);
}

/// 404 in the OpenAI envelope for any path not routed.
pub async fn unknown_path(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::unknown_path(
        request.method().as_str(),
        request.path(),
    ))
}

pub(super) async fn method_not_allowed(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed(
        request.method().as_str(),
        request.path(),
    ))
}

/// Microseconds per stage, as reported in replies.
#[derive(Debug, Serialize)]
struct TimingUs {
    parse: u128,
    tokenize: u128,
    queue: u128,
    infer: u128,
    signals: u128,
    pii: u128,
    decide: u128,
    total: u128,
}

impl TimingUs {
    fn new(parse: Duration, engine: &EngineTiming, total: Duration) -> Self {
        Self {
            parse: parse.as_micros(),
            tokenize: engine.backend.tokenize.as_micros(),
            queue: engine.backend.queue.as_micros(),
            infer: engine.backend.infer.as_micros(),
            signals: engine.signals.as_micros(),
            pii: engine.pii.as_micros(),
            decide: engine.decide.as_micros(),
            total: total.as_micros(),
        }
    }
}

#[derive(Serialize)]
struct RouteReply<'a> {
    #[serde(flatten)]
    decision: &'a Decision,
    /// Present when the cache is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<CacheReport>,
    timing_us: TimingUs,
}

/// A `/v1/route` reply answered from the cache: no model needs to run.
#[derive(Serialize)]
struct CachedRouteReply<'a> {
    action: &'static str,
    model: &'a str,
    routed: bool,
    reason: String,
    cache: CacheReport,
    timing_us: TimingUs,
}

fn cached_reply(
    hit: &crate::cache::CacheHit,
    request: &crate::cache::CacheRequest,
    model: &str,
    timing_us: TimingUs,
) -> HttpResponse {
    tracing::debug!(
        kind = hit.kind.label(),
        similarity = hit.similarity,
        "cache hit"
    );
    HttpResponse::Ok()
        .insert_header((CACHE_HEADER, "hit"))
        .json(CachedRouteReply {
            action: "cache",
            model,
            routed: false,
            reason: format!("{} cache hit", hit.kind.label()),
            cache: CacheReport::hit(hit, request, model),
            timing_us,
        })
}

/// Header telling the client whether the answer came from the cache.
const CACHE_HEADER: &str = "x-semrouter-cache";

/// `POST /v1/route`: the routing decision for a chat-completions request.
async fn route(
    request: HttpRequest,
    payload: Payload,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let span =
        crate::telemetry::request_span("/v1/route", super::proxy::header_pairs(request.headers()));
    tracing::Instrument::instrument(decide_route(request, payload, state), span).await
}

async fn decide_route(
    request: HttpRequest,
    payload: Payload,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let received = Instant::now();
    let bytes = read_json(&request, payload, state.max_body_bytes).await?;
    let _admitted = state.admission.admit("rest")?;
    let chat = openai::parse_chat_request(&bytes)?;
    let parse = received.elapsed();
    let engine = state.engine()?;
    let headers = RequestHeaders::from_actix(request.headers());
    let options = request_options(
        &headers,
        explain_query(request.query_string()).as_deref(),
        &state.tenant_header,
    )?;
    match route_chat(&state, &engine, &chat, &headers, &options, "rest").await? {
        Routed::Cached {
            hit,
            request: cache_request,
            timing,
        } => {
            let timing_us = TimingUs::new(parse, &timing, received.elapsed());
            Ok(cached_reply(&hit, &cache_request, &chat.model, timing_us))
        }
        Routed::Decided {
            decision, cache, ..
        } => {
            let timing_us = TimingUs::new(parse, &decision.timing, received.elapsed());
            let mut reply = HttpResponse::Ok();
            if cache.is_some() {
                reply.insert_header((CACHE_HEADER, "miss"));
            }
            Ok(reply.json(RouteReply {
                decision: &decision,
                cache,
                timing_us,
            }))
        }
    }
}

/// `POST /v1/classify`: category probabilities for a text or a conversation.
async fn classify(
    request: HttpRequest,
    payload: Payload,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let received = Instant::now();
    let bytes = read_json(&request, payload, state.max_body_bytes).await?;
    let _admitted = state.admission.admit("rest")?;
    let body = openai::parse_classify_request(&bytes)?;
    let parse = received.elapsed();
    let engine = state.engine()?;
    let classification = match (body.text, body.messages) {
        (Some(text), _) if text.trim().is_empty() => {
            return Err(ApiError::invalid_param("text", "`text` must not be empty"))
        }
        (Some(text), _) => engine.classify_text(text).await?,
        (None, Some(messages)) => engine.classify_messages(&messages).await?,
        (None, None) => return Err(ApiError::invalid_param("text", "give `text` or `messages`")),
    };
    let (category, confidence) = classification.scores.top();
    Ok(HttpResponse::Ok().json(ClassifyReply {
        category: CategoryPick {
            name: category.name(),
            confidence,
        },
        probabilities: classification
            .scores
            .all()
            .map(|(c, p)| (c.name(), p))
            .collect(),
        tokens: classification.tokens,
        timing_us: TimingUs::new(parse, &classification.timing, received.elapsed()),
    }))
}

#[derive(Serialize)]
struct ClassifyReply {
    category: CategoryPick,
    /// Every category, in canonical (alphabetical) order.
    probabilities: BTreeMap<&'static str, f32>,
    tokens: usize,
    timing_us: TimingUs,
}

/// `POST /v1/embeddings`: OpenAI-compatible embeddings from the configured backend.
async fn embeddings(
    request: HttpRequest,
    payload: Payload,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_json(&request, payload, state.max_body_bytes).await?;
    let _admitted = state.admission.admit("rest")?;
    let body = openai::parse_embeddings_request(&bytes)?;
    let engine = state.engine()?;
    let info = engine.embedder().info().clone();
    if let Some(model) = body.model.as_deref().filter(|m| *m != info.model_id) {
        return Err(ApiError::unknown_model(format!(
            "the embedding model `{model}` does not exist; this router serves `{}`",
            info.model_id
        )));
    }
    if let Some(dimensions) = body.dimensions.filter(|&d| d != info.dimension) {
        return Err(ApiError::invalid_param(
            "dimensions",
            format!(
                "`{}` produces {}-dimensional vectors; {dimensions} is not supported",
                info.model_id, info.dimension
            ),
        ));
    }
    let texts = match body.input {
        EmbeddingInput::One(text) => vec![text],
        EmbeddingInput::Many(texts) => texts,
    };
    if texts.is_empty() {
        return Err(ApiError::invalid_param(
            "input",
            "`input` must not be empty",
        ));
    }
    if texts.len() > MAX_EMBEDDING_INPUTS {
        return Err(ApiError::invalid_param(
            "input",
            format!("at most {MAX_EMBEDDING_INPUTS} inputs per request"),
        ));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(ApiError::invalid_param(
            &format!("input[{i}]"),
            "inputs must not be empty",
        ));
    }
    let encoded = engine.embed(texts).await?;
    let tokens: usize = encoded.iter().map(|e| e.tokens).sum();
    let data: Vec<Value> = encoded
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let embedding = match body.encoding_format {
                EncodingFormat::Float => json!(e.values),
                EncodingFormat::Base64 => {
                    let bytes: Vec<u8> = e.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "object": "list",
        "data": data,
        "model": info.model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}

/// `GET /v1/models`: the routing names, the configured models (`proxied`: whether
/// `/v1/chat/completions` can reach them), and the embedding model with the execution
/// provider that really runs it.
async fn models(state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let engine = state.engine()?;
    let created = state.started_unix;
    let upstreams = state.upstreams.load();
    let mut data: Vec<Value> = engine
        .auto_models()
        .iter()
        .map(|name| json!({"id": name, "object": "model", "created": created, "owned_by": "semrouter", "semrouter": {"kind": "router"}}))
        .collect();
    data.extend(engine.fleet().models().iter().map(|m| {
        json!({"id": m.name, "object": "model", "created": created, "owned_by": "semrouter",
               "semrouter": {"kind": "upstream", "reasoning_family": m.family, "proxied": upstreams.has(&m.name)}})
    }));
    let info = engine.embedder().info();
    data.push(json!({"id": info.model_id, "object": "model", "created": created, "owned_by": "semrouter",
        "semrouter": {"kind": "embedding", "backend": info.backend, "dimension": info.dimension, "max_tokens": info.max_tokens,
                      "execution_provider": info.execution_provider, "requested_provider": info.requested_provider}}));
    Ok(HttpResponse::Ok().json(json!({"object": "list", "data": data})))
}

/// `GET /health`: the process is alive.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /ready`: 200 once the models are loaded and warmed and the embedding backend can serve
/// (also `degraded`: a remote backend served by its fallback); 503 before, and while the
/// backend is unavailable (a remote endpoint down with `fallback: error`).
async fn ready(state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let engine = state.engine()?;
    let info = engine.embedder().info();
    let health = engine.embedder().health().await;
    if let Health::Unavailable(reason) = &health {
        return Err(ApiError::embedding_unavailable(format!(
            "embedding backend `{}` ({}) is unavailable: {reason}",
            info.backend, info.model_id
        )));
    }
    Ok(HttpResponse::Ok().json(json!({
        "status": "ready",
        "embedding": {"backend": info.backend, "model": info.model_id, "execution_provider": info.execution_provider, "health": health_json(&health)},
    })))
}

pub(super) fn health_json(health: &Health) -> Value {
    match health {
        Health::Ready => json!({"state": "ready"}),
        Health::Degraded(reason) => json!({"state": "degraded", "reason": reason}),
        Health::Unavailable(reason) => json!({"state": "unavailable", "reason": reason}),
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
