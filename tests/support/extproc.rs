//! Envoy's side of the ext_proc protocol, for tests that talk to semrouter's gRPC server
//! directly rather than through a real Envoy: the messages Envoy sends.
#![allow(dead_code)] // each test binary uses a different part

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
use envoy_types::pb::envoy::service::ext_proc::v3::{HttpBody, HttpHeaders, ProcessingRequest};

/// Headers as Envoy sends them (values as raw bytes).
pub fn header_map<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> HeaderMap {
    HeaderMap {
        headers: pairs
            .iter()
            .map(|(k, v)| HeaderValue {
                key: k.as_ref().to_string(),
                raw_value: v.as_ref().as_bytes().to_vec(),
                ..HeaderValue::default()
            })
            .collect(),
    }
}

/// A `POST /v1/chat/completions` with JSON `body` as Envoy sends it in BUFFERED mode: the
/// request headers, then the whole body.
pub fn buffered_chat(body: Vec<u8>) -> Vec<ProcessingRequest> {
    buffered_chat_with(&[], body)
}

/// As [`buffered_chat`], with `extra` request headers after the usual three.
pub fn buffered_chat_with(extra: &[(&str, &str)], body: Vec<u8>) -> Vec<ProcessingRequest> {
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    vec![
        ProcessingRequest {
            request: Some(Request::RequestHeaders(HttpHeaders {
                headers: Some(header_map(&headers)),
                ..HttpHeaders::default()
            })),
            ..ProcessingRequest::default()
        },
        ProcessingRequest {
            request: Some(Request::RequestBody(HttpBody {
                body,
                end_of_stream: true,
                ..HttpBody::default()
            })),
            ..ProcessingRequest::default()
        },
    ]
}
