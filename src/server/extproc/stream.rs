//! One ext_proc stream, that is one HTTP request through Envoy: its headers and body are
//! read, routed through the shared flow, and the answer observed on its way back. Everything
//! the request holds (buffers, the in-flight count, the pending cache write) lives in
//! [`Exchange`] and is dropped with the gRPC stream, also when the client goes away.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_request::Request, HttpBody, HttpHeaders, ProcessingRequest, ProcessingResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, Struct};
use futures_util::Stream;
use serde_json::Value;
use tonic::{Status, Streaming};

use super::handoff::{Handoff, EXCHANGE_HEADER};
use super::render;
use super::ExtProcContext;
use crate::cache::Reply;
use crate::engine::stats::InFlight;
use crate::engine::{Action, Router};
use crate::openai;
use crate::server::cache::CacheReport;
use crate::server::error::ApiError;
use crate::server::routing::{
    decision_headers, observe_answer, request_options, route_chat, PendingWrite, RequestHeaders,
    Routed,
};

/// How this request's body reaches the processor (from the filter's `protocol_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyMode {
    /// One message with the whole body, after the header reply.
    Buffered,
    /// Chunks, each answered, after the header reply (no routing on the body possible).
    Streamed,
    /// Chunks sent before the header reply (`send_body_without_waiting_for_header_response`),
    /// each answered after it.
    StreamedEarly,
    /// Chunks sent at once; the processor sends the (rewritten) body back itself.
    FullDuplex,
}

impl BodyMode {
    fn from_config(mode: i32, early: bool) -> Self {
        match BodySendMode::try_from(mode) {
            Ok(BodySendMode::Streamed) if early => Self::StreamedEarly,
            Ok(BodySendMode::Streamed) => Self::Streamed,
            Ok(BodySendMode::FullDuplexStreamed) => Self::FullDuplex,
            _ => Self::Buffered,
        }
    }

    /// Whether the header reply waits for the whole body (so the body can pick the route).
    fn defers_headers(self) -> bool {
        matches!(self, Self::StreamedEarly | Self::FullDuplex)
    }
}

/// A routed request on its way to the upstream, and what its answer is checked against.
struct Pending {
    model: String,
    write: Option<PendingWrite>,
    sent: Instant,
    /// The client asked for SSE: how the answer is read when its headers are not sent here.
    stream: bool,
    _in_flight: InFlight,
}

/// What [`Exchange::release`] sends on and keeps.
struct Release {
    model: String,
    write: Option<PendingWrite>,
    stream: bool,
}

/// Where Envoy puts this filter's `request_attributes` / `response_attributes` values.
const ATTRIBUTES_KEY: &str = "envoy.filters.http.ext_proc";
/// The attribute that carries the answer's status when its headers are skipped.
const STATUS_ATTRIBUTE: &str = "response.code";
/// The attribute that carries the answer's content type when its headers are skipped.
const CONTENT_TYPE_ATTRIBUTE: &str = "response.headers['content-type']";

/// The upstream's answer being observed.
struct Answer {
    status: u16,
    sse: bool,
    body: Vec<u8>,
    /// More arrived than `max_response_bytes`: it passes, but is neither stored nor read.
    overflow: bool,
}

/// The state of one stream.
struct Exchange {
    ctx: Arc<ExtProcContext>,
    request_mode: BodyMode,
    response_mode: BodyMode,
    headers: RequestHeaders,
    /// The request goes through the router (a chat-completions POST with a body).
    route: bool,
    /// The header reply is still owed (deferred until the body is complete).
    headers_owed: bool,
    body: Vec<u8>,
    /// Request body chunks received and not yet answered (STREAMED early mode).
    chunks_owed: usize,
    /// Set once the request has gone out routed (or, on an observer stream, claimed).
    pending: Option<Pending>,
    answer: Option<Answer>,
    /// This filter does not see the answer (`response_body_mode: NONE`): a routed request is
    /// handed off to the observe-only stream that does.
    hand_off: bool,
    /// An observe-only stream (`observability_mode`): Envoy ignores replies, so none are sent.
    observer: bool,
}

