//! OpenTelemetry traces: whether spans are exported, where to, and how many traces are kept.

use serde::Deserialize;

/// Traces exported over OTLP/HTTP (protobuf) to a collector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Export spans at all. Off: no exporter runs and the stage spans are disabled callsites.
    pub enabled: bool,
    /// The collector's OTLP/HTTP traces URL (`http://HOST:4318/v1/traces`).
    pub otlp_endpoint: String,
    /// Share of new traces kept, from 0 to 1; a request that carries a `traceparent` follows
    /// its caller's sampling decision instead.
    pub sample_ratio: f64,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Milliseconds one export may take before it is abandoned.
    pub export_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            otlp_endpoint: "http://127.0.0.1:4318/v1/traces".to_string(),
            sample_ratio: 0.1,
            service_name: "semrouter".to_string(),
            export_timeout_ms: 10_000,
        }
    }
}

impl TelemetryConfig {
    /// Checks ranges and the endpoint's form.
    pub(super) fn validate(&self, key: &str) -> Result<(), (String, String)> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err((format!("{key}.sample_ratio"), "must be from 0 to 1".into()));
        }
        if !(self.otlp_endpoint.starts_with("http://")
            || self.otlp_endpoint.starts_with("https://"))
            || reqwest::Url::parse(&self.otlp_endpoint).is_err()
        {
            return Err((
                format!("{key}.otlp_endpoint"),
                format!("`{}` is not an http(s) URL", self.otlp_endpoint),
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err((format!("{key}.service_name"), "must not be empty".into()));
        }
        if self.export_timeout_ms == 0 || self.export_timeout_ms > 600_000 {
            return Err((
                format!("{key}.export_timeout_ms"),
                "must be from 1 to 600000".into(),
            ));
        }
        Ok(())
    }
}
