//! The edge: one tower `Service` around every route that does what five layers
//! did: the adaptive concurrency limit (fast `503` beyond it), strict
//! percent-encoding of the path, reading the whole body within [`BODY_LIMIT`]
//! (`413`) and the request timeout (`408` while the body arrives), the handler
//! timeout (`504`, the rest of the same request timeout), JSON for every error answer, the refusal log and
//! the HTTP metrics, whose handles are registered once per route, method and
//! status instead of labelled keys built per request.
//!
//! axum's `Router::layer` builds one `Edge` per route, so each keeps its route's
//! metric handles; the matched route is read from the request the first time.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use parking_lot::RwLock;
use serde_json::json;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::error::{json_errors, ApiError};
use super::http_metrics::{method_label, HTTP_DURATION, HTTP_REQUESTS};
use super::limit::{Limiter, Permit};
use super::refusals::{list_of, Refusal, RefusalLog};
use super::BODY_LIMIT;
use crate::config::LimitConfig;

/// What every route's [`Edge`] shares.
struct Shared {
    refusals: Arc<RefusalLog>,
    limiter: Option<Arc<Limiter>>,
    timeout: Duration,
}

/// Builds an [`Edge`] around each route.
#[derive(Clone)]
pub(super) struct EdgeLayer {
    shared: Arc<Shared>,
}

impl EdgeLayer {
    /// Handlers get `timeout` to answer; `limit` says whether and how `/lists`
    /// requests are limited.
    pub(super) fn new(timeout: Duration, limit: &LimitConfig) -> Self {
        super::limit::describe();
        EdgeLayer {
            shared: Arc::new(Shared {
                refusals: RefusalLog::start(),
                limiter: limit.enabled.then(|| Limiter::new(limit)),
                timeout,
            }),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            shared: self.shared.clone(),
            route: Arc::new(RouteMetrics::default()),
        }
    }
}

/// The edge around one route.
#[derive(Clone)]
pub(super) struct Edge<S> {
    inner: S,
    shared: Arc<Shared>,
    route: Arc<RouteMetrics>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The service polled ready goes with this request; a clone stays.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (shared, route) = (self.shared.clone(), self.route.clone());
        Box::pin(async move { Ok(serve(inner, &shared, &route, req).await) })
    }
}

async fn serve<S>(inner: S, shared: &Shared, route: &RouteMetrics, req: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let started = Instant::now();
    tracing::debug!(method = %req.method(), uri = %req.uri(), "started processing request");
    let (index, method) = method_index(req.method());
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let handles = route.for_request(matched, index, method);
    let path = req.uri().clone();
    let permit = match (&shared.limiter, handles.limited) {
        (Some(limiter), true) => match limiter.try_acquire() {
            Some(p) => Some(p),
            None => {
                let close = !body_read_now(req.into_body());
                let resp = refused(limiter, close);
                return finish(shared, &handles, &path, resp, started, None);
            }
        },
        _ => None,
    };
    let resp = answer(inner, shared, req, started).await;
    finish(shared, &handles, &path, resp, started, permit)
}

/// Logs a refusal, records the metrics and the limiter's sample.
fn finish(
    shared: &Shared,
    handles: &Handles,
    path: &axum::http::Uri,
    resp: Response,
    started: Instant,
    permit: Option<Permit>,
) -> Response {
    let elapsed = started.elapsed();
    if let Some(refusal) = resp.extensions().get::<Refusal>() {
        shared.refusals.record(
            &handles.route,
            &list_of(path.path()),
            resp.status().as_u16(),
            refusal,
        );
    }
    handles.record(resp.status(), elapsed);
    if let Some(p) = permit {
        p.done(elapsed);
    }
    resp
}

