//! A chat request as the cache sees it: its scope, its exact key, and the last user text.
//!
//! Built once per request from the raw OpenAI body ([`crate::openai::ChatRequest::body`]),
//! before routing rewrites it, so the scope reflects what the client asked for.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::exact::{exact_key, normalize_text, ExactKey};
use super::guard::GuardFeatures;
use super::scope::{CacheScope, Hasher};

/// Why a request is neither served from nor stored in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotCacheable {
    /// `temperature` above `cache.max_temperature`: the client wants variety.
    #[error("temperature above the cache's max_temperature")]
    Temperature,
    /// `n` above 1: a cached answer has one choice.
    #[error("more than one choice requested")]
    MultipleChoices,
    /// `logprobs` requested: cached answers carry none.
    #[error("logprobs requested")]
    Logprobs,
    /// The last message is not a user turn with text (e.g. a tool result to continue from).
    #[error("the last message is not a user message with text")]
    NoUserText,
    /// `messages` is missing or not an array.
    #[error("no messages array")]
    NoMessages,
}

impl NotCacheable {
    /// A stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            NotCacheable::Temperature => "temperature",
            NotCacheable::MultipleChoices => "multiple_choices",
            NotCacheable::Logprobs => "logprobs",
            NotCacheable::NoUserText => "no_user_text",
            NotCacheable::NoMessages => "no_messages",
        }
    }
}

/// A cacheable request: scope, exact key and the normalised last user text.
#[derive(Debug, Clone)]
pub struct CacheRequest {
    /// Which entries this request may match.
    pub scope: CacheScope,
    /// The exact-path key (scope and normalised last user text).
    pub key: ExactKey,
    /// Completion tokens the client allows: a cached answer that used more is not served.
    pub max_completion_tokens: Option<u64>,
    /// Whether the client asked for a streamed answer (replay as SSE).
    pub stream: bool,
    /// Whether a streamed replay should carry a usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// Set by the caller when the encoder truncated the text (its token count reached the
    /// model's `max_tokens`): the embedding does not see the whole prompt, so two prompts that
    /// differ only past the cut would look identical. The semantic path is then skipped for
    /// this request (lookups miss, inserts store no vector); the exact path still applies.
    pub embedding_truncated: bool,
    /// The normalised last user text. Held only for this request's lifetime: entries keep
    /// the guard's features, never the prompt.
    text: String,
    guard: OnceLock<GuardFeatures>,
}

impl CacheRequest {
    /// Reads a chat-completions body. `model` is the scope's model (the selected one, or the
    /// requested one for an exact probe before routing); `tenant` comes from the configured
    /// header. `max_temperature` is `cache.max_temperature`.
    pub fn from_body(
        body: &Map<String, Value>,
        model: &str,
        tenant: Option<&str>,
        max_temperature: f64,
    ) -> Result<Self, NotCacheable> {
        if body
            .get("temperature")
            .and_then(Value::as_f64)
            .is_some_and(|t| t > max_temperature)
        {
            return Err(NotCacheable::Temperature);
        }
        if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
            return Err(NotCacheable::MultipleChoices);
        }
        if body.get("logprobs").and_then(Value::as_bool) == Some(true) {
            return Err(NotCacheable::Logprobs);
        }
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .ok_or(NotCacheable::NoMessages)?;
        let (last, earlier) = messages.split_last().ok_or(NotCacheable::NoMessages)?;
        if last.get("role").and_then(Value::as_str) != Some("user") {
            return Err(NotCacheable::NoUserText);
        }
        let (text, other_parts) = split_content(last.get("content"));
        let text = normalize_text(&text);
        if text.is_empty() {
            return Err(NotCacheable::NoUserText);
        }

        let mut context = Hasher::new("semrouter-cache-context-v1");
        context.json(&Value::Array(earlier.to_vec()));
        context.json(&Value::Array(other_parts));
        // Fields of the last message besides its content (e.g. `name`) shape the answer too.
        let mut last_rest = last.as_object().cloned().unwrap_or_default();
        last_rest.remove("content");
        context.json(&Value::Object(last_rest));

        let mut tools = Hasher::new("semrouter-cache-tools-v1");
        for field in [
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "functions",
            "function_call",
        ] {
            tools.opt_json(body.get(field));
        }
        let mut response_format = Hasher::new("semrouter-cache-response-format-v1");
        response_format.opt_json(body.get("response_format"));
        let mut params = Hasher::new("semrouter-cache-params-v1");
        for field in [
            "stop",
            "seed",
            "reasoning_effort",
            "chat_template_kwargs",
            "modalities",
            "audio",
            "prediction",
        ] {
            params.opt_json(body.get(field));
        }

