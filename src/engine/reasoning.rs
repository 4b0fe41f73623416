//! Reasoning control: the level a request needs, and writing it into the body in the chosen
//! model's family's fields.
//!
//! Each family switches thinking through its own body fields (see `REFERENCE.md`): qwen3
//! `chat_template_kwargs.enable_thinking`, deepseek `chat_template_kwargs.thinking`, gpt-oss
//! and OpenAI o-series `reasoning_effort`. Families are field templates, so new ones are
//! configured without code. The router writes an explicit value both ways, because some chat
//! templates think by default, and removes every other family's fields so a request never
//! carries two contradictory switches.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::{FamilyTemplate, ReasoningLevel};

/// How hard a reasoning model should think.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    /// Brief reasoning.
    Low,
    /// The default.
    Medium,
    /// Thorough reasoning.
    High,
}

impl Effort {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "low" => Some(Effort::Low),
            "medium" => Some(Effort::Medium),
            "high" => Some(Effort::High),
            _ => None,
        }
    }

    /// Lowercase name as written into request bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }
}

/// The reasoning a request should get, before a model is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasoningPlan {
    /// Reasoning on or off.
    pub enabled: bool,
    /// Effort when on.
    pub effort: Effort,
    /// Thinking-token budget when on, for families that take one.
    pub budget_tokens: Option<u32>,
}

impl ReasoningPlan {
    /// No reasoning.
    pub const OFF: ReasoningPlan = ReasoningPlan {
        enabled: false,
        effort: Effort::Low,
        budget_tokens: None,
    };

    /// The plan of the highest level whose `min_need` the need reaches.
    pub fn for_need(levels: &[ReasoningLevel], need: f32) -> Self {
        levels
            .iter()
            .filter(|level| need as f64 >= level.min_need)
            .max_by(|a, b| a.min_need.total_cmp(&b.min_need))
            .map_or(Self::OFF, |level| ReasoningPlan {
                enabled: level.enabled,
                effort: level.effort.unwrap_or(Effort::Medium),
                budget_tokens: level.budget_tokens,
            })
    }
}

/// What was written for the chosen model, as reported in decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reasoning {
    /// Whether the model is asked to reason.
    pub enabled: bool,
    /// The effort written (or planned, for families without an effort field); `None` when off.
    pub effort: Option<Effort>,
    /// The thinking-token budget asked for; `None` when off or not set.
    pub budget_tokens: Option<u32>,
    /// The family whose fields were written.
    pub family: String,
}

impl Reasoning {
    /// `off`, the effort, or `on` for a family without one: the `x-semrouter-reasoning`
    /// header's value and the dashboard's.
    pub fn label(&self) -> &'static str {
        match (self.enabled, self.effort) {
            (true, Some(effort)) => effort.as_str(),
            (true, None) => "on",
            (false, _) => "off",
        }
    }
}

/// One field of a family template, parsed.
#[derive(Debug, Clone, PartialEq)]
enum FieldValue {
    /// A fixed JSON value.
    Literal(Value),
    /// The effort (`"{effort}"`); a caller's own valid effort at this path is kept.
    Effort,
    /// The budget as a number (`"{budget_tokens}"`); omitted when there is no budget.
    Budget,
}

