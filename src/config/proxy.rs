//! The OpenAI-compatible proxy's settings: where each model's upstream lives
//! (`models[].upstream`) and how long and how often the proxy tries (`proxy:`).

use serde::Deserialize;

/// A model's OpenAI-compatible chat endpoint (a vLLM deployment), called by the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The server root, e.g. `http://qwen3-8b:8000`; `/v1/chat/completions` is appended.
    pub base_url: String,
    /// The environment variable that holds the bearer token (the name, never the token).
    #[serde(default)]
    pub api_key_env: Option<String>,
}

impl UpstreamConfig {
    /// The chat-completions URL of this upstream.
    pub fn chat_url(&self) -> String {
        format!(
            "{}/v1/chat/completions",
            self.base_url.trim().trim_end_matches('/')
        )
    }
}

/// Timeouts and retries of `POST /v1/chat/completions` (docs/proxy.md). Every wait is bounded
/// so a stuck upstream never holds a client forever.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Longest wait for a TCP connection to an upstream; a failure moves to the next candidate.
    pub connect_timeout_ms: u64,
    /// Longest wait for the upstream's response headers (for a non-streamed answer that is the
    /// whole generation); past it the client gets 504.
    pub first_byte_timeout_ms: u64,
    /// Longest silence between two chunks of an answer; past it the answer ends in error.
    pub idle_timeout_ms: u64,
    /// Longest time for a whole answer, from the first attempt; past it the answer ends in error.
    pub total_timeout_ms: u64,
    /// Further candidates tried, in ranked order, after a connect error or a 5xx status
    /// before the first byte.
    pub max_retries: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 2_000,
            first_byte_timeout_ms: 120_000,
            idle_timeout_ms: 60_000,
            total_timeout_ms: 600_000,
            max_retries: 2,
        }
    }
}

type Invalid = (String, String);

impl ProxyConfig {
    /// Range checks, naming the key.
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        for (key, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("first_byte_timeout_ms", self.first_byte_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("total_timeout_ms", self.total_timeout_ms),
        ] {
            if value == 0 {
                return Err((format!("proxy.{key}"), "must be at least 1".into()));
            }
        }
        if self.first_byte_timeout_ms > self.total_timeout_ms {
            return Err((
                "proxy.first_byte_timeout_ms".into(),
                "must not exceed proxy.total_timeout_ms".into(),
            ));
        }
        if self.max_retries > 10 {
            return Err(("proxy.max_retries".into(), "must be at most 10".into()));
        }
        Ok(())
    }
}

impl UpstreamConfig {
    /// Shape checks of `models[i].upstream` (`key`); the token itself is read at start-up.
    pub(super) fn validate(&self, key: &str) -> Result<(), Invalid> {
        let url = self.base_url.trim();
        let bad = |message: String| Err((format!("{key}.base_url"), message));
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.len() <= "https://".len()
        {
            return bad(format!("`{url}` must be an http:// or https:// URL"));
        }
        if let Err(e) = reqwest::Url::parse(url) {
            return bad(format!("`{url}` is not a valid URL: {e}"));
        }
        if url.trim_end_matches('/').ends_with("/v1") {
            return bad(
                "is the server root; leave out `/v1` (`/v1/chat/completions` is appended)".into(),
            );
        }
        if let Some(var) = &self.api_key_env {
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err((
                    format!("{key}.api_key_env"),
                    "must name an environment variable (letters, digits, `_`), not hold the token"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(url: &str, key: Option<&str>) -> UpstreamConfig {
        UpstreamConfig {
            base_url: url.into(),
            api_key_env: key.map(String::from),
        }
    }

    #[test]
    fn upstreams_are_checked_by_key() {
        upstream("http://h:8000/", Some("QWEN_KEY"))
            .validate("models[0].upstream")
            .unwrap();
        assert_eq!(
            upstream("http://h:8000/", None).chat_url(),
            "http://h:8000/v1/chat/completions"
        );
        let key = |u: UpstreamConfig| u.validate("models[1].upstream").unwrap_err().0;
        assert_eq!(key(upstream("h:8000", None)), "models[1].upstream.base_url");
        assert_eq!(
            key(upstream("http://h:8000/v1", None)),
            "models[1].upstream.base_url"
        );
        assert_eq!(
            key(upstream("http://h:8000", Some("sk-abc.def"))),
            "models[1].upstream.api_key_env"
        );
    }

    #[test]
    fn the_default_file_documents_the_defaults_and_typos_are_refused() {
        let config = crate::config::load_str(crate::config::DEFAULT_CONFIG, "test").unwrap();
        assert_eq!(config.proxy, ProxyConfig::default());
        assert!(
            config.models.iter().all(|m| m.upstream.is_none()),
            "the example fleet has no upstreams"
        );
        let typo =
            crate::config::DEFAULT_CONFIG.replacen("\nproxy:\n", "\nproxy:\n  max_retry: 1\n", 1);
        assert_ne!(
            typo,
            crate::config::DEFAULT_CONFIG,
            "the default file has a top-level proxy: section"
        );
        let e = crate::config::load_str(&typo, "test")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains("proxy") && e.contains("max_retry"), "{e}");
    }

    #[test]
    fn timeouts_must_be_positive_and_ordered() {
        ProxyConfig::default().validate().unwrap();
        let zero = ProxyConfig {
            idle_timeout_ms: 0,
            ..ProxyConfig::default()
        };
        assert_eq!(zero.validate().unwrap_err().0, "proxy.idle_timeout_ms");
        let inverted = ProxyConfig {
            first_byte_timeout_ms: 10,
            total_timeout_ms: 5,
            ..ProxyConfig::default()
        };
        assert_eq!(
            inverted.validate().unwrap_err().0,
            "proxy.first_byte_timeout_ms"
        );
    }
}