        let scope = CacheScope::new(
            model,
            tenant,
            context.finish(),
            tools.finish(),
            response_format.finish(),
            params.finish(),
        );
        let key = exact_key(&scope.id, &text);
        let max_completion_tokens = body
            .get("max_completion_tokens")
            .and_then(Value::as_u64)
            .or_else(|| body.get("max_tokens").and_then(Value::as_u64));
        Ok(Self {
            scope,
            key,
            max_completion_tokens,
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: body
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            embedding_truncated: false,
            text,
            guard: OnceLock::new(),
        })
    }

    /// The normalised last user text (for the caller's embedding; never logged by the cache).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The guard's lexical features of the last user text, extracted on first use (the exact
    /// path never needs them).
    pub fn guard_features(&self) -> &GuardFeatures {
        self.guard
            .get_or_init(|| GuardFeatures::extract(&self.text))
    }
}

/// The text parts of a message content (joined by newlines) and its other parts.
fn split_content(content: Option<&Value>) -> (String, Vec<Value>) {
    match content {
        Some(Value::String(text)) => (text.clone(), Vec::new()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            let mut others = Vec::new();
            for part in parts {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(text)) => texts.push(text),
                    _ => others.push(part.clone()),
                }
            }
            (texts.join("\n"), others)
        }
        _ => (String::new(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(body: Value) -> Result<CacheRequest, NotCacheable> {
        CacheRequest::from_body(body.as_object().unwrap(), "m", Some("t"), 1.0)
    }

    fn user(text: &str) -> Value {
        json!({"model": "auto", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]})
    }

    #[test]
    fn same_request_same_key_whitespace_folded() {
        let a = req(user("What is  2+2?")).unwrap();
        let b = req(user(" What is 2+2?\n")).unwrap();
        assert_eq!(a.key, b.key);
        assert_eq!(a.scope.id, b.scope.id);
        assert_eq!(a.text(), "What is 2+2?");
        assert_ne!(a.key, req(user("What is 2+3?")).unwrap().key);
    }

    #[test]
    fn scope_follows_system_prompt_history_tools_format_model_tenant() {
        let base = req(user("q")).unwrap();
        let mut other_system = user("q");
        other_system["messages"][0]["content"] = json!("Be verbose.");
        assert_ne!(req(other_system).unwrap().scope.id, base.scope.id);

        let history = json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "q"}]});
        assert_ne!(req(history).unwrap().scope.id, base.scope.id);

        let mut tools = user("q");
        tools["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
        assert_ne!(req(tools).unwrap().scope.id, base.scope.id);

        let mut format = user("q");
        format["response_format"] = json!({"type": "json_object"});
        assert_ne!(req(format).unwrap().scope.id, base.scope.id);

        let body = user("q");
        let map = body.as_object().unwrap();
        assert_ne!(
            CacheRequest::from_body(map, "m2", Some("t"), 1.0)
                .unwrap()
                .scope
                .id,
            base.scope.id
        );
        assert_ne!(
            CacheRequest::from_body(map, "m", None, 1.0)
                .unwrap()
                .scope
                .id,
            base.scope.id
        );

        // Sampling knobs below the limit and `stream` do not split the scope.
        let mut sampled = user("q");
        sampled["temperature"] = json!(0.2);
        sampled["stream"] = json!(true);
        sampled["max_tokens"] = json!(100);
        let sampled = req(sampled).unwrap();
        assert_eq!(sampled.scope.id, base.scope.id);
        assert!(sampled.stream);
        assert_eq!(sampled.max_completion_tokens, Some(100));
    }

    #[test]
    fn images_split_the_scope_and_text_parts_are_joined() {
        let image = |url: &str| {
            json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in"}, {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "this image?"}]}]})
        };
        let a = req(image("a.png")).unwrap();
        let b = req(image("b.png")).unwrap();
        assert_eq!(a.text(), "What is in this image?");
        assert_ne!(a.scope.id, b.scope.id);
        assert_ne!(a.key, b.key);
    }

    #[test]
    fn uncacheable_requests_say_why() {
        let mut hot = user("q");
        hot["temperature"] = json!(1.3);
        assert_eq!(req(hot).unwrap_err(), NotCacheable::Temperature);
        let mut n = user("q");
        n["n"] = json!(3);
        assert_eq!(req(n).unwrap_err(), NotCacheable::MultipleChoices);
        let mut lp = user("q");
        lp["logprobs"] = json!(true);
        assert_eq!(req(lp).unwrap_err(), NotCacheable::Logprobs);
        let tool_last = json!({"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "42", "tool_call_id": "x"}]});
        assert_eq!(req(tool_last).unwrap_err(), NotCacheable::NoUserText);
        assert_eq!(req(user("   ")).unwrap_err(), NotCacheable::NoUserText);
        assert_eq!(
            req(json!({"model": "m"})).unwrap_err(),
            NotCacheable::NoMessages
        );
        assert_eq!(
            req(json!({"messages": []})).unwrap_err(),
            NotCacheable::NoMessages
        );
    }
}
