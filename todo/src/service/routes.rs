//! Routes, middleware and handlers of the to-do API. The handlers take the
//! request's parts through `fields.rs`, where every rejection becomes a 400 (or 413)
//! JSON error that names the bad field.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde_json::json;

use super::edge::EdgeLayer;
use super::error::ApiError;
use super::fields::*;
use super::AppState;
use crate::config::LimitConfig;
use crate::domain::{EntryUpdate, ListName, WriteOutcome};

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
        .route("/metrics", get(metrics))
        .route("/cluster", get(cluster))
        .merge(super::dashboard::routes())
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .with_state(state);
    // One service around every route (and the fallback): limit, checks, body,
    // timeout, JSON errors, refusal log and metrics (see `edge.rs`).
    let app = routes.layer(EdgeLayer::new(request_timeout, limit));
    // On a cluster node, requests for lists it does not serve go to their owner, ahead
    // of every other layer: the owner checks, limits, times and counts them.
    match forwarder {
        Some(f) => app.layer(middleware::from_fn_with_state(
            f,
            super::forward::route_to_owner,
        )),
        None => app,
    }
}

/// `GET /cluster`: the node's view of members, leases and epochs (404 on a single node).
async fn cluster(State(state): State<AppState>) -> Response {
    match &state.cluster {
        Some(node) => Json(node.view()).into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "this server is a single node: it runs without a [cluster] section",
        )
        .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
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

#[utoipa::path(post, path = "/lists/{list}/entries", tag = "entries", params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded"), ("ack" = Option<super::openapi::AckDoc>, Query, description = "When to answer: none, applied or durable (default from config)")),
    request_body = super::openapi::NewEntryDoc,
    responses((status = 201, description = "Added", body = super::openapi::EntryDoc, headers(("Location" = String, description = "The new entry's path"))),
        (status = 202, description = "Accepted with ack none", body = super::openapi::AcceptedDoc), super::openapi::ApiErrors))]
pub(super) async fn add_entry(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<AckQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let list = path_list(path)?;
    let ack = ack(query)?;
    let body: NewEntry = json_body(&headers, &body)?;
    let date = date_field("date", &body.date)?;
    title_field(&body.title)?;
    let outcome = state
        .system
        .add_entry(&list, date, &body.title, ack)
        .await
        .map_err(|e| prefix_invalid(e, "title"))?;
    if let WriteOutcome::Done(entry) = &outcome {
        let location = format!("{}/{}", entries_path(&list), entry.id);
        let mut resp = (StatusCode::CREATED, Json(entry)).into_response();
        if let Ok(v) = header::HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(resp);
    }
    let accepted = json!({
        "status": "accepted",
        "list": list.as_str(),
        "date": body.date,
        "title": body.title,
    });
    Ok(written(outcome, StatusCode::CREATED, accepted))
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
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let list = path_list(path)?;
    let q: ReadQuery = self::query(query)?;
    let parse =
        |field: &str, v: &Option<String>| v.as_deref().map(|d| date_field(field, d)).transpose();
    let (date, from, to) = (
        parse("date", &q.date)?,
        parse("from", &q.from)?,
        parse("to", &q.to)?,
    );
    // The filters combine: `date` and a range both apply; `from` after `to` is empty.
    let limit = match q.limit.as_deref() {
        None => None,
        Some(l) => Some(
            l.parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "limit: \"{}\" is not a page size (a whole number from 1 to {MAX_PAGE})",
                        l.chars().take(64).collect::<String>()
                    ))
                })?,
        ),
    };
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
    let mut entries: Vec<_> = state
        .system
        .entries(&list, date)
        .await?
        .into_iter()
        .filter(|e| from.is_none_or(|f| e.date >= f) && to.is_none_or(|t| e.date <= t))
        .filter(|e| e.id > after)
        .filter(|e| done.is_none_or(|d| e.done == d))
        .collect();
    let mut next = None;
    if let Some(limit) = limit {
        if entries.len() > limit {
            entries.truncate(limit);
            let last = entries.last().map_or(after, |e| e.id);
            let mut params = Vec::new();
            for (k, v) in [
                ("date", &q.date),
                ("from", &q.from),
                ("to", &q.to),
                ("done", &q.done),
            ] {
                if let Some(v) = v {
                    params.push(format!("{k}={v}"));
                }
            }
            params.push(format!("limit={limit}"));
            params.push(format!("after={last}"));
            next = Some(format!(
                "<{}?{}>; rel=\"next\"",
                entries_path(&list),
                params.join("&")
            ));
        }
    }
    let mut resp = Json(entries).into_response();
    if let Some(link) = next.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, link);
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/lists/{list}/entries/{id}", tag = "entries", params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded"), ("id" = i64, Path, minimum = 1, description = "The entry id")),
    responses((status = 200, description = "The entry", body = super::openapi::EntryDoc), super::openapi::ApiErrors))]
