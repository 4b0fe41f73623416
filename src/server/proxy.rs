//! `POST /v1/chat/completions`: the OpenAI-compatible proxy.
//!
//! One request runs the shared route flow ([`route_chat`]); a cache hit is answered at once
//! (JSON, or SSE for `stream: true`), a blocked prompt gets 403, anything else goes to the
//! chosen model's upstream with the rewritten body. A connect error or a 5xx before the first
//! byte moves to the next-ranked candidate (at most `proxy.max_retries` times), its body
//! rewritten for that model. An SSE answer is passed through chunk by chunk while it is
//! observed; once complete it feeds the cache write path and the model's latency and token
//! figures. After the first byte an upstream failure ends the client's stream in error, as
//! it happened; a client that goes away drops the stream, which cancels the upstream call.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, Data, Payload};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tracing::Instrument;

use super::body::read_json;
use super::cache::CacheService;
use super::error::ApiError;
use super::routing::{
    decision_headers, observe_answer, request_options, route_chat, PendingWrite, RequestHeaders,
    Routed,
};
use super::upstream::describe;
use super::AppState;
use crate::cache::{CacheHit, CacheRequest, Reply};
use crate::config::DecisionHeader;
use crate::engine::stats::InFlight;
use crate::engine::{Action, Decision, Router};
use crate::openai;
use crate::telemetry;

/// The largest answer the proxy keeps for the cache and for a non-streamed reply; a longer
/// SSE answer still streams through, it is just not cached.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Registers `/v1/chat/completions`.
pub(super) fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::resource("/v1/chat/completions")
            .route(web::post().to(chat_completions))
            .default_service(web::to(super::http::method_not_allowed)),
    );
}

/// `POST /v1/chat/completions`: decide, then answer from the cache or the chosen upstream.
async fn chat_completions(
    request: HttpRequest,
    payload: Payload,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let span = telemetry::request_span("/v1/chat/completions", header_pairs(request.headers()));
    proxy_chat(request, payload, state).instrument(span).await
}

/// `(name, value)` pairs of the headers whose values are text.
pub(super) fn header_pairs(
    headers: &actix_web::http::header::HeaderMap,
) -> impl Iterator<Item = (&str, &str)> {
    headers
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v)))
}

async fn proxy_chat(
    request: HttpRequest,
    payload: Payload,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let received = Instant::now();
    let bytes = read_json(&request, payload, state.max_body_bytes).await?;
    // Taken once the body is in (a slow client holds no slot; reading an unread body is what
    // keeps the connection usable for the 429) and held until the reply's head is ready: a
    // streamed answer's body then flows on without a slot.
    let _admitted = state.admission.admit("proxy")?;
    let chat = openai::parse_chat_request(&bytes)?;
    let engine = state.engine()?;
    let headers = RequestHeaders::from_actix(request.headers());
    let options = request_options(&headers, None, &state.tenant_header)?;
    match route_chat(&state, &engine, &chat, &headers, &options, "proxy").await? {
        Routed::Cached {
            hit,
            request: cache_request,
            ..
        } => Ok(cached_answer(
            &hit,
            &cache_request,
            &chat.model,
            &state.decision_headers,
        )),
        Routed::Decided {
            decision,
            cache,
            write,
        } => {
            let cache_label = cache.as_ref().map(|_| "miss");
            if decision.action == Action::Block {
                let mut response = ApiError::blocked(decision.reason.clone()).error_response();
                add_headers(
                    response.headers_mut(),
                    decision_headers(&decision, cache_label, &state.decision_headers),
                );
                return Ok(response);
            }
            forward(&state, &engine, &decision, cache_label, write, received).await
        }
    }
}

/// A cache hit, replayed in the form the client asked for.
fn cached_answer(
    hit: &CacheHit,
    request: &CacheRequest,
    requested_model: &str,
    emitted: &[DecisionHeader],
) -> HttpResponse {
    let model = hit
        .answer
        .upstream_model
        .as_deref()
        .unwrap_or(requested_model);
    tracing::debug!(
        kind = hit.kind.label(),
        similarity = hit.similarity,
        "proxy answered from the cache"
    );
    let mut reply = HttpResponse::Ok();
    if emitted.contains(&DecisionHeader::Cache) {
        reply.insert_header((DecisionHeader::Cache.name(), "hit"));
    }
    if request.stream {
        reply
            .content_type("text/event-stream")
            .insert_header((CACHE_CONTROL, "no-cache"))
            .body(hit.answer.to_sse(model, request.include_usage))
    } else {
        reply.json(hit.answer.to_completion(model))
    }
}

