//! The wire format of `/v1/embeddings` and `/v1/models`: the request body, and strict parsing
//! of replies. A reply is used only if it holds exactly one finite vector of the expected
//! dimension for every input index; anything else is a [`CallError::Malformed`].

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::CallError;

/// The body of `POST /v1/embeddings`.
#[derive(Serialize)]
pub(crate) struct EmbeddingsRequest<'a> {
    pub model: &'a str,
    pub input: Vec<&'a str>,
    pub encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<usize>,
    /// vLLM's extension: truncate each input to this many tokens instead of failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncate_prompt_tokens: Option<usize>,
}

#[derive(Deserialize)]
struct Reply {
    data: Vec<Item>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Embedding,
}

/// Either form, whatever was asked for: the values are checked the same way.
#[derive(Deserialize)]
#[serde(untagged)]
enum Embedding {
    Floats(Vec<f64>),
    Base64(String),
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: usize,
}

/// Embeddings in input order, and the tokens the server counted for the whole call.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub rows: Vec<Vec<f32>>,
    pub prompt_tokens: Option<usize>,
}

/// Parses and checks a 2xx reply for `expected` inputs. `dimension` is the known dimension,
/// or `None` at start-up, when every row must merely agree with the first.
pub(crate) fn parse_embeddings(
    body: &[u8],
    expected: usize,
    dimension: Option<usize>,
) -> Result<Parsed, CallError> {
    let reply: Reply = serde_json::from_slice(body)
        .map_err(|e| CallError::Malformed(format!("not an embeddings reply: {e}")))?;
    if reply.data.len() != expected {
        return Err(CallError::Malformed(format!(
            "{} embeddings for {expected} inputs",
            reply.data.len()
        )));
    }
    let mut rows: Vec<Option<Vec<f32>>> = vec![None; expected];
    let mut dimension = dimension;
    for item in reply.data {
        let index = item.index;
        let values = decode(item.embedding)
            .map_err(|e| CallError::Malformed(format!("embedding {index}: {e}")))?;
        let want = *dimension.get_or_insert(values.len());
        if values.len() != want {
            return Err(CallError::Malformed(format!(
                "embedding {index} has {} values, expected {want}",
                values.len()
            )));
        }
        if values.is_empty() {
            return Err(CallError::Malformed(format!("embedding {index} is empty")));
        }
        if let Some(position) = values.iter().position(|v| !v.is_finite()) {
            return Err(CallError::Malformed(format!(
                "embedding {index} has a non-finite value at {position}"
            )));
        }
        match rows.get_mut(index) {
            None => {
                return Err(CallError::Malformed(format!(
                    "index {index} out of range for {expected} inputs"
                )))
            }
            Some(Some(_)) => {
                return Err(CallError::Malformed(format!("index {index} appears twice")))
            }
            Some(slot) => *slot = Some(values),
        }
    }
    // With the count equal and no duplicates, every index is present; checked anyway so a
    // logic slip can never hand out an empty row.
    let rows = rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| row.ok_or_else(|| CallError::Malformed(format!("index {i} missing"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Parsed {
        rows,
        prompt_tokens: reply.usage.map(|u| u.prompt_tokens),
    })
}

fn decode(embedding: Embedding) -> Result<Vec<f32>, String> {
    match embedding {
        // f64 first so that a value beyond f32's range becomes infinite and is refused,
        // instead of a parser error that hides which value was wrong.
        Embedding::Floats(values) => Ok(values.into_iter().map(|v| v as f32).collect()),
        Embedding::Base64(text) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|e| format!("bad base64: {e}"))?;
            if bytes.len() % 4 != 0 {
                return Err(format!(
                    "{} bytes of base64 is not a whole number of f32 values",
                    bytes.len()
                ));
            }
            Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        }
    }
}

#[derive(Deserialize)]
struct Models {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

/// The model ids a `GET /v1/models` reply lists.
pub(crate) fn parse_models(body: &[u8]) -> Result<Vec<String>, String> {
    let models: Models =
        serde_json::from_slice(body).map_err(|e| format!("not a model list: {e}"))?;
    Ok(models.data.into_iter().map(|m| m.id).collect())
}

/// The message of an error reply: OpenAI's envelope `{"error": {"message"}}`, vLLM's older
/// `{"message"}`, or else the start of the body, on one line.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let message = value
            .pointer("/error/message")
            .or_else(|| value.get("message"))
            .or_else(|| value.get("detail"))
            .and_then(|m| m.as_str());
        if let Some(message) = message {
            return one_line(message);
        }
    }
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        "(empty body)".into()
    } else {
        one_line(&text)
    }
}

/// At most 300 characters, control characters replaced: error text ends up in logs.
fn one_line(text: &str) -> String {
    let mut out: String = text
        .trim()
        .chars()
        .take(300)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().chars().count() > 300 {
        out.push('…');
    }
    out
}

