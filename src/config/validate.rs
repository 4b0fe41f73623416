//! Checks that serde cannot express: ranges, cross references, completeness.
//! Each failure is `(key, message)`, so the error names the key.

use std::collections::HashSet;

use crate::categories::Category;
use crate::config::Fallback;
use crate::engine::policy::{Policies, PolicyScope};
use crate::engine::reasoning::Families;
use crate::engine::signals::pii::{PiiDetector, PiiType};
use crate::engine::signals::KeywordRules;

use semrouter_vllm::FallbackMode as VllmFallback;

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
    if server.max_in_flight == 0 || server.max_in_flight > 1_000_000 {
        return Err(invalid("server.max_in_flight", "must be from 1 to 1000000"));
    }
    let token_env = &server.admin.token_env;
    if token_env.is_empty()
        || !token_env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(invalid(
            "server.admin.token_env",
            "must name an environment variable (letters, digits, `_`)",
        ));
    }
    if let Some(tls) = &server.tls {
        for (key, path) in [
            ("server.tls.cert_file", &tls.cert_file),
            ("server.tls.key_file", &tls.key_file),
        ] {
            if !path.is_file() {
                return Err(invalid(key, format!("{} is not a file", path.display())));
            }
        }
    }
    if server.reload.poll_interval_ms < 100 {
        return Err(invalid(
            "server.reload.poll_interval_ms",
            "must be at least 100",
        ));
    }

    match config.embedding.backend {
        EmbeddingBackend::Onnx => {
            let onnx = config.embedding.onnx.as_ref().ok_or_else(|| {
                invalid(
                    "embedding.onnx",
                    "is required when embedding.backend is `onnx`",
                )
            })?;
            onnx.validate("embedding.onnx")
                .map_err(|e| (e.key, e.message))?;
        }
        EmbeddingBackend::Vllm => {
            let vllm = config.embedding.vllm.as_ref().ok_or_else(|| {
                invalid(
                    "embedding.vllm",
                    "is required when embedding.backend is `vllm`",
                )
            })?;
            vllm.validate("embedding.vllm")
                .map_err(|e| (e.key, e.message))?;
            match (vllm.fallback, &config.embedding.onnx) {
                (VllmFallback::Onnx, None) => {
                    return Err(invalid(
                        "embedding.onnx",
                        "is required when embedding.vllm.fallback is `onnx` (the local encoder of the same model)",
                    ))
                }
                (VllmFallback::Onnx, Some(onnx)) => onnx.validate("embedding.onnx").map_err(|e| (e.key, e.message))?,
                (VllmFallback::Degraded | VllmFallback::Error, _) => {}
            }
        }
    }

    let classifier = &config.classifier;
    match classifier.kind {
        ClassifierKind::Linear => {
            if classifier.head.is_none() {
                return Err(invalid(
                    "classifier.head",
                    "is required when classifier.kind is `linear`",
                ));
            }
        }
        ClassifierKind::Onnx => {
            let onnx = classifier.onnx.as_ref().ok_or_else(|| {
                invalid(
                    "classifier.onnx",
                    "is required when classifier.kind is `onnx`",
                )
            })?;
            onnx.validate("classifier.onnx")
                .map_err(|e| (e.key, e.message))?;
            if classifier.labels.is_none() {
                return Err(invalid(
                    "classifier.labels",
                    "is required when classifier.kind is `onnx` (the model's config.json)",
                ));
            }
        }
    }

    let routing = &config.routing;
    if routing.auto_models.is_empty() {
        return Err(invalid(
            "routing.auto_models",
            "must list at least one name, e.g. `auto`",
        ));
    }
    for (i, name) in routing.auto_models.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(invalid(
                format!("routing.auto_models[{i}]"),
                "must not be empty",
            ));
        }
    }
    if routing.tenant_header.trim().is_empty() {
        return Err(invalid("routing.tenant_header", "must not be empty"));
    }
    let families = Families::new(&config.reasoning.families)
        .map_err(|e| invalid("reasoning.families", e.to_string()))?;
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
            return Err(invalid(
                format!("{key}.name"),
                format!("`{}` is configured twice", model.name),
            ));
        }
        if routing.auto_models.contains(&model.name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("`{}` is also in routing.auto_models", model.name),
            ));
        }
        for (field, value) in [
            ("input_per_million", model.price.input_per_million),
            ("output_per_million", model.price.output_per_million),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid(
                    format!("{key}.price.{field}"),
                    "must be a finite number of 0 or more",
                ));
            }
        }
        let mut covered = HashSet::new();
        for (name, &score) in &model.quality {
            let qkey = format!("{key}.quality.{name}");
            if !(score.is_finite() && (0.0..=1.0).contains(&score)) {
                return Err(invalid(qkey, "must be between 0 and 1"));
            }
            if name != "default" {
                let category = Category::parse(name)
                    .ok_or_else(|| invalid(qkey.clone(), unknown_category(name)))?;
                if !covered.insert(category) {
                    return Err(invalid(qkey, format!("`{category}` is listed twice")));
                }
            }
        }
        if !families.contains(&model.reasoning_family) {
            return Err(invalid(
                format!("{key}.reasoning_family"),
                format!("`{}` is neither built in (qwen3, deepseek, gpt-oss, none) nor in reasoning.families", model.reasoning_family),
            ));
        }
        if model.context_window == Some(0) {
            return Err(invalid(format!("{key}.context_window"), "must be positive"));
        }
        if !(model.latency_prior_ms.is_finite() && model.latency_prior_ms >= 0.0) {
            return Err(invalid(
                format!("{key}.latency_prior_ms"),
                "must be a finite number of 0 or more",
            ));
        }
        for (j, t) in model.pii_allowed.iter().flatten().enumerate() {
            if !t.eq_ignore_ascii_case("any") {
                PiiType::parse(t)
                    .map_err(|e| invalid(format!("{key}.pii_allowed[{j}]"), e.to_string()))?;
            }
        }
        if let Some(upstream) = &model.upstream {
            upstream.validate(&format!("{key}.upstream"))?;
        }
        if model.tenants.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                format!("{key}.tenants"),
                "must list at least one tenant (omit it for all)",
            ));
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
    config.cache.validate("cache")?;
    config.proxy.validate()?;
    let model_names: Vec<&str> = config.models.iter().map(|m| m.name.as_str()).collect();
    config.extproc.validate("extproc", &model_names)?;
    config.telemetry.validate("telemetry")?;
    config.dashboard.validate("dashboard")?;
    validate_decision(config)
}