fn add_headers(
    headers: &mut actix_web::http::header::HeaderMap,
    pairs: Vec<(&'static str, String)>,
) {
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(
                actix_web::http::header::HeaderName::from_static(name),
                value,
            );
        }
    }
}

/// Sends the decision to its model's upstream, and down the ranked candidates while an
/// attempt fails before its first byte.
async fn forward(
    state: &AppState,
    engine: &Arc<Router>,
    decision: &Decision,
    cache_label: Option<&'static str>,
    write: Option<PendingWrite>,
    received: Instant,
) -> Result<HttpResponse, ApiError> {
    // One snapshot for the whole request, so that a reload mid-request does not mix them.
    let upstreams = state.upstreams.load_full();
    let config = upstreams.config();
    let deadline = received + Duration::from_millis(config.total_timeout_ms);
    let chosen = decision
        .model
        .as_deref()
        .ok_or_else(|| ApiError::internal("a routed decision without a model"))?;
    let mut order = vec![chosen];
    order.extend(
        decision
            .candidates
            .iter()
            .map(|c| c.model.as_str())
            .filter(|m| *m != chosen),
    );
    order.truncate(1 + config.max_retries);

    let mut failure: Option<ApiError> = None;
    for (attempt, model) in order.iter().enumerate() {
        let last = attempt + 1 == order.len();
        let current = if attempt == 0 {
            Cow::Borrowed(decision)
        } else {
            match engine.retarget(decision, model) {
                Some(retargeted) => Cow::Owned(retargeted),
                None => continue,
            }
        };
        let body = current
            .request
            .as_ref()
            .ok_or_else(|| ApiError::internal("a routed decision without a body"))?;
        let body = serde_json::to_vec(body).map_err(|e| {
            ApiError::internal(format!("the rewritten body could not be written: {e}"))
        })?;
        let in_flight = engine.stats().start(model);
        let sent = Instant::now();
        // Until the response head: a streamed answer goes on after the span ends.
        let span = tracing::debug_span!(
            "upstream",
            model,
            attempt,
            http.status = tracing::field::Empty
        );
        let result = upstreams
            .send(model, body, deadline)
            .instrument(span.clone())
            .await;
        if let Ok(response) = &result {
            span.record("http.status", response.status().as_u16());
        }
        match result {
            Ok(response) if response.status().is_server_error() && !last => {
                count_attempt(model, status_class(response.status()));
                tracing::warn!(
                    model,
                    status = response.status().as_u16(),
                    "upstream failed before its first byte; trying the next candidate"
                );
                failure = None;
            }
            Ok(response) => {
                count_attempt(model, status_class(response.status()));
                let answer = Answer {
                    engine: Arc::clone(engine),
                    model: model.to_string(),
                    write,
                    cache: state.cache.load_full(),
                    _in_flight: in_flight,
                    sent,
                };
                return relay(state, &current, cache_label, response, answer, deadline).await;
            }
            Err(error) => {
                count_attempt(model, error.label());
                if !error.retryable() || last {
                    return Err(error.into());
                }
                tracing::warn!(model, %error, "upstream failed before its first byte; trying the next candidate");
                failure = Some(error.into());
            }
        }
    }
    Err(failure.unwrap_or_else(|| ApiError::upstream_unavailable("no candidate upstream answered")))
}

