//! Routes, middleware and handlers of the to-do API. The handlers take the
//! request's parts through `fields.rs`, where every rejection becomes a 400 (or 413)
//! JSON error that names the bad field.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::edge::EdgeLayer;
use super::error::ApiError;
use super::fields::*;
use super::idempotency;
use super::AppState;
use crate::config::{AckMode, LimitConfig};
use crate::domain::server::{KeyedWrite, Write};
use crate::domain::{EntryQuery, EntryUpdate, ListName};

pub(super) fn router(state: AppState, request_timeout: Duration, limit: &LimitConfig) -> Router {
    let forwarder = state.cluster.clone().map(|node| {
        std::sync::Arc::new(super::forward::Forwarder::new(
            node,
            request_timeout.saturating_sub(Duration::from_secs(1)),
        ))
    });
    let routes = Router::new()
        .route("/lists", get(all_lists))
        .route("/lists/{list}", get(one_list).delete(delete_list))
        .route("/lists/{list}/entries", get(list_entries).post(add_entry))
        .route(
            "/lists/{list}/entries/{id}",
            get(get_entry).patch(update_entry).delete(delete_entry),
        )
        .route(
            "/openapi.json",
            get(|| async { Json(super::openapi::document()) }),
        )
        .route(
            "/docs",
            get(|| async { axum::response::Html(super::openapi::DOCS_PAGE) }),
        )
        .route("/docs/redoc.standalone.js", get(super::openapi::redoc_js))
        .route("/metrics", get(metrics))
        .route("/cluster", get(cluster))
        .merge(super::dashboard::routes())
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        // One reference count per request (axum clones the route's state for every
        // request, and the extractor once more) instead of one per field.
        .with_state(Arc::new(state));
    // One service around every route (and the fallback): limit, checks, body,
    // timeout, JSON errors, refusal log and metrics (see `edge.rs`).
    let app = routes.layer(EdgeLayer::new(request_timeout, limit));
    // On a cluster node, requests for lists it does not serve go to their owner, ahead
    // of every other layer: the owner checks, limits, times and counts them.
    match forwarder {
        Some(f) => app.layer(super::forward::RouteLayer::new(f)),
        None => app,
    }
}

/// `GET /cluster`: the node's view of members, leases and epochs (404 on a single node).
async fn cluster(State(state): State<Arc<AppState>>) -> Response {
    match &state.cluster {
        Some(node) => Json(node.view()).into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "this server is a single node: it runs without a [cluster] section",
        )
        .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    // Mailboxes publish counts in batches; publish them all so the scrape is exact.
    sluicegate::mailbox::metrics::flush_all();
    let policies = state.system.policies();
    let current = [
        ("todo_server", policies.todo_server.name()),
        ("database", policies.database.name()),
        ("database_worker", policies.database_worker.name()),
    ];
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        without_stale_policies(&state.prometheus.render(), &current),
    )
        .into_response()
}

