//! Context signals read from the request itself: size, turns, tools, streaming, tenant.

use serde::Serialize;

use crate::openai::{ChatRequest, Role};

/// Characters per token assumed when estimating prompt size without tokenising it all.
const CHARS_PER_TOKEN: usize = 4;

/// What the request is, apart from what it says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Context {
    /// Estimated prompt tokens over every message and the tool definitions.
    pub prompt_tokens: u64,
    /// Completion tokens the request allows (`max_completion_tokens` or `max_tokens`).
    pub max_completion_tokens: Option<u64>,
    /// User turns in the conversation.
    pub turns: usize,
    /// Tools offered to the model.
    pub tools: usize,
    /// Whether the answer is streamed.
    pub stream: bool,
    /// The tenant, from the configured header.
    pub tenant: Option<String>,
}

impl Context {
    /// Reads the context of `request`; `tenant` comes from the front end.
    pub fn of(request: &ChatRequest, tenant: Option<String>) -> Self {
        let text_chars: usize = request
            .messages
            .iter()
            .map(|m| m.content.0.chars().count())
            .sum();
        let tool_chars: usize = request.tools.iter().map(|t| t.to_string().len()).sum();
        Self {
            prompt_tokens: ((text_chars + tool_chars).div_ceil(CHARS_PER_TOKEN)
                + request.messages.len() * 4) as u64,
            max_completion_tokens: request.max_completion_tokens,
            turns: request
                .messages
                .iter()
                .filter(|m| m.role == Role::User)
                .count(),
            tools: request.tools.len(),
            stream: request.stream,
            tenant,
        }
    }
}
