//! A small OpenAI-compatible chat upstream on 127.0.0.1, standing in for one vLLM
//! deployment in the proxy and Envoy tests: it answers `POST /v1/chat/completions` in OpenAI
//! format (JSON, or SSE when the body asks for `stream: true`), records every body it
//! received (and the `authorization` and `traceparent` headers it came with), and can be told to fail (a status, a delay, a stream cut after its first chunk).
//! It stops when dropped.
#![allow(dead_code)] // each test binary uses a different part of it

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes, Data};
use actix_web::{App, HttpResponse, HttpServer};
use serde_json::{json, Value};

/// How the upstream answers the next requests.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Answer every request with this status and an OpenAI error body instead.
    pub status: Option<u16>,
    /// Wait this long before answering (before the first byte).
    pub delay: Duration,
    /// For streams: send the first chunk, then cut the connection.
    pub cut_stream: bool,
    /// Wait this long between stream chunks.
    pub chunk_gap: Duration,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Value>>,
    authorizations: Mutex<Vec<Option<String>>>,
    traceparents: Mutex<Vec<Option<String>>>,
    behaviour: Mutex<Behaviour>,
    /// Requests whose answer was still being written when the client went away.
    abandoned: std::sync::atomic::AtomicUsize,
}

/// A running stub upstream.
pub struct Upstream {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Its name, which every answer carries ("answer from NAME").
    pub name: String,
    /// The port it listens on.
    pub port: u16,
    shared: Arc<Shared>,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The answer text the upstream named `name` gives.
pub fn answer_text(name: &str) -> String {
    format!("answer from {name}")
}

impl Upstream {
    /// Starts an upstream called `name` on a free loopback port.
    pub fn start(name: &str) -> Self {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let state = Arc::clone(&shared);
        let label = name.to_string();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let data = Data::from(state);
                let name = Data::new(label);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(name.clone())
                        .app_data(web::PayloadConfig::new(16 << 20))
                        .route("/v1/chat/completions", web::post().to(chat))
                        .route("/v1/models", web::get().to(models))
                        .route(
                            "/health",
                            web::get().to(|| async { HttpResponse::Ok().finish() }),
                        )
                })
                .workers(2)
                .bind(("127.0.0.1", 0))
                .expect("bind the stub upstream");
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).expect("report the port");
                let _ = server.await;
            });
        });
        let (port, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("stub upstream started");
        Self {
            base: format!("http://127.0.0.1:{port}"),
            name: name.to_string(),
            port,
            shared,
            handle,
            thread: Some(thread),
        }
    }

    /// Every body received so far, in order.
    pub fn received(&self) -> Vec<Value> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The `authorization` header of every request received so far, in order.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.shared
            .authorizations
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The `traceparent` header of every request received so far, in order.
    pub fn traceparents(&self) -> Vec<Option<String>> {
        self.shared
            .traceparents
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        if let Ok(mut r) = self.shared.received.lock() {
            r.clear();
        }
        if let Ok(mut r) = self.shared.authorizations.lock() {
            r.clear();
        }
    }

    /// Changes how the next requests are answered.
    pub fn set(&self, behaviour: Behaviour) {
        if let Ok(mut b) = self.shared.behaviour.lock() {
            *b = behaviour;
        }
    }

    /// Streams whose client went away before the last chunk.
    pub fn abandoned(&self) -> usize {
        self.shared
            .abandoned
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stopping needs the server's own runtime; a fresh one drives the stop future.
        let _ =
            std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)))
                .join();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn models(name: Data<String>) -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({"object": "list", "data": [{"id": name.as_str(), "object": "model"}]}))
}

async fn chat(
    request: actix_web::HttpRequest,
    body: Bytes,
    shared: Data<Shared>,
    name: Data<String>,
) -> HttpResponse {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Ok(mut a) = shared.authorizations.lock() {
        a.push(authorization);
    }
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Ok(mut t) = shared.traceparents.lock() {
        t.push(traceparent);
    }
    if let Ok(mut r) = shared.received.lock() {
        r.push(parsed.clone());
    }
    let behaviour = shared
        .behaviour
        .lock()
        .map(|b| b.clone())
        .unwrap_or_default();
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    if let Some(status) = behaviour.status {
        let code = actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
        return HttpResponse::build(code).json(json!({"error": {"message": format!("{} failed on purpose", name.as_str()), "type": "server_error", "param": null, "code": null}}));
    }
    let model = parsed
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    let text = answer_text(name.as_str());
    let usage = json!({"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16});
    if parsed.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = parsed
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        let chunk = |delta: Value, finish: Value| {
            let c = json!({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            Bytes::from(format!("data: {c}\n\n"))
        };
        let mut chunks = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        for word in text.split_inclusive(' ') {
            chunks.push(chunk(json!({"content": word}), Value::Null));
        }
        chunks.push(chunk(json!({}), json!("stop")));
        if include_usage {
            let c = json!({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage});
            chunks.push(Bytes::from(format!("data: {c}\n\n")));
        }
        chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
        if behaviour.cut_stream {
            chunks.truncate(1);
        }
        let state = StreamState {
            next: 0,
            chunks,
            gap: behaviour.chunk_gap,
            cut: behaviour.cut_stream,
            done: false,
            shared: shared.into_inner(),
        };
        let stream = futures_util::stream::unfold(state, |mut state| async move {
            if state.next == state.chunks.len() {
                state.done = true;
                if state.cut {
                    // A pause first, so the first chunk is flushed before the connection dies.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    state.next += 1;
                    return Some((Err(std::io::Error::other("stream cut on purpose")), state));
                }
                return None;
            }
            if state.next > state.chunks.len() {
                return None;
            }
            if state.next > 0 && !state.gap.is_zero() {
                tokio::time::sleep(state.gap).await;
            }
            let item = state.chunks[state.next].clone();
            state.next += 1;
            Some((Ok::<Bytes, std::io::Error>(item), state))
        });
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .streaming(stream);
    }
    HttpResponse::Ok().json(json!({
        "id": "chatcmpl-stub", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage,
    }))
}

/// A stream being written; counts itself abandoned when dropped before its last chunk.
struct StreamState {
    next: usize,
    chunks: Vec<Bytes>,
    gap: Duration,
    cut: bool,
    done: bool,
    shared: Arc<Shared>,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        if !self.done {
            self.shared
                .abandoned
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}