/// The exposition without the series of a mailbox role labelled with a policy the
/// role no longer has. A reload (SIGHUP) changes a role's `policy` label; the
/// recorder cannot forget a series, so the old label's series (frozen at their
/// last values) are left out here and Prometheus sees them end.
pub(super) fn without_stale_policies(text: &str, current: &[(&str, &str)]) -> String {
    let label = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let len = line[start..].find('"')?;
        Some(line[start..start + len].to_string())
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let stale = !line.starts_with('#')
            && match (label(line, "mailbox"), label(line, "policy")) {
                (Some(role), Some(policy)) => current
                    .iter()
                    .any(|(r, p)| *r == role.as_str() && *p != policy.as_str()),
                _ => false,
            };
        if !stale {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[utoipa::path(post, path = "/lists/{list}/entries", tag = "entries", params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded"), ("ack" = Option<super::openapi::AckDoc>, Query, description = "When to answer: none, applied or durable (default from config)"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "1 to 255 visible ASCII characters naming this write: a repeat with the same key and request gets the first result (Idempotent-Replayed: true) and writes nothing; the same key with another request is 422. Kept per list for system.idempotency_window (24 h)")),
    request_body = super::openapi::NewEntryDoc,
    responses((status = 201, description = "Added", body = super::openapi::EntryDoc, headers(("Location" = String, description = "The new entry's path"))),
        (status = 202, description = "Accepted with ack none", body = super::openapi::AcceptedDoc), super::openapi::ApiErrors))]
pub(super) async fn add_entry(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<AckQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let list = path_list(path)?;
    let ack = ack(query)?.unwrap_or_else(|| state.system.default_ack());
    let key = idempotency::key(&headers)?;
    let body: NewEntry = json_body(&headers, &body)?;
    let date = date_field("date", &body.date)?;
    title_field(&body.title)?;
    // Only a write with ack `none` is answered `202` with what was accepted, so
    // only then is its title kept for the answer.
    let title_202 = (ack == AckMode::None).then(|| body.title.clone());
    let accepted = || {
        json!({
            "status": "accepted",
            "list": list.as_str(),
            "date": body.date,
            "title": title_202,
        })
    };
    let write = KeyedWrite {
        write: Write::Add {
            date,
            title: body.title,
        },
        key,
    };
    let outcome = state
        .system
        .write(&list, write, Some(ack))
        .await
        .map_err(|e| prefix_invalid(e, "title"))?;
    let location = |id| Some(format!("{}/{id}", entries_path(&list)));
    Ok(written(outcome, StatusCode::CREATED, accepted, location))
}

/// Names the field for the only input the system itself validates.
fn prefix_invalid(e: crate::domain::TodoSystemError, field: &str) -> ApiError {
    match e {
        crate::domain::TodoSystemError::Invalid(inner) => {
            ApiError::bad_request(format!("{field}: {inner}"))
        }
        other => other.into(),
    }
}

#[utoipa::path(get, path = "/lists/{list}/entries", tag = "entries",
    params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded"),
        ("date" = Option<String>, Query, format = Date, description = "Only this date (combines with from/to)"),
        ("from" = Option<String>, Query, format = Date, description = "From this date, inclusive"),
        ("to" = Option<String>, Query, format = Date, description = "To this date, inclusive"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many entries"),
        ("after" = Option<i64>, Query, minimum = 0, description = "Only ids above this one"),
        ("done" = Option<bool>, Query, description = "Only entries done (true) or not done (false)")),
    responses((status = 200, description = "Entries in id order; a Link rel=next header when a page follows", body = [super::openapi::EntryDoc],
        headers(("Link" = String, description = "The next page, when limit cut the answer"))), super::openapi::ApiErrors))]
pub(super) async fn list_entries(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let list = path_list(path)?;
    let q: ReadQuery = self::query(query)?;
    let parse =
        |field: &str, v: &Option<String>| v.as_deref().map(|d| date_field(field, d)).transpose();
    let limit = limit_field(q.limit.as_deref())?;
    let done = match q.done.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "done: \"{}\" is not a flag; expected true or false",
                other.chars().take(64).collect::<String>()
            )))
        }
    };
    let after = match q.after.as_deref() {
        None => 0,
        Some(a) => a
            .parse::<u64>()
            .ok()
            .filter(|a| *a <= MAX_ID)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "after: \"{}\" is not an entry id (a whole number from 0 to {MAX_ID})",
                    a.chars().take(64).collect::<String>(),
                ))
            })?,
    };
    // The filters combine: `date` and a range both apply; `from` after `to` is empty.
    let query = EntryQuery {
        date: parse("date", &q.date)?,
        from: parse("from", &q.from)?,
        to: parse("to", &q.to)?,
        done,
        after,
        limit,
    };
    let page = state
        .system
        .query_json(&list, query)
        .await?
        .ok_or_else(|| no_list(&list))?;
    let next = match (page.more, page.last_id) {
        (true, Some(last)) => {
            let mut params: Vec<(&str, String)> = [
                ("date", &q.date),
                ("from", &q.from),
                ("to", &q.to),
                ("done", &q.done),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
            .collect();
            params.push(("limit", limit.to_string()));
            params.push(("after", last.to_string()));
            next_link(&entries_path(&list), &params)
        }
        _ => None,
    };
    // The bytes `Json(entries)` would write (for an unfiltered read of a published
    // list, serialized once per version of the list).
    let mut resp = (
        [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)],
        axum::body::Body::from(page.json),
    )
        .into_response();
    if let Some(link) = next {
        resp.headers_mut().insert(header::LINK, link);
    }
    Ok(resp)
}

