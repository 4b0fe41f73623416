//! Property tests of the ext_proc front end: a gRPC client plays Envoy against the running
//! server, with exchanges shaped as Envoy sends them in each body mode (headers, body chunks
//! cut anywhere, an end of stream or trailers, the upstream's answer) but carrying any body
//! and headers, and with random message sequences no Envoy sends (out of order, repeated,
//! odd modes). What Envoy relies on: every message gets its reply in time (a missing one
//! stalls the request until Envoy's `message_timeout`), no reply answers a message that was
//! not sent, every refusal is an ImmediateResponse with a 4xx status and the OpenAI envelope,
//! a rewritten body comes with its own `content-length`, and the stream always ends.
//!
//! `make test` runs a few dozen cases; `make fuzz` many more (PROPTEST_CASES, FUZZ_SECONDS).

mod common;
#[path = "support/extproc.rs"]
mod extproc;
#[path = "support/fuzz.rs"]
mod fuzz;

use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::service::ext_proc::v3::body_mutation::Mutation;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    CommonResponse, HttpBody, HttpHeaders, HttpTrailers, ProcessingRequest, ProcessingResponse,
    ProtocolConfiguration,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

use common::{free_port, Launch, Server};

/// The server's body limit here (small, so oversized bodies are cheap).
const MAX_BODY: usize = 4096;
/// How long Envoy would wait for one reply; far above a decision on a loaded machine.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// How the filter sends bodies (its `processing_mode` and `send_body_without_waiting...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Buffered,
    Streamed,
    StreamedEarly,
    FullDuplex,
}

impl Mode {
    fn config(self) -> ProtocolConfiguration {
        let (body, early) = match self {
            Mode::Buffered => (BodySendMode::Buffered, false),
            Mode::Streamed => (BodySendMode::Streamed, false),
            Mode::StreamedEarly => (BodySendMode::Streamed, true),
            Mode::FullDuplex => (BodySendMode::FullDuplexStreamed, false),
        };
        ProtocolConfiguration {
            request_body_mode: body as i32,
            response_body_mode: if self == Mode::FullDuplex {
                body as i32
            } else {
                BodySendMode::Buffered as i32
            },
            send_body_without_waiting_for_header_response: early,
        }
    }

    /// Whether the header reply waits for the body.
    fn defers(self) -> bool {
        matches!(self, Mode::StreamedEarly | Mode::FullDuplex)
    }
}

fn message(request: Request, config: Option<ProtocolConfiguration>) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(request),
        protocol_config: config,
        ..ProcessingRequest::default()
    }
}

fn headers(pairs: &[(String, String)], end_of_stream: bool) -> Request {
    Request::RequestHeaders(HttpHeaders {
        headers: Some(extproc::header_map(pairs)),
        end_of_stream,
        ..HttpHeaders::default()
    })
}

fn body(bytes: &[u8], end_of_stream: bool) -> Request {
    Request::RequestBody(HttpBody {
        body: bytes.to_vec(),
        end_of_stream,
        ..HttpBody::default()
    })
}

/// The kind of a message or reply, to match replies to messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    Immediate,
}

fn request_kind(request: &Request) -> Kind {
    match request {
        Request::RequestHeaders(_) => Kind::RequestHeaders,
        Request::RequestBody(_) => Kind::RequestBody,
        Request::RequestTrailers(_) => Kind::RequestTrailers,
        Request::ResponseHeaders(_) => Kind::ResponseHeaders,
        Request::ResponseBody(_) => Kind::ResponseBody,
        Request::ResponseTrailers(_) => Kind::ResponseTrailers,
    }
}

fn reply_kind(reply: &ProcessingResponse) -> Result<Kind, TestCaseError> {
    Ok(match reply.response.as_ref() {
        Some(Response::RequestHeaders(_)) => Kind::RequestHeaders,
        Some(Response::RequestBody(_)) => Kind::RequestBody,
        Some(Response::RequestTrailers(_)) => Kind::RequestTrailers,
        Some(Response::ResponseHeaders(_)) => Kind::ResponseHeaders,
        Some(Response::ResponseBody(_)) => Kind::ResponseBody,
        Some(Response::ResponseTrailers(_)) => Kind::ResponseTrailers,
        Some(Response::ImmediateResponse(_)) => Kind::Immediate,
        Some(other) => {
            return Err(TestCaseError::fail(format!(
                "a reply the processor never sends: {other:?}"
            )))
        }
        None => return Err(TestCaseError::fail("a reply with no response in it")),
    })
}

