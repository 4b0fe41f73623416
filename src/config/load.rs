//! Reading the configuration from a file (or the compiled-in default) and the environment.

use std::path::Path;

use config::{Environment, File, FileFormat};

use super::Config;

/// The default configuration, compiled into the binary so `semrouter serve` needs no file.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/semrouter.yaml");

/// Why a configuration was refused. The message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed.
    #[error("config {origin}: {message}")]
    Parse {
        /// File path, or "built-in default".
        origin: String,
        /// Parser message.
        message: String,
    },
    /// A key has a value of the right type but not an acceptable one.
    #[error("config {origin}: key `{key}`: {message}")]
    Invalid {
        /// File path, or "built-in default".
        origin: String,
        /// Dotted key path, e.g. `models[1].quality.law`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Loads `path` (or the built-in default when `None`), applies `SEMROUTER__*` environment
/// overrides, and validates the result.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Parse {
                origin: origin.clone(),
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
        message,
    };
    let layered = config::Config::builder()
        .add_source(File::from_str(text, FileFormat::Yaml))
        .add_source(
            Environment::with_prefix("SEMROUTER")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .map_err(|e| parse_error(e.to_string()))?;
    let config: Config = serde_path_to_error::deserialize(layered).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path.is_empty() || path == "." {
            parse_error(inner)
        } else {
            parse_error(format!("key `{path}`: {inner}"))
        }
    })?;
    super::validate::validate(&config).map_err(|(key, message)| ConfigError::Invalid {
        origin: origin.to_string(),
        key,
        message,
    })?;
    Ok(config)
}