/// The checks, the body, the handler within the timeout from `started`; errors as JSON.
async fn answer<S>(mut inner: S, shared: &Shared, req: Request, started: Instant) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let (parts, body) = req.into_parts();
    let declared_too_large = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > BODY_LIMIT as u64);
    // The whole body is read before any handler runs, so routes that ignore it
    // (reads, deletes, 404s, 405s) still consume it and the connection stays usable.
    let deadline = started + shared.timeout;
    if declared_too_large {
        return too_large();
    }
    // A body that does not arrive in time never reaches a handler: a 408.
    let bytes = match tokio::time::timeout_at(deadline, read_body(body)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(resp)) => return resp,
        Err(_) => return body_timed_out(shared.timeout),
    };
    // Checked once the body is read, so the connection stays usable after the 400.
    if let Some((at, text)) = bad_percent_escape(parts.uri.path()) {
        return ApiError::bad_request(format!(
            "path: invalid percent-encoding \"{text}\" at byte {at}; \"%\" must be followed by two hex digits"
        ))
        .into_response();
    }
    let is_read = matches!(parts.method, Method::GET | Method::HEAD);
    let req = Request::from_parts(parts, Body::from(bytes));
    match tokio::time::timeout_at(deadline, inner.call(req)).await {
        Ok(Ok(resp)) => json_errors(resp).await,
        Ok(Err(never)) => match never {},
        Err(_) => timed_out(shared.timeout, is_read),
    }
}

async fn read_body(body: Body) -> Result<Bytes, Response> {
    if axum::body::HttpBody::is_end_stream(&body) {
        return Ok(Bytes::new());
    }
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!("body: {e}")).into_response()),
    }
}

/// Message of every 413.
const TOO_LARGE: &str = "body: request body too large: the limit is 64 KiB";

/// A 413; the rest of the body is never read, so hyper closes the connection after
/// it: say so, or a keep-alive client reuses the dead connection.
fn too_large() -> Response {
    let mut resp = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE).into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The `408` of a request whose body did not arrive within `timeout`: no handler
