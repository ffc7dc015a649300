//! HTTP errors: every failure is JSON `{"error": "..."}` with the status the API
//! documents, including the ones axum and tower-http produce themselves.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::refusals::Refusal;
use crate::domain::TodoSystemError;
use sluicegate::runtime::CallError;

/// An HTTP error: a status and a message naming what is wrong.
#[derive(Debug)]
pub struct ApiError {
    /// The status to answer with.
    pub status: StatusCode,
    /// What is wrong, for the JSON body.
    pub message: String,
    /// For a refusal by the system (5xx): its short reason, logged by
    /// `refusals::log_refusals` (`rejected`, `timeout`, `damaged`, ...).
    pub reason: Option<&'static str>,
}

impl ApiError {
    /// An error with this status and message (no refusal reason).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            reason: None,
        }
    }

    /// A 400 naming the bad field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

/// Whether an unavailable list's cause is damaged stored data, which retrying
/// cannot fix. The storage layer's only non-transient error
/// (`StorageError::Corrupt`, "stored list ... is damaged: ...") reaches this
/// layer as text inside `TodoSystemError::Unavailable`.
fn is_damaged_data(message: &str) -> bool {
    message.contains("is damaged")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let refusal = self.reason.map(|reason| Refusal {
            reason,
            message: self.message.clone(),
        });
        let mut resp = (self.status, Json(json!({ "error": self.message }))).into_response();
        // Only a 503 is temporary; a damaged list answers 500 and no Retry-After.
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(refusal) = refusal {
            resp.extensions_mut().insert(refusal);
        }
        resp
    }
}

impl From<TodoSystemError> for ApiError {
    fn from(e: TodoSystemError) -> Self {
        let (status, reason) = match &e {
            TodoSystemError::Invalid(_) => (StatusCode::BAD_REQUEST, None),
            TodoSystemError::NotFound(_) | TodoSystemError::ListNotFound(_) => {
                (StatusCode::NOT_FOUND, None)
            }
            TodoSystemError::Overloaded(CallError::Timeout) | TodoSystemError::Timeout => {
                (StatusCode::GATEWAY_TIMEOUT, Some("timeout"))
            }
            TodoSystemError::Overloaded(c) => (StatusCode::SERVICE_UNAVAILABLE, Some(c.label())),
            TodoSystemError::Unavailable(m) if is_damaged_data(m) => {
                (StatusCode::INTERNAL_SERVER_ERROR, Some("damaged"))
            }
            TodoSystemError::Unavailable(m) if m.contains("fenced: ") => {
                (StatusCode::SERVICE_UNAVAILABLE, Some("fenced"))
            }
            TodoSystemError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
            }
            TodoSystemError::NotDurable(crate::domain::database::StoreError::Fenced(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, Some("fenced"))
            }
            TodoSystemError::NotDurable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, Some("not_durable"))
            }
            TodoSystemError::Crashed => (StatusCode::INTERNAL_SERVER_ERROR, Some("crashed")),
        };
        ApiError {
            status,
            message: e.to_string(),
            reason,
        }
    }
}

/// Turns any error response that is not JSON yet (axum's 405, tower-http's 413 and
/// 408) into the API's JSON error shape, keeping its status and headers; a 413 also
/// closes the connection.
pub async fn json_errors(mut resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body is never read, so hyper closes the connection after this
        // answer; say so, or a keep-alive client reuses the dead connection and its next
        // request fails with a broken pipe.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (mut parts, _body) = resp.into_parts();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large: the limit is 64 KiB".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route".to_string(),
        StatusCode::REQUEST_TIMEOUT => "request timed out".to_string(),
        s => s.canonical_reason().unwrap_or("error").to_ascii_lowercase(),
    };
    let body = serde_json::to_vec(&json!({ "error": message })).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}