fn status_class(status: reqwest::StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

fn count_attempt(model: &str, outcome: &'static str) {
    metrics::counter!("semrouter_proxy_upstream_attempts_total", "model" => model.to_string(), "outcome" => outcome).increment(1);
}

/// What the response path needs once an upstream answers.
struct Answer {
    engine: Arc<Router>,
    model: String,
    write: Option<PendingWrite>,
    cache: Option<Arc<CacheService>>,
    /// Counts the request in the model's load until the answer is complete or abandoned.
    _in_flight: InFlight,
    sent: Instant,
}

impl Answer {
    /// A complete successful answer: the latency EWMA, token counters, and the cache write.
    fn complete(&self, usage: Option<&Value>, reply: Reply<'_>) {
        observe_answer(&self.engine, &self.model, self.sent.elapsed(), usage);
        if let (Some(write), Some(cache)) = (&self.write, &self.cache) {
            if let Err(skip) = write.complete(cache, reply) {
                tracing::debug!(reason = skip.label(), "answer not cached");
            }
        }
    }
}

/// Passes the upstream's response to the client: SSE streamed through, anything else read
/// whole (bounded) and sent on. The decision headers say which model answered.
async fn relay(
    state: &AppState,
    decision: &Decision,
    cache_label: Option<&'static str>,
    response: reqwest::Response,
    answer: Answer,
    deadline: Instant,
) -> Result<HttpResponse, ApiError> {
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .cloned();
    let sse = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let mut reply = HttpResponse::build(status);
    if let Some(value) = content_type
        .as_ref()
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
    {
        reply.insert_header((CONTENT_TYPE, value));
    }
    for (name, value) in decision_headers(decision, cache_label, &state.decision_headers) {
        reply.insert_header((name, value));
    }
    let idle = Duration::from_millis(state.upstreams.load().config().idle_timeout_ms);
    if sse && status.is_success() {
        reply.insert_header((CACHE_CONTROL, "no-cache"));
        return Ok(reply.streaming(ObservedStream::new(response, answer, idle, deadline)));
    }
    let body = read_whole(response, &answer.model, idle, deadline).await?;
    if status.is_success() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(json) => answer.complete(
                json.get("usage"),
                Reply::Json {
                    status: status.as_u16(),
                    body: &json,
                },
            ),
            Err(_) => tracing::warn!(
                model = answer.model,
                "the upstream's answer is not JSON; passed on unobserved"
            ),
        }
    }
    Ok(reply.body(body))
}

