//! HTTP errors: every failure is JSON `{"error": "..."}` with the status the API
//! documents, including the ones axum and tower-http produce themselves. A failure
//! of the to-do system also says what the request did, `"outcome": "not_applied"`
//! or `"unknown"`; its status comes from the error's kind, never from its text
//! (the table is in docs/guarantees.md, "What an answer promises").

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::refusals::Refusal;
use crate::domain::{Effect, TodoSystemError};
use sluicegate::runtime::StartError;

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
    /// What the request did, when the server knows: the body's `outcome`.
    pub effect: Option<Effect>,
}

impl ApiError {
    /// An error with this status and message (no refusal reason).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            reason: None,
            effect: None,
        }
    }

    /// A refusal by the system: `status`, its short `reason` for the refusal log,
    /// and what the request did.
    pub fn refusal(
        status: StatusCode,
        reason: &'static str,
        effect: Effect,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            message: message.into(),
            reason: Some(reason),
            effect: Some(effect),
        }
    }

    /// A 400 naming the bad field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

/// What an answer whose outcome is unknown tells the client to do.
pub const REPEAT_WITH_KEY: &str =
    "it may have been applied: repeat it with the same Idempotency-Key to learn its result";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let refusal = self.reason.map(|reason| Refusal {
            reason,
            message: self.message.clone(),
        });
        let body = match self.effect {
            Some(effect) => json!({ "error": self.message, "outcome": effect.label() }),
            None => json!({ "error": self.message }),
        };
        let mut resp = (self.status, Json(body)).into_response();
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
        let effect = e.effect();
        let (status, reason) = match &e {
            TodoSystemError::Invalid(_) => (StatusCode::BAD_REQUEST, None),
            TodoSystemError::NotFound(_) | TodoSystemError::ListNotFound(_) => {
                (StatusCode::NOT_FOUND, None)
            }
            TodoSystemError::KeyReused(_) => (StatusCode::UNPROCESSABLE_ENTITY, None),
            TodoSystemError::Overloaded(c) => (StatusCode::SERVICE_UNAVAILABLE, Some(c.label())),
            TodoSystemError::Timeout => (StatusCode::GATEWAY_TIMEOUT, Some("timeout")),
            TodoSystemError::ShuttingDown => {
                (StatusCode::SERVICE_UNAVAILABLE, Some("shutting_down"))
            }
            TodoSystemError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, Some("stopped")),
            TodoSystemError::NotStarted(_) if e.is_damaged_data() => {
                (StatusCode::INTERNAL_SERVER_ERROR, Some("damaged"))
            }
            TodoSystemError::NotStarted(StartError::Init(i)) if i.is_panic() => {
                (StatusCode::INTERNAL_SERVER_ERROR, Some("crashed"))
            }
            _ if e.is_fenced() => (StatusCode::SERVICE_UNAVAILABLE, Some("fenced")),
            TodoSystemError::NotStarted(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
            }
            TodoSystemError::NotDeleted(_) | TodoSystemError::NotDurable(_) => match effect {
                Effect::NotApplied => (StatusCode::SERVICE_UNAVAILABLE, Some("not_durable")),
                Effect::Unknown => (StatusCode::GATEWAY_TIMEOUT, Some("not_durable")),
            },
            TodoSystemError::Crashed => (StatusCode::INTERNAL_SERVER_ERROR, Some("crashed")),
        };
        let message = match effect {
            Effect::Unknown => format!("{e}; {REPEAT_WITH_KEY}"),
            Effect::NotApplied => e.to_string(),
        };
        ApiError {
            status,
            message,
            reason,
            effect: Some(effect),
        }
    }
}

/// Turns any error response that is not JSON yet (axum's 405, tower-http's 413 and
/// the request timeout's 504) into the API's JSON error shape, keeping its status and
/// headers; a 413 also closes the connection, and the timeout's 504 says the outcome
/// is unknown (the handler may have applied the write before it was cut off).
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
    let body = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            json!({ "error": "request body too large: the limit is 64 KiB" })
        }
        StatusCode::METHOD_NOT_ALLOWED => json!({ "error": "method not allowed on this route" }),
        StatusCode::GATEWAY_TIMEOUT => json!({
            "error": format!("the server did not finish the request in time; {REPEAT_WITH_KEY}"),
            "outcome": Effect::Unknown.label(),
        }),
        s => json!({ "error": s.canonical_reason().unwrap_or("error").to_ascii_lowercase() }),
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

#[cfg(test)]
mod tests {
    //! One test per row of docs/guarantees.md, "What an answer promises", at the
    //! mapping from the system's typed error to the answer.

    use std::sync::Arc;

    use super::*;
    use crate::domain::database::StoreError;
    use crate::domain::{ListName, TodoError};
    use crate::storage::StorageError;
    use sluicegate::runtime::CallError;

    fn answer(e: TodoSystemError) -> (StatusCode, Option<&'static str>) {
        let a = ApiError::from(e);
        (a.status, a.effect.map(Effect::label))
    }

    fn list() -> ListName {
        ListName::new("l").unwrap()
    }