/// saw it, so nothing was applied.
fn body_timed_out(timeout: Duration) -> Response {
    let message = format!(
        "request timed out: the body did not arrive within {}; nothing was applied",
        humantime::format_duration(timeout)
    );
    let body = json!({ "error": message, "outcome": "not_applied" });
    let mut resp = (StatusCode::REQUEST_TIMEOUT, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The `504` of a handler that did not answer within `timeout`. A write may have
/// been applied (or be applied still): its outcome is unknown.
fn timed_out(timeout: Duration, is_read: bool) -> Response {
    let after = humantime::format_duration(timeout);
    let (message, body) = if is_read {
        let m = format!("the request timed out after {after}");
        (m.clone(), json!({ "error": m }))
    } else {
        let m = format!(
            "the request timed out after {after}; the write may have been applied, or may be \
             applied still: repeat it with the same Idempotency-Key to learn its outcome"
        );
        (
            m.clone(),
            json!({ "error": m, "outcome": "unknown", "timeout_ms": timeout.as_millis() as u64 }),
        )
    };
    let mut resp = (StatusCode::GATEWAY_TIMEOUT, Json(body)).into_response();
    resp.extensions_mut().insert(Refusal {
        reason: "timeout",
        message,
    });
    resp
}

/// The fast `503` of a request beyond the concurrency limit: never handed to a
/// handler, so certainly not applied.
/// Whether a refused request's body (within [`BODY_LIMIT`]) was read to its end
/// without waiting: true when it has none or when all of it had already arrived
/// with the head, as a small POST's does. The refusal never waits for a body, so
/// one still on its way is left unread and its connection closed; one already here
/// is consumed, so the connection stays open and a refusal costs no new connection
/// (on half a core, a refused POST that closed its connection cost 0.42 of an
/// accepted durable one: docs/benchmarks.md, "Overload").
fn body_read_now(body: Body) -> bool {
    if axum::body::HttpBody::is_end_stream(&body) {
        return true;
    }
    matches!(
        futures::FutureExt::now_or_never(Limited::new(body, BODY_LIMIT).collect()),
        Some(Ok(_))
    )
}

/// A refusal whose request body was left unread (`close`) closes its connection,
/// saying so.
fn refused(limiter: &Limiter, close: bool) -> Response {
    let limit = limiter.limit();
    let message = format!(
        "overloaded: {limit} requests are in flight, the current limit; this request was not \
         applied; retry after 1 s"
    );
    let body = json!({ "error": message, "outcome": "not_applied", "limit": limit });
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    if close {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp.extensions_mut().insert(Refusal {
        reason: "concurrency_limit",
        message,
    });
    resp
}

/// The byte offset and text of the first malformed `%` escape in `path`. Path
/// extraction would otherwise keep such text literally and, for instance, accept
/// `a%ZZ` as a list name.
pub(super) fn bad_percent_escape(path: &str) -> Option<(usize, String)> {
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

/// Methods with their own metric handles (the others share `OTHER`).
const METHODS: usize = 10;

/// A method's slot among [`METHODS`] and its label.
fn method_index(method: &Method) -> (usize, &'static str) {
    let label = method_label(method);
    let index = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ]
    .iter()
    .position(|m| *m == label)
    .unwrap_or(METHODS - 1);
    (index, label)
}

/// One route's metric handles, made on first use.
#[derive(Default)]
struct RouteMetrics {
    route: OnceLock<Arc<str>>,
    methods: [OnceLock<Arc<Handles>>; METHODS],
}

/// The handles of one route and method.
struct Handles {
    route: Arc<str>,
    method: &'static str,
    /// Whether the concurrency limit applies (the `/lists` routes).
    limited: bool,
    duration: metrics::Histogram,
    by_status: RwLock<Vec<(u16, metrics::Counter)>>,
}

impl RouteMetrics {
    /// The handles for this request's route and method.
    fn for_request(
        &self,
        matched: Option<&str>,
        index: usize,
        method: &'static str,
    ) -> Arc<Handles> {
        let matched = matched.unwrap_or("unmatched");
        let route = self.route.get_or_init(|| Arc::from(matched));
        if &**route != matched {
            // Not this edge's route (never expected): handles for this request alone.
            return Arc::new(Handles::new(Arc::from(matched), method));
        }
        self.methods[index]
            .get_or_init(|| Arc::new(Handles::new(route.clone(), method)))
            .clone()
    }
}

impl Handles {
    fn new(route: Arc<str>, method: &'static str) -> Self {
        Handles {
            limited: route.starts_with("/lists"),
            duration: metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route.to_string()),
            by_status: RwLock::new(Vec::new()),
            route,
            method,
        }
    }

    fn record(&self, status: StatusCode, elapsed: Duration) {
        self.duration.record(elapsed.as_secs_f64());
        let code = status.as_u16();
        if let Some((_, c)) = self.by_status.read().iter().find(|(s, _)| *s == code) {
            return c.increment(1);
        }
        let counter = metrics::counter!(HTTP_REQUESTS, "method" => self.method,
            "route" => self.route.to_string(), "status" => code.to_string());
        counter.increment(1);
        let mut all = self.by_status.write();
        if !all.iter().any(|(s, _)| *s == code) {
            all.push((code, counter));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    /// A router whose handlers take `delay`, behind the edge with `timeout`.
    fn slow_app(delay: Duration, timeout: Duration, limit: &LimitConfig) -> axum::Router {
        let slow = move || async move {
            tokio::time::sleep(delay).await;
            "done"
        };
        axum::Router::new()
            .route("/lists/{list}/entries", get(slow).post(slow))
            .layer(EdgeLayer::new(timeout, limit))
    }

    fn no_limit() -> LimitConfig {
        LimitConfig {
            enabled: false,
            ..LimitConfig::default()
        }
    }

    async fn json_of(resp: Response) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn request(method: Method) -> Request {
        Request::builder()
            .method(method)
            .uri("/lists/a/entries")
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_whose_handler_times_out_is_a_504_with_an_unknown_outcome() {
        let app = slow_app(Duration::from_secs(10), Duration::from_secs(6), &no_limit());
        let resp = app.oneshot(request(Method::POST)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = json_of(resp).await;
        assert_eq!(body["outcome"], "unknown");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("may have been applied") && error.contains("Idempotency-Key"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_whose_handler_times_out_is_a_plain_504() {
        let app = slow_app(Duration::from_secs(10), Duration::from_secs(6), &no_limit());
        let resp = app.oneshot(request(Method::GET)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = json_of(resp).await;
        assert!(body["error"].as_str().unwrap().contains("timed out"));
        assert!(body.get("outcome").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_within_the_timeout_answers() {
        let app = slow_app(Duration::from_secs(1), Duration::from_secs(6), &no_limit());
        let resp = app.oneshot(request(Method::POST)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_beyond_the_limit_get_a_fast_503_saying_nothing_was_applied() {
        let limit = LimitConfig {
            enabled: true,
            initial: 2,
            min: 2,
            max: 2,
            tolerance_percent: 150,
        };
        let app = slow_app(Duration::from_secs(1), Duration::from_secs(6), &limit);
        let held: Vec<_> = (0..2)
            .map(|_| tokio::spawn(app.clone().oneshot(request(Method::POST))))
            .collect();
        tokio::task::yield_now().await;
        let started = Instant::now();
        let resp = app.clone().oneshot(request(Method::POST)).await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO, "refused without waiting");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert_eq!(json_of(resp).await["outcome"], "not_applied");
        for h in held {
            assert_eq!(h.await.unwrap().unwrap().status(), StatusCode::OK);
        }
        // Their places are free again.
        let resp = app.oneshot(request(Method::POST)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_keeps_the_connection_when_the_body_is_here_and_closes_it_otherwise() {
        let limit = LimitConfig {
            enabled: true,
            initial: 1,
            min: 1,
            max: 1,
            tolerance_percent: 150,
        };
        let app = slow_app(Duration::from_secs(1), Duration::from_secs(6), &limit);
        let held = tokio::spawn(app.clone().oneshot(request(Method::POST)));
        tokio::task::yield_now().await;
        // A body that arrived with the head is read, so the connection stays open.
        let here = Request::builder()
            .method(Method::POST)
            .uri("/lists/a/entries")
            .header(header::CONTENT_LENGTH, "20")
            .body(Body::from(r#"{"title":"t","x":1}"#.to_string() + " "))
            .unwrap();
        let resp = app.clone().oneshot(here).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().get(header::CONNECTION).is_none());
        // A body still on its way is not waited for: the connection is closed.
        let pending = Request::builder()
            .method(Method::POST)
            .uri("/lists/a/entries")
            .header(header::CONTENT_LENGTH, "20")
            .body(Body::from_stream(futures::stream::pending::<
                Result<Bytes, std::io::Error>,
            >()))
            .unwrap();
        let started = Instant::now();
        let resp = app.clone().oneshot(pending).await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO, "refused without waiting");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::CONNECTION], "close");
        assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    #[test]
    fn malformed_escapes_are_found_and_good_ones_pass() {
        assert_eq!(bad_percent_escape("/lists/a%ZZ"), Some((8, "%ZZ".into())));
        assert_eq!(bad_percent_escape("/lists/a%2"), Some((8, "%2".into())));
        assert_eq!(bad_percent_escape("/lists/a%2Fb"), None);
    }

    #[test]
    fn every_standard_method_has_its_own_slot() {
        let mut seen = std::collections::HashSet::new();
        for m in [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
            Method::CONNECT,
            Method::TRACE,
        ] {
            assert!(seen.insert(method_index(&m).0));
        }
        let other = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_index(&other), (METHODS - 1, "OTHER"));
    }
}
