//! The semantic cache in the REST front end.
//!
//! [`CacheService`] is built once the engine is warm (it needs the encoder's model id and
//! dimension): it loads the configured snapshot, starts the maintenance thread and, when
//! configured, the shared tier on Redis. `/v1/route` consults it (the exact path before the
//! encoder, the semantic path with the request's one embedding), `POST /v1/cache` and the
//! response paths fill it (through [`CacheService::store_reply`], after the [`PiiScreen`]),
//! `DELETE /v1/cache` flushes it, `GET /v1/cache/stats` reports it. Store and flush are admin
//! endpoints (a bearer token, see [`super::admin`]). On shutdown the snapshot
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
use super::pii_screen::{answer_has_pii, PiiScreen};
use super::routing::{request_options, RequestHeaders};
use super::AppState;
use crate::cache::controls::BYPASS_HEADER;
use crate::cache::{
    directives, CacheConfig, CacheError, CacheHit, CacheRequest, CachedAnswer, EmbeddingSpace,
    FlushFilter, MaintenanceHandle, Reply, ScopeId, SemanticCache, SharedError, SharedTier,
    WriteSkip,
};
use crate::engine::Action;
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
    /// The PII screen could not be built from `signals.pii.detector`.
    #[error("cache PII screen: {0}")]
    Screen(#[from] crate::engine::signals::pii::PiiConfigError),
}