    fn storage() -> Arc<StorageError> {
        Arc::new(StorageError::Injected {
            list: list(),
            what: "boom".into(),
        })
    }

    fn fenced() -> Arc<StorageError> {
        Arc::new(StorageError::Fenced {
            list: list(),
            detail: "n2 holds it".into(),
        })
    }

    const NOT: Option<&str> = Some("not_applied");
    const UNKNOWN: Option<&str> = Some("unknown");

    #[test]
    fn refusals_before_the_list_server_ran_the_request_are_503_not_applied() {
        for c in [
            CallError::Rejected,
            CallError::Dropped,
            CallError::Expired,
            CallError::Timeout,
        ] {
            assert_eq!(
                answer(TodoSystemError::Overloaded(c)),
                (StatusCode::SERVICE_UNAVAILABLE, NOT),
                "{c:?}"
            );
        }
        assert_eq!(
            answer(TodoSystemError::ShuttingDown),
            (StatusCode::SERVICE_UNAVAILABLE, NOT)
        );
        assert_eq!(
            answer(TodoSystemError::Stopped),
            (StatusCode::SERVICE_UNAVAILABLE, NOT)
        );
        assert_eq!(
            answer(TodoSystemError::NotStarted(StartError::TooManyServers {
                cap: 1
            })),
            (StatusCode::SERVICE_UNAVAILABLE, NOT)
        );
        assert_eq!(
            answer(TodoSystemError::NotDurable(StoreError::Fenced(fenced()))),
            (StatusCode::SERVICE_UNAVAILABLE, NOT)
        );
        let resp = ApiError::from(TodoSystemError::Stopped).into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn answers_that_may_hide_an_applied_write_are_unknown() {
        assert_eq!(
            answer(TodoSystemError::Timeout),
            (StatusCode::GATEWAY_TIMEOUT, UNKNOWN)
        );
        for e in [
            StoreError::Storage(storage()),
            StoreError::Dropped,
            StoreError::Unanswered(std::time::Duration::from_secs(1)),
        ] {
            assert_eq!(
                answer(TodoSystemError::NotDurable(e.clone())),
                (StatusCode::GATEWAY_TIMEOUT, UNKNOWN),
                "{e:?}"
            );
        }
        assert_eq!(
            answer(TodoSystemError::Crashed),
            (StatusCode::INTERNAL_SERVER_ERROR, UNKNOWN)
        );
        let message = ApiError::from(TodoSystemError::Timeout).message;
        assert!(message.contains("same Idempotency-Key"), "{message}");
    }

    #[test]
    fn bad_input_unknown_ids_and_reused_keys_are_4xx_not_applied() {
        assert_eq!(
            answer(TodoSystemError::Invalid(TodoError::InvalidTitle(
                "x".into()
            ))),
            (StatusCode::BAD_REQUEST, NOT)
        );
        assert_eq!(
            answer(TodoSystemError::NotFound(3)),
            (StatusCode::NOT_FOUND, NOT)
        );
        assert_eq!(
            answer(TodoSystemError::ListNotFound(list())),
            (StatusCode::NOT_FOUND, NOT)
        );
        let key = crate::domain::IdempotencyKey::new("k").unwrap();
        assert_eq!(
            answer(TodoSystemError::KeyReused(key)),
            (StatusCode::UNPROCESSABLE_ENTITY, NOT)
        );
    }

    #[test]
    fn a_list_whose_load_failed_is_500_when_damaged_and_503_otherwise_by_kind() {
        use crate::domain::database::LoadError;
        use crate::domain::server::NotLoaded;
        use sluicegate::runtime::InitError;
        let not_started = |cause: StorageError| {
            let e = NotLoaded {
                list: list(),
                cause: LoadError::Storage(Arc::new(cause)),
            };
            TodoSystemError::NotStarted(StartError::Init(InitError::returned(Box::new(e))))
        };
        // The kind decides, whatever the text says.
        let damaged = not_started(StorageError::Corrupt {
            list: list(),
            detail: "fenced: no".into(),
        });
        assert_eq!(answer(damaged), (StatusCode::INTERNAL_SERVER_ERROR, NOT));
        let fenced = not_started(StorageError::Fenced {
            list: list(),
            detail: "is damaged".into(),
        });
        let a = ApiError::from(fenced);
        assert_eq!(
            (a.status, a.reason),
            (StatusCode::SERVICE_UNAVAILABLE, Some("fenced"))
        );
        let down = not_started(StorageError::Injected {
            list: list(),
            what: "is damaged".into(),
        });
        assert_eq!(answer(down), (StatusCode::SERVICE_UNAVAILABLE, NOT));
    }

    #[tokio::test]
    async fn the_request_timeouts_504_says_its_outcome_is_unknown() {
        let bare = StatusCode::GATEWAY_TIMEOUT.into_response();
        let resp = json_errors(bare).await;
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["outcome"], "unknown", "{v}");
        assert!(
            v["error"].as_str().unwrap().contains("Idempotency-Key"),
            "{v}"
        );
    }
}
