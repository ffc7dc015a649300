//! The request's parts as the handlers take them: the list name and entry id from
//! the path, the JSON body, the query, and each field's check. Every rejection is a
//! 400 (or 413) JSON error that names the bad field, in the same words everywhere.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::error::ApiError;
use crate::config::AckMode;
use crate::domain::{parse_date, ListName, WriteOutcome};

pub(super) fn list_name(raw: &str) -> Result<ListName, ApiError> {
    ListName::new(raw).map_err(|e| ApiError::bad_request(format!("list: {e}")))
}

pub(super) fn path_list(path: Result<Path<String>, PathRejection>) -> Result<ListName, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::bad_request(format!("list: {}", e.body_text())))?;
    list_name(&raw)
}

pub(super) fn path_list_id(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(ListName, u64), ApiError> {
    let Path((raw, id)) =
        path.map_err(|e| ApiError::bad_request(format!("path: {}", e.body_text())))?;
    let list = list_name(&raw)?;
    let id = id
        .parse::<u64>()
        .ok()
        .filter(|id| (1..=MAX_ID).contains(id))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "id: \"{}\" is not an entry id (a whole number from 1 to {MAX_ID})",
                id.chars().take(64).collect::<String>(),
            ))
        })?;
    Ok((list, id))
}

/// A JSON body as `T`: only an object is accepted (serde would also take an array
/// as a positional struct), and the message names the field without serde's type names.
pub(super) fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().as_bytes())
        .is_some_and(|v| {
            // Case-insensitive, without a lowercase copy.
            let (prefix, suffix) = (&b"application/"[..], &b"+json"[..]);
            v.eq_ignore_ascii_case(b"application/json")
                || (v.len() >= prefix.len() + suffix.len()
                    && v[..prefix.len()].eq_ignore_ascii_case(prefix)
                    && v[v.len() - suffix.len()..].eq_ignore_ascii_case(suffix))
        });
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "body: expected a request with `Content-Type: application/json`",
        ));
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => return Err(ApiError::bad_request(
            "body: expected a JSON object, e.g. {\"date\": \"2026-11-23\", \"title\": \"Dentist\"}",
        )),
        None => return Err(ApiError::bad_request("body: empty; expected a JSON object")),
    }
    // serde_json alone where the body is good; axum's `Json` (which tracks the
    // path of the bad field, and costs more) only to word the error.
    if let Ok(v) = serde_json::from_slice::<T>(body) {
        return Ok(v);
    }
    match Json::<T>::from_bytes(body) {
        Ok(Json(v)) => Ok(v),
        Err(e) => {
            let text = e.body_text();
            let detail = text
                .split_once(": ")
                .filter(|(head, _)| head.starts_with("Failed to"))
                .map_or(text.as_str(), |(_, rest)| rest);
            Err(ApiError::bad_request(format!("body: {detail}")))
        }
    }
}

/// A query string as `T` (unknown parameters refused, by name).
pub(super) fn query<T: serde::de::DeserializeOwned>(
    q: Result<Query<T>, QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| {
        let text = e.body_text();
        let detail = text
            .split_once(": ")
            .filter(|(head, _)| head.starts_with("Failed to"))
            .map_or(text.as_str(), |(_, rest)| rest);
        ApiError::bad_request(format!("query: {detail}"))
    })
}

/// Deserializes a present field that must not be `null` (absent stays `None`
/// through `#[serde(default)]`).
pub(super) fn not_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AckQuery {
    pub(super) ack: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadQuery {
    pub(super) date: Option<String>,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) limit: Option<String>,
    pub(super) after: Option<String>,
    pub(super) done: Option<String>,
}

/// A route without query parameters: any one given is refused by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoQuery {}

/// The largest entry id the API takes: OpenAPI's `int64` maximum (2^63-1), which JSON
/// clients and schema tools handle; a list assigns ids from 1 upwards and never
/// reaches it.
pub const MAX_ID: u64 = i64::MAX as u64;

/// Most entries (or lists) one page holds; also the page size when `limit` is not
/// given. A page cut short has a `Link: <...>; rel="next"` header.
pub const MAX_PAGE: usize = 1000;

/// The query of `GET /lists`: a page of lists by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListsQuery {
    pub(super) limit: Option<String>,
    pub(super) after: Option<String>,
}

/// A `limit` parameter: 1 to [`MAX_PAGE`], default [`MAX_PAGE`].
pub(super) fn limit_field(limit: Option<&str>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(MAX_PAGE),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit: \"{}\" is not a page size (a whole number from 1 to {MAX_PAGE})",
                    l.chars().take(64).collect::<String>()
                ))
            }),
    }
}

