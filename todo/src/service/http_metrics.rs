//! HTTP metrics: requests by method, route template and status, and latency.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Requests by `method`, `route` (the matched template) and `status`.
pub const HTTP_REQUESTS: &str = "sluicegate_http_requests_total";
/// Request latency in seconds by `method` and `route`.
pub const HTTP_DURATION: &str = "sluicegate_http_request_duration_seconds";

/// Records one request's status and latency. Layer it outside the body limit and the
/// timeout, so the 413s and 408s those answer themselves are counted too; the matched
/// route template is known there already (axum sets it before any route layer runs).
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = method_label(req.method());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// The `method` label: a standard method's name, or `OTHER`. Any token is a valid
/// method, so labelling with the raw one would let clients grow `/metrics` without bound.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Registers descriptions for the HTTP metrics.
pub fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status.");
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency."
    );
}