fn common_of(reply: &ProcessingResponse) -> Option<&CommonResponse> {
    match reply.response.as_ref()? {
        Response::RequestHeaders(h) | Response::ResponseHeaders(h) => h.response.as_ref(),
        Response::RequestBody(b) | Response::ResponseBody(b) => b.response.as_ref(),
        _ => None,
    }
}

/// Checks an ImmediateResponse: a 4xx (or 200 for a cache hit, off here) in the OpenAI
/// envelope with its content type, and `retry-after` on a 429. Returns the status.
fn check_immediate(reply: &ProcessingResponse) -> Result<u16, TestCaseError> {
    let Some(Response::ImmediateResponse(immediate)) = reply.response.as_ref() else {
        return Err(TestCaseError::fail("not an ImmediateResponse"));
    };
    let status = immediate.status.as_ref().map_or(0, |s| s.code) as u16;
    prop_assert!(
        [400, 403, 404, 413, 415, 429].contains(&status),
        "ImmediateResponse status {}: {:?}",
        status,
        immediate
    );
    let envelope: Value = serde_json::from_slice(&immediate.body)
        .map_err(|e| TestCaseError::fail(format!("body not JSON: {e}")))?;
    let error = &envelope["error"];
    prop_assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty())
            && error["type"].is_string()
            && error["code"].is_string(),
        "{}",
        envelope
    );
    let set: Vec<(String, String)> = immediate
        .headers
        .iter()
        .flat_map(|m| &m.set_headers)
        .filter_map(|h| h.header.as_ref())
        .map(|h| {
            (
                h.key.to_ascii_lowercase(),
                String::from_utf8_lossy(&h.raw_value).into_owned(),
            )
        })
        .collect();
    prop_assert!(
        set.iter()
            .any(|(k, v)| k == "content-type" && v == "application/json"),
        "{:?}",
        set
    );
    if status == 429 {
        prop_assert!(
            set.iter().any(|(k, _)| k == "retry-after"),
            "a 429 without retry-after: {:?}",
            set
        );
    }
    Ok(status)
}

/// A routed request's rewrite, read from the replies: the `content-length` the header
/// mutation sets and the body that replaces the request's. Each `content-length` must equal
/// the length of the body that follows it.
fn rewrites(replies: &[ProcessingResponse]) -> Result<Vec<Vec<u8>>, TestCaseError> {
    let mut declared: Option<usize> = None;
    let mut bodies = Vec::new();
    for reply in replies {
        let Some(common) = common_of(reply) else {
            continue;
        };
        if let Some(len) = common
            .header_mutation
            .iter()
            .flat_map(|m| &m.set_headers)
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key.eq_ignore_ascii_case("content-length"))
        {
            let text = String::from_utf8_lossy(&len.raw_value).into_owned();
            declared = Some(
                text.parse()
                    .map_err(|_| TestCaseError::fail(format!("content-length `{text}`")))?,
            );
        }
        let new_body = match common
            .body_mutation
            .as_ref()
            .and_then(|m| m.mutation.as_ref())
        {
            Some(Mutation::Body(b)) => Some(b.clone()),
            Some(Mutation::StreamedResponse(s)) if declared.is_some() => Some(s.body.clone()),
            _ => None,
        };
        if let (Some(new_body), Some(len)) = (new_body, declared) {
            prop_assert_eq!(
                len,
                new_body.len(),
                "content-length differs from the rewritten body's length"
            );
            declared = None;
            bodies.push(new_body);
        }
    }
    prop_assert!(
        declared.is_none(),
        "a content-length was set with no body after it"
    );
    Ok(bodies)
}

/// One gRPC stream, as Envoy holds it.
struct Call {
    tx: Option<mpsc::UnboundedSender<ProcessingRequest>>,
    rx: Streaming<ProcessingResponse>,
    replies: Vec<ProcessingResponse>,
}

impl Call {
    async fn open(client: &mut ExternalProcessorClient<Channel>) -> Self {
        let (tx, outbound) = mpsc::unbounded_channel();
        let rx = client
            .process(UnboundedReceiverStream::new(outbound))
            .await
            .expect("the stream opens")
            .into_inner();
        Self {
            tx: Some(tx),
            rx,
            replies: Vec::new(),
        }
    }