/// The content type of a JSON answer, as axum's `Json` sets it.
const JSON_CONTENT_TYPE: header::HeaderValue = header::HeaderValue::from_static("application/json");

/// The 404 of a list that does not exist (never written, or deleted).
fn no_list(list: &ListName) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no list named \"{list}\": a list exists from its first entry until it is deleted"),
    )
}

#[utoipa::path(get, path = "/lists/{list}/entries/{id}", tag = "entries", params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded"), ("id" = i64, Path, minimum = 1, description = "The entry id")),
    responses((status = 200, description = "The entry", body = super::openapi::EntryDoc), super::openapi::ApiErrors))]
pub(super) async fn get_entry(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<NoQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (list, id) = path_list_id(path)?;
    let NoQuery {} = self::query(query)?;
    let one = EntryQuery {
        after: id - 1,
        limit: 1,
        ..EntryQuery::default()
    };
    let page = state
        .system
        .query(&list, one)
        .await?
        .ok_or_else(|| no_list(&list))?;
    match page.entries.into_iter().find(|e| e.id == id) {
        Some(e) => Ok(Json(e).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no entry with id {id}"),
        )),
    }
}

/// Every list that exists (stored, or live and written), by name, with its entry
/// count, a page at a time.
#[utoipa::path(get, path = "/lists", tag = "lists",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many lists (default 1000)"),
        ("after" = Option<String>, Query, description = "Only lists whose name sorts after this one")),
    responses((status = 200, description = "Lists by name with their entry counts; a Link rel=next header when a page follows", body = [super::openapi::ListSummaryDoc],
        headers(("Link" = String, description = "The next page, when limit cut the answer"))), super::openapi::ApiErrors))]
pub(super) async fn all_lists(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ListsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q: ListsQuery = self::query(query)?;
    let limit = limit_field(q.limit.as_deref())?;
    let mut names = state
        .system
        .database()
        .storage()
        .list_names()
        .await
        .map_err(|e| {
            ApiError::refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                crate::domain::Effect::NotApplied,
                format!("cannot list the stored lists: {e}"),
            )
        })?;
    names.extend(state.system.registry().live_names());
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    let after = q.after.as_deref().unwrap_or("");
    let mut out = Vec::new();
    let mut next = None;
    for name in names.into_iter().filter(|n| n.as_str() > after) {
        // A live list server of a name never written is not a list.
        let Some(summary) = list_summary(&state, &name).await else {
            continue;
        };
        if out.len() == limit {
            let last = out
                .last()
                .and_then(|v: &serde_json::Value| v["name"].as_str())
                .unwrap_or_default()
                .to_string();
            next = next_link("/lists", &[("limit", limit.to_string()), ("after", last)]);
            break;
        }
        out.push(summary);
    }
    let mut resp = Json(out).into_response();
    if let Some(link) = next {
        resp.headers_mut().insert(header::LINK, link);
    }
    Ok(resp)
}

/// `{"name", "entries"}`, `{"name", "entries": null, "error"}` when it cannot be
/// read, or `None` when it does not exist.
async fn list_summary(state: &AppState, name: &ListName) -> Option<serde_json::Value> {
    match state.system.entry_count(name).await {
        Ok(Some(count)) => Some(json!({ "name": name.as_str(), "entries": count })),
        Ok(None) => None,
        Err(e) => Some(json!({ "name": name.as_str(), "entries": null, "error": e.to_string() })),
    }
}

/// One list's name and entry count; 404 when it does not exist.
#[utoipa::path(get, path = "/lists/{list}", tag = "lists", params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded")),
    responses((status = 200, description = "The list's name and entry count", body = super::openapi::ListSummaryDoc), super::openapi::ApiErrors))]
pub(super) async fn one_list(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<NoQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let list = path_list(path)?;
    let NoQuery {} = self::query(query)?;
    let count = state
        .system
        .entry_count(&list)
        .await?
        .ok_or_else(|| no_list(&list))?;
    Ok(Json(json!({ "name": list.as_str(), "entries": count })).into_response())
}

