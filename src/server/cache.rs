//! The semantic cache in the REST front end.
//!
//! [`CacheService`] is built once the engine is warm (it needs the encoder's model id and
//! dimension): it loads the configured snapshot, starts the maintenance thread and, when
//! configured, the shared tier on Redis. `/v1/route` consults it (the exact path before the
//! encoder, the semantic path with the request's one embedding), `POST /v1/cache` fills it,
//! `DELETE /v1/cache` flushes it, `GET /v1/cache/stats` reports it. On shutdown the snapshot
//! is written.

use std::sync::Arc;

use actix_web::web::{self, Data, Payload, Query};
use actix_web::{HttpRequest, HttpResponse};
use parking_lot::Mutex;
use semrouter_embedder::BackendInfo;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::body::read_json;
use super::error::ApiError;
use super::routing::RequestHeaders;
use super::AppState;
use crate::cache::controls::BYPASS_HEADER;
use crate::cache::{
    directives, CacheConfig, CacheError, CacheHit, CacheRequest, EmbeddingSpace, FlushFilter, MaintenanceHandle, Reply, ScopeId, SemanticCache,
    SharedError, SharedTier, WriteSkip,
};
use crate::openai::ChatRequest;

/// Why the cache could not start (the router then refuses to start: a configured cache that
/// silently does nothing would surprise).
#[derive(Debug, thiserror::Error)]
pub enum CacheStartError {
    /// The cache rejected its configuration or the encoder's dimension.
    #[error("cache: {0}")]
    Cache(#[from] CacheError),
    /// The maintenance thread could not be spawned.
    #[error("cache maintenance thread: {0}")]
    Maintenance(std::io::Error),
    /// The shared tier could not be attached.
    #[error("cache shared tier: {0}")]
    Shared(#[from] SharedError),
}

/// The running cache of one router process.
pub struct CacheService {
    cache: Arc<SemanticCache>,
    shared: Mutex<Option<SharedTier>>,
    _maintenance: MaintenanceHandle,
    /// The encoder's token limit: a text that reaches it was truncated.
    max_tokens: usize,
}

/// What the cache can do for one `/v1/route` request.
pub(super) enum Prepared {
    /// Look it up.
    Ready(CacheRequest),
    /// Not looked up, for this reason (`no_cache`, `bypass`, or a [`crate::cache::NotCacheable`] label).
    Skipped(&'static str),
}

/// The `cache` object of a `/v1/route` reply.
#[derive(Debug, Serialize)]
pub(super) struct CacheReport {
    /// Whether the answer came from the cache.
    pub hit: bool,
    /// `exact` or `semantic` on a hit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Cosine similarity of the match (1 for exact hits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// The cached answer: a `chat.completion`, or for a streaming request the SSE body as a
    /// string (ending in `data: [DONE]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// Why the cache was not consulted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
}

impl CacheReport {
    /// A miss.
    pub fn miss() -> Self {
        Self {
            hit: false,
            kind: None,
            similarity: None,
            response: None,
            skipped: None,
        }
    }

    /// Not consulted.
    pub fn skipped(reason: &'static str) -> Self {
        Self {
            skipped: Some(reason),
            ..Self::miss()
        }
    }

    /// A hit, replayed in the form the request asked for.
    pub fn hit(hit: &CacheHit, request: &CacheRequest, requested_model: &str) -> Self {
        let model = hit.answer.upstream_model.as_deref().unwrap_or(requested_model);
        let response = if request.stream {
            Value::String(hit.answer.to_sse(model, request.include_usage))
        } else {
            hit.answer.to_completion(model)
        };
        Self {
            hit: true,
            kind: Some(hit.kind.label()),
            similarity: Some(hit.similarity),
            response: Some(response),
            skipped: None,
        }
    }
}

impl CacheService {
    /// Builds the cache for the encoder described by `info`, or `None` when `cache.enabled`
    /// is off. Must run inside a tokio runtime when the shared tier is on.
    pub fn start(config: &CacheConfig, info: &BackendInfo) -> Result<Option<Self>, CacheStartError> {
        if !config.enabled {
            return Ok(None);
        }
        let space = EmbeddingSpace {
            model_id: info.model_id.clone(),
            dimension: info.dimension,
        };
        let cache = Arc::new(SemanticCache::new(config, space)?);
        cache.load_configured_snapshot();
        let maintenance = cache.spawn_maintenance().map_err(CacheStartError::Maintenance)?;
        let shared = if config.shared.enabled { Some(SharedTier::start(Arc::clone(&cache))?) } else { None };
        tracing::info!(
            max_entries = config.max_entries,
            max_bytes = config.max_bytes,
            shared = config.shared.enabled,
            entries = cache.stats().entries,
            "semantic cache ready"
        );
        Ok(Some(Self {
            cache,
            shared: Mutex::new(shared),
            _maintenance: maintenance,
            max_tokens: info.max_tokens,
        }))
    }

    /// The cache itself.
    pub fn cache(&self) -> &Arc<SemanticCache> {
        &self.cache
    }

    /// Reads the client's directives and the body for a lookup.
    pub(super) fn prepare(&self, headers: &RequestHeaders, chat: &ChatRequest, tenant: Option<&str>) -> Prepared {
        let wanted = directives(headers.iter());
        if !wanted.lookup {
            let bypass = headers.get(BYPASS_HEADER).is_some_and(|v| v.eq_ignore_ascii_case("bypass"));
            return Prepared::Skipped(if bypass { "bypass" } else { "no_cache" });
        }
        match self.cache.request(&chat.body, &chat.model, tenant) {
            Ok(request) => Prepared::Ready(request),
            Err(reason) => Prepared::Skipped(reason.label()),
        }
    }

    /// Marks `request` truncated when the encoder saw `tokens`, the most it takes.
    pub(super) fn note_tokens(&self, request: &mut CacheRequest, tokens: usize) {
        request.embedding_truncated = tokens >= self.max_tokens;
    }

    /// Writes the snapshot (when configured) and stops the shared tier.
    pub fn shutdown(&self) {
        self.cache.save_configured_snapshot();
        if let Some(shared) = self.shared.lock().take() {
            shared.stop();
        }
    }
}

/// Registers `/v1/cache` and `/v1/cache/stats`.
pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/v1/cache")
                .route(web::post().to(store))
                .route(web::delete().to(flush))
                .default_service(web::to(super::http::method_not_allowed)),
        )
        .service(web::resource("/v1/cache/stats").route(web::get().to(stats)).default_service(web::to(super::http::method_not_allowed)));
}

fn service(state: &AppState) -> Result<Arc<CacheService>, ApiError> {
    // The cache starts with the engine: 503 while loading, 404 when it is not configured.
    let engine_ready = state.engine.load().is_some();
    match state.cache.load_full() {
        Some(service) => Ok(service),
        None if !engine_ready => Err(ApiError::not_ready()),
        None => Err(ApiError::cache_disabled()),
    }
}

/// Body of `POST /v1/cache`: a chat request and the upstream's reply to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreBody {
    /// The chat-completions request as the client sent it (its `model` is the scope's model).
    request: Map<String, Value>,
    /// The upstream's `chat.completion` reply.
    #[serde(default)]
    response: Option<Value>,
    /// Or the upstream's whole SSE body, for a streamed reply.
    #[serde(default)]
    response_sse: Option<String>,
    /// The upstream's HTTP status (default 200).
    #[serde(default = "ok_status")]
    status: u16,
}