    fn send(&self, message: ProcessingRequest) {
        self.tx
            .as_ref()
            .expect("not closed")
            .send(message)
            .expect("the stream is open");
    }

    /// The next reply within `REPLY_TIMEOUT`.
    async fn next(&mut self, waiting_for: &str) -> Result<ProcessingResponse, TestCaseError> {
        match tokio::time::timeout(REPLY_TIMEOUT, self.rx.message()).await {
            Err(_) => Err(TestCaseError::fail(format!(
                "no reply within {REPLY_TIMEOUT:?} to {waiting_for}: Envoy would stall"
            ))),
            Ok(Err(status)) => Err(TestCaseError::fail(format!("the stream failed: {status}"))),
            Ok(Ok(None)) => Err(TestCaseError::fail(format!(
                "the stream ended before the reply to {waiting_for}"
            ))),
            Ok(Ok(Some(reply))) => {
                self.replies.push(reply.clone());
                Ok(reply)
            }
        }
    }

    /// Closes Envoy's side and collects what is left; the stream must end cleanly in time.
    async fn close(&mut self) -> Result<Vec<ProcessingResponse>, TestCaseError> {
        self.tx = None;
        let mut rest = Vec::new();
        loop {
            match tokio::time::timeout(REPLY_TIMEOUT, self.rx.message()).await {
                Err(_) => {
                    return Err(TestCaseError::fail(
                        "the stream did not end after Envoy closed its side",
                    ))
                }
                Ok(Err(status)) => {
                    return Err(TestCaseError::fail(format!(
                        "the stream ended in error: {status}"
                    )))
                }
                Ok(Ok(None)) => return Ok(rest),
                Ok(Ok(Some(reply))) => {
                    self.replies.push(reply.clone());
                    rest.push(reply);
                }
            }
        }
    }
}

/// What a request body holds.
#[derive(Debug, Clone)]
enum BodyKind {
    Chat(String),
    Bytes(Vec<u8>),
    Json(Value),
    Oversize(usize),
    Empty,
}

impl BodyKind {
    fn bytes(&self) -> Vec<u8> {
        match self {
            BodyKind::Chat(prompt) => serde_json::to_vec(
                &json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]}),
            )
            .unwrap(),
            BodyKind::Bytes(b) => b.clone(),
            BodyKind::Json(v) => serde_json::to_vec(v).unwrap(),
            BodyKind::Oversize(extra) => {
                let prompt = "a".repeat(MAX_BODY + extra);
                serde_json::to_vec(
                    &json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]}),
                )
                .unwrap()
            }
            BodyKind::Empty => Vec::new(),
        }
    }
}

/// Prompts a user means, so that many exchanges get routed.
const QUESTIONS: [&str; 6] = [
    "What is the capital of France?",
    "Can you recommend a movie for tonight?",
    "Prove that the square root of two is irrational.",
    "How do vaccines train the immune system?",
    "Explain the difference between TCP and UDP.",
    "What does a central bank do when inflation rises?",
];

fn body_kind() -> impl Strategy<Value = BodyKind> {
    prop_oneof![
        6 => prop_oneof![3 => prop::sample::select(QUESTIONS.to_vec()).prop_map(str::to_string), 1 => fuzz::prompt_text()].prop_map(BodyKind::Chat),
        2 => prop::collection::vec(any::<u8>(), 0..300).prop_map(BodyKind::Bytes),
        2 => fuzz::json_value(3).prop_map(BodyKind::Json),
        1 => (0usize..3000).prop_map(BodyKind::Oversize),
        1 => Just(BodyKind::Empty),
    ]
}

