//! The Envoy ext_proc front end's settings: where its gRPC server listens and how long a
//! decision may take before the request goes on to the default model.

use std::net::SocketAddr;

use serde::Deserialize;

use super::TlsConfig;

/// The Envoy external-processing (ext_proc v3) gRPC server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtProcConfig {
    /// Start the gRPC server beside the HTTP server.
    pub enabled: bool,
    /// Its listen address.
    pub addr: SocketAddr,
    /// Milliseconds the decision may take; past it the request continues to the default model
    /// (counted in `semrouter_extproc_fallbacks_total{reason="timeout"}`). Keep it under the
    /// Envoy filter's `message_timeout`.
    pub decision_timeout_ms: u64,
    /// The model a request goes to when no decision is made in time (or the engine is still
    /// loading); absent: `scoring.default_model`, else the first of `models`.
    pub default_model: Option<String>,
    /// Most bytes of an upstream answer kept to observe it (usage, cache write); a longer
    /// answer still passes through whole, it is only neither stored nor counted.
    pub max_response_bytes: usize,
    /// TLS on the gRPC listener, with the same kind of files as `server.tls` (absent:
    /// plaintext HTTP/2).
    pub tls: Option<TlsConfig>,
}

impl Default for ExtProcConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            addr: SocketAddr::from(([0, 0, 0, 0], 50051)),
            decision_timeout_ms: 50,
            default_model: None,
            max_response_bytes: 4 << 20,
            tls: None,
        }
    }
}

impl ExtProcConfig {
    /// Checks ranges; `models` are the configured model names (for `default_model`).
    pub(super) fn validate(&self, key: &str, models: &[&str]) -> Result<(), (String, String)> {
        if self.decision_timeout_ms == 0 || self.decision_timeout_ms > 60_000 {
            return Err((
                format!("{key}.decision_timeout_ms"),
                "must be from 1 to 60000".into(),
            ));
        }
        if self.max_response_bytes < 1024 {
            return Err((
                format!("{key}.max_response_bytes"),
                "must be at least 1024".into(),
            ));
        }
        if let Some(tls) = &self.tls {
            for (name, path) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
                if !path.is_file() {
                    return Err((
                        format!("{key}.tls.{name}"),
                        format!("{} is not a file", path.display()),
                    ));
                }
            }
        }
        if let Some(model) = self
            .default_model
            .as_deref()
            .filter(|m| !models.contains(m))
        {
            return Err((
                format!("{key}.default_model"),
                format!("`{model}` is not one of `models`: {}", models.join(", ")),
            ));
        }
        Ok(())
    }
}