/// Splits the call's token count over its inputs in proportion to their length, since the
/// API reports only a total; the parts add up to the total.
pub(crate) fn apportion(total: usize, lengths: &[usize]) -> Vec<usize> {
    let sum: usize = lengths.iter().sum::<usize>().max(1);
    let mut out: Vec<usize> = lengths.iter().map(|&l| total * l / sum).collect();
    let mut left = total.saturating_sub(out.iter().sum());
    for slot in out.iter_mut() {
        if left == 0 {
            break;
        }
        *slot += 1;
        left -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(values: &[f32]) -> String {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn body(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn orders_rows_by_index_in_both_forms() {
        let reply = body(json!({"data": [
            {"index": 1, "embedding": b64(&[3.0, 4.0])},
            {"index": 0, "embedding": [1.0, 2.0]}
        ], "usage": {"prompt_tokens": 7, "total_tokens": 7}}));
        let parsed = parse_embeddings(&reply, 2, Some(2)).unwrap();
        assert_eq!(parsed.rows, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert_eq!(parsed.prompt_tokens, Some(7));
    }

    #[test]
    fn refuses_every_malformed_shape() {
        let cases = [
            (
                json!({"data": [{"index": 0, "embedding": [1.0, 2.0]}]}),
                "1 embeddings for 2 inputs",
            ),
            (
                json!({"data": [{"index": 0, "embedding": [1.0, 2.0]}, {"index": 0, "embedding": [1.0, 2.0]}]}),
                "appears twice",
            ),
            (
                json!({"data": [{"index": 0, "embedding": [1.0, 2.0]}, {"index": 5, "embedding": [1.0, 2.0]}]}),
                "out of range",
            ),
            (
                json!({"data": [{"index": 0, "embedding": [1.0, 2.0]}, {"index": 1, "embedding": [1.0]}]}),
                "has 1 values, expected 2",
            ),
            (
                json!({"data": [{"index": 0, "embedding": [1.0, 2.0]}, {"index": 1, "embedding": [1.0, 1e39]}]}),
                "non-finite",
            ),
            (
                json!({"data": [{"index": 0, "embedding": b64(&[f32::NAN, 1.0])}, {"index": 1, "embedding": [1.0, 2.0]}]}),
                "non-finite",
            ),
            (
                json!({"data": [{"index": 0, "embedding": "@@@"}, {"index": 1, "embedding": [1.0, 2.0]}]}),
                "bad base64",
            ),
            (
                json!({"data": [{"index": 0, "embedding": "AAAAAAA="}, {"index": 1, "embedding": [1.0, 2.0]}]}),
                "whole number",
            ),
            (
                json!({"data": [{"index": 0}, {"index": 1, "embedding": [1.0, 2.0]}]}),
                "not an embeddings reply",
            ),
            (json!({"object": "list"}), "not an embeddings reply"),
        ];
        for (reply, expected) in cases {
            let err = parse_embeddings(&body(reply.clone()), 2, Some(2)).unwrap_err();
            match &err {
                CallError::Malformed(message) => {
                    assert!(message.contains(expected), "{reply}: {message}")
                }
                other => panic!("{reply}: {other:?}"),
            }
        }
        let err = parse_embeddings(
            b"{\"data\": [{\"index\": 0, \"embedding\": [NaN, 1.0]}]}",
            1,
            None,
        )
        .unwrap_err();
        assert!(matches!(err, CallError::Malformed(_)), "{err:?}");
        assert!(matches!(
            parse_embeddings(b"<html>", 1, None),
            Err(CallError::Malformed(_))
        ));
    }

    #[test]
    fn start_up_learns_the_dimension_from_the_first_row() {
        let reply = body(json!({"data": [{"index": 0, "embedding": [1.0, 2.0, 3.0]}]}));
        assert_eq!(parse_embeddings(&reply, 1, None).unwrap().rows[0].len(), 3);
        let reply = body(json!({"data": [{"index": 0, "embedding": []}]}));
        assert!(parse_embeddings(&reply, 1, None).is_err());
    }

    #[test]
    fn error_messages_come_from_the_envelope() {
        let openai = body(
            json!({"error": {"message": "model `x` not found", "type": "invalid_request_error"}}),
        );
        assert_eq!(error_message(&openai), "model `x` not found");
        let vllm_old = body(json!({"object": "error", "message": "too long", "code": 400}));
        assert_eq!(error_message(&vllm_old), "too long");
        assert_eq!(error_message(b"Bad Gateway\n"), "Bad Gateway");
        assert_eq!(error_message(b""), "(empty body)");
        assert!(error_message("x".repeat(1000).as_bytes()).chars().count() <= 301);
    }

    #[test]
    fn tokens_are_apportioned_by_length() {
        assert_eq!(apportion(10, &[5, 5]), vec![5, 5]);
        assert_eq!(apportion(10, &[1, 2]).iter().sum::<usize>(), 10);
        assert_eq!(apportion(7, &[100]), vec![7]);
        assert_eq!(apportion(0, &[3, 4]), vec![0, 0]);
    }

    #[test]
    fn request_leaves_out_unset_options() {
        let r = EmbeddingsRequest {
            model: "m",
            input: vec!["a"],
            encoding_format: "base64",
            dimensions: None,
            truncate_prompt_tokens: Some(256),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"model": "m", "input": ["a"], "encoding_format": "base64", "truncate_prompt_tokens": 256})
        );
    }
}