/// Deletes a whole list, durably, with its entries and the receipts of its keyed
/// writes; the name's next write starts a fresh list. With an `Idempotency-Key`
/// the answer is 204 also when the list did not exist: the state it asks for (no
/// such list) holds either way, so a repeat gets the first answer.
#[utoipa::path(delete, path = "/lists/{list}", tag = "lists", params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes the delete answer 204 when the list is already gone")),
    responses((status = 204, description = "Deleted: gone from stable storage; the name's next write starts a fresh list with ids from 1"), super::openapi::ApiErrors))]
pub(super) async fn delete_list(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<NoQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let list = path_list(path)?;
    let NoQuery {} = self::query(query)?;
    let key = idempotency::key(&headers)?;
    match state.system.delete_list(&list).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(crate::domain::TodoSystemError::ListNotFound(_)) if key.is_some() => {
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(patch, path = "/lists/{list}/entries/{id}", tag = "entries", params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded"), ("id" = i64, Path, minimum = 1, description = "The entry id"), ("ack" = Option<super::openapi::AckDoc>, Query, description = "When to answer: none, applied or durable (default from config)"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "1 to 255 visible ASCII characters naming this write: a repeat with the same key and request gets the first result (Idempotent-Replayed: true) and writes nothing; the same key with another request is 422. Kept per list for system.idempotency_window (24 h)")),
    request_body = super::openapi::EntryPatchDoc,
    responses((status = 200, description = "Changed", body = super::openapi::EntryDoc),
        (status = 202, description = "Accepted with ack none", body = super::openapi::AcceptedDoc), super::openapi::ApiErrors))]
pub(super) async fn update_entry(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<AckQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (list, id) = path_list_id(path)?;
    let ack = ack(query)?;
    let key = idempotency::key(&headers)?;
    let body: EntryPatch = json_body(&headers, &body)?;
    if body.date.is_none() && body.title.is_none() && body.done.is_none() {
        return Err(ApiError::bad_request(
            "body: give \"date\", \"title\" and/or \"done\" to change",
        ));
    }
    let date = body
        .date
        .as_deref()
        .map(|d| date_field("date", d))
        .transpose()?;
    if let Some(title) = &body.title {
        title_field(title)?;
    }
    let mut accepted = json!({ "status": "accepted", "list": list.as_str(), "id": id });
    if let Some(d) = &body.date {
        accepted["date"] = json!(d);
    }
    if let Some(t) = &body.title {
        accepted["title"] = json!(t);
    }
    if let Some(d) = body.done {
        accepted["done"] = json!(d);
    }
    let update = EntryUpdate {
        date,
        title: body.title,
        done: body.done,
    };
    let write = KeyedWrite {
        write: Write::Update { id, update },
        key,
    };
    let outcome = state
        .system
        .write(&list, write, ack)
        .await
        .map_err(|e| prefix_invalid(e, "title"))?;
    Ok(written(outcome, StatusCode::OK, || accepted, |_| None))
}

#[utoipa::path(delete, path = "/lists/{list}/entries/{id}", tag = "entries", params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded"), ("id" = i64, Path, minimum = 1, description = "The entry id"), ("ack" = Option<super::openapi::AckDoc>, Query, description = "When to answer: none, applied or durable (default from config)"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "1 to 255 visible ASCII characters naming this write: a repeat with the same key and request gets the first result (Idempotent-Replayed: true) and writes nothing; the same key with another request is 422. Kept per list for system.idempotency_window (24 h)")),
    responses((status = 204, description = "Deleted"),
        (status = 202, description = "Accepted with ack none", body = super::openapi::AcceptedDoc), super::openapi::ApiErrors))]
pub(super) async fn delete_entry(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<AckQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (list, id) = path_list_id(path)?;
    let ack = ack(query)?;
    let key = idempotency::key(&headers)?;
    let write = KeyedWrite {
        write: Write::Delete { id },
        key,
    };
    let outcome = state.system.write(&list, write, ack).await?;
    let accepted = || json!({ "status": "accepted", "list": list.as_str(), "id": id });
    Ok(written(outcome, StatusCode::NO_CONTENT, accepted, |_| None))
}
