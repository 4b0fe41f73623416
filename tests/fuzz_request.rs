//! Property tests ("fuzzing" on stable Rust) of request parsing: the chat, classify and
//! embeddings parsers fed random bytes, broken UTF-8, JSON of the wrong shape, deep nesting
//! and huge prompts, and the same inputs sent to the running server's JSON endpoints. What
//! users rely on: no input panics or gets a 5xx, every refusal is a 4xx in OpenAI's error
//! envelope naming the field the parser names, and a valid request reads back as it was sent.
//!
//! `make test` runs a few dozen cases of each; `make fuzz` many more (PROPTEST_CASES,
//! FUZZ_SECONDS). Found cases are kept under proptest-regressions/ and as named tests below.

mod common;
#[path = "support/fuzz.rs"]
mod fuzz;

use actix_web::ResponseError as _;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use semrouter::openai::{
    self, parse_chat_request, parse_classify_request, parse_embeddings_request,
};
use semrouter::server::ApiError;
use serde_json::{json, Map, Value};

use common::{Launch, Server};

/// The server's body limit in these tests (small, so oversized bodies are cheap to make).
const MAX_BODY: usize = 4096;

/// A refusal, as a user reads it: 400 in the envelope, a message, the parser's field.
fn check_refusal(error: openai::InvalidRequest) -> Result<(), TestCaseError> {
    prop_assert!(!error.message.is_empty());
    let api = ApiError::from(error.clone());
    prop_assert_eq!(api.status_code().as_u16(), 400);
    let envelope = api.envelope();
    prop_assert_eq!(envelope.error.kind.as_str(), "invalid_request_error");
    prop_assert_eq!(envelope.error.param, error.param);
    prop_assert_eq!(envelope.error.message, error.message);
    Ok(())
}

/// Mutations of a valid body: a flipped byte, a cut, bytes put in (often breaking UTF-8).
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        match m {
            Mutation::Flip(at, bits) if !bytes.is_empty() => {
                let i = at % bytes.len();
                bytes[i] ^= bits;
            }
            Mutation::Truncate(at) => bytes.truncate(at % (bytes.len() + 1)),
            Mutation::Insert(at, extra) => {
                let i = at % (bytes.len() + 1);
                bytes.splice(i..i, extra.iter().copied());
            }
            Mutation::Flip(..) => {}
        }
    }
    bytes
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(a, b)| Mutation::Flip(a, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(a, b)| Mutation::Insert(a, b)),
    ]
}

const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// A message's content as sent (a string or parts) and the text the router reads from it.
fn content() -> impl Strategy<Value = (Value, String)> {
    prop_oneof![
        fuzz::prompt_text().prop_map(|t| (Value::String(t.clone()), t)),
        Just((Value::Null, String::new())),
        prop::collection::vec((any::<bool>(), fuzz::prompt_text()), 0..4).prop_map(|parts| {
            let texts: Vec<String> = parts
                .iter()
                .filter(|(text, _)| *text)
                .map(|(_, t)| t.clone())
                .collect();
            let parts: Vec<Value> = parts
                .into_iter()
                .map(|(text, t)| {
                    if text {
                        json!({"type": "text", "text": t})
                    } else {
                        json!({"type": "image_url", "image_url": {"url": t}})
                    }
                })
                .collect();
            (Value::Array(parts), texts.join("\n"))
        }),
    ]
}

/// A valid chat request: its body and what the parser must read from it.
#[derive(Debug, Clone)]
struct ValidChat {
    body: Map<String, Value>,
    model: String,
    messages: Vec<(&'static str, String)>,
    stream: Option<bool>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
}

fn valid_chat() -> impl Strategy<Value = ValidChat> {
    let model = prop_oneof![
        Just("auto".to_string()),
        Just("qwen3-8b".to_string()),
        "[a-zA-Z0-9._/-]{1,20}",
        ".{0,6}[a-z].{0,6}"
    ];
    let message = (prop::sample::select(&ROLES[..]), content());
    let extra = prop::collection::btree_map("x_[a-z]{1,6}", fuzz::json_value(3), 0..4);
    (
        model,
        prop::collection::vec(message, 1..6),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(-2.0f64..2.0),
        extra,
    )
        .prop_map(
            |(model, messages, stream, max_tokens, max_completion_tokens, temperature, extra)| {
                let mut body = Map::new();
                body.insert("model".into(), json!(model));
                body.insert(
                    "messages".into(),
                    Value::Array(
                        messages
                            .iter()
                            .map(|(role, (content, _))| json!({"role": role, "content": content}))
                            .collect(),
                    ),
                );
                for (key, value) in [
                    ("stream", stream.map(Value::from)),
                    ("max_tokens", max_tokens.map(Value::from)),
                    (
                        "max_completion_tokens",
                        max_completion_tokens.map(Value::from),
                    ),
                    ("temperature", temperature.map(Value::from)),
                ] {
                    if let Some(value) = value {
                        body.insert(key.into(), value);
                    }
                }
                body.extend(extra);
                ValidChat {
                    body,
                    model,
                    messages: messages
                        .into_iter()
                        .map(|(role, (_, text))| (role, text))
                        .collect(),
                    stream,
                    max_tokens,
                    max_completion_tokens,
                }
            },
        )
}

fn role_name(role: openai::Role) -> &'static str {
    match role {
        openai::Role::System => "system",
        openai::Role::Developer => "developer",
        openai::Role::User => "user",
        openai::Role::Assistant => "assistant",
        openai::Role::Tool => "tool",
        openai::Role::Function => "function",
    }
}

