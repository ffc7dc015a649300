//! Routing on a cluster node: a request for a list this node does not serve goes to
//! the list's owner over HTTP and the owner's answer comes back unchanged. Only the
//! owner's mailboxes (and their overload policies) see the request.
//!
//! This layer runs ahead of every other: a forwarded request is checked, limited,
//! timed and counted by the owner, and here only by the forward's own metrics.
//! The owner comes from the node's shard table (read every renewal period, and at
//! once when a forward finds it stale). A request is forwarded at most [`MAX_HOPS`]
//! times (the `x-sluicegate-hops` header counts them); past that it is answered
//! `421 Misdirected Request`. While nobody serves the list's shard (a failover or a
//! handoff), the request waits up to half the call timeout for an owner, then gets
//! a 503 naming the shard (it certainly was not applied). A forward whose owner
//! loses the shard before answering (a paused or partitioned node), or whose
//! connection fails after the request was sent, ends with a 504 whose `outcome` is
//! `unknown`: the owner may have applied it, and a repeat with the same
//! `Idempotency-Key` learns the result. Only an owner that could not be connected
//! to answers 503 (not applied). Every response carries `x-sluicegate-node` (who
//! served it); a forwarded one also `x-sluicegate-forwarded-by`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};

use super::error::{ApiError, REPEAT_WITH_KEY};
use super::BODY_LIMIT;
use crate::cluster::metrics::{FORWARDS, FORWARD_SECONDS};
use crate::cluster::{Node, Route};
use crate::domain::port::with_causes;
use crate::domain::{Effect, ListName};

/// Most times one request is forwarded between nodes.
pub const MAX_HOPS: u8 = 2;

/// Counts the forwards a request has been through.
pub const HOPS: HeaderName = HeaderName::from_static("x-sluicegate-hops");
/// The node that answered a request.
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-sluicegate-node");
/// The node that forwarded a request to its owner.
pub const FORWARDED_BY: HeaderName = HeaderName::from_static("x-sluicegate-forwarded-by");

/// The HTTP/1 client a node forwards with: hyper's pooled client, connections kept
/// alive (at most 64 idle per peer), Nagle off.
type PeerClient = Client<HttpConnector, Full<Bytes>>;

/// The routing layer's state: the node and an HTTP client to its peers.
pub struct Forwarder {
    node: Arc<Node>,
    client: PeerClient,
    /// This node's id as a header value (`x-sluicegate-forwarded-by`), if it is one.
    me: Option<HeaderValue>,
    /// How long a request waits for an unowned shard to get an owner.
    wait_unowned: Duration,
    /// Bound on one forward.
    timeout: Duration,
}

impl Forwarder {
    /// A forwarder for `node`, with `call_timeout` the system's call timeout.
    pub fn new(node: Arc<Node>, call_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build(connector);
        let me = HeaderValue::from_str(&node.settings().id.0).ok();
        Forwarder {
            node,
            client,
            me,
            wait_unowned: call_timeout / 2,
            timeout: call_timeout + Duration::from_secs(1),
        }
    }
}

/// The list a path names (`/lists/{list}` and below); `None` for other paths and
/// for names that are not valid (the route's own handler answers those).
fn list_of(path: &str) -> Option<ListName> {
    let rest = path.strip_prefix("/lists/")?;
    let segment = rest.split('/').next()?;
    let name = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()?;
    ListName::new(name.as_ref()).ok()
}

fn served_by(mut resp: Response, f: &Forwarder) -> Response {
    if let Some(v) = &f.me {
        resp.headers_mut().insert(SERVED_BY, v.clone());
    }
    resp
}

/// Builds a [`RouteToOwner`] around each route (axum's `Router::layer` builds one
/// per route).
#[derive(Clone)]
pub(super) struct RouteLayer {
    forwarder: Arc<Forwarder>,
}

