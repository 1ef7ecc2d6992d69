//! What the gateway reads and answers besides updates stored: a request body parsed into
//! checked updates (one JSON update, a JSON array, or NDJSON), and the JSON error answers.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::model::{now_us, InventoryUpdate};

/// A JSON error answer: `{"error": …}` plus details.
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) body: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Backpressure: the client should come back, and soon.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

pub(super) fn error(status: StatusCode, message: impl Into<String>, details: Value) -> ApiError {
    let mut body = json!({ "error": message.into() });
    if let (Some(body), Value::Object(details)) = (body.as_object_mut(), details) {
        body.extend(details);
    }
    ApiError { status, body }
}
/// The request's body, or the answer that says why there is none: a body over
/// `--max-body-bytes` (413, naming the limit), or one in an encoding the gateway does not decode.
pub(super) fn readable_body(
    body: std::result::Result<Bytes, BytesRejection>,
    headers: &HeaderMap,
    max_body_bytes: u64,
) -> std::result::Result<Bytes, ApiError> {
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        let encoding = encoding.to_str().unwrap_or("?").trim();
        if !encoding.eq_ignore_ascii_case("identity") {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {encoding} is not supported: send the body uncompressed"),
                json!({}),
            ));
        }
    }
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than {max_body_bytes} bytes (--max-body-bytes): send fewer updates per request"
            ),
            json!({ "max_body_bytes": max_body_bytes }),
        ),
        status => error(status, rejection.body_text(), json!({})),
    })
}

/// Parses a body into (update, had its own seq) pairs; any invalid update rejects the request.
pub(super) fn parse_updates(
    body: &[u8],
) -> std::result::Result<Vec<(InventoryUpdate, bool)>, ApiError> {
    if body.starts_with(&[0x1f, 0x8b]) {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body is gzip-compressed: send it uncompressed (JSON or NDJSON)",
            json!({}),
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "the body is not UTF-8", json!({})))?;
    let trimmed = text.trim();
    let now = now_us();
    let invalid = |field: &str, position: usize, reason: String| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid inventory update",
            json!({ field: position, "reason": reason }),
        )
    };
    if trimmed.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the body holds no update",
            json!({}),
        ));
    }
    if trimmed.starts_with('[') {
        let items: Vec<Value> = serde_json::from_str(trimmed).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "the body is not a JSON array",
                json!({ "reason": e.to_string() }),
            )
        })?;
        if items.is_empty() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "the array holds no update",
                json!({}),
            ));
        }
        return items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                InventoryUpdate::from_input_value(item, 0, now)
                    .map_err(|r| invalid("index", index, r))
            })
            .collect();
    }
    let lines: Vec<&str> = trimmed.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            let value: Value = serde_json::from_str(line)
                .map_err(|e| invalid("line", index + 1, e.to_string()))?;
            InventoryUpdate::from_input_value(value, 0, now)
                .map_err(|r| invalid("line", index + 1, r))
        })
        .collect()
}