/// Bodies a client may send: random bytes, mutated valid bodies, JSON of any shape.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        (valid_chat(), prop::collection::vec(mutation(), 1..4))
            .prop_map(|(c, m)| mutate(serde_json::to_vec(&c.body).unwrap(), &m)),
        fuzz::json_value(4).prop_map(|v| serde_json::to_vec(&v).unwrap()),
        valid_chat().prop_map(|c| serde_json::to_vec(&c.body).unwrap()),
    ]
}

#[test]
fn any_bytes_parse_or_are_refused_with_a_400() {
    let progress = fuzz::Progress::new("any_bytes");
    fuzz::runner(file!(), 256)
        .run(&any_body(), |bytes| {
            if !progress.tick() {
                return Ok(());
            }
            for result in [
                parse_chat_request(&bytes).map(|_| ()),
                parse_classify_request(&bytes).map(|_| ()),
                parse_embeddings_request(&bytes).map(|_| ()),
            ] {
                match result {
                    Ok(()) => prop_assert!(std::str::from_utf8(&bytes).is_ok()),
                    Err(error) => {
                        if std::str::from_utf8(&bytes).is_err() {
                            prop_assert!(error.message.contains("UTF-8"), "{}", error.message);
                        }
                        check_refusal(error)?;
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    progress.finish();
}

#[test]
fn valid_requests_read_back_as_sent() {
    let progress = fuzz::Progress::new("round_trip");
    fuzz::runner(file!(), 256)
        .run(&valid_chat(), |chat| {
            if !progress.tick() {
                return Ok(());
            }
            let bytes = serde_json::to_vec(&chat.body).unwrap();
            let parsed = parse_chat_request(&bytes);
            if chat.model.trim().is_empty() {
                let error = parsed.unwrap_err();
                prop_assert_eq!(error.param.as_deref(), Some("model"));
                return Ok(());
            }
            let parsed = parsed.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(
                &parsed.body,
                &chat.body,
                "the body the router forwards is the body sent"
            );
            prop_assert_eq!(&parsed.model, &chat.model);
            prop_assert_eq!(parsed.stream, chat.stream.unwrap_or(false));
            prop_assert_eq!(
                parsed.max_completion_tokens,
                chat.max_completion_tokens.or(chat.max_tokens)
            );
            let read: Vec<(&str, String)> = parsed
                .messages
                .iter()
                .map(|m| (role_name(m.role), m.content.0.clone()))
                .collect();
            prop_assert_eq!(read, chat.messages.clone());
            // What the router forwards parses again to the same request.
            let again = parse_chat_request(&serde_json::to_vec(&parsed.body).unwrap()).unwrap();
            prop_assert_eq!(again.body, parsed.body);
            Ok(())
        })
        .unwrap();
    progress.finish();
}

/// Whether `value` is acceptable for the top-level field `field` (None: not decidable here).
fn field_accepts(field: &str, value: &Value) -> Option<bool> {
    match field {
        "model" => Some(value.as_str().is_some_and(|s| !s.trim().is_empty())),
        "stream" => Some(value.is_null() || value.is_boolean()),
        "max_tokens" | "max_completion_tokens" => Some(value.is_null() || value.is_u64()),
        "temperature" => Some(value.is_null() || value.is_number()),
        "tools" => Some(value.is_null() || value.is_array()),
        "messages[0].role" => Some(value.as_str().is_some_and(|s| ROLES.contains(&s))),
        _ => None,
    }
}

#[test]
fn a_field_of_the_wrong_type_is_refused_naming_it() {
    let fields = prop::sample::select(vec![
        "model",
        "messages",
        "stream",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "tools",
        "messages[0].role",
        "messages[0].content",
    ]);
    let progress = fuzz::Progress::new("wrong_types");
    fuzz::runner(file!(), 256)
        .run(
            &(valid_chat(), fields, fuzz::json_value(3)),
            |(chat, field, value)| {
                if !progress.tick() {
                    return Ok(());
                }
                let mut body = chat.body.clone();
                // A valid model and a readable first message, so only `field` can be at fault.
                body.insert("model".into(), json!("auto"));
                let mut messages = body["messages"].as_array().cloned().unwrap_or_default();
                messages[0] = json!({"role": "user", "content": "hello"});
                match field.strip_prefix("messages[0].") {
                    Some(inner) => {
                        messages[0][inner] = value.clone();
                        body.insert("messages".into(), Value::Array(messages));
                    }
                    None => {
                        body.insert("messages".into(), Value::Array(messages));
                        body.insert(field.into(), value.clone());
                    }
                }
                let result = parse_chat_request(&serde_json::to_vec(&body).unwrap());
                match (field_accepts(field, &value), result) {
                    (Some(true), Err(error)) => {
                        return Err(TestCaseError::fail(format!(
                            "`{field}` = {value} refused: {error:?}"
                        )))
                    }
                    (Some(false), Ok(_)) => {
                        return Err(TestCaseError::fail(format!("`{field}` = {value} accepted")))
                    }
                    (_, Err(error)) => {
                        let param = error.param.clone().unwrap_or_default();
                        prop_assert!(
                            param.starts_with(field.split('[').next().unwrap_or(field)),
                            "`{}` = {}: param {:?}",
                            field,
                            value,
                            param
                        );
                        check_refusal(error)?;
                    }
                    (_, Ok(_)) => {}
                }
                Ok(())
            },
        )
        .unwrap();
    progress.finish();
}

#[test]
fn deep_nesting_is_refused_or_read_without_overflowing_the_stack() {
    let progress = fuzz::Progress::new("deep_nesting");
    let shape = (
        1usize..4000,
        any::<bool>(),
        prop::sample::select(vec!["extra", "content", "tools"]),
    );
    fuzz::runner(file!(), 64)
        .run(&shape, |(depth, arrays, place)| {
            if !progress.tick() {
                return Ok(());
            }
            let (open, close) = if arrays { ("[", "]") } else { ("{\"a\":", "}") };
            let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            let body = match place {
                "content" => format!(r#"{{"model":"auto","messages":[{{"role":"user","content":{nested}}}]}}"#),
                "tools" => format!(r#"{{"model":"auto","messages":[{{"role":"user","content":"hi"}}],"tools":[{nested}]}}"#),
                _ => format!(r#"{{"model":"auto","messages":[{{"role":"user","content":"hi"}}],"extra":{nested}}}"#),
            };
            match parse_chat_request(body.as_bytes()) {
                // serde_json refuses more than 128 levels; the envelope says so.
                Err(error) => {
                    prop_assert!(depth > 100 || place == "content", "depth {}: {:?}", depth, error);
                    check_refusal(error)?;
                }
                Ok(_) => prop_assert!(depth <= 128 && place != "content", "depth {} in {} accepted", depth, place),
            }
            Ok(())
        })
        .unwrap();
    progress.finish();
}

#[test]
fn a_prompt_near_the_body_limit_reads_whole() {
    let prompt = "ünïcödé words and \"quotes\"\n".repeat(30_000);
    let body = serde_json::to_vec(&common::chat("auto", &prompt)).unwrap();
    assert!(body.len() > 800_000);
    let chat = parse_chat_request(&body).unwrap();
    assert_eq!(chat.messages[0].content.0, prompt);
    let error = parse_chat_request(
        br#"{"model":"auto","messages":[{"role":"user","content":""}],"max_tokens":1e400}"#,
    )
    .unwrap_err();
    assert!(error.message.contains("not valid JSON"), "{error:?}");
}

/// Found by `valid_requests_read_back_as_sent`: serde_json's default float parser can be one
/// ULP off, so a client's `temperature: 0.9169992959989913` was forwarded as
/// 0.9169992959989912 (and a body the router does not understand is meant to pass untouched).
#[test]
fn numbers_the_client_sent_are_forwarded_exactly() {
    let body = br#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":0.9169992959989913,"x_run":{"a":7.62210691922645e-309}}"#;
    let chat = parse_chat_request(body).unwrap();
    assert_eq!(chat.body["temperature"].to_string(), "0.9169992959989913");
    assert_eq!(chat.body["x_run"]["a"].to_string(), "7.62210691922645e-309");
}

/// What a body of `content_type` should get from a JSON endpoint, from the parser's verdict.
fn json_content_type(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        essence == "application/json" || essence.ends_with("+json")
    })
}

#[test]
fn the_server_answers_any_body_with_a_4xx_envelope_or_a_decision() {
    let server = Server::start(Launch {
        env: vec![("SEMROUTER__SERVER__MAX_BODY_BYTES", MAX_BODY.to_string())],
        ..Launch::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let body = prop_oneof![
        4 => any_body(),
        1 => (0usize..3).prop_map(|n| vec![b' '; MAX_BODY + 1 + n * 1000]),
        1 => "\\PC{1000,1500}".prop_map(|p| serde_json::to_vec(&common::chat("auto", &p)).unwrap()),
    ];
    let content_type = proptest::option::of(prop::sample::select(vec![
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/problem+json",
        "multipart/form-data",
    ]));
    let endpoint = prop::sample::select(vec![
        "/v1/route",
        "/v1/chat/completions",
        "/v1/classify",
        "/v1/embeddings",
    ]);
    let progress = fuzz::Progress::new("server_bodies");
    fuzz::runner(file!(), 48)
        .run(
            &(endpoint, content_type, body),
            |(endpoint, content_type, body)| {
                if !progress.tick() {
                    return Ok(());
                }
                let (status, reply) = runtime.block_on(async {
                    let mut request = client.post(server.url(endpoint)).body(body.clone());
                    if let Some(ct) = content_type {
                        request = request.header("content-type", ct);
                    }
                    let response = request.send().await.expect("the server answers");
                    let status = response.status().as_u16();
                    let text = response.bytes().await.expect("a whole reply");
                    (
                        status,
                        serde_json::from_slice::<Value>(&text).unwrap_or(Value::Null),
                    )
                });
                let parsed = match endpoint {
                    "/v1/classify" => parse_classify_request(&body).map(|_| ()),
                    "/v1/embeddings" => parse_embeddings_request(&body).map(|_| ()),
                    _ => parse_chat_request(&body).map(|_| ()),
                };
                if status >= 400 {
                    let error = &reply["error"];
                    prop_assert!(
                        error["message"].as_str().is_some_and(|m| !m.is_empty()),
                        "{}: {} without an envelope: {}",
                        endpoint,
                        status,
                        reply
                    );
                    prop_assert!(
                        error["type"].is_string() && error["code"].is_string(),
                        "{}",
                        reply
                    );
                }
                // The server checks the content type, then the size, then the JSON.
                let expected = if !json_content_type(content_type) {
                    Some(415)
                } else if body.len() > MAX_BODY {
                    Some(413)
                } else if parsed.is_err() {
                    Some(400)
                } else {
                    None
                };
                match (expected, &parsed) {
                    (Some(code), _) => {
                        prop_assert_eq!(status, code, "{} {:?}: {}", endpoint, content_type, reply);
                        if let (400, Err(error)) = (code, &parsed) {
                            prop_assert_eq!(
                                reply["error"]["param"].as_str(),
                                error.param.as_deref(),
                                "the server names the parser's field"
                            );
                        }
                    }
                    // A readable request: a decision (or a refusal the engine makes, still a 4xx);
                    // the proxy has no upstream here, which is its one 5xx (502).
                    (None, _) => match endpoint {
                        "/v1/chat/completions" => prop_assert!(
                            status < 500
                                || (status == 502
                                    && reply["error"]["code"] == "upstream_not_configured"),
                            "{}: {}",
                            status,
                            reply
                        ),
                        _ => prop_assert!(
                            status == 200 || (400..500).contains(&status),
                            "{} {}: {}",
                            endpoint,
                            status,
                            reply
                        ),
                    },
                }
                if endpoint == "/v1/route" && status == 200 {
                    prop_assert!(reply["action"].is_string(), "{}", reply);
                }
                Ok(())
            },
        )
        .unwrap();
    progress.finish();
    // The server is still serving after all of it.
    assert_eq!(
        common::get_status(server.base.trim_start_matches("http://"), "/ready"),
        Some(200)
    );
}
