//! OpenAI wire types: the chat-completions request as the router reads it, the classify and
//! embeddings requests, and the error envelope.
//!
//! A request is parsed once into a [`ChatRequest`]: the raw JSON object is kept (the router
//! rewrites it and forwards everything it does not understand untouched) beside a typed view
//! of the fields it reads. Type errors name the offending field as OpenAI's `param`.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A request the router cannot read, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    /// What is wrong, for a human.
    pub message: String,
    /// The offending field, as a path like `messages[0].content`.
    pub param: Option<String>,
}

impl InvalidRequest {
    /// An error about `param`.
    pub fn new(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            message: message.into(),
            param: param.map(str::to_string),
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the application.
    System,
    /// Instructions from the developer (newer name for system).
    Developer,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
    /// A legacy function result.
    Function,
}

/// One message, reduced to what classification needs: its role and its text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    /// Author.
    pub role: Role,
    /// The text parts of the content, joined by newlines; empty when there are none.
    #[serde(default)]
    pub content: Content,
}

/// Message content: a string, or an array of parts whose text parts are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content(pub String);

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;

        #[derive(Deserialize)]
        struct Part {
            #[serde(rename = "type")]
            kind: String,
            text: Option<String>,
        }

        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an array of content parts, or null")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content(v.to_string()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content(v))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Content, E> {
                Ok(Content::default())
            }

            fn visit_none<E: de::Error>(self) -> Result<Content, E> {
                Ok(Content::default())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                let mut texts: Vec<String> = Vec::new();
                while let Some(part) = seq.next_element::<Part>()? {
                    if part.kind == "text" {
                        let text = part.text.ok_or_else(|| de::Error::missing_field("text"))?;
                        texts.push(text);
                    }
                }
                Ok(Content(texts.join("\n")))
            }
        }

        deserializer.deserialize_any(ContentVisitor)
    }
}

/// The typed view of the chat-completions fields the router reads or checks.
#[derive(Debug, Deserialize)]
struct ChatView {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
}

/// An OpenAI chat-completions request: the raw body and the fields the router uses.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The body as sent; the router rewrites `model` and reasoning fields in a copy of it.
    pub body: Map<String, Value>,
    /// Requested model (`auto` asks for routing).
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Whether the client asked for a streamed answer.
    pub stream: bool,
    /// Completion tokens allowed (`max_completion_tokens`, else `max_tokens`).
    pub max_completion_tokens: Option<u64>,
    /// Tool definitions offered to the model.
    pub tools: Vec<Value>,
}

/// Parses a chat-completions body. Invalid UTF-8, malformed JSON, wrong field types and an
/// empty conversation are errors naming the field.
pub fn parse_chat_request(bytes: &[u8]) -> Result<ChatRequest, InvalidRequest> {
    let value = parse_json_object(bytes)?;
    let view: ChatView = typed(&value)?;
    if view.messages.is_empty() {
        return Err(InvalidRequest::new(
            "`messages` must contain at least one message",
            Some("messages"),
        ));
    }
    if view.model.trim().is_empty() {
        return Err(InvalidRequest::new(
            "`model` must not be empty",
            Some("model"),
        ));
    }
    // Checked for type above; the value itself is the upstream's business.
    let _ = view.temperature;
    let Value::Object(body) = value else {
        return Err(InvalidRequest::new(
            "the request body must be a JSON object",
            None,
        ));
    };
    Ok(ChatRequest {
        body,
        model: view.model,
        messages: view.messages,
        stream: view.stream.unwrap_or(false),
        max_completion_tokens: view.max_completion_tokens.or(view.max_tokens),
        tools: view.tools.unwrap_or_default(),
    })
}

/// `POST /v1/classify`: a text, or messages from which the configured text is taken.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    /// Text to classify.
    #[serde(default)]
    pub text: Option<String>,
    /// A conversation to classify as `/v1/route` would.
    #[serde(default)]
    pub messages: Option<Vec<Message>>,
}

/// Parses a classify body: exactly one of `text` and `messages`.
pub fn parse_classify_request(bytes: &[u8]) -> Result<ClassifyRequest, InvalidRequest> {
    let value = parse_json_object(bytes)?;
    let request: ClassifyRequest = typed(&value)?;
    match (&request.text, &request.messages) {
        (Some(_), None) | (None, Some(_)) => Ok(request),
        _ => Err(InvalidRequest::new(
            "give exactly one of `text` and `messages`",
            None,
        )),
    }
}

/// Embedding input: one string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// Several texts.
    Many(Vec<String>),
}

/// How embedding vectors are encoded in the reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// A JSON array of numbers.
    #[default]
    Float,
    /// Little-endian f32 bytes, base64-encoded.
    Base64,
}