/// Signals, reasoning, scoring, tools and policies.
fn validate_decision(config: &Config) -> Result<(), Invalid> {
    let unit = |key: String, v: f64| -> Result<(), Invalid> {
        if v.is_finite() && (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(invalid(key, "must be between 0 and 1"))
        }
    };
    let non_negative = |key: String, v: f64| -> Result<(), Invalid> {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(invalid(key, "must be a finite number of 0 or more"))
        }
    };

    if let Some(j) = &config.signals.jailbreak {
        unit("signals.jailbreak.threshold".into(), j.threshold)?;
    }
    let mut rule_names = HashSet::new();
    for (i, rule) in config.signals.keywords.iter().enumerate() {
        if rule.name.trim().is_empty() || !rule_names.insert(rule.name.as_str()) {
            return Err(invalid(
                format!("signals.keywords[{i}].name"),
                "must be non-empty and unique",
            ));
        }
    }
    KeywordRules::new(&config.signals.keywords)
        .map_err(|e| invalid("signals.keywords", e.to_string()))?;

    let r = &config.reasoning;
    for (field, w) in [
        ("complexity", r.weights.complexity),
        ("domain", r.weights.domain),
        ("uncertainty", r.weights.uncertainty),
    ] {
        non_negative(format!("reasoning.weights.{field}"), w)?;
    }
    for (label, &v) in &r.complexity_scores {
        unit(format!("reasoning.complexity_scores.{label}"), v)?;
    }
    for (name, &v) in &r.category_prior {
        if name != "default" && Category::parse(name).is_none() {
            return Err(invalid(
                format!("reasoning.category_prior.{name}"),
                unknown_category(name),
            ));
        }
        unit(format!("reasoning.category_prior.{name}"), v)?;
    }
    if r.levels.is_empty() {
        return Err(invalid("reasoning.levels", "must list at least one level"));
    }
    for (i, level) in r.levels.iter().enumerate() {
        unit(format!("reasoning.levels[{i}].min_need"), level.min_need)?;
        if level.budget_tokens == Some(0) {
            return Err(invalid(
                format!("reasoning.levels[{i}].budget_tokens"),
                "must be positive",
            ));
        }
    }

    let s = &config.scoring;
    let weights = std::iter::once(("scoring.weights".to_string(), s.weights)).chain(
        s.preferences
            .iter()
            .map(|(n, w)| (format!("scoring.preferences.{n}"), *w)),
    );
    for (key, w) in weights {
        for (field, v) in [
            ("quality", w.quality),
            ("cost", w.cost),
            ("latency", w.latency),
            ("load", w.load),
        ] {
            non_negative(format!("{key}.{field}"), v)?;
        }
        if w.total() <= 0.0 {
            return Err(invalid(key, "needs at least one positive weight"));
        }
    }
    if s.expected_completion_tokens == 0 {
        return Err(invalid(
            "scoring.expected_completion_tokens",
            "must be positive",
        ));
    }
    if !(s.reasoning_multiplier.is_finite() && s.reasoning_multiplier >= 1.0) {
        return Err(invalid(
            "scoring.reasoning_multiplier",
            "must be at least 1",
        ));
    }
    if !(s.latency_alpha > 0.0 && s.latency_alpha <= 1.0) {
        return Err(invalid("scoring.latency_alpha", "must be in (0, 1]"));
    }
    if let Some(v) = s.max_latency_ms {
        non_negative("scoring.max_latency_ms".into(), v)?;
    }
    if let Some(v) = s.max_latency_p95_ms {
        non_negative("scoring.max_latency_p95_ms".into(), v)?;
    }
    if let Some(v) = s.max_cost {
        non_negative("scoring.max_cost".into(), v)?;
    }
    match (&s.default_model, s.fallback) {
        (None, Fallback::DefaultModel) => {
            return Err(invalid(
                "scoring.default_model",
                "is required when scoring.fallback is `default_model`",
            ))
        }
        (Some(m), _) if !config.models.iter().any(|c| &c.name == m) => {
            return Err(invalid(
                "scoring.default_model",
                format!("`{m}` is not a configured model"),
            ));
        }
        _ => {}
    }

    let t = &config.tools;
    if t.top_k == 0 {
        return Err(invalid("tools.top_k", "must be at least 1"));
    }
    if !(t.threshold.is_finite() && (-1.0..=1.0).contains(&t.threshold)) {
        return Err(invalid("tools.threshold", "must be between -1 and 1"));
    }
    if t.cache_entries == 0 {
        return Err(invalid("tools.cache_entries", "must be at least 1"));
    }

    if let Some(pii) = &config.signals.pii {
        if let Some(model) = &pii.model {
            model
                .validate("signals.pii.model")
                .map_err(|e| (e.key, e.message))?;
            if pii.labels.is_none() {
                return Err(invalid(
                    "signals.pii.labels",
                    "is required with signals.pii.model (the model's config.json)",
                ));
            }
        }
        PiiDetector::new(None, pii.detector.clone())
            .map_err(|e| invalid("signals.pii.detector", e.to_string()))?;
    }

    // The heads' labels are checked again when they are loaded.
    let policies = Policies::new(
        &config.policies,
        &PolicyScope {
            models: config.models.iter().map(|m| m.name.as_str()).collect(),
            has_complexity: config.signals.complexity.is_some(),
            complexity_labels: None,
            has_jailbreak: config.signals.jailbreak.is_some(),
            keywords: config
                .signals
                .keywords
                .iter()
                .map(|k| k.name.as_str())
                .collect(),
            preferences: s.preference_names().into_iter().collect(),
        },
    )
    .map_err(|e| (e.key, e.message))?;
    if config.signals.pii.is_none() {
        if let Some(i) = config.models.iter().position(|m| {
            m.pii_allowed
                .as_ref()
                .is_some_and(|t| !t.iter().any(|t| t.eq_ignore_ascii_case("any")))
        }) {
            return Err(invalid(
                format!("models[{i}].pii_allowed"),
                "needs personal-data detection: add `signals.pii`",
            ));
        }
        if policies.needs_pii() {
            return Err(invalid(
                "policies",
                "a rule tests `pii` or masks: add `signals.pii`",
            ));
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

#[cfg(test)]
mod tests {
    use crate::config::{load_str, EmbeddingBackend, DEFAULT_CONFIG};

    const ONNX: &str = "  backend: onnx\n";

    fn with_embedding(section: &str) -> Result<crate::config::Config, String> {
        load_str(&DEFAULT_CONFIG.replacen(ONNX, section, 1), "test").map_err(|e| e.to_string())
    }

    #[test]
    fn the_admission_limit_is_read_and_checked_by_key() {
        assert_eq!(
            load_str(DEFAULT_CONFIG, "test")
                .unwrap()
                .server
                .max_in_flight,
            1024
        );
        let c = load_str(
            &DEFAULT_CONFIG.replacen("max_in_flight: 1024", "max_in_flight: 8", 1),
            "test",
        )
        .unwrap();
        assert_eq!(c.server.max_in_flight, 8);
        let e = load_str(
            &DEFAULT_CONFIG.replacen("max_in_flight: 1024", "max_in_flight: 0", 1),
            "test",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("server.max_in_flight"), "{e}");
    }

    #[test]
    fn the_vllm_backend_is_selected_and_checked_by_key() {
        let c =
            with_embedding("  backend: vllm\n  vllm:\n    base_url: http://h:8000\n    model: m\n")
                .unwrap();
        assert_eq!(c.embedding.backend, EmbeddingBackend::Vllm);
        assert_eq!(
            c.embedding.vllm.as_ref().map(|v| v.model.as_str()),
            Some("m")
        );

        let e = with_embedding("  backend: vllm\n").unwrap_err();
        assert!(
            e.contains("embedding.vllm") && e.contains("required"),
            "{e}"
        );
        let e = with_embedding(
            "  backend: vllm\n  vllm:\n    base_url: http://h:8000/v1\n    model: m\n",
        )
        .unwrap_err();
        assert!(e.contains("embedding.vllm.base_url"), "{e}");
        let e = with_embedding("  backend: vllm\n  vllm:\n    base_url: http://h:8000\n    model: m\n    api_key: sk-secret\n").unwrap_err();
        assert!(e.contains("api_key"), "a token in the file is refused: {e}");
        assert!(!e.contains("sk-secret"), "and not echoed: {e}");
    }

    #[test]
    fn the_onnx_fallback_needs_the_local_encoder() {
        let text = DEFAULT_CONFIG.replacen(ONNX, "  backend: vllm\n  vllm:\n    base_url: http://h:8000\n    model: m\n    fallback: onnx\n", 1);
        // Drop the `onnx:` block (every line indented under it).
        let start = text.find("  onnx:\n").unwrap();
        let end = text[start + 9..]
            .find("\n\n")
            .map_or(text.len(), |i| start + 9 + i);
        let without = format!("{}{}", &text[..start], &text[end + 1..]);
        let e = load_str(&without, "test")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("embedding.onnx") && e.contains("fallback"),
            "{e}"
        );
    }
}