pub(super) async fn get_entry(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<NoQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (list, id) = path_list_id(path)?;
    let NoQuery {} = self::query(query)?;
    let entries = state.system.entries(&list, None).await?;
    match entries.into_iter().find(|e| e.id == id) {
        Some(e) => Ok(Json(e).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no entry with id {id}"),
        )),
    }
}

/// Every list the service knows (stored or live), by name, with its entry count.
#[utoipa::path(get, path = "/lists", tag = "lists",
    responses((status = 200, description = "Every list by name with its entry count", body = [super::openapi::ListSummaryDoc]), super::openapi::ApiErrors))]
pub(super) async fn all_lists(
    State(state): State<AppState>,
    query: Result<Query<NoQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let NoQuery {} = self::query(query)?;
    let mut names = state
        .system
        .database()
        .storage()
        .list_names()
        .await
        .map_err(|e| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("cannot list the stored lists: {e}"),
            reason: Some("unavailable"),
        })?;
    names.extend(state.system.registry().live_names());
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        out.push(list_summary(&state, &name).await);
    }
    Ok(Json(out).into_response())
}

/// `{"name", "entries"}`, or `{"name", "entries": null, "error"}` when it cannot be read.
async fn list_summary(state: &AppState, name: &ListName) -> serde_json::Value {
    match state.system.entries(name, None).await {
        Ok(entries) => json!({ "name": name.as_str(), "entries": entries.len() }),
        Err(e) => json!({ "name": name.as_str(), "entries": null, "error": e.to_string() }),
    }
}

/// One list's name and entry count (an unknown list is empty: 0).
#[utoipa::path(get, path = "/lists/{list}", tag = "lists", params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded")),
    responses((status = 200, description = "The list's name and entry count (an unknown list: 0)", body = super::openapi::ListSummaryDoc), super::openapi::ApiErrors))]
pub(super) async fn one_list(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<NoQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let list = path_list(path)?;
    let NoQuery {} = self::query(query)?;
    let entries = state.system.entries(&list, None).await?;
    Ok(Json(json!({ "name": list.as_str(), "entries": entries.len() })).into_response())
}

/// Deletes a whole list, durably; the name's next write starts a fresh list.
#[utoipa::path(delete, path = "/lists/{list}", tag = "lists", params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded")),
    responses((status = 204, description = "Deleted: gone from stable storage; the name's next write starts a fresh list with ids from 1"), super::openapi::ApiErrors))]
pub(super) async fn delete_list(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<NoQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let list = path_list(path)?;
    let NoQuery {} = self::query(query)?;
    state.system.delete_list(&list).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(patch, path = "/lists/{list}/entries/{id}", tag = "entries", params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded"), ("id" = i64, Path, minimum = 1, description = "The entry id"), ("ack" = Option<super::openapi::AckDoc>, Query, description = "When to answer: none, applied or durable (default from config)")),
    request_body = super::openapi::EntryPatchDoc,
    responses((status = 200, description = "Changed", body = super::openapi::EntryDoc),
        (status = 202, description = "Accepted with ack none", body = super::openapi::AcceptedDoc), super::openapi::ApiErrors))]
pub(super) async fn update_entry(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<AckQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (list, id) = path_list_id(path)?;
    let ack = ack(query)?;
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
    let outcome = state
        .system
        .update_entry(&list, id, update, ack)
        .await
        .map_err(|e| prefix_invalid(e, "title"))?;
    Ok(written(outcome, StatusCode::OK, accepted))
}

#[utoipa::path(delete, path = "/lists/{list}/entries/{id}", tag = "entries", params(("list" = String, Path, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", description = "The list name: 1 to 256 bytes of UTF-8 (multi-byte characters reach the limit sooner than maxLength says) without control characters, percent-encoded"), ("id" = i64, Path, minimum = 1, description = "The entry id"), ("ack" = Option<super::openapi::AckDoc>, Query, description = "When to answer: none, applied or durable (default from config)")),
    responses((status = 204, description = "Deleted"),
        (status = 202, description = "Accepted with ack none", body = super::openapi::AcceptedDoc), super::openapi::ApiErrors))]
pub(super) async fn delete_entry(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<AckQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (list, id) = path_list_id(path)?;
    let ack = ack(query)?;
    let outcome = state.system.delete_entry(&list, id, ack).await?;
    let accepted = json!({ "status": "accepted", "list": list.as_str(), "id": id });
    Ok(written(outcome, StatusCode::NO_CONTENT, accepted))
}
