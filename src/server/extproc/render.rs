//! Building ext_proc replies: header and body mutations for a routed request, and the
//! `ImmediateResponse`s (cache hit, blocked, bad request, overload) Envoy answers with itself.

use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    processing_mode::BodySendMode, ProcessingMode,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation::Mutation, processing_response::Response, BodyMutation, BodyResponse,
    CommonResponse, HeaderMutation, HeadersResponse, ImmediateResponse, ProcessingResponse,
    StreamedBodyResponse, TrailersResponse,
};

use crate::server::error::ApiError;

/// A header to set (overwriting any value the request had).
fn set(name: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_string(),
            // Envoy reads `raw_value` when set; `value` is the older field.
            raw_value: value.as_bytes().to_vec(),
            ..HeaderValue::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

/// The header mutation of a routed request: the decision headers, and `content-length` for
/// the rewritten body.
pub fn header_mutation(headers: &[(&str, String)], body_len: Option<usize>) -> HeaderMutation {
    let mut set_headers: Vec<HeaderValueOption> = headers.iter().map(|(n, v)| set(n, v)).collect();
    if let Some(len) = body_len {
        set_headers.push(set("content-length", &len.to_string()));
    }
    HeaderMutation {
        set_headers,
        remove_headers: Vec::new(),
    }
}

/// The common part of a routed request's reply; `clear_route_cache` makes Envoy pick the route
/// again from the new headers.
pub fn routed_common(mutation: HeaderMutation, body: Option<Vec<u8>>) -> CommonResponse {
    CommonResponse {
        header_mutation: Some(mutation),
        body_mutation: body.map(|b| BodyMutation {
            mutation: Some(Mutation::Body(b)),
        }),
        clear_route_cache: true,
        ..CommonResponse::default()
    }
}

/// A reply to request headers.
pub fn request_headers(common: Option<CommonResponse>) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(Response::RequestHeaders(HeadersResponse {
            response: common,
        })),
        ..ProcessingResponse::default()
    }
}

/// A reply to a request body message.
pub fn request_body(common: Option<CommonResponse>) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(Response::RequestBody(BodyResponse { response: common })),
        ..ProcessingResponse::default()
    }
}

/// A body mutation that empties a chunk (STREAMED mode: the rewritten body goes in the last).
pub fn clear_chunk() -> CommonResponse {
    CommonResponse {
        body_mutation: Some(BodyMutation {
            mutation: Some(Mutation::ClearBody(true)),
        }),
        ..CommonResponse::default()
    }
}

/// The whole body at once in FULL_DUPLEX_STREAMED mode (the server sends the body back).
pub fn streamed_body(body: Vec<u8>, end_of_stream: bool) -> CommonResponse {
    CommonResponse {
        body_mutation: Some(BodyMutation {
            mutation: Some(Mutation::StreamedResponse(StreamedBodyResponse {
                body,
                end_of_stream,
                ..StreamedBodyResponse::default()
            })),
        }),
        ..CommonResponse::default()
    }
}

/// A reply to response headers; `body_mode` asks Envoy to send the response body that way.
pub fn response_headers(body_mode: Option<BodySendMode>) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(Response::ResponseHeaders(HeadersResponse {
            response: None,
        })),
        mode_override: body_mode.map(|mode| ProcessingMode {
            response_body_mode: mode as i32,
            ..ProcessingMode::default()
        }),
        ..ProcessingResponse::default()
    }
}

/// A reply to a response body chunk.
pub fn response_body(common: Option<CommonResponse>) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(Response::ResponseBody(BodyResponse { response: common })),
        ..ProcessingResponse::default()
    }
}

/// A reply to trailers: leave them as they are.
pub fn request_trailers() -> ProcessingResponse {
    ProcessingResponse {
        response: Some(Response::RequestTrailers(TrailersResponse::default())),
        ..ProcessingResponse::default()
    }
}

/// A reply to response trailers: leave them as they are.
pub fn response_trailers() -> ProcessingResponse {
    ProcessingResponse {
        response: Some(Response::ResponseTrailers(TrailersResponse::default())),
        ..ProcessingResponse::default()
    }
}

/// Envoy answers the client itself with `status`, `headers` and `body`.
pub fn immediate(
    status: u16,
    headers: &[(&str, String)],
    body: Vec<u8>,
    details: &str,
) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(Response::ImmediateResponse(ImmediateResponse {
            status: Some(HttpStatus {
                code: i32::from(status),
            }),
            headers: Some(HeaderMutation {
                set_headers: headers.iter().map(|(n, v)| set(n, v)).collect(),
                remove_headers: Vec::new(),
            }),
            body,
            grpc_status: None,
            details: details.to_string(),
        })),
        ..ProcessingResponse::default()
    }
}

/// An error in the OpenAI envelope, answered by Envoy.
pub fn error(error: &ApiError) -> ProcessingResponse {
    use actix_web::ResponseError as _;
    let body = serde_json::to_vec(&error.envelope()).unwrap_or_default();
    let mut headers = vec![("content-type", "application/json".to_string())];
    if let Some(seconds) = error.retry_after_s() {
        headers.push(("retry-after", seconds.to_string()));
    }
    immediate(error.status_code().as_u16(), &headers, body, error.code())
}