impl RouteLayer {
    /// Routes through `forwarder`.
    pub(super) fn new(forwarder: Arc<Forwarder>) -> Self {
        RouteLayer { forwarder }
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = RouteToOwner<S>;

    fn layer(&self, inner: S) -> RouteToOwner<S> {
        RouteToOwner {
            inner,
            forwarder: self.forwarder.clone(),
        }
    }
}

/// The routing service: serve here, or forward to the owner. A tower `Service` of
/// its own rather than an axum `from_fn` middleware, so the common case (a list
/// this node serves, or a path naming no list) calls the route directly: no boxed
/// clone of the route and no boxed future per request.
#[derive(Clone)]
pub(super) struct RouteToOwner<S> {
    inner: S,
    forwarder: Arc<Forwarder>,
}

impl<S> Service<Request> for RouteToOwner<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Routed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let f = &self.forwarder;
        let list = match list_of(req.uri().path()) {
            // The common case, a list this node serves, passes the request on as it
            // came (its body unread); only a request that may be forwarded is buffered.
            Some(list) if !matches!(f.node.route(&list), Route::Local(_)) => list,
            _ => {
                return Routed::Here {
                    fut: self.inner.call(req),
                    me: f.me.clone(),
                }
            }
        };
        // The service polled ready goes with this request; a clone stays.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Routed::Elsewhere {
            fut: Box::pin(route_elsewhere(f.clone(), inner, list, req)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RouteToOwner`]: the route's own, or a boxed forward.
    #[project = RoutedProj]
    pub(super) enum Routed<F> {
        /// Served here: the route's answer, with `x-sluicegate-node` added.
        Here { #[pin] fut: F, me: Option<HeaderValue> },
        /// Buffered, then forwarded (or served here after all).
        Elsewhere { fut: Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<F> Future for Routed<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RoutedProj::Here { fut, me } => {
                let Ok(mut resp) = std::task::ready!(fut.poll(cx));
                if let Some(v) = me.take() {
                    resp.headers_mut().insert(SERVED_BY, v);
                }
                Poll::Ready(Ok(resp))
            }
            RoutedProj::Elsewhere { fut } => fut.as_mut().poll(cx).map(Ok),
        }
    }
}

/// A request for `list`, which this node did not serve when it arrived: buffers the
/// body, then forwards it to the owner, or serves it through `inner` should the
/// shard have come here meanwhile.
async fn route_elsewhere<S>(f: Arc<Forwarder>, inner: S, list: ListName, req: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let f = &*f;
    let hops: u8 = req
        .headers()
        .get(&HOPS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let give_up = Instant::now() + f.wait_unowned;
    let mut retried = false;
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if too_large {
                let mut resp = ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body: request body too large: the limit is 64 KiB",
                )
                .into_response();
                // The rest of the body is never read: hyper closes the connection.
                resp.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    HeaderValue::from_static("close"),
                );
                resp
            } else {
                ApiError::bad_request(format!("body: {e}")).into_response()
            };
        }
    };
    loop {
        match f.node.route(&list) {
            Route::Local(_) => {
                let req = Request::from_parts(parts, Body::from(body));
                let Ok(resp) = inner.oneshot(req).await;
                return served_by(resp, f);
            }
            Route::Remote { node, addr } => {
                if hops >= MAX_HOPS {
                    return ApiError::refusal(
                        StatusCode::MISDIRECTED_REQUEST,
                        "misdirected",
                        Effect::NotApplied,
                        format!(
                            "list \"{list}\" is served by node {node}, and this request was already forwarded {hops} times; not applied, retry"
                        ),
                    )
                    .into_response();
                }
                let resp = forward(f, &parts, body.clone(), &list, &node, &addr, hops + 1).await;
                if resp.status() == StatusCode::MISDIRECTED_REQUEST && !retried {
                    // The table was stale: read it again and route once more.
                    retried = true;
                    f.node.refresh();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                return resp;
            }
            Route::Unowned(shard) => {
                f.node.refresh();
                if Instant::now() >= give_up {
                    return ApiError::refusal(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no_owner",
                        Effect::NotApplied,
                        format!(
                            "no node serves shard {} of list \"{list}\" now (a failover or handoff is in progress); not applied, retry",
                            shard.0
                        ),
                    )
                    .into_response();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// What became of a forward that got no answer.
enum NoAnswer {
    /// The owner could not be connected to: it never saw the request.
    Unreachable(String),
    /// The request may have reached the owner, which did not answer (`what` says how).
    Lost(String),
    /// The shard table stopped naming the owner before it answered.
    OwnerLeft,
}

/// The owner's response headers without those that belong to its connection to
/// this node (RFC 9110 section 7.6.1: `Connection`, the fields it names, and the
/// hop-by-hop fields) or to the body as it was framed there (`Content-Length`,
/// set again for the body passed on): `Link` (the next page), `Location`,
/// `Retry-After`, `Content-Type` and the rest reach the client as the owner sent them.
fn end_to_end(mut headers: HeaderMap) -> HeaderMap {
    use axum::http::header;
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(name);
    }
    headers
}

/// Sends the request to `addr` and returns the owner's answer, or a 503 naming the
/// owner when it cannot be reached.
async fn forward(
    f: &Forwarder,
    parts: &axum::http::request::Parts,
    body: Bytes,
    list: &ListName,
    node: &crate::cluster::NodeId,
    addr: &str,
    hops: u8,
) -> Response {
    let started = Instant::now();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{path}", addr.trim_end_matches('/'));
    let uri = match Uri::try_from(url) {
        Ok(uri) => uri,
        Err(e) => {
            // A member advertised an address that is not a URL: nothing was sent.
            metrics::counter!(FORWARDS, "outcome" => "error").increment(1);
            return ApiError::refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "owner_unreachable",
                Effect::NotApplied,
                format!("the owner of this list, node {node}, advertises the address {addr:?}, which is not a URL ({e}); not applied, retry"),
            )
            .into_response();
        }
    };
    let mut out = axum::http::Request::new(Full::new(body));
    *out.method_mut() = parts.method.clone();
    *out.uri_mut() = uri;
    let headers = out.headers_mut();
    headers.insert(HOPS, HeaderValue::from(u16::from(hops)));
    if let Some(me) = &f.me {
        headers.insert(FORWARDED_BY, me.clone());
    }
    for name in [
        axum::http::header::CONTENT_TYPE,
        axum::http::header::ACCEPT,
        super::idempotency::KEY_HEADER,
    ] {
        if let Some(v) = parts.headers.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let answer = async {
        let resp = f.client.request(out).await.map_err(|e| {
            let text = with_causes(&e);
            if e.is_connect() {
                NoAnswer::Unreachable(text)
            } else {
                NoAnswer::Lost(text)
            }
        })?;
        let (head, incoming) = resp.into_parts();
        let bytes = incoming
            .collect()
            .await
            .map_err(|e| NoAnswer::Lost(with_causes(&e)))?
            .to_bytes();
        Ok::<_, NoAnswer>((head, bytes))
    };
    // A paused or partitioned owner may never answer: the forward ends as soon as
    // the shard table stops naming it as the list's owner (its lease ran out), or
    // at the forward's bound. One timer at a time, polled every 100 ms.
    let gave_up = async {
        let deadline = started + f.timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return NoAnswer::Lost(format!("no answer within {:?}", f.timeout));
            }
            tokio::time::sleep((deadline - now).min(Duration::from_millis(100))).await;
            match f.node.route(list) {
                Route::Remote { node: owner, .. } if owner == *node => {}
                _ => return NoAnswer::OwnerLeft,
            }
        }
    };
    let answer = tokio::select! {
        a = answer => a,
        gone = gave_up => Err(gone),
    };
    match answer {
        Ok((head, bytes)) => {
            metrics::counter!(FORWARDS, "outcome" => "ok").increment(1);
            metrics::histogram!(FORWARD_SECONDS).record(started.elapsed().as_secs_f64());
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = head.status;
            *resp.headers_mut() = end_to_end(head.headers);
            if let Some(me) = &f.me {
                resp.headers_mut().insert(FORWARDED_BY, me.clone());
            }
            resp
        }
        Err(gone) => {
            metrics::counter!(FORWARDS, "outcome" => "error").increment(1);
            f.node.refresh();
            match gone {
                // No connection: the owner never saw the request.
                NoAnswer::Unreachable(text) => ApiError::refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "owner_unreachable",
                    Effect::NotApplied,
                    format!("the owner of this list, node {node} at {addr}, could not be reached ({text}); not applied, retry"),
                ),
                NoAnswer::Lost(text) => ApiError::refusal(
                    StatusCode::GATEWAY_TIMEOUT,
                    "owner_lost",
                    Effect::Unknown,
                    format!("the owner of this list, node {node} at {addr}, did not answer ({text}); {REPEAT_WITH_KEY}"),
                ),
                NoAnswer::OwnerLeft => ApiError::refusal(
                    StatusCode::GATEWAY_TIMEOUT,
                    "owner_lost",
                    Effect::Unknown,
                    format!("node {node}, the owner this request was forwarded to, lost the list's shard before it answered; {REPEAT_WITH_KEY}"),
                ),
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn a_forwarded_answer_keeps_the_owners_headers_but_not_its_connections() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            HeaderValue::from_static("</lists/a/entries?limit=2&after=2>; rel=\"next\""),
        );
        h.insert(
            header::LOCATION,
            HeaderValue::from_static("/lists/a/entries/3"),
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(SERVED_BY, HeaderValue::from_static("n1"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        let out = end_to_end(h);
        for kept in [
            header::LINK,
            header::LOCATION,
            header::CONTENT_TYPE,
            SERVED_BY,
        ] {
            assert!(out.contains_key(&kept), "{kept} was dropped: {out:?}");
        }
        for gone in [
            "content-length",
            "connection",
            "x-hop",
            "keep-alive",
            "transfer-encoding",
        ] {
            assert!(!out.contains_key(gone), "{gone} was passed on: {out:?}");
        }
    }
}