/// The replies of one stream. Each inbound message is handled inline, in the task that writes
/// the gRPC response (no task or channel of its own: a hop less per exchange); the stream ends
/// when Envoy closes its side, and its state is dropped with it, also on a reset.
pub fn replies(
    ctx: Arc<ExtProcContext>,
    inbound: Streaming<ProcessingRequest>,
) -> impl Stream<Item = Result<ProcessingResponse, Status>> + Send + 'static {
    let exchange = Exchange {
        ctx,
        request_mode: BodyMode::Buffered,
        response_mode: BodyMode::Buffered,
        headers: RequestHeaders::default(),
        route: false,
        headers_owed: false,
        body: Vec::new(),
        chunks_owed: 0,
        pending: None,
        answer: None,
        hand_off: false,
        observer: false,
    };
    futures_util::stream::unfold(
        (exchange, inbound, VecDeque::new()),
        |(mut exchange, mut inbound, mut queued)| async move {
            loop {
                if let Some(reply) = queued.pop_front() {
                    return Some((Ok(reply), (exchange, inbound, queued)));
                }
                let message = match inbound.message().await {
                    Ok(Some(message)) => message,
                    // Envoy closed the stream (the request ended, or the client went away).
                    Ok(None) => return None,
                    Err(status) => {
                        tracing::debug!(%status, "ext_proc stream ended");
                        return None;
                    }
                };
                let (kind, started) = (message_kind(&message), Instant::now());
                queued.extend(exchange.handle(message).await);
                metrics::histogram!(MESSAGE_SECONDS, "message" => kind)
                    .record(started.elapsed().as_secs_f64());
            }
        },
    )
}

/// Time semrouter spends on one ext_proc message, from its arrival to its replies (the request
/// body's includes the decision), by message: what of a request's ext_proc cost is its own.
pub const MESSAGE_SECONDS: &str = "semrouter_extproc_message_duration_seconds";

/// The `message` label of [`MESSAGE_SECONDS`].
fn message_kind(message: &ProcessingRequest) -> &'static str {
    match &message.request {
        Some(Request::RequestHeaders(_)) => "request_headers",
        Some(Request::RequestBody(_)) => "request_body",
        Some(Request::RequestTrailers(_)) => "request_trailers",
        Some(Request::ResponseHeaders(_)) => "response_headers",
        Some(Request::ResponseBody(_)) => "response_body",
        Some(Request::ResponseTrailers(_)) => "response_trailers",
        None => "none",
    }
}