/// `POST /v1/embeddings`, OpenAI-compatible.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    /// Texts to embed.
    pub input: EmbeddingInput,
    /// Must name the served embedding model when given.
    #[serde(default)]
    pub model: Option<String>,
    /// Reply encoding.
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Must equal the model's dimension when given (no truncation of vectors).
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// Accepted for compatibility; not used.
    #[serde(default)]
    pub user: Option<String>,
}

/// Parses an embeddings body.
pub fn parse_embeddings_request(bytes: &[u8]) -> Result<EmbeddingsRequest, InvalidRequest> {
    let value = parse_json_object(bytes)?;
    if value.get("input").is_some_and(|v| {
        !v.is_string() && !v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    }) {
        return Err(InvalidRequest::new(
            "`input` must be a string or an array of strings (token arrays are not supported)",
            Some("input"),
        ));
    }
    typed(&value)
}

/// Parses `bytes` as a JSON object, with distinct messages for bad UTF-8, bad JSON and non-objects.
fn parse_json_object(bytes: &[u8]) -> Result<Value, InvalidRequest> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(InvalidRequest::new(
            format!(
                "the request body is not valid UTF-8 (byte {})",
                e.valid_up_to()
            ),
            None,
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(InvalidRequest::new(
            "the request body is empty; expected a JSON object",
            None,
        ));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        InvalidRequest::new(format!("the request body is not valid JSON: {e}"), None)
    })?;
    if !value.is_object() {
        return Err(InvalidRequest::new(
            "the request body must be a JSON object",
            None,
        ));
    }
    Ok(value)
}

/// Deserialises a typed view of `value`, naming the failing field.
fn typed<'a, T: Deserialize<'a>>(value: &'a Value) -> Result<T, InvalidRequest> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        if path.is_empty() || path == "." {
            // A missing top-level field: serde names it in the message.
            let param = message.split('`').nth(1).map(str::to_string);
            InvalidRequest { message, param }
        } else {
            InvalidRequest {
                message: format!("`{path}`: {message}"),
                param: Some(path),
            }
        }
    })
}

/// OpenAI's error envelope: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The body of [`ErrorEnvelope`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// Human-readable explanation.
    pub message: String,
    /// Error class, e.g. `invalid_request_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Offending field, if any.
    pub param: Option<String>,
    /// Machine-readable code, e.g. `model_not_found`.
    pub code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_keep_text_and_skip_images() {
        let r = parse_chat_request(
            br#"{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}],"extra":{"kept":true}}"#,
        )
        .unwrap();
        assert_eq!(r.messages[0].content.0, "a\nb");
        assert_eq!(r.body["extra"]["kept"], true);
        assert!(!r.stream);
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_chat_request(br#"{"model":"auto","messages":[{"role":"user","content":5}]}"#)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        let e =
            parse_chat_request(br#"{"model":"auto","messages":[{"role":"robot","content":"x"}]}"#)
                .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = parse_chat_request(br#"{"messages":[]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = parse_chat_request(br#"{"model":"auto","messages":[]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = parse_chat_request(
            br#"{"model":"auto","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("stream"));
    }

    #[test]
    fn bad_bytes_and_non_objects_are_rejected() {
        assert!(parse_chat_request(b"\xff\xfe{}")
            .unwrap_err()
            .message
            .contains("UTF-8"));
        assert!(parse_chat_request(b"{\"model\": ")
            .unwrap_err()
            .message
            .contains("not valid JSON"));
        assert!(parse_chat_request(b"[1,2]")
            .unwrap_err()
            .message
            .contains("JSON object"));
        assert!(parse_chat_request(b"  ")
            .unwrap_err()
            .message
            .contains("empty"));
    }

    #[test]
    fn embeddings_input_forms() {
        let one = parse_embeddings_request(br#"{"input":"hi"}"#).unwrap();
        assert_eq!(one.input, EmbeddingInput::One("hi".into()));
        let many =
            parse_embeddings_request(br#"{"input":["a","b"],"encoding_format":"base64"}"#).unwrap();
        assert_eq!(many.encoding_format, EncodingFormat::Base64);
        let tokens = parse_embeddings_request(br#"{"input":[1,2,3]}"#).unwrap_err();
        assert_eq!(tokens.param.as_deref(), Some("input"));
    }

    #[test]
    fn classify_takes_exactly_one_source() {
        assert!(parse_classify_request(br#"{"text":"x"}"#).is_ok());
        assert!(parse_classify_request(br#"{"text":"x","messages":[]}"#).is_err());
        assert!(parse_classify_request(br#"{}"#).is_err());
    }
}