/// One HTTP request as Envoy hands it to the processor, and the upstream's answer.
#[derive(Debug, Clone)]
struct Exchange {
    mode: Mode,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    extra: Vec<(&'static str, String)>,
    no_body: bool,
    body: BodyKind,
    cuts: Vec<usize>,
    trailers: bool,
    answer_sse: bool,
    answer_chunks: Vec<Vec<u8>>,
    answer_trailers: bool,
}

fn exchange() -> impl Strategy<Value = Exchange> {
    let mode = prop::sample::select(vec![
        Mode::Buffered,
        Mode::Buffered,
        Mode::Buffered,
        Mode::Streamed,
        Mode::StreamedEarly,
        Mode::StreamedEarly,
        Mode::FullDuplex,
        Mode::FullDuplex,
    ]);
    let method = prop::sample::select(vec![
        "POST", "POST", "POST", "POST", "POST", "POST", "POST", "GET", "PUT",
    ]);
    let path = prop::sample::select(vec![
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/openai/v1/chat/completions?x=1",
        "/v1/models",
        "/",
    ]);
    let content_type = proptest::option::of(prop::sample::select(vec![
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
    ]));
    // Mostly headers a client means (so that many requests get routed), sometimes any value.
    let meant = prop::sample::select(vec![
        ("x-semrouter-cost-weight", "0.3"),
        ("x-semrouter-preference", "cost"),
        ("x-semrouter-preference", "quality"),
        ("x-semrouter-explain", "true"),
        ("cache-control", "no-store"),
        ("x-semrouter-tenant", "team-a"),
    ])
    .prop_map(|(k, v)| (k, v.to_string()));
    let any_value = (
        prop::sample::select(vec![
            "x-semrouter-cost-weight",
            "x-semrouter-preference",
            "x-semrouter-explain",
            "cache-control",
            "x-tenant",
        ]),
        prop_oneof!["[0-9.]{0,4}", "[a-z]{0,8}", ".{0,8}"],
    );
    let extra = prop::collection::vec(prop_oneof![4 => meant, 1 => any_value], 0..3);
    let answer = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..3);
    (
        mode,
        method,
        path,
        content_type,
        extra,
        prop::bool::weighted(0.1),
        body_kind(),
        prop::collection::vec(any::<usize>(), 0..4),
        any::<bool>(),
        (any::<bool>(), answer, any::<bool>()),
    )
        .prop_map(
            |(
                mode,
                method,
                path,
                content_type,
                extra,
                no_body,
                body,
                cuts,
                trailers,
                (answer_sse, answer_chunks, answer_trailers),
            )| Exchange {
                mode,
                method,
                path,
                content_type,
                extra,
                no_body,
                body,
                cuts,
                trailers,
                answer_sse,
                answer_chunks,
                answer_trailers,
            },
        )
}

/// Cuts `bytes` into chunks at `cuts` (Buffered: one chunk, as Envoy sends it).
fn chunks(bytes: &[u8], cuts: &[usize], mode: Mode) -> Vec<Vec<u8>> {
    if mode == Mode::Buffered || bytes.is_empty() {
        return vec![bytes.to_vec()];
    }
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| c % bytes.len())
        .filter(|&c| c > 0)
        .collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in at.into_iter().chain([bytes.len()]) {
        out.push(bytes[start..cut].to_vec());
        start = cut;
    }
    out
}

fn is_chat_path(path: &str) -> bool {
    path.split('?')
        .next()
        .is_some_and(|p| p.ends_with("/chat/completions"))
}

/// How an exchange ended, to check the cases reach every path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Routed,
    Refused,
    Passed,
}