/// Header names and values of an Envoy header map; values that are not UTF-8 are dropped.
fn header_pairs(map: Option<&HeaderMap>) -> Vec<(String, String)> {
    map.map(|m| {
        m.headers
            .iter()
            .filter_map(|h| {
                let value = if h.raw_value.is_empty() {
                    Some(h.value.clone())
                } else {
                    String::from_utf8(h.raw_value.clone()).ok()
                };
                value.map(|v| (h.key.to_ascii_lowercase(), v))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Whether a path is a chat-completions endpoint (any prefix, no query).
fn is_chat_path(path: &str) -> bool {
    path.split('?')
        .next()
        .is_some_and(|p| p.trim_end_matches('/').ends_with("/chat/completions"))
}

impl Exchange {
    /// The replies to one message from Envoy.
    async fn handle(&mut self, message: ProcessingRequest) -> Vec<ProcessingResponse> {
        if let Some(config) = &message.protocol_config {
            self.request_mode = BodyMode::from_config(
                config.request_body_mode,
                config.send_body_without_waiting_for_header_response,
            );
            self.response_mode = BodyMode::from_config(
                config.response_body_mode,
                config.send_body_without_waiting_for_header_response,
            );
            self.hand_off = config.response_body_mode == BodySendMode::None as i32;
        }
        if message.observability_mode {
            self.observer = true;
            self.observe(message.request);
            return Vec::new();
        }
        match message.request {
            Some(Request::RequestHeaders(headers)) => self.request_headers(headers),
            Some(Request::RequestBody(body)) => self.request_body(body).await,
            Some(Request::RequestTrailers(_)) => {
                let mut replies = if self.route && self.pending.is_none() && self.headers_owed {
                    // The body ended with trailers rather than an end-of-stream chunk.
                    self.decide().await
                } else {
                    Vec::new()
                };
                replies.push(render::request_trailers());
                replies
            }
            Some(Request::ResponseHeaders(headers)) => self.response_headers(&headers),
            Some(Request::ResponseBody(body)) => {
                self.answer_from_attributes(&message.attributes);
                self.response_body(body)
            }
            Some(Request::ResponseTrailers(_)) => {
                self.finish();
                vec![render::response_trailers()]
            }
            None => Vec::new(),
        }
    }

    /// One message of an observe-only stream: the request headers name the hand-off to
    /// claim; the answer is then read as on a routing stream, its replies dropped.
    fn observe(&mut self, request: Option<Request>) {
        match request {
            Some(Request::RequestHeaders(headers)) => {
                let pairs = header_pairs(headers.headers.as_ref());
                let id = pairs
                    .iter()
                    .find(|(n, _)| n == EXCHANGE_HEADER)
                    .map(|(_, v)| v.as_str());
                let (Some(handoff), Some(engine)) = (
                    id.and_then(|id| self.ctx.handoffs.take(id)),
                    self.ctx.state.engine.load_full(),
                ) else {
                    return;
                };
                self.pending = Some(Pending {
                    _in_flight: engine.stats().start(&handoff.model),
                    model: handoff.model,
                    write: handoff.write,
                    sent: handoff.sent,
                    stream: handoff.stream,
                });
            }
            Some(Request::ResponseHeaders(headers)) => {
                self.response_headers(&headers);
            }
            Some(Request::ResponseBody(body)) => {
                self.response_body(body);
            }
            Some(Request::ResponseTrailers(_)) => self.finish(),
            Some(Request::RequestBody(_) | Request::RequestTrailers(_)) | None => {}
        }
    }

    fn request_headers(&mut self, message: HttpHeaders) -> Vec<ProcessingResponse> {
        let pairs = header_pairs(message.headers.as_ref());
        self.headers =
            RequestHeaders::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let post = self
            .headers
            .get(":method")
            .is_some_and(|m| m.eq_ignore_ascii_case("POST"));
        let chat = self.headers.get(":path").is_some_and(is_chat_path);
        self.route = post && chat && !message.end_of_stream;
        if self.route && self.request_mode == BodyMode::Streamed {
            // Envoy sends no chunk before this reply, and routes on the headers it gets back:
            // the body cannot choose the route in this mode (docs/envoy.md, Body modes).
            tracing::warn!("ext_proc request body mode STREAMED without send_body_without_waiting_for_header_response: passing through unrouted");
            self.route = false;
        }
        if self.route && self.request_mode.defers_headers() {
            self.headers_owed = true;
            return Vec::new();
        }
        if !self.route {
            metrics::counter!("semrouter_extproc_requests_total", "outcome" => "passthrough")
                .increment(1);
        }
        vec![render::request_headers(None)]
    }

    async fn request_body(&mut self, message: HttpBody) -> Vec<ProcessingResponse> {
        if !self.route || self.pending.is_some() {
            return match self.request_mode {
                BodyMode::FullDuplex => vec![render::request_body(Some(render::streamed_body(
                    message.body,
                    message.end_of_stream,
                )))],
                _ => vec![render::request_body(None)],
            };
        }
        if self.body.len() + message.body.len() > self.ctx.max_body_bytes {
            self.route = false;
            return vec![self.count_error(&ApiError::too_large(self.ctx.max_body_bytes))];
        }
        self.body.extend_from_slice(&message.body);
        if self.request_mode == BodyMode::StreamedEarly {
            self.chunks_owed += 1;
        }
        // BUFFERED sends the whole body in one message; when trailers follow it, its
        // end_of_stream is false and Envoy waits for this reply before it sends them.
        if !message.end_of_stream && self.request_mode != BodyMode::Buffered {
            return Vec::new();
        }
        self.decide().await
    }

    /// Routes the buffered body and renders the replies that release (or answer) the request.
    async fn decide(&mut self) -> Vec<ProcessingResponse> {
        let body = std::mem::take(&mut self.body);
        let ctx = Arc::clone(&self.ctx);
        let Some(engine) = ctx.state.engine.load_full() else {
            return self.fall_back(&body, "not_ready");
        };
        // Held while the router works on this request; Envoy answers the client the 429.
        let _admitted = match ctx.state.admission.admit("extproc") {
            Ok(admitted) => admitted,
            Err(overloaded) => return vec![self.count_error(&overloaded)],
        };
        if let Some(content_type) = self.headers.get("content-type") {
            let essence = content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if essence != "application/json" && !essence.ends_with("+json") {
                return vec![self.count_error(&ApiError::unsupported_media_type(content_type))];
            }
        }
        let chat = match openai::parse_chat_request(&body) {
            Ok(chat) => chat,
            Err(invalid) => return vec![self.count_error(&ApiError::from(invalid))],
        };
        let options = match request_options(&self.headers, None, &ctx.state.tenant_header) {
            Ok(options) => options,
            Err(error) => return vec![self.count_error(&error)],
        };
        let span = crate::telemetry::request_span("ext_proc", self.headers.iter());
        let decide = tracing::Instrument::instrument(
            route_chat(
                &ctx.state,
                &engine,
                &chat,
                &self.headers,
                &options,
                "extproc",
            ),
            span,
        );
        let routed = tokio::time::timeout(ctx.decision_timeout, decide).await;
        match routed {
            Err(_elapsed) => self.fall_back(&body, "timeout"),
            Ok(Err(error)) => vec![self.count_error(&error)],
            Ok(Ok(Routed::Cached { hit, request, .. })) => {
                metrics::counter!("semrouter_extproc_requests_total", "outcome" => "cached")
                    .increment(1);
                let report = CacheReport::hit(&hit, &request, &chat.model);
                let (content_type, body) = match report.response {
                    Some(Value::String(sse)) => ("text/event-stream", sse.into_bytes()),
                    Some(json) => (
                        "application/json",
                        serde_json::to_vec(&json).unwrap_or_default(),
                    ),
                    None => ("application/json", Vec::new()),
                };
                let headers = [
                    ("content-type", content_type.to_string()),
                    ("x-semrouter-cache", "hit".to_string()),
                ];
                vec![render::immediate(
                    200,
                    &headers,
                    body,
                    "semrouter_cache_hit",
                )]
            }
            Ok(Ok(Routed::Decided {
                decision,
                cache,
                write,
            })) => {
                if decision.action == Action::Block {
                    metrics::counter!("semrouter_extproc_requests_total", "outcome" => "blocked")
                        .increment(1);
                    let error = ApiError::blocked(format!(
                        "the request was blocked by policy: {}",
                        decision.reason
                    ));
                    return vec![render::error(&error)];
                }
                let (Some(model), Some(request)) =
                    (decision.model.clone(), decision.request.as_ref())
                else {
                    return vec![
                        self.count_error(&ApiError::internal("the decision names no model"))
                    ];
                };
                let rewritten = match serde_json::to_vec(request) {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        return vec![self.count_error(&ApiError::internal(format!(
                            "the rewritten body could not be written: {error}"
                        )))]
                    }
                };
                metrics::counter!("semrouter_extproc_requests_total", "outcome" => "routed")
                    .increment(1);
                let cache_state = cache.as_ref().map(|_| "miss");
                let headers = decision_headers(&decision, cache_state, &ctx.decision_headers);
                self.release(
                    &engine,
                    Release {
                        model,
                        write,
                        stream: chat.stream,
                    },
                    &headers,
                    rewritten,
                )
            }
        }
    }

    /// No decision in time (or no engine yet): the request goes on to the default model.
    fn fall_back(&mut self, body: &[u8], reason: &'static str) -> Vec<ProcessingResponse> {
        metrics::counter!("semrouter_extproc_fallbacks_total", "reason" => reason).increment(1);
        metrics::counter!("semrouter_extproc_requests_total", "outcome" => "fallback").increment(1);
        tracing::warn!(reason, model = %self.ctx.default_model, "no decision: request sent to the default model");
        let mut value: Value = match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(error) => {
                return vec![self.count_error(&ApiError::invalid_param(
                    "body",
                    format!("the request body is not JSON: {error}"),
                ))]
            }
        };
        let model = self.ctx.default_model.clone();
        if let Some(object) = value.as_object_mut() {
            object.insert("model".into(), Value::String(model.clone()));
        }
        let rewritten = serde_json::to_vec(&value).unwrap_or_else(|_| body.to_vec());
        let stream = value
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let headers: Vec<(&str, String)> = self
            .ctx
            .decision_headers
            .iter()
            .filter(|h| {
                matches!(
                    h,
                    crate::config::DecisionHeader::SelectedModel
                        | crate::config::DecisionHeader::GatewayModelName
                )
            })
            .map(|h| (h.name(), model.clone()))
            .collect();
        match self.ctx.state.engine.load_full() {
            Some(engine) => self.release(
                &engine,
                Release {
                    model,
                    write: None,
                    stream,
                },
                &headers,
                rewritten,
            ),
            None => self.release_replies(&headers, rewritten),
        }
    }

    /// Sends the request on to its model, keeping what the response path needs.
    fn release(
        &mut self,
        engine: &Arc<Router>,
        release: Release,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Vec<ProcessingResponse> {
        let Release {
            model,
            write,
            stream,
        } = release;
        if self.hand_off {
            // In flight from the observer's claim, not from here: an answer nobody observes
            // must not count as load.
            let id = self.ctx.handoffs.put(Handoff {
                model,
                write,
                sent: Instant::now(),
                stream,
            });
            let mut headers = headers.to_vec();
            headers.push((EXCHANGE_HEADER, id));
            return self.release_replies(&headers, body);
        }
        let replies = self.release_replies(headers, body);
        self.pending = Some(Pending {
            _in_flight: engine.stats().start(&model),
            model,
            write,
            sent: Instant::now(),
            stream,
        });
        replies
    }

    /// The replies that carry the mutations, shaped for the body mode.
    fn release_replies(
        &mut self,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Vec<ProcessingResponse> {
        let mutation = render::header_mutation(headers, Some(body.len()));
        self.headers_owed = false;
        match self.request_mode {
            BodyMode::Buffered | BodyMode::Streamed => vec![render::request_body(Some(
                render::routed_common(mutation, Some(body)),
            ))],
            BodyMode::StreamedEarly => {
                let mut replies = vec![render::request_headers(Some(render::routed_common(
                    mutation, None,
                )))];
                let owed = std::mem::take(&mut self.chunks_owed).max(1);
                replies
                    .extend((1..owed).map(|_| render::request_body(Some(render::clear_chunk()))));
                let mut last = render::clear_chunk();
                last.body_mutation =
                    render::routed_common(render::header_mutation(&[], None), Some(body))
                        .body_mutation;
                replies.push(render::request_body(Some(last)));
                replies
            }
            BodyMode::FullDuplex => vec![
                render::request_headers(Some(render::routed_common(mutation, None))),
                render::request_body(Some(render::streamed_body(body, true))),
            ],
        }
    }

    /// Counts an error and renders it as an immediate response.
    fn count_error(&mut self, error: &ApiError) -> ProcessingResponse {
        metrics::counter!("semrouter_extproc_requests_total", "outcome" => "error", "code" => error.code()).increment(1);
        self.route = false;
        render::error(error)
    }

    fn response_headers(&mut self, message: &HttpHeaders) -> Vec<ProcessingResponse> {
        let Some(_) = &self.pending else {
            // Nothing to observe: ask Envoy not to send the body (ignored unless allowed).
            let mode = (self.response_mode == BodyMode::Buffered).then_some(BodySendMode::None);
            return vec![render::response_headers(mode)];
        };
        let pairs = header_pairs(message.headers.as_ref());
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let status = get(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let sse = get("content-type").is_some_and(is_sse);
        self.answer = Some(Answer {
            status,
            sse,
            body: Vec::new(),
            overflow: false,
        });
        if message.end_of_stream {
            self.finish();
        }
        // A stream passes chunk by chunk (observed, untouched); a JSON answer comes whole.
        let mode = match self.response_mode {
            BodyMode::Buffered | BodyMode::Streamed if sse => Some(BodySendMode::Streamed),
            _ => None,
        };
        vec![render::response_headers(mode)]
    }

    /// The first body chunk of an answer whose headers this filter skips
    /// (`response_header_mode: SKIP`): its status comes from the `response.code` attribute
    /// (`response_attributes`), its kind from the `response.headers['content-type']` one or,
    /// without it, from whether the client asked for a stream. Without a status the answer is
    /// observed for latency and tokens but never stored.
    fn answer_from_attributes(&mut self, attributes: &HashMap<String, Struct>) {
        let (Some(pending), None) = (&self.pending, &self.answer) else {
            return;
        };
        let fields = attributes.get(ATTRIBUTES_KEY).map(|s| &s.fields);
        let field = |name: &str| {
            fields
                .and_then(|f| f.get(name))
                .and_then(|v| v.kind.as_ref())
        };
        let status = match field(STATUS_ATTRIBUTE) {
            Some(Kind::NumberValue(n)) if (100.0..600.0).contains(n) => *n as u16,
            Some(Kind::StringValue(s)) => s.trim().parse().unwrap_or(0),
            _ => 0,
        };
        let sse = match field(CONTENT_TYPE_ATTRIBUTE) {
            Some(Kind::StringValue(c)) => is_sse(c),
            _ => pending.stream,
        };
        self.answer = Some(Answer {
            status,
            sse,
            body: Vec::new(),
            overflow: false,
        });
    }

    fn response_body(&mut self, message: HttpBody) -> Vec<ProcessingResponse> {
        let limit = self.ctx.max_response_bytes;
        if let Some(answer) = self.answer.as_mut() {
            if answer.body.len() + message.body.len() > limit {
                answer.overflow = true;
                answer.body = Vec::new();
            } else if !answer.overflow {
                answer.body.extend_from_slice(&message.body);
            }
        }
        let reply = match self.response_mode {
            BodyMode::FullDuplex => render::response_body(Some(render::streamed_body(
                message.body,
                message.end_of_stream,
            ))),
            _ => render::response_body(None),
        };
        if message.end_of_stream {
            self.finish();
        }
        vec![reply]
    }

    /// The answer is complete: latency, tokens, and the cache write.
    fn finish(&mut self) {
        let (Some(pending), Some(answer)) = (self.pending.take(), self.answer.take()) else {
            return;
        };
        let Some(engine) = self.ctx.state.engine.load_full() else {
            return;
        };
        let latency: Duration = pending.sent.elapsed();
        if answer.overflow {
            observe_answer(&engine, &pending.model, latency, None);
            return;
        }
        let usage = if answer.sse {
            sse_usage(&answer.body)
        } else {
            serde_json::from_slice::<Value>(&answer.body)
                .ok()
                .and_then(|v| v.get("usage").cloned())
        };
        observe_answer(&engine, &pending.model, latency, usage.as_ref());
        let (Some(write), Some(service)) =
            (pending.write.as_ref(), self.ctx.state.cache.load_full())
        else {
            return;
        };
        let outcome = if answer.sse {
            write.complete(
                &service,
                Reply::Sse {
                    status: answer.status,
                    body: &answer.body,
                },
            )
        } else {
            match serde_json::from_slice::<Value>(&answer.body) {
                Ok(body) => write.complete(
                    &service,
                    Reply::Json {
                        status: answer.status,
                        body: &body,
                    },
                ),
                Err(_) => return,
            }
        };
        if let Err(skip) = outcome {
            tracing::debug!(?skip, "answer not cached");
        }
    }
}

/// Whether a content type is an SSE stream.
fn is_sse(content_type: &str) -> bool {
    content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("text/event-stream")
}

/// The `usage` object of the last SSE chunk that carries one (`stream_options.include_usage`).
fn sse_usage(body: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    text.lines()
        .rev()
        .filter_map(|line| line.strip_prefix("data:").map(str::trim))
        .filter(|data| *data != "[DONE]")
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find_map(|chunk| chunk.get("usage").filter(|u| !u.is_null()).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_paths() {
        assert!(is_chat_path("/v1/chat/completions"));
        assert!(is_chat_path("/openai/v1/chat/completions?x=1"));
        assert!(!is_chat_path("/v1/models"));
    }

    #[test]
    fn usage_from_the_last_sse_chunk() {
        let body = b"data: {\"choices\":[]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\ndata: [DONE]\n\n";
        assert_eq!(
            sse_usage(body).and_then(|u| u["prompt_tokens"].as_u64()),
            Some(3)
        );
        assert_eq!(sse_usage(b"data: [DONE]\n\n"), None);
    }
}
