//! Reading the configuration from a file (or the compiled-in default) and the environment.

use std::path::Path;

use config::{Environment, File, FileFormat};

use super::Config;

/// The default configuration, compiled into the binary so `semrouter serve` needs no file.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/semrouter.yaml");

/// Why a configuration was refused. The message names the offending key and, when it is
/// written in the file, its line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed.
    #[error("config {origin}{}: {}{message}", at_line(*.line), key_prefix(.key.as_deref()))]
    Parse {
        /// File path, or "built-in default".
        origin: String,
        /// The key at fault, when the parser named one.
        key: Option<String>,
        /// Where that key is written (1-based), when found in the file.
        line: Option<usize>,
        /// Parser message.
        message: String,
    },
    /// A key has a value of the right type but not an acceptable one.
    #[error("config {origin}{}: key `{key}`: {message}", at_line(*.line))]
    Invalid {
        /// File path, or "built-in default".
        origin: String,
        /// Dotted key path, e.g. `models[1].quality.law`.
        key: String,
        /// Where that key is written (1-based), when found in the file.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The dotted key at fault, when known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Parse { key, .. } => key.as_deref(),
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }

    /// The reason alone, without the origin, key and line.
    pub fn reason(&self) -> &str {
        match self {
            ConfigError::Parse { message, .. } | ConfigError::Invalid { message, .. } => message,
        }
    }
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

fn key_prefix(key: Option<&str>) -> String {
    key.map(|k| format!("key `{k}`: ")).unwrap_or_default()
}

/// Keys whose value is a list of scalars: from the environment they take a comma-separated
/// list (`SEMROUTER__ROUTING__AUTO_MODELS=auto,router`). Lists of sections (`models`,
/// `policies`, ...) can only be written in the file.
const LIST_KEYS: [&str; 4] = ["server.decision_headers", "routing.auto_models", "tools.always_keep", "embedding.vllm.same_model_ids"];

/// Loads `path` (or the built-in default when `None`), applies `SEMROUTER__*` environment
/// overrides, and validates the result.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Parse {
                origin: origin.clone(),
                key: None,
                line: None,
                message: format!("cannot read: {e}"),
            })?;
            load_str(&text, &origin)
        }
        None => load_str(DEFAULT_CONFIG, "built-in default"),
    }
}

/// Parses YAML `text` (with environment overrides) and validates it; `origin` names it in errors.
pub fn load_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let parse_error = |message: String| ConfigError::Parse {
        origin: origin.to_string(),
        key: None,
        line: None,
        message,
    };
    let layered = config::Config::builder()
        .add_source(File::from_str(text, FileFormat::Yaml))
        .add_source(
            LIST_KEYS.iter().fold(
                Environment::with_prefix("SEMROUTER")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(","),
                |env, key| env.with_list_parse_key(key),
            ),
        )
        .build()
        .map_err(|e| parse_error(e.to_string()))?;
    let config: Config = serde_path_to_error::deserialize(layered).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path.is_empty() || path == "." {
            parse_error(inner)
        } else {
            // A value from the environment is not in the file: no line to point at.
            let line = if inner.ends_with("in the environment") { None } else { super::locate::line_of(text, &path) };
            ConfigError::Parse {
                origin: origin.to_string(),
                line,
                key: Some(path),
                message: inner,
            }
        }
    })?;
    super::validate::validate(&config).map_err(|(key, message)| ConfigError::Invalid {
        origin: origin.to_string(),
        line: super::locate::line_of(text, &key),
        key,
        message,
    })?;
    Ok(config)
}