impl FieldValue {
    fn parse(value: &Value) -> Self {
        match value.as_str() {
            Some("{effort}") => FieldValue::Effort,
            Some("{budget_tokens}") => FieldValue::Budget,
            _ => FieldValue::Literal(value.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Family {
    on: Vec<(Vec<String>, FieldValue)>,
    off: Vec<(Vec<String>, FieldValue)>,
}

impl Family {
    fn from_template(template: &FamilyTemplate) -> Self {
        let fields = |map: &BTreeMap<String, Value>| {
            map.iter()
                .map(|(path, value)| {
                    (
                        path.split('.').map(str::to_string).collect(),
                        FieldValue::parse(value),
                    )
                })
                .collect()
        };
        Family {
            on: fields(&template.on),
            off: fields(&template.off),
        }
    }

    fn can_reason(&self) -> bool {
        !self.on.is_empty()
    }
}

/// Why a family configuration is unusable.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FamilyError {
    /// A configured family redefines a built-in one.
    #[error("`{0}` is a built-in family and cannot be redefined")]
    Builtin(String),
    /// A field path is empty or has an empty segment.
    #[error("family `{family}`: field path `{path}` is not a dotted path")]
    BadPath {
        /// The family.
        family: String,
        /// The path.
        path: String,
    },
}

/// The built-in families, as templates.
fn builtin_templates() -> BTreeMap<String, FamilyTemplate> {
    let template = |on: Value, off: Value| {
        let map = |v: Value| match v {
            Value::Object(m) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        FamilyTemplate {
            on: map(on),
            off: map(off),
        }
    };
    BTreeMap::from([
        ("none".to_string(), FamilyTemplate::default()),
        (
            "qwen3".to_string(),
            template(
                json!({"chat_template_kwargs.enable_thinking": true}),
                json!({"chat_template_kwargs.enable_thinking": false}),
            ),
        ),
        (
            "deepseek".to_string(),
            template(
                json!({"chat_template_kwargs.thinking": true}),
                json!({"chat_template_kwargs.thinking": false}),
            ),
        ),
        // gpt-oss has no off: the lowest effort is the closest.
        (
            "gpt-oss".to_string(),
            template(
                json!({"reasoning_effort": "{effort}"}),
                json!({"reasoning_effort": "low"}),
            ),
        ),
    ])
}

/// Every family's fields, resolved once per configuration.
#[derive(Debug, Clone)]
pub struct Families {
    families: BTreeMap<String, Family>,
    /// Every path any family writes: removed before a family writes its own.
    owned: BTreeSet<Vec<String>>,
}

impl Families {
    /// The built-in families plus `configured` ones.
    pub fn new(configured: &BTreeMap<String, FamilyTemplate>) -> Result<Self, FamilyError> {
        let mut templates = builtin_templates();
        for (name, template) in configured {
            if templates.contains_key(name) {
                return Err(FamilyError::Builtin(name.clone()));
            }
            for path in template.on.keys().chain(template.off.keys()) {
                if path.split('.').any(str::is_empty) {
                    return Err(FamilyError::BadPath {
                        family: name.clone(),
                        path: path.clone(),
                    });
                }
            }
            templates.insert(name.clone(), template.clone());
        }
        let families: BTreeMap<String, Family> = templates
            .iter()
            .map(|(n, t)| (n.clone(), Family::from_template(t)))
            .collect();
        let owned = families
            .values()
            .flat_map(|f| f.on.iter().chain(&f.off).map(|(path, _)| path.clone()))
            .collect();
        Ok(Self { families, owned })
    }

    /// Whether `name` is a known family.
    pub fn contains(&self, name: &str) -> bool {
        self.families.contains_key(name)
    }

    /// Whether requests to `family` can ask for reasoning at all.
    pub fn can_reason(&self, family: &str) -> bool {
        self.families.get(family).is_some_and(Family::can_reason)
    }

    /// Sets `model` and `family`'s reasoning fields for `plan` in `body`, after removing every
    /// family's fields. A caller's own valid effort is kept where the family takes an effort.
    pub fn rewrite(
        &self,
        body: &mut Map<String, Value>,
        model: &str,
        family: &str,
        plan: ReasoningPlan,
    ) -> Reasoning {
        body.insert("model".into(), Value::String(model.to_string()));
        let Some(fields) = self.families.get(family) else {
            return Reasoning {
                enabled: false,
                effort: None,
                budget_tokens: None,
                family: family.to_string(),
            };
        };
        let enabled = plan.enabled && fields.can_reason();
        let chosen = if enabled { &fields.on } else { &fields.off };

        let mut caller_effort = None;
        for path in &self.owned {
            if let Some(old) = remove_path(body, path) {
                if chosen
                    .iter()
                    .any(|(p, v)| p == path && *v == FieldValue::Effort)
                {
                    caller_effort = old.as_str().and_then(Effort::parse);
                }
            }
        }
        let effort = caller_effort.unwrap_or(plan.effort);
        let budget = plan.budget_tokens.filter(|_| enabled);
        for (path, value) in chosen {
            let value = match value {
                FieldValue::Literal(v) => v.clone(),
                FieldValue::Effort => Value::String(effort.as_str().into()),
                FieldValue::Budget => match budget {
                    Some(b) => Value::from(b),
                    None => continue,
                },
            };
            set_path(body, path, value);
        }
        Reasoning {
            enabled,
            effort: enabled.then_some(effort),
            budget_tokens: budget,
            family: family.to_string(),
        }
    }
}

/// Removes the value at `path`, pruning objects it leaves empty. Returns the removed value.
fn remove_path(body: &mut Map<String, Value>, path: &[String]) -> Option<Value> {
    match path {
        [] => None,
        [last] => body.remove(last),
        [first, rest @ ..] => {
            let Some(Value::Object(child)) = body.get_mut(first) else {
                return None;
            };
            let removed = remove_path(child, rest);
            if removed.is_some() && child.is_empty() {
                body.remove(first);
            }
            removed
        }
    }
}

/// Sets `value` at `path`, creating objects on the way; a non-object in the way is replaced,
/// because the router's field must win.
fn set_path(body: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            body.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let child = body
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(map) = child {
                set_path(map, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn builtin() -> Families {
        Families::new(&BTreeMap::new()).unwrap()
    }

    const HIGH: ReasoningPlan = ReasoningPlan {
        enabled: true,
        effort: Effort::High,
        budget_tokens: Some(8192),
    };

    #[test]
    fn qwen3_gets_an_explicit_switch_both_ways() {
        let f = builtin();
        let mut b = body(json!({"model": "auto", "messages": []}));
        let r = f.rewrite(&mut b, "qwen3-8b", "qwen3", ReasoningPlan::OFF);
        assert_eq!(b["model"], "qwen3-8b");
        assert_eq!(b["chat_template_kwargs"], json!({"enable_thinking": false}));
        assert!(!r.enabled && r.effort.is_none());
        let r = f.rewrite(&mut b, "qwen3-8b", "qwen3", HIGH);
        assert_eq!(b["chat_template_kwargs"], json!({"enable_thinking": true}));
        assert_eq!(
            (r.enabled, r.effort, r.budget_tokens),
            (true, Some(Effort::High), Some(8192))
        );
    }

    #[test]
    fn deepseek_keeps_other_template_kwargs_and_drops_foreign_switches() {
        let mut b = body(
            json!({"chat_template_kwargs": {"enable_thinking": true, "custom": 1}, "reasoning_effort": "high"}),
        );
        builtin().rewrite(&mut b, "deepseek-v3.1", "deepseek", HIGH);
        assert_eq!(
            b["chat_template_kwargs"],
            json!({"custom": 1, "thinking": true})
        );
        assert!(!b.contains_key("reasoning_effort"));
    }

    #[test]
    fn gpt_oss_keeps_the_callers_effort_when_reasoning() {
        let f = builtin();
        let mut b =
            body(json!({"reasoning_effort": "low", "chat_template_kwargs": {"thinking": true}}));
        let r = f.rewrite(&mut b, "gpt-oss-120b", "gpt-oss", HIGH);
        assert_eq!(b["reasoning_effort"], "low");
        assert_eq!(r.effort, Some(Effort::Low));
        assert!(!b.contains_key("chat_template_kwargs"));
        let mut b = body(json!({}));
        let r = f.rewrite(&mut b, "gpt-oss-120b", "gpt-oss", ReasoningPlan::OFF);
        assert_eq!(b["reasoning_effort"], "low");
        assert!(!r.enabled);
    }

    #[test]
    fn family_none_never_reasons_and_writes_nothing() {
        let mut b = body(json!({"chat_template_kwargs": {"enable_thinking": true}}));
        let r = builtin().rewrite(&mut b, "llama", "none", HIGH);
        assert!(!r.enabled);
        assert_eq!(r.effort, None);
        assert_eq!(b, body(json!({"model": "llama"})));
    }

    #[test]
    fn configured_families_write_their_template_with_a_numeric_budget() {
        let template: FamilyTemplate = serde_json::from_value(json!({
            "on": {"thinking.type": "enabled", "thinking.budget_tokens": "{budget_tokens}"},
            "off": {"thinking.type": "disabled"}
        }))
        .unwrap();
        let f = Families::new(&BTreeMap::from([("claude-like".to_string(), template)])).unwrap();
        let mut b = body(json!({"chat_template_kwargs": {"thinking": false}}));
        let r = f.rewrite(&mut b, "m", "claude-like", HIGH);
        assert_eq!(
            b,
            body(json!({"model": "m", "thinking": {"type": "enabled", "budget_tokens": 8192}}))
        );
        assert_eq!(r.budget_tokens, Some(8192));
        // Another family's fields go when switching; no budget means no budget field.
        let plan = ReasoningPlan {
            budget_tokens: None,
            ..HIGH
        };
        f.rewrite(&mut b, "m", "claude-like", plan);
        assert_eq!(b["thinking"], json!({"type": "enabled"}));
        f.rewrite(&mut b, "q", "qwen3", plan);
        assert_eq!(
            b,
            body(json!({"model": "q", "chat_template_kwargs": {"enable_thinking": true}}))
        );
    }

    #[test]
    fn builtin_names_cannot_be_redefined_and_paths_are_checked() {
        let t = FamilyTemplate::default();
        assert!(matches!(
            Families::new(&BTreeMap::from([("qwen3".to_string(), t.clone())])),
            Err(FamilyError::Builtin(_))
        ));
        let bad = FamilyTemplate {
            on: BTreeMap::from([("a..b".to_string(), json!(true))]),
            off: BTreeMap::new(),
        };
        assert!(matches!(
            Families::new(&BTreeMap::from([("x".to_string(), bad)])),
            Err(FamilyError::BadPath { .. })
        ));
    }

    #[test]
    fn the_highest_reached_level_applies() {
        let levels = [
            ReasoningLevel {
                min_need: 0.0,
                enabled: false,
                effort: None,
                budget_tokens: None,
            },
            ReasoningLevel {
                min_need: 0.5,
                enabled: true,
                effort: Some(Effort::Low),
                budget_tokens: Some(1024),
            },
            ReasoningLevel {
                min_need: 0.8,
                enabled: true,
                effort: Some(Effort::High),
                budget_tokens: None,
            },
        ];
        assert!(!ReasoningPlan::for_need(&levels, 0.2).enabled);
        assert_eq!(
            ReasoningPlan::for_need(&levels, 0.5).budget_tokens,
            Some(1024)
        );
        assert_eq!(ReasoningPlan::for_need(&levels, 0.9).effort, Effort::High);
        assert_eq!(ReasoningPlan::for_need(&[], 0.9), ReasoningPlan::OFF);
    }
}