/// Plays one exchange the way Envoy would and checks every reply.
async fn play(
    client: &mut ExternalProcessorClient<Channel>,
    x: &Exchange,
    models: &[String],
) -> Result<Outcome, TestCaseError> {
    let mut pairs: Vec<(String, String)> = vec![
        (":method".into(), x.method.into()),
        (":path".into(), x.path.into()),
        (":authority".into(), "router.test".into()),
    ];
    if let Some(ct) = x.content_type {
        pairs.push(("content-type".into(), ct.into()));
    }
    pairs.extend(x.extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let routed =
        x.method == "POST" && is_chat_path(x.path) && !x.no_body && x.mode != Mode::Streamed;
    let bytes = x.body.bytes();
    let chunks = chunks(&bytes, &x.cuts, x.mode);

    let mut call = Call::open(client).await;
    call.send(message(headers(&pairs, x.no_body), Some(x.mode.config())));
    let mut immediate = None;
    if !routed || !x.mode.defers() {
        let reply = call.next("the request headers").await?;
        prop_assert_eq!(reply_kind(&reply)?, Kind::RequestHeaders);
    }
    if !x.no_body {
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.iter().enumerate() {
            let end = i == last && !x.trailers;
            call.send(message(body(chunk, end), None));
            // Envoy waits for each reply, except in the modes that send the body early (and
            // in BUFFERED mode the one body message is all there is, trailers or not).
            if !routed || x.mode == Mode::Buffered {
                let reply = call.next("a request body chunk").await?;
                match reply_kind(&reply)? {
                    Kind::Immediate => {
                        immediate = Some(reply);
                        break;
                    }
                    kind => prop_assert_eq!(kind, Kind::RequestBody),
                }
                if !routed && x.mode == Mode::FullDuplex {
                    // Passed through: the processor sends the chunk back as it came.
                    let Some(Mutation::StreamedResponse(s)) = common_of(&reply)
                        .and_then(|c| c.body_mutation.as_ref())
                        .and_then(|m| m.mutation.as_ref())
                    else {
                        return Err(TestCaseError::fail("a full-duplex chunk not sent back"));
                    };
                    prop_assert_eq!(&s.body, chunk);
                    prop_assert_eq!(s.end_of_stream, end);
                }
            }
        }
        if immediate.is_none() && x.trailers {
            call.send(message(
                Request::RequestTrailers(HttpTrailers::default()),
                None,
            ));
        }
        if immediate.is_none() && routed && x.mode.defers() {
            // Owed now: the header reply, then one per chunk (full duplex: the body once).
            let owed = 1 + if x.mode == Mode::FullDuplex {
                1
            } else {
                chunks.len()
            };
            for n in 0..owed {
                let reply = call.next("the deferred header and body replies").await?;
                match reply_kind(&reply)? {
                    Kind::Immediate => {
                        immediate = Some(reply);
                        break;
                    }
                    kind => prop_assert_eq!(
                        kind,
                        if n == 0 {
                            Kind::RequestHeaders
                        } else {
                            Kind::RequestBody
                        }
                    ),
                }
            }
        }
        if immediate.is_none() && x.trailers {
            let reply = call.next("the request trailers").await?;
            prop_assert_eq!(reply_kind(&reply)?, Kind::RequestTrailers);
        }
    }

    if let Some(reply) = &immediate {
        let status = check_immediate(reply)?;
        let parsed = semrouter::openai::parse_chat_request(&bytes);
        let json_ct = x
            .content_type
            .is_none_or(|ct| ct.starts_with("application/json"));
        if bytes.len() > MAX_BODY {
            prop_assert_eq!(status, 413);
        } else if !json_ct {
            prop_assert_eq!(status, 415);
        } else if parsed.is_err() {
            prop_assert_eq!(status, 400);
        }
        // Envoy answers the client and ends the stream: nothing more is owed.
        call.close().await?;
        return Ok(Outcome::Refused);
    }
    let released = rewrites(&call.replies)?;
    if routed {
        // Routed (a readable chat request) or refused; nothing else lets it through.
        prop_assert!(bytes.len() <= MAX_BODY, "an oversized body went through");
        let original = semrouter::openai::parse_chat_request(&bytes)
            .map_err(|e| TestCaseError::fail(format!("an unreadable body went through: {e:?}")))?;
        prop_assert_eq!(released.len(), 1, "one rewritten body per routed request");
        let rewritten: Value = serde_json::from_slice(&released[0])
            .map_err(|e| TestCaseError::fail(format!("rewritten body not JSON: {e}")))?;
        let model = rewritten["model"].as_str().unwrap_or_default().to_string();
        prop_assert!(
            models.contains(&model),
            "routed to `{}`, not a configured model",
            model
        );
        prop_assert_eq!(
            &rewritten["messages"],
            &original.body["messages"],
            "the conversation passes unchanged"
        );
    } else {
        prop_assert!(released.is_empty(), "a request not routed was rewritten");
    }

    // The upstream's answer, each message answered before the next, as Envoy waits.
    let status_pairs = vec![
        (":status".to_string(), "200".to_string()),
        (
            "content-type".to_string(),
            if x.answer_sse {
                "text/event-stream"
            } else {
                "application/json"
            }
            .to_string(),
        ),
    ];
    let no_answer_body = x.answer_chunks.is_empty() && !x.answer_trailers;
    call.send(message(
        Request::ResponseHeaders(HttpHeaders {
            headers: Some(extproc::header_map(&status_pairs)),
            end_of_stream: no_answer_body,
            ..HttpHeaders::default()
        }),
        None,
    ));
    prop_assert_eq!(
        reply_kind(&call.next("the response headers").await?)?,
        Kind::ResponseHeaders
    );
    for (i, chunk) in x.answer_chunks.iter().enumerate() {
        let end = i + 1 == x.answer_chunks.len() && !x.answer_trailers;
        call.send(message(
            Request::ResponseBody(HttpBody {
                body: chunk.clone(),
                end_of_stream: end,
                ..HttpBody::default()
            }),
            None,
        ));
        prop_assert_eq!(
            reply_kind(&call.next("a response body chunk").await?)?,
            Kind::ResponseBody
        );
    }
    if x.answer_trailers {
        call.send(message(
            Request::ResponseTrailers(HttpTrailers::default()),
            None,
        ));
        prop_assert_eq!(
            reply_kind(&call.next("the response trailers").await?)?,
            Kind::ResponseTrailers
        );
    }
    let extra = call.close().await?;
    prop_assert!(
        extra.is_empty(),
        "replies no message asked for: {:?}",
        extra
    );
    Ok(if routed {
        Outcome::Routed
    } else {
        Outcome::Passed
    })
}

/// Any message, with any contents, in any order.
fn any_message() -> impl Strategy<Value = Request> {
    let pairs = prop::collection::vec(
        (
            prop::sample::select(vec![
                ":method",
                ":path",
                "content-type",
                ":status",
                "x-semrouter-cost-weight",
                "x-any",
            ]),
            prop_oneof![
                Just("POST".to_string()),
                Just("/v1/chat/completions".to_string()),
                Just("application/json".to_string()),
                ".{0,12}"
            ],
        ),
        0..5,
    )
    .prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Vec<_>>()
    });
    let chat_headers = any::<bool>().prop_map(|eos| {
        headers(
            &[
                (":method".into(), "POST".into()),
                (":path".into(), "/v1/chat/completions".into()),
                ("content-type".into(), "application/json".into()),
            ],
            eos,
        )
    });
    let bytes = prop_oneof![
        body_kind().prop_map(|b| b.bytes()),
        prop::collection::vec(any::<u8>(), 0..64)
    ];
    prop_oneof![
        2 => chat_headers,
        1 => (pairs.clone(), any::<bool>()).prop_map(|(p, eos)| headers(&p, eos)),
        3 => (bytes.clone(), any::<bool>()).prop_map(|(b, eos)| body(&b, eos)),
        1 => Just(Request::RequestTrailers(HttpTrailers::default())),
        1 => (pairs, any::<bool>()).prop_map(|(p, eos)| Request::ResponseHeaders(HttpHeaders { headers: Some(extproc::header_map(&p)), end_of_stream: eos, ..HttpHeaders::default() })),
        1 => (bytes, any::<bool>()).prop_map(|(b, eos)| Request::ResponseBody(HttpBody { body: b, end_of_stream: eos, ..HttpBody::default() })),
        1 => Just(Request::ResponseTrailers(HttpTrailers::default())),
    ]
}

