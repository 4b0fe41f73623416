//! Reasoning switches per model family, and writing them into the request body.
//!
//! Each family turns thinking on and off through a different field (see `REFERENCE.md`):
//! qwen3 `chat_template_kwargs.enable_thinking`, deepseek `chat_template_kwargs.thinking`,
//! gpt-oss and OpenAI o-series `reasoning_effort`. The router writes an explicit value both
//! ways, because some chat templates think by default, and removes the switches of other
//! families so a request never carries two contradictory ones.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a model's request body turns reasoning on and off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasoningFamily {
    /// The model cannot reason on request; nothing is written.
    #[default]
    None,
    /// `chat_template_kwargs.enable_thinking`.
    Qwen3,
    /// `chat_template_kwargs.thinking` (DeepSeek V3.1 on vLLM).
    Deepseek,
    /// `reasoning_effort` (gpt-oss, OpenAI o-series); there is no off, so off is `low`.
    GptOss,
}

impl ReasoningFamily {
    /// Whether requests to this family can ask for reasoning at all.
    pub fn can_reason(self) -> bool {
        self != ReasoningFamily::None
    }

    /// Whether the family takes an effort level rather than a switch.
    pub fn takes_effort(self) -> bool {
        self == ReasoningFamily::GptOss
    }
}

/// How hard a reasoning model should think.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// The reasoning part of a decision: what was asked of the model, and through which family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reasoning {
    /// Whether the model is asked to reason.
    pub enabled: bool,
    /// The effort written, for families that take one; `None` otherwise.
    pub effort: Option<Effort>,
    /// The family whose switch was written.
    pub family: ReasoningFamily,
}

/// Sets `model` and the reasoning switch of `family` in `body`, removing other families' switches.
/// Returns what was written. A caller's own `reasoning_effort` is kept for families that take
/// an effort when reasoning is on.
pub fn rewrite(body: &mut Map<String, Value>, model: &str, family: ReasoningFamily, enabled: bool, effort: Effort) -> Reasoning {
    body.insert("model".into(), Value::String(model.to_string()));
    let enabled = enabled && family.can_reason();

    // Remove switches that belong to other families.
    if let Some(Value::Object(kwargs)) = body.get_mut("chat_template_kwargs") {
        if family != ReasoningFamily::Qwen3 {
            kwargs.remove("enable_thinking");
        }
        if family != ReasoningFamily::Deepseek {
            kwargs.remove("thinking");
        }
        if kwargs.is_empty() {
            body.remove("chat_template_kwargs");
        }
    }
    let caller_effort = body.get("reasoning_effort").and_then(Value::as_str).and_then(Effort::parse);
    if family != ReasoningFamily::GptOss {
        body.remove("reasoning_effort");
    }

    let written_effort = match family {
        ReasoningFamily::None => None,
        ReasoningFamily::Qwen3 => {
            set_template_kwarg(body, "enable_thinking", enabled);
            None
        }
        ReasoningFamily::Deepseek => {
            set_template_kwarg(body, "thinking", enabled);
            None
        }
        ReasoningFamily::GptOss => {
            let effort = if enabled { caller_effort.unwrap_or(effort) } else { Effort::Low };
            body.insert("reasoning_effort".into(), Value::String(effort.as_str().into()));
            Some(effort)
        }
    };
    Reasoning {
        enabled,
        effort: if enabled { written_effort.or(Some(effort)) } else { written_effort },
        family,
    }
}

fn set_template_kwarg(body: &mut Map<String, Value>, key: &str, value: bool) {
    let kwargs = body
        .entry("chat_template_kwargs")
        .or_insert_with(|| Value::Object(Map::new()));
    if !kwargs.is_object() {
        // A non-object value cannot carry the switch; the router's field wins.
        *kwargs = Value::Object(Map::new());
    }
    if let Value::Object(map) = kwargs {
        map.insert(key.into(), Value::Bool(value));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn qwen3_gets_an_explicit_switch_both_ways() {
        let mut b = body(json!({"model": "auto", "messages": []}));
        let r = rewrite(&mut b, "qwen3-8b", ReasoningFamily::Qwen3, false, Effort::Medium);
        assert_eq!(b["model"], "qwen3-8b");
        assert_eq!(b["chat_template_kwargs"], json!({"enable_thinking": false}));
        assert!(!r.enabled);
        let r = rewrite(&mut b, "qwen3-8b", ReasoningFamily::Qwen3, true, Effort::High);
        assert_eq!(b["chat_template_kwargs"], json!({"enable_thinking": true}));
        assert_eq!((r.enabled, r.effort), (true, Some(Effort::High)));
    }

    #[test]
    fn deepseek_keeps_other_template_kwargs_and_drops_foreign_switches() {
        let mut b = body(json!({"chat_template_kwargs": {"enable_thinking": true, "custom": 1}, "reasoning_effort": "high"}));
        rewrite(&mut b, "deepseek-v3.1", ReasoningFamily::Deepseek, true, Effort::Medium);
        assert_eq!(b["chat_template_kwargs"], json!({"custom": 1, "thinking": true}));
        assert!(!b.contains_key("reasoning_effort"));
    }

    #[test]
    fn gpt_oss_keeps_the_callers_effort_when_reasoning() {
        let mut b = body(json!({"reasoning_effort": "low", "chat_template_kwargs": {"thinking": true}}));
        let r = rewrite(&mut b, "gpt-oss-120b", ReasoningFamily::GptOss, true, Effort::High);
        assert_eq!(b["reasoning_effort"], "low");
        assert_eq!(r.effort, Some(Effort::Low));
        assert!(!b.contains_key("chat_template_kwargs"));
        let mut b = body(json!({}));
        let r = rewrite(&mut b, "gpt-oss-120b", ReasoningFamily::GptOss, false, Effort::High);
        assert_eq!(b["reasoning_effort"], "low");
        assert!(!r.enabled);
    }

    #[test]
    fn family_none_never_reasons_and_writes_nothing() {
        let mut b = body(json!({"chat_template_kwargs": {"enable_thinking": true}}));
        let r = rewrite(&mut b, "llama", ReasoningFamily::None, true, Effort::High);
        assert!(!r.enabled);
        assert_eq!(r.effort, None);
        assert_eq!(b, body(json!({"model": "llama"})));
    }
}