/// A non-streamed body, each read bounded by the idle timeout and all of it by the deadline.
async fn read_whole(
    mut response: reqwest::Response,
    model: &str,
    idle: Duration,
    deadline: Instant,
) -> Result<Bytes, ApiError> {
    let mut body = Vec::new();
    loop {
        let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, response.chunk()).await {
            Err(_) => {
                return Err(ApiError::upstream_timeout(format!(
                    "the upstream of `{model}` stopped sending its answer for {} ms",
                    wait.as_millis()
                )))
            }
            Ok(Err(error)) => {
                return Err(ApiError::upstream_unavailable(format!(
                    "the upstream of `{model}` failed while answering: {}",
                    describe(error)
                )))
            }
            Ok(Ok(None)) => return Ok(Bytes::from(body)),
            Ok(Ok(Some(chunk))) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(ApiError::upstream_unavailable(format!("the upstream of `{model}` answered with more than {MAX_ANSWER_BYTES} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
}

/// Why a streamed answer ended in error after its first byte (the client sees the stream
/// break; the log and `semrouter_proxy_stream_errors_total` say why).
#[derive(Debug, thiserror::Error)]
enum StreamError {
    /// The upstream's connection failed mid-answer.
    #[error("the upstream of `{model}` failed mid-answer: {detail}")]
    Upstream {
        /// The model.
        model: String,
        /// What the client reported.
        detail: String,
    },
    /// Silence longer than `proxy.idle_timeout_ms`, or the total budget spent.
    #[error("the upstream of `{model}` sent nothing for too long (proxy.idle_timeout_ms / proxy.total_timeout_ms)")]
    Timeout {
        /// The model.
        model: String,
    },
}

impl StreamError {
    fn label(&self) -> &'static str {
        match self {
            StreamError::Upstream { .. } => "upstream",
            StreamError::Timeout { .. } => "timeout",
        }
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// An upstream SSE body passed through chunk by chunk. It keeps a copy only when the answer
/// may be cached, and picks `usage` out of the events as they pass. Dropped before its end
/// (the client went away), it drops the upstream response, which closes that connection.
struct ObservedStream {
    inner: ByteStream,
    timer: Pin<Box<tokio::time::Sleep>>,
    idle: Duration,
    deadline: tokio::time::Instant,
    usage: UsageScan,
    copy: Option<Vec<u8>>,
    /// `None` once the stream has ended, one way or the other.
    answer: Option<Answer>,
}

impl ObservedStream {
    fn new(response: reqwest::Response, answer: Answer, idle: Duration, deadline: Instant) -> Self {
        let deadline = tokio::time::Instant::from_std(deadline);
        let first = (tokio::time::Instant::now() + idle).min(deadline);
        Self {
            inner: Box::pin(response.bytes_stream()),
            timer: Box::pin(tokio::time::sleep_until(first)),
            idle,
            deadline,
            usage: UsageScan::default(),
            copy: answer.write.is_some().then(Vec::new),
            answer: Some(answer),
        }
    }

    fn fail(&mut self, error: StreamError) -> Poll<Option<Result<Bytes, StreamError>>> {
        if let Some(answer) = self.answer.take() {
            metrics::counter!("semrouter_proxy_stream_errors_total", "model" => answer.model.clone(), "reason" => error.label()).increment(1);
        }
        tracing::warn!(%error, "streamed answer ended in error");
        Poll::Ready(Some(Err(error)))
    }
}

impl Stream for ObservedStream {
    type Item = Result<Bytes, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.answer.is_none() {
            return Poll::Ready(None);
        }
        let model = |this: &Self| {
            this.answer
                .as_ref()
                .map(|a| a.model.clone())
                .unwrap_or_default()
        };
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.usage.push(&chunk);
                if let Some(copy) = &mut this.copy {
                    if copy.len() + chunk.len() > MAX_ANSWER_BYTES {
                        this.copy = None;
                    } else {
                        copy.extend_from_slice(&chunk);
                    }
                }
                let next = (tokio::time::Instant::now() + this.idle).min(this.deadline);
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => this.fail(StreamError::Upstream {
                model: model(this),
                detail: describe(error),
            }),
            Poll::Ready(None) => {
                if let Some(answer) = this.answer.take() {
                    let usage = this.usage.finish();
                    let copy = this.copy.take().unwrap_or_default();
                    answer.complete(
                        usage.as_ref(),
                        Reply::Sse {
                            status: 200,
                            body: &copy,
                        },
                    );
                }
                Poll::Ready(None)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => this.fail(StreamError::Timeout { model: model(this) }),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl Drop for ObservedStream {
    fn drop(&mut self) {
        if let Some(answer) = self.answer.take() {
            metrics::counter!("semrouter_proxy_cancelled_total", "model" => answer.model.clone())
                .increment(1);
            tracing::debug!(
                model = answer.model,
                "client went away mid-answer; upstream call cancelled"
            );
        }
    }
}

/// Picks the last `usage` object out of SSE events as they pass, parsing only the lines that
/// carry one.
#[derive(Default)]
struct UsageScan {
    partial: Vec<u8>,
    usage: Option<Value>,
}

impl UsageScan {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(&bytes[..end]);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&bytes[..end]);
                self.line(&line);
            }
            bytes = &bytes[end + 1..];
        }
        if self.partial.len() + bytes.len() <= MAX_ANSWER_BYTES {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if !data.windows(7).any(|w| w == b"\"usage\"") {
            return;
        }
        if let Ok(event) = serde_json::from_slice::<Value>(data.trim_ascii()) {
            if let Some(usage) = event.get("usage").filter(|u| u.is_object()) {
                self.usage = Some(usage.clone());
            }
        }
    }

    fn finish(&mut self) -> Option<Value> {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.line(&rest);
        }
        self.usage.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_found_across_chunk_boundaries() {
        let mut scan = UsageScan::default();
        let events = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
        for piece in events.as_bytes().chunks(7) {
            scan.push(piece);
        }
        assert_eq!(
            scan.finish(),
            Some(serde_json::json!({"prompt_tokens": 3, "completion_tokens": 2}))
        );
        let mut none = UsageScan::default();
        none.push(b"data: {\"choices\":[]}\n\n");
        assert_eq!(none.finish(), None);
    }
}
