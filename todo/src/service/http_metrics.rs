//! HTTP metrics: requests by method, route template and status, and latency
//! (recorded by the edge, `edge.rs`).

/// Requests by `method`, `route` (the matched template) and `status`.
pub const HTTP_REQUESTS: &str = "sluicegate_http_requests_total";
/// Request latency in seconds by `method` and `route`.
pub const HTTP_DURATION: &str = "sluicegate_http_request_duration_seconds";

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