/// The running cache of one router process.
pub struct CacheService {
    cache: Arc<SemanticCache>,
    shared: Mutex<Option<SharedTier>>,
    _maintenance: MaintenanceHandle,
    /// The encoder's token limit: a text that reaches it was truncated.
    max_tokens: usize,
    /// What every write is screened with for personal data.
    screen: PiiScreen,
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
        let model = hit
            .answer
            .upstream_model
            .as_deref()
            .unwrap_or(requested_model);
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
    pub fn start(
        config: &CacheConfig,
        info: &BackendInfo,
        screen: PiiScreen,
    ) -> Result<Option<Self>, CacheStartError> {
        if !config.enabled {
            return Ok(None);
        }
        let space = EmbeddingSpace {
            model_id: info.model_id.clone(),
            dimension: info.dimension,
        };
        let cache = Arc::new(SemanticCache::new(config, space)?);
        cache.load_configured_snapshot();
        let maintenance = cache
            .spawn_maintenance()
            .map_err(CacheStartError::Maintenance)?;
        let shared = if config.shared.enabled {
            Some(SharedTier::start(Arc::clone(&cache))?)
        } else {
            None
        };
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
            screen,
        }))
    }

    /// The cache itself.
    pub fn cache(&self) -> &Arc<SemanticCache> {
        &self.cache
    }

    /// Reads the client's directives and the body for a lookup.
    pub(super) fn prepare(
        &self,
        headers: &RequestHeaders,
        chat: &ChatRequest,
        tenant: Option<&str>,
    ) -> Prepared {
        let wanted = directives(headers.iter());
        if !wanted.lookup {
            let bypass = headers
                .get(BYPASS_HEADER)
                .is_some_and(|v| v.eq_ignore_ascii_case("bypass"));
            return Prepared::Skipped(if bypass { "bypass" } else { "no_cache" });
        }
        match self.cache.request(&chat.body, &chat.model, tenant) {
            Ok(request) => Prepared::Ready(request),
            Err(reason) => Prepared::Skipped(reason.label()),
        }
    }

    /// The PII screen writes pass.
    pub fn screen(&self) -> &PiiScreen {
        &self.screen
    }

    /// Stores the upstream's answer to `request` when it may be stored: complete and
    /// successful, no PII in the prompt (`prompt_pii`, the caller's verdict) or in the answer.
    /// Synchronous, for the response paths: the regexes screen the answer here; when a PII
    /// model runs, its scan of the answer runs in a background task and the entry is stored
    /// once it clears (`Ok` then means accepted; a refusal is counted, not returned).
    pub fn store_reply(
        &self,
        request: &CacheRequest,
        embedding: Option<&[f32]>,
        category: Option<&str>,
        reply: Reply<'_>,
        prompt_pii: bool,
    ) -> Result<(), WriteSkip> {
        let answer = self.screened_answer(reply, prompt_pii)?;
        let Some(detector) = self.screen.model().cloned() else {
            return self.cache.insert(request, embedding, category, answer);
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Nowhere to run the model: refuse rather than store an unscreened answer.
            return Err(self.skip(WriteSkip::PiiUnchecked));
        };
        let cache = Arc::clone(&self.cache);
        let (request, embedding, category) = (
            request.clone(),
            embedding.map(<[f32]>::to_vec),
            category.map(str::to_string),
        );
        runtime.spawn(async move {
            match answer_has_pii(&detector, &answer).await {
                // A refused insert (too large, bad embedding) counts its own skip.
                Ok(false) => {
                    drop(cache.insert(&request, embedding.as_deref(), category.as_deref(), answer))
                }
                Ok(true) => cache.count_skip(&WriteSkip::Pii),
                Err(_) => cache.count_skip(&WriteSkip::PiiUnchecked),
            }
        });
        Ok(())
    }

    /// [`CacheService::store_reply`] awaiting the model's scan, so that the outcome is known
    /// (for `POST /v1/cache`, which reports it).
    async fn store_reply_screened(
        &self,
        request: &CacheRequest,
        embedding: Option<&[f32]>,
        category: Option<&str>,
        reply: Reply<'_>,
        prompt_pii: bool,
    ) -> Result<(), WriteSkip> {
        let answer = self.screened_answer(reply, prompt_pii)?;
        if let Some(detector) = self.screen.model() {
            match answer_has_pii(detector, &answer).await {
                Ok(false) => {}
                Ok(true) => return Err(self.skip(WriteSkip::Pii)),
                Err(_) => return Err(self.skip(WriteSkip::PiiUnchecked)),
            }
        }
        self.cache.insert(request, embedding, category, answer)
    }

    /// The answer when it is complete and neither the prompt nor the regexes over the answer
    /// found PII.
    fn screened_answer(
        &self,
        reply: Reply<'_>,
        prompt_pii: bool,
    ) -> Result<CachedAnswer, WriteSkip> {
        let answer = self.cache.answer_of(reply, prompt_pii)?;
        if self.screen.answer_has_patterns(&answer) {
            return Err(self.skip(WriteSkip::Pii));
        }
        Ok(answer)
    }

    fn skip(&self, skip: WriteSkip) -> WriteSkip {
        self.cache.count_skip(&skip);
        skip
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
        .service(
            web::resource("/v1/cache/stats")
                .route(web::get().to(stats))
                .default_service(web::to(super::http::method_not_allowed)),
        );
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
async fn store(
    request: HttpRequest,
    payload: Payload,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.admin.check(&request)?;
    let bytes = read_json(&request, payload, state.max_body_bytes).await?;
    let body: StoreBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid_param("body", format!("invalid cache entry: {e}")))?;
    let service = service(&state)?;
    let engine = state.engine()?;
    let request_bytes =
        serde_json::to_vec(&body.request).map_err(|e| ApiError::internal(e.to_string()))?;
    let chat = crate::openai::parse_chat_request(&request_bytes).map_err(|mut e| {
        e.param = Some(format!(
            "request.{}",
            e.param.as_deref().unwrap_or("messages")
        ));
        ApiError::invalid(e)
    })?;
    let reply = match (&body.response, &body.response_sse) {
        (Some(json), None) => Reply::Json {
            status: body.status,
            body: json,
        },
        (None, Some(sse)) => Reply::Sse {
            status: body.status,
            body: sse.as_bytes(),
        },
        _ => {
            return Err(ApiError::invalid_param(
                "response",
                "give exactly one of `response` and `response_sse`",
            ))
        }
    };
    let headers = RequestHeaders::from_actix(request.headers());
    let options = request_options(&headers, None, &state.tenant_header)?;
    let cache = service.cache();
    let mut cache_request = match cache.request(&chat.body, &chat.model, options.tenant.as_deref())
    {
        Ok(r) => r,
        Err(reason) => return Ok(skipped(service.skip(WriteSkip::NotCacheable(reason)))),
    };
    // The same analysis and decision a `/v1/route` of this request gets: its embedding,
    // category and PII scan go with the entry, and a request the engine blocks is never
    // stored (the exact path answers before the engine runs, so its answer would bypass the
    // block). Requests that name a model pass through undecided and are looked up by the
    // exact path only, so they are stored without an embedding.
    let (embedding, category, prompt_pii) = if engine.auto_models().contains(&chat.model) {
        let analysis = engine.analyse(&chat, &options).await?;
        service.note_tokens(&mut cache_request, analysis.embedding.tokens);
        let decision = engine.decide_with(&chat, &analysis, &options).await?;
        if decision.action == Action::Block {
            return Ok(skipped(service.skip(WriteSkip::Blocked)));
        }
        let pii = match &analysis.pii {
            Some(scan) => scan.found(),
            None => service.screen().prompt_has_patterns(&chat.messages),
        };
        if analysis.degraded {
            // The embedding backend is unavailable: no vector, so the entry is stored for the
            // exact path only (as a lookup of this request would use now).
            (None, None, pii)
        } else {
            (
                Some(analysis.embedding.values),
                Some(analysis.signals.domain.top().0.name()),
                pii,
            )
        }
    } else {
        (
            None,
            None,
            service.screen().prompt_has_patterns(&chat.messages),
        )
    };
    let result = service
        .store_reply_screened(
            &cache_request,
            embedding.as_deref(),
            category,
            reply,
            prompt_pii,
        )
        .await;
    Ok(HttpResponse::Ok().json(StoreReply {
        stored: result.is_ok(),
        reason: result.err().map(|skip| skip.label()),
    }))
}

