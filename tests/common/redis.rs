//! A throwaway `redis-server` on a free loopback port, driven by `scripts/redis.sh`, for the
//! cache's shared-tier tests; killed when dropped.
//!
//! Needs Debian's `redis-server` (`make redis` installs the pinned version); without it a test
//! fails under `make test` (`SEMROUTER_REQUIRE_REDIS=1`) and otherwise says loudly that it skipped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

/// A running redis-server; stopped (SIGKILL) on drop.
pub struct Redis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/redis.sh")
}

impl Redis {
    /// Starts one, or `None` (after saying so) when redis-server is not installed and the
    /// run does not require it; `test` names the caller in that message.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = Redis {
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        match redis.run_start() {
            0 => Some(redis),
            3 => {
                // `make test` (and so CI) installs redis-server in `make setup` and sets this.
                assert!(std::env::var_os("SEMROUTER_REQUIRE_REDIS").is_none(), "redis-server is not installed and SEMROUTER_REQUIRE_REDIS is set; run `make redis`");
                eprintln!("\n\n******** SKIPPED {test}: redis-server is not installed ********");
                eprintln!(
                    "******** install it with: apt-get install -y redis-server     ********\n\n"
                );
                None
            }
            code => panic!("scripts/redis.sh start failed with status {code}"),
        }
    }

    fn run_start(&self) -> i32 {
        let status = Command::new(script())
            .args(["start", &self.port.to_string()])
            .arg(self.dir.path())
            .status()
            .expect("run scripts/redis.sh");
        status.code().unwrap_or(-1)
    }

    /// SIGKILL: as if the server crashed.
    pub fn kill(&self) {
        let status = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status()
            .expect("run scripts/redis.sh");
        assert!(status.success());
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&self) {
        assert_eq!(
            self.run_start(),
            0,
            "redis-server restarts on port {}",
            self.port
        );
    }

    /// `redis://127.0.0.1:PORT/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}