fn ok_status() -> u16 {
    200
}

#[derive(Serialize)]
struct StoreReply {
    stored: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// `POST /v1/cache`: stores a request/answer pair (for gateways that fill the cache
/// themselves). Only complete, successful answers without personal data are stored; the
/// reply says whether it was, and why not.
async fn store(request: HttpRequest, payload: Payload, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let bytes = read_json(&request, payload, state.max_body_bytes).await?;
    let body: StoreBody = serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid_param("body", format!("invalid cache entry: {e}")))?;
    let service = service(&state)?;
    let engine = state.engine()?;
    let request_bytes = serde_json::to_vec(&body.request).map_err(|e| ApiError::internal(e.to_string()))?;
    let chat = crate::openai::parse_chat_request(&request_bytes).map_err(|mut e| {
        e.param = Some(format!("request.{}", e.param.as_deref().unwrap_or("messages")));
        ApiError::invalid(e)
    })?;
    let reply = match (&body.response, &body.response_sse) {
        (Some(json), None) => Reply::Json { status: body.status, body: json },
        (None, Some(sse)) => Reply::Sse {
            status: body.status,
            body: sse.as_bytes(),
        },
        _ => return Err(ApiError::invalid_param("response", "give exactly one of `response` and `response_sse`")),
    };
    let tenant = request.headers().get(state.tenant_header.as_str()).and_then(|v| v.to_str().ok()).map(str::trim).filter(|t| !t.is_empty());
    let cache = service.cache();
    let mut cache_request = match cache.request(&chat.body, &chat.model, tenant) {
        Ok(r) => r,
        Err(reason) => {
            let skip = WriteSkip::NotCacheable(reason);
            cache.count_skip(&skip);
            return Ok(HttpResponse::Ok().json(StoreReply {
                stored: false,
                reason: Some(skip.label()),
            }));
        }
    };
    // The same embedding, category and PII scan a lookup of this request would see; requests
    // that name a model are looked up by the exact path only, so they are stored without one.
    let (embedding, category, pii) = if engine.auto_models().contains(&chat.model) {
        let analysis = engine.analyse(&chat, &Default::default()).await?;
        service.note_tokens(&mut cache_request, analysis.embedding.tokens);
        let pii = analysis.pii.as_ref().is_some_and(|p| !p.signal.types.is_empty());
        if analysis.degraded {
            // The embedding backend is unavailable: no vector, so the entry is stored for the
            // exact path only (as a lookup of this request would use now).
            (None, None, pii)
        } else {
            (Some(analysis.embedding.values), Some(analysis.signals.domain.top().0.name()), pii)
        }
    } else {
        (None, None, false)
    };
    let result = cache.store_reply(&cache_request, embedding.as_deref(), category, reply, pii);
    Ok(HttpResponse::Ok().json(StoreReply {
        stored: result.is_ok(),
        reason: result.err().map(|skip| skip.label()),
    }))
}

/// Query of `DELETE /v1/cache`: every parameter given must match; none flushes everything.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlushQuery {
    /// One exact scope (hex, as entries report it).
    scope: Option<String>,
    /// Entries for this model.
    model: Option<String>,
    /// Entries of this tenant.
    tenant: Option<String>,
}

/// `DELETE /v1/cache[?scope=&model=&tenant=]`: flushes matching entries, here and (through
/// the shared tier) on every replica.
async fn flush(request: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let query = Query::<FlushQuery>::from_query(request.query_string()).map_err(|e| ApiError::invalid_param("query", e.to_string()))?;
    let service = service(&state)?;
    let scope = match query.scope.as_deref() {
        Some(hex) => Some(ScopeId::from_hex(hex).ok_or_else(|| ApiError::invalid_param("scope", "scope must be 32 hex digits"))?),
        None => None,
    };
    let filter = FlushFilter {
        scope,
        model: query.model.clone(),
        tenant: query.tenant.clone(),
    };
    let flushed = service.cache().flush(&filter);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "flushed": flushed })))
}

/// `GET /v1/cache/stats`.
async fn stats(state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let service = service(&state)?;
    Ok(HttpResponse::Ok().json(service.cache().stats()))
}
