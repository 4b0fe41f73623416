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
/// list (`SEMROUTER__ROUTING__AUTO_MODELS=auto,router`). Items of lists of sections (`models`,
/// `policies`, ...) are reached by index instead (see [`indexed_key`]).
const LIST_KEYS: [&str; 4] = [
    "server.decision_headers",
    "routing.auto_models",
    "tools.always_keep",
    "embedding.vllm.same_model_ids",
];

/// Environment variables read as config overrides start with this (`SEMROUTER__SERVER__WORKERS`).
const ENV_PREFIX: &str = "SEMROUTER__";

/// The config key of an override that indexes into a list of sections, as `config` writes it:
/// `SEMROUTER__MODELS__0__BASE_URL` is `models[0].base_url`, `SEMROUTER__MODELS__1__QUALITY__LAW`
/// is `models[1].quality.law`. `None` for a variable without a numeric segment (those go to
/// `Environment`).
fn indexed_key(name: &str) -> Option<String> {
    env_key(name).and_then(|(key, indexed)| indexed.then_some(key))
}

/// The config key a `SEMROUTER__*` variable sets, and whether it indexes into a list; `None`
/// for other variables and malformed names (an empty segment, or a leading index).
fn env_key(name: &str) -> Option<(String, bool)> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    let mut key = String::new();
    let mut indexed = false;
    for segment in rest.split("__") {
        if segment.is_empty() {
            return None;
        }
        if segment.bytes().all(|b| b.is_ascii_digit()) {
            if key.is_empty() {
                return None;
            }
            key.push('[');
            key.push_str(segment);
            key.push(']');
            indexed = true;
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(&segment.to_ascii_lowercase());
        }
    }
    Some((key, indexed))
}

/// Whether `key` (as validation names it, `models[1].quality.law`) or a section above it is
/// set by a `SEMROUTER__*` variable.
fn from_environment(key: &str) -> bool {
    std::env::vars()
        .filter_map(|(name, _)| env_key(&name))
        .any(|(env, _)| {
            key == env
                || key
                    .strip_prefix(env.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
}

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
    // Variables that index into a list of sections go in as overrides of that item's key; the
    // rest through `Environment`, which can only build maps.
    let (mut indexed, mut plain) = (Vec::new(), config::Map::new());
    for (name, value) in std::env::vars().filter(|(name, _)| name.starts_with(ENV_PREFIX)) {
        match indexed_key(&name) {
            Some(key) => indexed.push((key, name, value)),
            None => {
                plain.insert(name, value);
            }
        }
    }
    let mut builder = config::Config::builder()
        .add_source(File::from_str(text, FileFormat::Yaml))
        .add_source(
            LIST_KEYS.iter().fold(
                Environment::with_prefix("SEMROUTER")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .source(Some(plain)),
                |env, key| env.with_list_parse_key(key),
            ),
        );
    // The origin `Environment` gives its values, so errors say where the value came from.
    let origin_env = "the environment".to_string();
    for (key, name, value) in indexed {
        builder = builder
            .set_override(
                key.as_str(),
                config::Value::new(Some(&origin_env), config::ValueKind::String(value)),
            )
            .map_err(|e| parse_error(format!("{name}: {e}")))?;
    }
    let layered = builder.build().map_err(|e| parse_error(e.to_string()))?;
    let config: Config = serde_path_to_error::deserialize(layered).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path.is_empty() || path == "." {
            parse_error(inner)
        } else {
            // A value from the environment is not in the file: no line to point at.
            let line = if inner.ends_with("in the environment") || from_environment(&path) {
                None
            } else {
                super::locate::line_of(text, &path)
            };
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
        // A key set from the environment is not the file's line, even when the file has it.
        line: if from_environment(&key) {
            None
        } else {
            super::locate::line_of(text, &key)
        },
        key,
        message,
    })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::indexed_key;

    #[test]
    fn indexed_variables_name_the_list_item() {
        assert_eq!(
            indexed_key("SEMROUTER__MODELS__0__BASE_URL").as_deref(),
            Some("models[0].base_url")
        );
        assert_eq!(
            indexed_key("SEMROUTER__MODELS__12__QUALITY__LAW").as_deref(),
            Some("models[12].quality.law")
        );
        assert_eq!(
            indexed_key("SEMROUTER__REASONING__LEVELS__1__EFFORT").as_deref(),
            Some("reasoning.levels[1].effort")
        );
    }

    #[test]
    fn plain_and_malformed_variables_are_not_indexed() {
        assert_eq!(indexed_key("SEMROUTER__SERVER__WORKERS"), None);
        assert_eq!(indexed_key("SEMROUTER__0__NAME"), None);
        assert_eq!(indexed_key("SEMROUTER__MODELS____0"), None);
        assert_eq!(indexed_key("SEMROUTER_ADMIN_TOKEN"), None);
    }
}
