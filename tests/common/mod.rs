//! Test harness: runs the real `semrouter` binary on a free loopback port.
//!
//! Every server is stopped when its handle drops (also when a test panics), so no test
//! leaves a process behind. Needs `make setup` (ONNX Runtime, the default model, MMLU).
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod redis;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root (the working directory the default config's paths are relative to).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_semrouter")
}

/// A free loopback port (released just before the server binds it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// The admin token every test server gets (`SEMROUTER_ADMIN_TOKEN`) unless its `Launch::env`
/// sets another; admin requests send it as `Authorization: Bearer`.
pub const ADMIN_TOKEN: &str = "test-admin-token-4f1c9e";

/// A running `semrouter serve`.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    stderr: PathBuf,
    /// The `--config` file, when one was given.
    pub config_path: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

/// How to start a server.
#[derive(Default)]
pub struct Launch<'a> {
    /// Config file contents (YAML); the built-in default when `None`.
    pub config: Option<String>,
    /// Extra environment variables (e.g. `SEMROUTER__...` overrides).
    pub env: Vec<(&'a str, String)>,
}

impl Server {
    /// Starts the server on the built-in default config and waits until it is ready.
    pub fn start_default() -> Self {
        Self::start(Launch::default())
    }

    /// Starts the server and waits until `/ready` answers 200.
    pub fn start(launch: Launch) -> Self {
        let mut server = Self::spawn(launch);
        server.wait_ready(Duration::from_secs(120));
        server
    }

    /// Starts the server on a config file the test manages itself (rewrites it, swaps
    /// symlinks), with `launch.env`, and waits until it is ready.
    pub fn start_on_file(path: PathBuf, launch: Launch) -> Self {
        let mut server = Self::spawn_on(launch, Some(path));
        server.wait_ready(Duration::from_secs(120));
        server
    }

    /// Starts the server without waiting.
    pub fn spawn(launch: Launch) -> Self {
        Self::spawn_on(launch, None)
    }

    fn spawn_on(launch: Launch, config_file: Option<PathBuf>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = dir.path().join("stderr.log");
        let port = free_port();
        let mut command = Command::new(binary());
        command
            .current_dir(repo())
            .arg("serve")
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{port}"));
        let config_path = match (config_file, &launch.config) {
            (Some(path), _) => Some(path),
            (None, Some(config)) => {
                let path = dir.path().join("config.yaml");
                std::fs::write(&path, config).expect("write config");
                Some(path)
            }
            (None, None) => None,
        };
        if let Some(path) = &config_path {
            command.arg("--config").arg(path);
        }
        command
            .env("SEMROUTER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info");
        for (key, value) in &launch.env {
            command.env(key, value);
        }
        command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let child = command.spawn().expect("spawn semrouter");
        Server {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            stderr,
            config_path,
            _dir: dir,
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let addr = self.base.trim_start_matches("http://").to_string();
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "server exited with {status} before it was ready; stderr:\n{}",
                    self.stderr()
                );
            }
            if get_status(&addr, "/ready") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "server not ready after {timeout:?}; stderr:\n{}",
            self.stderr()
        );
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server still running");
        signal(child.id(), "TERM");
        child.wait().expect("wait for semrouter")
    }

    /// The pid of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server still running").id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The status code of `GET path` on `addr`, or `None` if nothing answers (plain TCP, so it
/// works inside and outside an async runtime).
pub fn get_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream =
        TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Sends a signal with the `kill` command.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// Runs `semrouter ARGS` to completion; returns (exit status, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut command = Command::new(binary());
    command.current_dir(repo()).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run semrouter");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `semrouter serve` expecting it to fail; returns its exit status and stderr.
pub fn serve_expecting_failure(config: Option<&str>, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = vec![
        "serve".to_string(),
        "--http-addr".into(),
        format!("127.0.0.1:{}", free_port()),
    ];
    if let Some(config) = config {
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).expect("write config");
        args.push("--config".into());
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, _, stderr) = run_cli(&args, env);
    (status, stderr)
}

/// The default config with `from` replaced by `to` (each must occur).
pub fn default_config_with(replacements: &[(&str, &str)]) -> String {
    let mut text =
        std::fs::read_to_string(repo().join("config/semrouter.yaml")).expect("default config");
    for (from, to) in replacements {
        assert!(text.contains(from), "default config has no `{from}`");
        text = text.replacen(from, to, 1);
    }
    text
}

/// A chat-completions body with one user message.
pub fn chat(model: &str, prompt: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": prompt}]})
}

/// Absolute path of a repository file, as a string for configs.
pub fn abs(path: &str) -> String {
    repo().join(path).display().to_string()
}

/// Asserts an OpenAI error envelope with `status`, and returns its `error` object.
pub async fn expect_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let body: Value = response.json().await.expect("error body is JSON");
    let error = body
        .get("error")
        .cloned()
        .unwrap_or_else(|| panic!("no `error` in {body}"));
    for key in ["message", "type", "param", "code"] {
        assert!(error.get(key).is_some(), "envelope lacks `{key}`: {body}");
    }
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    error
}

/// Reads one metric sample from Prometheus text: the value of the line that starts with
/// `name{` and contains every label in `labels` (or the unlabelled `name`).
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Whether `path` exists relative to the repository.
pub fn exists(path: &str) -> bool {
    Path::new(&repo()).join(path).exists()
}

/// A self-signed certificate for `names`, written as `cert.pem` and `key.pem` in `dir`; returns
/// both paths and the certificate's PEM (for a client to trust).
pub fn self_signed(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf, String) {
    let certified =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key");
    (cert, key, certified.cert.pem())
}

/// CPU time (user and system) process `pid` has used so far, in seconds (from /proc; 0 when
/// it cannot be read). `pid` 0 reads this process.
pub fn cpu_seconds(pid: u32) -> f64 {
    let path = if pid == 0 {
        "/proc/self/stat".to_string()
    } else {
        format!("/proc/{pid}/stat")
    };
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which may hold spaces, so split after its `)`):
    // utime and stime are the 12th and 13th, in clock ticks (100 a second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of process `pid` in MB (from /proc; 0 when it cannot be read).
pub fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
