//! The `Idempotency-Key` request header (IETF draft-ietf-httpapi-idempotency-key-header)
//! on the API's writes, and the `Idempotent-Replayed` header of an answer that
//! repeats a recorded result. The key's meaning (one request per key and list,
//! kept for `system.idempotency_window`) is the domain's: see
//! `crate::domain::receipt`.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;

use super::error::ApiError;
use crate::domain::IdempotencyKey;

/// The request header naming a write's idempotency key.
pub const KEY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");
/// Set to `true` on an answer that repeats the first result of a keyed write.
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The request's idempotency key, if it sent one. The draft's form, a quoted
/// structured-field string (`"8e03978e"`), names the key between the quotes; any
/// other value (`8e03978e`, or quotes that do not form such a string) is the key as
/// it stands, so every value of the OpenAPI schema (1 to 255 of `!` to `~`) is one.
///
/// # Errors
///
/// A 400 naming the header when it is sent twice, is not text, or is not a key
/// (1 to 255 visible ASCII characters).
pub(super) fn key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = headers.get_all(&KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "Idempotency-Key: sent more than once; a request has one key",
        ));
    }
    let text = value.to_str().map_err(|_| {
        ApiError::bad_request(
            "Idempotency-Key: not text; a key is 1 to 255 visible ASCII characters",
        )
    })?;
    let text = text.trim();
    let unquoted = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) if !inner.is_empty() && !inner.contains(['"', '\\']) => inner,
        _ => text,
    };
    IdempotencyKey::new(unquoted)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("Idempotency-Key: {e}")))
}

/// Marks an answer as the repeat of a recorded result.
pub(super) fn mark_replayed(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(KEY_HEADER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn keys_are_read_bare_or_quoted_and_bad_ones_name_the_header() {
        assert_eq!(key(&headers(&[])).unwrap(), None);
        assert_eq!(key(&headers(&["abc"])).unwrap().unwrap().as_str(), "abc");
        assert_eq!(
            key(&headers(&["\"abc\""])).unwrap().unwrap().as_str(),
            "abc"
        );
        // Quotes that form no structured-field string are part of the key.
        for literal in ["\"", "\"\"", "\"a\"b\"", "a\"b"] {
            assert_eq!(
                key(&headers(&[literal])).unwrap().unwrap().as_str(),
                literal
            );
        }
        for bad in [&["a", "b"][..], &[""], &["a b"], &["\t"]] {
            let e = key(&headers(bad)).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.message.starts_with("Idempotency-Key: "), "{}", e.message);
        }
    }
}
