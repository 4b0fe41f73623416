//! Cached answers: taken from an upstream reply (JSON or SSE), replayed as JSON or SSE.
//!
//! Only complete, successful answers are kept: status 2xx, one choice, `finish_reason`
//! `stop`, no tool or function calls, text content. A streamed reply is reassembled from its
//! chunks and accepted only once `data: [DONE]` arrived, so a stream cut short, stopped by
//! the length limit or carrying an error event is never cached (the failure other routers'
//! users report: broken streams replayed forever).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Why an upstream reply is not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unstorable {
    /// The status is not 2xx.
    #[error("status {0} is not a success")]
    Status(u16),
    /// The body is not a chat completion (not JSON, no choices, an error object).
    #[error("not a chat completion: {0}")]
    Malformed(String),
    /// More than one choice.
    #[error("more than one choice")]
    MultipleChoices,
    /// The answer did not end with `finish_reason: "stop"` (e.g. `length`, `content_filter`).
    #[error("finish_reason is `{0}`, not `stop`")]
    NotStopped(String),
    /// The answer calls tools (its result depends on the tools' outputs).
    #[error("the answer calls tools")]
    ToolCalls,
    /// The answer has no text.
    #[error("the answer has no text content")]
    Empty,
    /// A stream ended without `data: [DONE]`.
    #[error("the stream ended without [DONE]")]
    Incomplete,
}

impl Unstorable {
    /// A stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Unstorable::Status(_) => "status",
            Unstorable::Malformed(_) => "malformed",
            Unstorable::MultipleChoices => "multiple_choices",
            Unstorable::NotStopped(_) => "finish_reason",
            Unstorable::ToolCalls => "tool_calls",
            Unstorable::Empty => "empty",
            Unstorable::Incomplete => "incomplete_stream",
        }
    }
}

/// A complete assistant answer, as stored and replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAnswer {
    /// The assistant's text.
    pub content: String,
    /// Reasoning text some servers return beside the content (vLLM `reasoning_content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// The model that produced the answer, as the upstream named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    /// The upstream's usage object, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
}

fn check_status(status: u16) -> Result<(), Unstorable> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(Unstorable::Status(status))
    }
}

fn has_tool_calls(object: &Map<String, Value>) -> bool {
    let non_empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    non_empty(object.get("tool_calls")) || non_empty(object.get("function_call"))
}