/// Sends a random sequence at once and checks what comes back: no reply answers a message
/// that was not sent, refusals are well-formed, lengths match, and the stream ends.
async fn play_sequence(
    client: &mut ExternalProcessorClient<Channel>,
    config: Option<(i32, i32, bool)>,
    sequence: &[Request],
) -> Result<(), TestCaseError> {
    let mut call = Call::open(client).await;
    let mut sent = std::collections::HashMap::new();
    for (i, request) in sequence.iter().enumerate() {
        *sent.entry(request_kind(request)).or_insert(0usize) += 1;
        let config = config
            .filter(|_| i == 0)
            .map(|(req, resp, early)| ProtocolConfiguration {
                request_body_mode: req,
                response_body_mode: resp,
                send_body_without_waiting_for_header_response: early,
            });
        call.send(message(request.clone(), config));
    }
    let replies = call.close().await?;
    let mut got = std::collections::HashMap::new();
    for reply in &replies {
        match reply_kind(reply)? {
            Kind::Immediate => {
                check_immediate(reply)?;
            }
            kind => *got.entry(kind).or_insert(0usize) += 1,
        }
    }
    for (kind, n) in &got {
        prop_assert!(
            *n <= sent.get(kind).copied().unwrap_or(0),
            "{} replies of kind {:?} to {:?} messages",
            n,
            kind,
            sent.get(kind)
        );
    }
    rewrites(&replies)?;
    Ok(())
}

