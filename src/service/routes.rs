//! Routes and handlers of the to-do API; every extractor's rejection becomes a
//! 400 (or 413) JSON error that names the bad field.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::error::{json_errors, ApiError};
use super::{http_metrics, AppState, BODY_LIMIT};
use crate::config::AckMode;
use crate::todo::{parse_date, EntryUpdate, ListName, WriteOutcome};

pub(super) fn router(state: AppState, request_timeout: Duration) -> Router {
    Router::new()
        .route("/lists/{list}/entries", get(list_entries).post(add_entry))
        .route(
            "/lists/{list}/entries/{id}",
            axum::routing::patch(update_entry).delete(delete_entry),
        )
        .route("/metrics", get(metrics))
        .merge(super::dashboard::routes())
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                message: "no such route".into(),
            }
        })
        .with_state(state)
        .layer(middleware::from_fn(strict_percent_encoding))
        .layer(middleware::from_fn(read_body_first))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(middleware::map_response(json_errors))
        // Outside the body limit and the timeout, so their 413s and 408s are counted.
        .layer(middleware::from_fn(http_metrics::track))
        .layer(TraceLayer::new_for_http())
}

/// Reads the whole request body (within the body limit) before any handler runs, so that
/// routes which ignore the body (reads, deletes, 404s, 405s) still consume it and the
/// connection stays usable for the client's next request: an unread body makes hyper
/// close a keep-alive connection after answering, which a client that reuses it sees as a
/// broken pipe.
async fn read_body_first(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    match Bytes::from_request(Request::new(body), &()).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: TOO_LARGE.into(),
        }
        .into_response(),
        Err(e) => ApiError::bad_request(format!("body: {}", e.body_text())).into_response(),
    }
}

/// Message of every 413.
const TOO_LARGE: &str = "body: request body too large: the limit is 64 KiB";

/// Rejects a path with a `%` not followed by two hex digits. Path extraction would
/// otherwise keep such text literally and, for instance, accept `a%ZZ` as a list name.
async fn strict_percent_encoding(req: Request, next: Next) -> Response {
    match bad_percent_escape(req.uri().path()) {
        Some((at, text)) => ApiError::bad_request(format!(
            "path: invalid percent-encoding \"{text}\" at byte {at}; \"%\" must be followed by two hex digits"
        ))
        .into_response(),
        None => next.run(req).await,
    }
}

/// The byte offset and text of the first malformed `%` escape in `path`.
fn bad_percent_escape(path: &str) -> Option<(usize, String)> {
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
        } else if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            i += 3;
        } else {
            return Some((i, path[i..].chars().take(3).collect()));
        }
    }
    None
}

async fn metrics(State(state): State<AppState>) -> Response {
    // Mailboxes publish counts in batches; publish them all so the scrape is exact.
    crate::mailbox::metrics::flush_all();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
        .into_response()
}

fn list_name(raw: &str) -> Result<ListName, ApiError> {
    ListName::new(raw).map_err(|e| ApiError::bad_request(format!("list: {e}")))
}

fn path_list(path: Result<Path<String>, PathRejection>) -> Result<ListName, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::bad_request(format!("list: {}", e.body_text())))?;
    list_name(&raw)
}

fn path_list_id(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(ListName, u64), ApiError> {
    let Path((raw, id)) =
        path.map_err(|e| ApiError::bad_request(format!("path: {}", e.body_text())))?;
    let list = list_name(&raw)?;
    let id = id
        .parse::<u64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "id: \"{}\" is not an entry id (a whole number from 1 to {})",
                id.chars().take(64).collect::<String>(),
                u64::MAX
            ))
        })?;
    Ok((list, id))
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(v)) => Ok(v),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: TOO_LARGE.into(),
        }),
        Err(e) => Err(ApiError {
            status: match e.status() {
                StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                _ => StatusCode::BAD_REQUEST,
            },
            message: format!("body: {}", e.body_text()),
        }),
    }
}

#[derive(Deserialize)]
struct AckQuery {
    ack: Option<String>,
}

#[derive(Deserialize)]
struct ReadQuery {
    date: Option<String>,
}

fn ack(q: Result<Query<AckQuery>, QueryRejection>) -> Result<Option<AckMode>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    q.ack
        .map(|a| {
            a.parse::<AckMode>()
                .map_err(|e| ApiError::bad_request(format!("ack: {e}")))
        })
        .transpose()
}

fn date_field(field: &str, value: &str) -> Result<chrono::NaiveDate, ApiError> {
    parse_date(value).map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    date: String,
    title: String,
    /// Accepted and ignored: the list assigns ids.
    #[allow(dead_code)]
    id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryPatch {
    date: Option<String>,
    title: Option<String>,
}

fn written(outcome: WriteOutcome, done: StatusCode) -> Response {
    match outcome {
        WriteOutcome::Accepted => {
            (StatusCode::ACCEPTED, Json(json!({ "status": "accepted" }))).into_response()
        }
        WriteOutcome::Done(entry) if done == StatusCode::NO_CONTENT => {
            let _ = entry;
            StatusCode::NO_CONTENT.into_response()
        }
        WriteOutcome::Done(entry) => (done, Json(entry)).into_response(),
    }
}

async fn add_entry(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<AckQuery>, QueryRejection>,
    body: Result<Json<NewEntry>, JsonRejection>,
) -> Result<Response, ApiError> {
    let list = path_list(path)?;
    let ack = ack(query)?;
    let body = json_body(body)?;
    let date = date_field("date", &body.date)?;
    let outcome = state
        .system
        .add_entry(&list, date, &body.title, ack)
        .await
        .map_err(|e| prefix_invalid(e, "title"))?;
    Ok(written(outcome, StatusCode::CREATED))
}

/// Names the field for the only input the system itself validates.
fn prefix_invalid(e: crate::todo::TodoSystemError, field: &str) -> ApiError {
    match e {
        crate::todo::TodoSystemError::Invalid(inner) => {
            ApiError::bad_request(format!("{field}: {inner}"))
        }
        other => other.into(),
    }
}

async fn list_entries(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let list = path_list(path)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    let date = q
        .date
        .as_deref()
        .map(|d| date_field("date", d))
        .transpose()?;
    let entries = state.system.entries(&list, date).await?;
    Ok(Json(entries).into_response())
}

async fn update_entry(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<AckQuery>, QueryRejection>,
    body: Result<Json<EntryPatch>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (list, id) = path_list_id(path)?;
    let ack = ack(query)?;
    let body = json_body(body)?;
    if body.date.is_none() && body.title.is_none() {
        return Err(ApiError::bad_request(
            "body: give \"date\" and/or \"title\" to change",
        ));
    }
    let date = body
        .date
        .as_deref()
        .map(|d| date_field("date", d))
        .transpose()?;
    let update = EntryUpdate {
        date,
        title: body.title,
    };
    let outcome = state
        .system
        .update_entry(&list, id, update, ack)
        .await
        .map_err(|e| prefix_invalid(e, "title"))?;
    Ok(written(outcome, StatusCode::OK))
}

async fn delete_entry(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<AckQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (list, id) = path_list_id(path)?;
    let ack = ack(query)?;
    let outcome = state.system.delete_entry(&list, id, ack).await?;
    Ok(written(outcome, StatusCode::NO_CONTENT))
}