impl CachedAnswer {
    /// Takes the answer of a non-streamed chat completion.
    pub fn from_completion(status: u16, body: &Value) -> Result<Self, Unstorable> {
        check_status(status)?;
        if body.get("error").is_some_and(|e| !e.is_null()) {
            return Err(Unstorable::Malformed("the body is an error object".into()));
        }
        let choices = body
            .get("choices")
            .and_then(Value::as_array)
            .ok_or_else(|| Unstorable::Malformed("no `choices` array".into()))?;
        let choice = match choices.as_slice() {
            [one] => one,
            [] => return Err(Unstorable::Malformed("empty `choices`".into())),
            _ => return Err(Unstorable::MultipleChoices),
        };
        let message = choice
            .get("message")
            .and_then(Value::as_object)
            .ok_or_else(|| Unstorable::Malformed("no `message` in the choice".into()))?;
        if has_tool_calls(message) {
            return Err(Unstorable::ToolCalls);
        }
        let finish = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .unwrap_or("");
        if finish == "tool_calls" || finish == "function_call" {
            return Err(Unstorable::ToolCalls);
        }
        if finish != "stop" {
            return Err(Unstorable::NotStopped(finish.to_string()));
        }
        let content = message.get("content").and_then(Value::as_str).unwrap_or("");
        if content.is_empty() {
            return Err(Unstorable::Empty);
        }
        Ok(Self {
            content: content.to_string(),
            reasoning_content: message
                .get("reasoning_content")
                .and_then(Value::as_str)
                .map(str::to_string),
            upstream_model: body
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_string),
            usage: body.get("usage").filter(|u| u.is_object()).cloned(),
        })
    }

    /// Takes the answer of a whole streamed reply (the SSE body as received).
    pub fn from_sse(status: u16, body: &[u8]) -> Result<Self, Unstorable> {
        check_status(status)?;
        let mut assembler = StreamAssembler::new();
        assembler.push(body);
        assembler.finish()
    }

    /// Completion tokens the answer used, when the upstream reported usage.
    pub fn completion_tokens(&self) -> Option<u64> {
        self.usage.as_ref()?.get("completion_tokens")?.as_u64()
    }

    /// Approximate heap bytes, for the cache's byte bound.
    pub fn heap_bytes(&self) -> usize {
        self.content.len()
            + self.reasoning_content.as_ref().map_or(0, String::len)
            + self.upstream_model.as_ref().map_or(0, String::len)
            + self.usage.as_ref().map_or(0, |u| u.to_string().len() * 2)
    }

    fn message(&self) -> Value {
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        message.insert("content".into(), json!(self.content));
        if let Some(reasoning) = &self.reasoning_content {
            message.insert("reasoning_content".into(), json!(reasoning));
        }
        Value::Object(message)
    }

    /// Replays the answer as a `chat.completion` for `model`, with a fresh id and timestamp.
    pub fn to_completion(&self, model: &str) -> Value {
        let mut body = json!({
            "id": fresh_id(),
            "object": "chat.completion",
            "created": now_secs(),
            "model": model,
            "choices": [{"index": 0, "message": self.message(), "finish_reason": "stop", "logprobs": null}],
        });
        if let (Some(usage), Some(object)) = (&self.usage, body.as_object_mut()) {
            object.insert("usage".into(), usage.clone());
        }
        body
    }

    /// Replays the answer as the SSE body of a streamed `chat.completion.chunk` reply for
    /// `model`: a role chunk, the content, a `stop` chunk, a usage chunk when
    /// `include_usage` (and usage is known), then `data: [DONE]`.
    pub fn to_sse(&self, model: &str, include_usage: bool) -> String {
        let id = fresh_id();
        let created = now_secs();
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]})
        };
        let mut events = Vec::with_capacity(5);
        events.push(chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        if let Some(reasoning) = &self.reasoning_content {
            events.push(chunk(json!({"reasoning_content": reasoning}), Value::Null));
        }
        events.push(chunk(json!({"content": self.content}), Value::Null));
        events.push(chunk(json!({}), json!("stop")));
        if include_usage {
            if let Some(usage) = &self.usage {
                events.push(json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                                   "choices": [], "usage": usage}));
            }
        }
        let mut out = String::new();
        for event in events {
            out.push_str("data: ");
            out.push_str(&event.to_string());
            out.push_str("\n\n");
        }
        out.push_str("data: [DONE]\n\n");
        out
    }
}

/// Reassembles a streamed chat completion from its SSE bytes, fed in any chunking.
#[derive(Debug, Default)]
pub struct StreamAssembler {
    pending: Vec<u8>,
    content: String,
    reasoning: String,
    has_reasoning: bool,
    role_seen: bool,
    model: Option<String>,
    usage: Option<Value>,
    finish_reason: Option<String>,
    done: bool,
    failure: Option<Unstorable>,
}

impl StreamAssembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes as they arrive; lines split across pushes are joined.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.line(&line[..line.len() - 1]);
        }
    }

    fn fail(&mut self, why: Unstorable) {
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }

    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            // Comments (`:`), `event:`, `id:` and blank separators carry no answer.
            if line.starts_with(b"event: error") || line.starts_with(b"event:error") {
                self.fail(Unstorable::Malformed("an error event".into()));
            }
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        if self.done {
            self.fail(Unstorable::Malformed("data after [DONE]".into()));
            return;
        }
        let chunk: Value = match serde_json::from_slice(data) {
            Ok(v) => v,
            Err(_) => return self.fail(Unstorable::Malformed("a chunk is not JSON".into())),
        };
        self.chunk(&chunk);
    }

    fn chunk(&mut self, chunk: &Value) {
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return self.fail(Unstorable::Malformed("an error chunk".into()));
        }
        if let Some(model) = chunk.get("model").and_then(Value::as_str) {
            self.model.get_or_insert_with(|| model.to_string());
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return;
        };
        for choice in choices {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                return self.fail(Unstorable::MultipleChoices);
            }
            if let Some(delta) = choice.get("delta").and_then(Value::as_object) {
                if has_tool_calls(delta) {
                    return self.fail(Unstorable::ToolCalls);
                }
                if delta.get("role").and_then(Value::as_str).is_some() {
                    self.role_seen = true;
                }
                if let Some(text) = delta.get("content").and_then(Value::as_str) {
                    self.content.push_str(text);
                }
                if let Some(text) = delta.get("reasoning_content").and_then(Value::as_str) {
                    self.has_reasoning = true;
                    self.reasoning.push_str(text);
                }
            }
            if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(finish.to_string());
            }
        }
    }

    /// The answer, if the stream was complete and storable.
    pub fn finish(mut self) -> Result<CachedAnswer, Unstorable> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.line(&rest);
        }
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        if !self.done {
            return Err(Unstorable::Incomplete);
        }
        match self.finish_reason.as_deref() {
            Some("stop") => {}
            Some("tool_calls") | Some("function_call") => return Err(Unstorable::ToolCalls),
            Some(other) => return Err(Unstorable::NotStopped(other.to_string())),
            None => return Err(Unstorable::NotStopped(String::new())),
        }
        if self.content.is_empty() {
            return Err(Unstorable::Empty);
        }
        Ok(CachedAnswer {
            content: self.content,
            reasoning_content: self.has_reasoning.then_some(self.reasoning),
            upstream_model: self.model,
            usage: self.usage,
        })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh `chatcmpl-` id: 24 random hex digits.
