//! Runs the real Envoy (`make setup` fetches it to onnx/fetched/envoy/envoy) on the shipped
//! example config/envoy/envoy.yaml, its ports replaced by free loopback ones, so that the
//! example is what the tests and benches exercise. Stopped when dropped.
#![allow(dead_code)] // each test binary uses a different part of it

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The example's ports, as written in config/envoy/envoy.yaml.
pub const EXAMPLE_ADMIN: u16 = 9901;
/// The listener clients call.
pub const EXAMPLE_LISTEN: u16 = 10000;
/// semrouter's ext_proc address.
pub const EXAMPLE_EXTPROC: u16 = 50051;
/// The model clusters: qwen3-8b, gpt-oss-120b, deepseek-v3.1.
pub const EXAMPLE_MODELS: [(&str, u16); 3] = [
    ("qwen3-8b", 8001),
    ("gpt-oss-120b", 8002),
    ("deepseek-v3.1", 8003),
];

/// The Envoy binary `make setup` installs.
pub fn binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("onnx/fetched/envoy/envoy");
    assert!(
        path.is_file(),
        "{} is missing: run `make setup` (python3 onnx/fetch.py)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Where Envoy's clusters point.
pub struct Wiring {
    /// semrouter's ext_proc port.
    pub extproc: u16,
    /// Port of each model's upstream, by model name (every example model must be given).
    pub models: Vec<(&'static str, u16)>,
    /// Further `(from, to)` text replacements in the example (each must occur).
    pub edits: Vec<(&'static str, &'static str)>,
}

/// A running Envoy.
pub struct Envoy {
    child: Option<Child>,
    /// The listener's port.
    pub port: u16,
    /// `http://127.0.0.1:PORT` of the listener.
    pub base: String,
    admin: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Envoy {
    /// Renders the example with `wiring`, starts Envoy and waits until its admin `/ready` says
    /// LIVE (its listener then accepts).
    pub fn start(wiring: &Wiring) -> Self {
        let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/envoy/envoy.yaml");
        let mut text = std::fs::read_to_string(&example).expect("read config/envoy/envoy.yaml");
        let (port, admin) = (free_port(), free_port());
        let mut ports = vec![
            (EXAMPLE_ADMIN, admin),
            (EXAMPLE_LISTEN, port),
            (EXAMPLE_EXTPROC, wiring.extproc),
        ];
        for (model, example_port) in EXAMPLE_MODELS {
            let to = wiring
                .models
                .iter()
                .find(|(m, _)| *m == model)
                .unwrap_or_else(|| panic!("no upstream for {model}"))
                .1;
            ports.push((example_port, to));
        }
        for (from, to) in ports {
            let from = format!("port_value: {from} ");
            assert_eq!(
                text.matches(&from).count(),
                1,
                "the example has one `{from}`"
            );
            text = text.replace(&from, &format!("port_value: {to} "));
        }
        for (from, to) in &wiring.edits {
            assert!(text.contains(from), "the example has no `{from}`");
            text = text.replace(from, to);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("envoy.yaml");
        std::fs::write(&config, text).expect("write the rendered config");
        let log = dir.path().join("envoy.log");
        let child = Command::new(binary())
            .arg("-c")
            .arg(&config)
            // several Envoys may run at once (tests in parallel): no shared memory between them
            .arg("--disable-hot-restart")
            .args(["--log-level", "warn", "--concurrency", "2"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn envoy");
        let mut envoy = Envoy {
            child: Some(child),
            port,
            base: format!("http://127.0.0.1:{port}"),
            admin,
            log,
            _dir: dir,
        };
        envoy.wait_live(Duration::from_secs(30));
        envoy
    }

    /// The Envoy process's id (for reading its CPU time), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What Envoy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn wait_live(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("envoy exited with {status}; log:\n{}", self.log());
            }
            if admin_get(self.admin, "/ready").is_some_and(|body| body.contains("LIVE")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("envoy not live after {timeout:?}; log:\n{}", self.log());
    }

    /// The text of an admin endpoint (e.g. `/stats?filter=ext_proc`).
    pub fn admin(&self, path: &str) -> String {
        admin_get(self.admin, path).unwrap_or_default()
    }
}

fn admin_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().ok()?,
        Duration::from_secs(1),
    )
    .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.starts_with("HTTP/1.1 200").then_some(text)
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