/// What a query value keeps unescaped: RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A `Link` header naming the next page, `path?query`.
pub(super) fn next_link(path: &str, query: &[(&str, String)]) -> Option<header::HeaderValue> {
    let query: Vec<String> = query
        .iter()
        .map(|(k, v)| {
            let v = percent_encoding::utf8_percent_encode(v, QUERY_VALUE);
            format!("{k}={v}")
        })
        .collect();
    header::HeaderValue::from_str(&format!("<{path}?{}>; rel=\"next\"", query.join("&"))).ok()
}

/// What a list name escapes in a URL path segment: all but RFC 3986's unreserved characters.
pub(super) const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The path of a list's entries, percent-encoded.
pub(super) fn entries_path(list: &ListName) -> String {
    format!(
        "/lists/{}/entries",
        percent_encoding::utf8_percent_encode(list.as_str(), PATH_SEGMENT)
    )
}

pub(super) fn ack(q: Result<Query<AckQuery>, QueryRejection>) -> Result<Option<AckMode>, ApiError> {
    query(q)?
        .ack
        .map(|a| {
            a.parse::<AckMode>()
                .map_err(|e| ApiError::bad_request(format!("ack: {e}")))
        })
        .transpose()
}

pub(super) fn date_field(field: &str, value: &str) -> Result<chrono::NaiveDate, ApiError> {
    parse_date(value).map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewEntry {
    pub(super) date: String,
    pub(super) title: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EntryPatch {
    #[serde(default, deserialize_with = "not_null")]
    pub(super) date: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    pub(super) title: Option<String>,
    #[serde(default, deserialize_with = "not_null_bool")]
    pub(super) done: Option<bool>,
}

/// As [`not_null`], for a flag.
pub(super) fn not_null_bool<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<bool>, D::Error> {
    bool::deserialize(d).map(Some)
}

/// Refuses a title that is only whitespace (the list checks length and control characters).
pub(super) fn title_field(title: &str) -> Result<(), ApiError> {
    if !title.is_empty() && title.trim().is_empty() {
        return Err(ApiError::bad_request(
            "title: only whitespace; give a title with visible text",
        ));
    }
    Ok(())
}

/// The answer to a write: `done` with the entry (and `location`, its path, for a
/// new one), or `202` with what was accepted (`accepted`: the write as queued; a new
/// entry's id is not known until applied; made only for a `202`). A replayed result
/// is answered as the first one was, marked `Idempotent-Replayed: true`.
pub(super) fn written(
    outcome: WriteOutcome,
    done: StatusCode,
    accepted: impl FnOnce() -> serde_json::Value,
    location: impl Fn(u64) -> Option<String>,
) -> Response {
    let (entry, replayed) = match outcome {
        WriteOutcome::Accepted => {
            return (StatusCode::ACCEPTED, Json(accepted())).into_response();
        }
        WriteOutcome::Done(entry) => (entry, false),
        WriteOutcome::Replayed(entry) => (entry, true),
    };
    let mut resp = if done == StatusCode::NO_CONTENT {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (done, Json(&entry)).into_response()
    };
    if let Some(v) = location(entry.id).and_then(|l| header::HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        resp = super::idempotency::mark_replayed(resp);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_type(content_type: &str) -> Result<NewEntry, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        json_body(
            &headers,
            &Bytes::from_static(br#"{"date":"2026-12-04","title":"t"}"#),
        )
    }

    #[test]
    fn json_media_types_are_matched_without_regard_to_case() {
        for good in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ;x=y",
            "application/merge-patch+json",
            "APPLICATION/VND.API+JSON",
            "application/+json",
        ] {
            assert!(with_type(good).is_ok(), "{good}");
        }
        for bad in [
            "text/json",
            "application/jsonx",
            "application/json+xml",
            "application/xml",
            "application+json",
            "json",
            "",
        ] {
            let err = with_type(bad).map(|_| ()).unwrap_err();
            assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad}");
        }
    }

    #[test]
    fn a_bad_body_is_named_as_before_and_a_good_one_parsed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let entry: NewEntry = json_body(
            &headers,
            &Bytes::from_static(br#" {"date":"d","title":"t"} "#),
        )
        .unwrap();
        assert_eq!((entry.date.as_str(), entry.title.as_str()), ("d", "t"));
        let err =
            json_body::<NewEntry>(&headers, &Bytes::from_static(br#"{"date":1,"title":"t"}"#))
                .map(|_| ())
                .unwrap_err();
        assert!(
            err.message.starts_with("body: date: invalid type"),
            "{}",
            err.message
        );
        let trailing = json_body::<NewEntry>(
            &headers,
            &Bytes::from_static(br#"{"date":"d","title":"t"} x"#),
        );
        assert!(trailing.is_err());
    }
}