fn fresh_id() -> String {
    format!("chatcmpl-{:024x}", rand::random::<u128>() >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(finish: &str, message: Value) -> Value {
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "qwen3-8b",
               "choices": [{"index": 0, "message": message, "finish_reason": finish}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
    }

    fn sse(chunks: &[Value], done: bool) -> Vec<u8> {
        let mut out = String::new();
        for c in chunks {
            out.push_str(&format!("data: {c}\n\n"));
        }
        if done {
            out.push_str("data: [DONE]\n\n");
        }
        out.into_bytes()
    }

    fn delta(d: Value, finish: Value) -> Value {
        json!({"id": "x", "object": "chat.completion.chunk", "model": "qwen3-8b", "choices": [{"index": 0, "delta": d, "finish_reason": finish}]})
    }

    fn good_stream() -> Vec<Value> {
        vec![
            delta(json!({"role": "assistant", "content": ""}), Value::Null),
            delta(json!({"content": "Hel"}), Value::Null),
            delta(json!({"content": "lo."}), Value::Null),
            delta(json!({}), json!("stop")),
            json!({"id": "x", "object": "chat.completion.chunk", "model": "qwen3-8b", "choices": [], "usage": {"completion_tokens": 2}}),
        ]
    }

    #[test]
    fn json_completion_is_taken_and_replayed() {
        let answer = CachedAnswer::from_completion(
            200,
            &completion("stop", json!({"role": "assistant", "content": "4"})),
        )
        .unwrap();
        assert_eq!(answer.content, "4");
        assert_eq!(answer.completion_tokens(), Some(3));
        let replay = answer.to_completion("auto");
        assert_eq!(replay["object"], "chat.completion");
        assert_eq!(replay["model"], "auto");
        assert_eq!(replay["choices"][0]["message"]["content"], "4");
        assert_eq!(replay["choices"][0]["finish_reason"], "stop");
        assert!(replay["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_ne!(
            replay["id"],
            answer.to_completion("auto")["id"],
            "ids are fresh"
        );
        assert_eq!(replay["usage"]["completion_tokens"], 3);
    }

    #[test]
    fn bad_json_replies_are_refused() {
        let ok = json!({"role": "assistant", "content": "x"});
        assert_eq!(
            CachedAnswer::from_completion(500, &completion("stop", ok.clone())),
            Err(Unstorable::Status(500))
        );
        assert_eq!(
            CachedAnswer::from_completion(200, &completion("length", ok.clone())),
            Err(Unstorable::NotStopped("length".into()))
        );
        let tools = json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]});
        assert_eq!(
            CachedAnswer::from_completion(200, &completion("tool_calls", tools.clone())),
            Err(Unstorable::ToolCalls)
        );
        assert_eq!(
            CachedAnswer::from_completion(200, &completion("stop", tools)),
            Err(Unstorable::ToolCalls)
        );
        assert_eq!(
            CachedAnswer::from_completion(
                200,
                &completion("stop", json!({"role": "assistant", "content": ""}))
            ),
            Err(Unstorable::Empty)
        );
        let mut two = completion("stop", ok.clone());
        two["choices"] = json!([two["choices"][0].clone(), two["choices"][0].clone()]);
        assert_eq!(
            CachedAnswer::from_completion(200, &two),
            Err(Unstorable::MultipleChoices)
        );
        assert!(matches!(
            CachedAnswer::from_completion(200, &json!({"error": {"message": "x"}})),
            Err(Unstorable::Malformed(_))
        ));
    }

    #[test]
    fn stream_is_reassembled_in_any_chunking() {
        let bytes = sse(&good_stream(), true);
        let whole = CachedAnswer::from_sse(200, &bytes).unwrap();
        assert_eq!(whole.content, "Hello.");
        assert_eq!(whole.upstream_model.as_deref(), Some("qwen3-8b"));
        assert_eq!(whole.completion_tokens(), Some(2));
        // Byte by byte, with CRLF line ends.
        let crlf = String::from_utf8(bytes).unwrap().replace('\n', "\r\n");
        let mut assembler = StreamAssembler::new();
        for b in crlf.as_bytes() {
            assembler.push(std::slice::from_ref(b));
        }
        assert_eq!(assembler.finish().unwrap(), whole);
    }

    #[test]
    fn broken_streams_are_refused() {
        // No [DONE]: cut short.
        assert_eq!(
            CachedAnswer::from_sse(200, &sse(&good_stream(), false)),
            Err(Unstorable::Incomplete)
        );
        // Stopped by the length limit.
        let mut length = good_stream();
        length[3] = delta(json!({}), json!("length"));
        assert_eq!(
            CachedAnswer::from_sse(200, &sse(&length, true)),
            Err(Unstorable::NotStopped("length".into()))
        );
        // Tool calls.
        let mut tools = good_stream();
        tools.insert(2, delta(json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}}]}), Value::Null));
        assert_eq!(
            CachedAnswer::from_sse(200, &sse(&tools, true)),
            Err(Unstorable::ToolCalls)
        );
        // No finish_reason at all.
        let mut unfinished = good_stream();
        unfinished.remove(3);
        assert_eq!(
            CachedAnswer::from_sse(200, &sse(&unfinished, true)),
            Err(Unstorable::NotStopped(String::new()))
        );
        // An error chunk mid-stream, a non-JSON chunk, an error status, a second choice.
        let mut error = good_stream();
        error.insert(2, json!({"error": {"message": "upstream died"}}));
        assert!(matches!(
            CachedAnswer::from_sse(200, &sse(&error, true)),
            Err(Unstorable::Malformed(_))
        ));
        let mut garbage = sse(&good_stream()[..2], false);
        garbage.extend_from_slice(b"data: {not json\n\ndata: [DONE]\n\n");
        assert!(matches!(
            CachedAnswer::from_sse(200, &garbage),
            Err(Unstorable::Malformed(_))
        ));
        assert_eq!(
            CachedAnswer::from_sse(502, &sse(&good_stream(), true)),
            Err(Unstorable::Status(502))
        );
        let mut second = good_stream();
        second.insert(
            2,
            json!({"choices": [{"index": 1, "delta": {"content": "b"}}]}),
        );
        assert_eq!(
            CachedAnswer::from_sse(200, &sse(&second, true)),
            Err(Unstorable::MultipleChoices)
        );
    }

    #[test]
    fn sse_replay_is_valid_and_round_trips() {
        let answer = CachedAnswer::from_sse(200, &sse(&good_stream(), true)).unwrap();
        let body = answer.to_sse("auto", true);
        assert!(body.ends_with("data: [DONE]\n\n"));
        let events: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).collect();
        for event in &events[..events.len() - 1] {
            let value: Value = serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(value["object"], "chat.completion.chunk");
            assert_eq!(value["model"], "auto");
        }
        assert!(body.contains("\"usage\""));
        assert!(!answer.to_sse("auto", false).contains("\"usage\""));
        // The replay is itself a storable stream with the same answer.
        let again = CachedAnswer::from_sse(200, body.as_bytes()).unwrap();
        assert_eq!(again.content, answer.content);
        assert_eq!(again.usage, answer.usage);
    }
}