struct Harness {
    server: Server,
    runtime: tokio::runtime::Runtime,
    client: ExternalProcessorClient<Channel>,
    models: Vec<String>,
}

fn harness() -> Harness {
    let port = free_port();
    let server = Server::start(Launch {
        env: vec![
            ("SEMROUTER__EXTPROC__ENABLED", "true".into()),
            ("SEMROUTER__EXTPROC__ADDR", format!("127.0.0.1:{port}")),
            ("SEMROUTER__EXTPROC__DECISION_TIMEOUT_MS", "10000".into()),
            ("SEMROUTER__SERVER__MAX_BODY_BYTES", MAX_BODY.to_string()),
        ],
        ..Launch::default()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (client, models) = runtime.block_on(async {
        let listing: Value = reqwest::get(server.url("/v1/models"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let models = listing["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["semrouter"]["kind"] == "upstream")
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match ExternalProcessorClient::connect(format!("http://127.0.0.1:{port}")).await {
                Ok(client) => break (client, models),
                Err(e) if std::time::Instant::now() > deadline => {
                    panic!("ext_proc not reachable: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    Harness {
        server,
        runtime,
        client,
        models,
    }
}

#[test]
fn envoy_shaped_exchanges_get_every_reply_and_well_formed_refusals() {
    let h = harness();
    let progress = fuzz::Progress::new("extproc_exchanges");
    let tally = std::sync::Mutex::new(std::collections::HashMap::<Outcome, usize>::new());
    // 128 cases: about one in ten is routed, so `make test` reaches every path.
    fuzz::runner(file!(), 128)
        .run(&exchange(), |x| {
            if !progress.tick() {
                return Ok(());
            }
            let mut client = h.client.clone();
            let outcome = h.runtime.block_on(play(&mut client, &x, &h.models))?;
            *tally.lock().unwrap().entry(outcome).or_default() += 1;
            Ok(())
        })
        .unwrap();
    progress.finish();
    // The cases reach every path: routed, refused, passed through.
    let tally = tally.into_inner().unwrap();
    eprintln!("extproc exchanges: {tally:?}");
    for outcome in [Outcome::Routed, Outcome::Refused, Outcome::Passed] {
        assert!(
            tally.get(&outcome).is_some_and(|&n| n > 0),
            "no case was {outcome:?}: {tally:?}"
        );
    }
    assert_eq!(
        common::get_status(h.server.base.trim_start_matches("http://"), "/ready"),
        Some(200)
    );
}

#[test]
fn random_message_sequences_never_break_the_stream() {
    let h = harness();
    let mode = prop_oneof![Just(0), Just(1), Just(2), Just(3), Just(4), any::<i32>()];
    let config = proptest::option::of((mode.clone(), mode, any::<bool>()));
    let progress = fuzz::Progress::new("extproc_sequences");
    fuzz::runner(file!(), 64)
        .run(
            &(config, prop::collection::vec(any_message(), 0..10)),
            |(config, sequence)| {
                if !progress.tick() {
                    return Ok(());
                }
                let mut client = h.client.clone();
                h.runtime
                    .block_on(play_sequence(&mut client, config, &sequence))
            },
        )
        .unwrap();
    progress.finish();
    assert_eq!(
        common::get_status(h.server.base.trim_start_matches("http://"), "/ready"),
        Some(200)
    );
}

/// Found by the exchange property: in BUFFERED mode a request with trailers arrives as one
/// body message without end_of_stream, and Envoy waits for its reply before it sends the
/// trailers; the processor waited for more body and the request stalled until Envoy's
/// message_timeout.
#[test]
fn a_buffered_body_without_end_of_stream_is_answered_at_once() {
    let h = harness();
    let x = Exchange {
        mode: Mode::Buffered,
        method: "POST",
        path: "/v1/chat/completions",
        content_type: Some("application/json"),
        extra: Vec::new(),
        no_body: false,
        body: BodyKind::Chat("what is the capital of france".into()),
        cuts: Vec::new(),
        trailers: true,
        answer_sse: false,
        answer_chunks: vec![br#"{"choices":[]}"#.to_vec()],
        answer_trailers: false,
    };
    let mut client = h.client.clone();
    let models = h.models.clone();
    assert_eq!(
        h.runtime.block_on(play(&mut client, &x, &models)).unwrap(),
        Outcome::Routed
    );
}
