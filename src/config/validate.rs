//! Checks that serde cannot express: ranges, cross references, completeness.
//! Each failure is `(key, message)`, so the error names the key.

use std::collections::HashSet;

use crate::categories::Category;

use super::{ClassifierKind, Config, EmbeddingBackend};

type Invalid = (String, String);

fn invalid(key: impl Into<String>, message: impl Into<String>) -> Invalid {
    (key.into(), message.into())
}

/// Validates a parsed configuration as a whole.
pub(super) fn validate(config: &Config) -> Result<(), Invalid> {
    let server = &config.server;
    if server.max_body_bytes < 1024 {
        return Err(invalid("server.max_body_bytes", "must be at least 1024"));
    }
    if server.workers > 1024 {
        return Err(invalid("server.workers", "must be at most 1024"));
    }

    match config.embedding.backend {
        EmbeddingBackend::Onnx => {
            let onnx = config
                .embedding
                .onnx
                .as_ref()
                .ok_or_else(|| invalid("embedding.onnx", "is required when embedding.backend is `onnx`"))?;
            onnx.validate("embedding.onnx").map_err(|e| (e.key, e.message))?;
        }
    }

    let classifier = &config.classifier;
    match classifier.kind {
        ClassifierKind::Linear => {
            if classifier.head.is_none() {
                return Err(invalid("classifier.head", "is required when classifier.kind is `linear`"));
            }
        }
        ClassifierKind::Onnx => {
            let onnx = classifier
                .onnx
                .as_ref()
                .ok_or_else(|| invalid("classifier.onnx", "is required when classifier.kind is `onnx`"))?;
            onnx.validate("classifier.onnx").map_err(|e| (e.key, e.message))?;
            if classifier.labels.is_none() {
                return Err(invalid("classifier.labels", "is required when classifier.kind is `onnx` (the model's config.json)"));
            }
        }
    }

    let routing = &config.routing;
    if routing.auto_models.is_empty() {
        return Err(invalid("routing.auto_models", "must list at least one name, e.g. `auto`"));
    }
    for (i, name) in routing.auto_models.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(invalid(format!("routing.auto_models[{i}]"), "must not be empty"));
        }
    }
    let mut seen_categories = HashSet::new();
    for name in routing.categories.keys() {
        let category = Category::parse(name)
            .ok_or_else(|| invalid(format!("routing.categories.{name}"), unknown_category(name)))?;
        if !seen_categories.insert(category) {
            return Err(invalid(format!("routing.categories.{name}"), format!("`{category}` is listed twice")));
        }
    }

    if config.models.is_empty() {
        return Err(invalid("models", "must list at least one model"));
    }
    let mut names = HashSet::new();
    for (i, model) in config.models.iter().enumerate() {
        let key = format!("models[{i}]");
        if model.name.trim().is_empty() {
            return Err(invalid(format!("{key}.name"), "must not be empty"));
        }
        if !names.insert(model.name.as_str()) {
            return Err(invalid(format!("{key}.name"), format!("`{}` is configured twice", model.name)));
        }
        if routing.auto_models.contains(&model.name) {
            return Err(invalid(format!("{key}.name"), format!("`{}` is also in routing.auto_models", model.name)));
        }
        for (field, value) in [("input_per_million", model.price.input_per_million), ("output_per_million", model.price.output_per_million)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid(format!("{key}.price.{field}"), "must be a finite number of 0 or more"));
            }
        }
        let mut covered = HashSet::new();
        for (name, &score) in &model.quality {
            let qkey = format!("{key}.quality.{name}");
            if !(score.is_finite() && (0.0..=1.0).contains(&score)) {
                return Err(invalid(qkey, "must be between 0 and 1"));
            }
            if name != "default" {
                let category = Category::parse(name).ok_or_else(|| invalid(qkey.clone(), unknown_category(name)))?;
                if !covered.insert(category) {
                    return Err(invalid(qkey, format!("`{category}` is listed twice")));
                }
            }
        }
        if !model.quality.contains_key("default") {
            if let Some(missing) = Category::all().find(|c| !covered.contains(c)) {
                return Err(invalid(
                    format!("{key}.quality"),
                    format!("has no score for `{missing}`; give every category a score or add `default`"),
                ));
            }
        }
    }
    Ok(())
}

fn unknown_category(name: &str) -> String {
    format!(
        "`{name}` is not a category; expected one of: {}",
        crate::categories::CATEGORIES.join(", ")
    )
}