fn skipped(skip: WriteSkip) -> HttpResponse {
    HttpResponse::Ok().json(StoreReply {
        stored: false,
        reason: Some(skip.label()),
    })
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
    state.admin.check(&request)?;
    let query = Query::<FlushQuery>::from_query(request.query_string())
        .map_err(|e| ApiError::invalid_param("query", e.to_string()))?;
    let service = service(&state)?;
    let scope = match query.scope.as_deref() {
        Some(hex) => Some(
            ScopeId::from_hex(hex)
                .ok_or_else(|| ApiError::invalid_param("scope", "scope must be 32 hex digits"))?,
        ),
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

/// `GET /v1/cache/stats`: open, like `/metrics` (counts only, nothing a client sent).
async fn stats(state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let service = service(&state)?;
    Ok(HttpResponse::Ok().json(service.cache().stats()))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use async_trait::async_trait;
    use semrouter_embedder::{BackendError, StageTiming, TokenClassifier, TokenPredictions};
    use serde_json::json;

    use super::*;
    use crate::engine::signals::pii::{PiiDetector, PiiSettings};

    /// A token classifier that labels the word `Anna` a given name.
    struct Names {
        labels: Vec<String>,
        info: BackendInfo,
    }

    #[async_trait]
    impl TokenClassifier for Names {
        async fn classify_tokens(
            &self,
            texts: Vec<String>,
        ) -> Result<Vec<TokenPredictions>, BackendError> {
            Ok(texts
                .iter()
                .map(|text| {
                    let (mut offsets, mut probabilities, mut at) = (Vec::new(), Vec::new(), 0);
                    for word in text.split(' ') {
                        offsets.push((at, at + word.len()));
                        probabilities.extend(if word.starts_with("Anna") {
                            [0.05, 0.95]
                        } else {
                            [0.95, 0.05]
                        });
                        at += word.len() + 1;
                    }
                    TokenPredictions {
                        offsets,
                        probabilities,
                        labels: 2,
                        tokens: at,
                        timing: StageTiming::default(),
                    }
                })
                .collect())
        }

        fn labels(&self) -> &[String] {
            &self.labels
        }

        fn info(&self) -> &BackendInfo {
            &self.info
        }
    }

    fn info(dimension: usize) -> BackendInfo {
        BackendInfo {
            backend: "test".into(),
            model_id: "test-model".into(),
            dimension,
            max_tokens: 256,
            execution_provider: "cpu".into(),
            requested_provider: "cpu".into(),
        }
    }

    fn service_with_model() -> CacheService {
        let model: Arc<dyn TokenClassifier> = Arc::new(Names {
            labels: vec!["O".into(), "B-GIVEN_NAME".into()],
            info: info(2),
        });
        let detector = Arc::new(PiiDetector::new(Some(model), PiiSettings::default()).unwrap());
        let screen = PiiScreen::new(Some(detector), &PiiSettings::default()).unwrap();
        let config = CacheConfig {
            enabled: true,
            ..CacheConfig::default()
        };
        CacheService::start(&config, &info(4), screen)
            .unwrap()
            .unwrap()
    }

    fn request(service: &CacheService, text: &str) -> CacheRequest {
        let body = json!({"model": "auto", "messages": [{"role": "user", "content": text}]});
        service
            .cache()
            .request(body.as_object().unwrap(), "auto", None)
            .unwrap()
    }

    fn completion(content: &str) -> Value {
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
    }

    #[tokio::test]
    async fn the_response_path_stores_only_answers_the_model_clears() {
        let service = service_with_model();
        let (named, clean) = (
            request(&service, "Who answers?"),
            request(&service, "Where do I ask?"),
        );
        let body = completion("Anna answers questions.");
        assert_eq!(
            service.store_reply(
                &named,
                None,
                None,
                Reply::Json {
                    status: 200,
                    body: &body
                },
                false
            ),
            Ok(())
        );
        let body = completion("Ask at the front desk.");
        assert_eq!(
            service.store_reply(
                &clean,
                None,
                None,
                Reply::Json {
                    status: 200,
                    body: &body
                },
                false
            ),
            Ok(())
        );
        // The regexes still answer synchronously.
        let body = completion("Mail desk@example.com.");
        assert_eq!(
            service.store_reply(
                &clean,
                None,
                None,
                Reply::Json {
                    status: 200,
                    body: &body
                },
                false
            ),
            Err(WriteSkip::Pii)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while service.cache().stats().counters.write_skips.get("pii") != Some(&2)
            || service.cache().lookup_exact(&clean).is_none()
        {
            assert!(Instant::now() < deadline, "{:?}", service.cache().stats());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            service.cache().lookup_exact(&named).is_none(),
            "the model found a name in the answer"
        );
        assert_eq!(service.cache().stats().entries, 1);

        // POST /v1/cache's path waits for the verdict.
        let body = completion("Anna will call you.");
        let other = request(&service, "Who calls me?");
        assert_eq!(
            service
                .store_reply_screened(
                    &other,
                    None,
                    None,
                    Reply::Json {
                        status: 200,
                        body: &body
                    },
                    false
                )
                .await,
            Err(WriteSkip::Pii)
        );
    }

    #[test]
    fn without_a_runtime_the_model_cannot_screen_so_nothing_is_stored() {
        let service = service_with_model();
        let req = request(&service, "Where do I ask?");
        let body = completion("Ask at the front desk.");
        assert_eq!(
            service.store_reply(
                &req,
                None,
                None,
                Reply::Json {
                    status: 200,
                    body: &body
                },
                false
            ),
            Err(WriteSkip::PiiUnchecked)
        );
        assert!(service.cache().lookup_exact(&req).is_none());
    }
}
