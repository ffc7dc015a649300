//! The live dashboard: `GET /dashboard` (an embedded page that draws with the vendored
//! uPlot) and `GET /api/stats`, a JSON view of the Prometheus recorder sampled once a second.
//!
//! A background thread reads the recorder every [`SAMPLE_EVERY`] (after publishing the
//! mailboxes' batched counts, as `/metrics` does), keeps a small ring of the last samples,
//! and derives per-second rates and quantiles from counter and histogram-bucket
//! differences between samples: server-side, so the page only draws. Nothing the recorder
//! or the mailboxes record changes; the dashboard only reads.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use super::error::ApiError;
use super::http_metrics::HTTP_REQUESTS;
use super::prom_text::{matches, parse, quantile, Snapshot};
use super::ServeError;
use sluicegate::mailbox::metrics as mm;
use sluicegate::mailbox::Outcome;
use sluicegate::runtime::metrics as rm;

/// How often the recorder is sampled (and how fresh `/api/stats` is).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Depth samples kept per mailbox role: five minutes at one a second.
pub const HISTORY: usize = 300;
/// Rates are averaged over the last this many seconds of samples.
pub const RATE_WINDOW: usize = 5;
/// Quantiles are estimated from the histogram observations of the last this many seconds.
pub const QUANTILE_WINDOW: usize = 10;
/// Version of the `/api/stats` shape; bumped on any incompatible change.
pub const STATS_VERSION: u32 = 1;

/// The dashboard's routes: the page, its assets and `/api/stats`.
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/dashboard.js", get(script))
        .route("/dashboard/dashboard.css", get(style))
        .route("/dashboard/uPlot.iife.min.js", get(uplot_js))
        .route("/dashboard/uPlot.min.css", get(uplot_css))
        .route("/api/stats", get(stats))
}

const PAGE: &str = include_str!("assets/dashboard.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");

/// A static asset of the service (`no-cache`: revalidated, so an upgrade shows).
pub(super) fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}
async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}
async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
async fn uplot_js() -> Response {
    asset("text/javascript; charset=utf-8", UPLOT_JS)
}
async fn uplot_css() -> Response {
    asset("text/css; charset=utf-8", UPLOT_CSS)
}

async fn stats() -> Response {
    let latest = SAMPLER
        .get()
        .and_then(|s| s.latest.read().unwrap_or_else(|e| e.into_inner()).clone());
    match latest {
        Some(json) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            json.to_string(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stats are not sampled yet: the first sample is taken when the service starts",
        )
        .into_response(),
    }
}

/// The process-wide sampler (there is one Prometheus recorder per process).
struct Sampler {
    latest: RwLock<Option<Arc<String>>>,
}

static SAMPLER: OnceLock<Sampler> = OnceLock::new();

/// Starts the sampling thread (once per process; later calls do nothing) and takes the
/// first sample before returning, so `/api/stats` answers as soon as the service listens.
pub fn start_sampler(handle: PrometheusHandle) -> Result<(), ServeError> {
    let mut started = Ok(());
    SAMPLER.get_or_init(|| {
        let sampler = Sampler {
            latest: RwLock::new(None),
        };
        let mut state = State::new();
        sampler
            .latest
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .replace(Arc::new(state.sample(&handle)));
        started = std::thread::Builder::new()
            .name("dashboard-sampler".into())
            .spawn(move || loop {
                std::thread::sleep(SAMPLE_EVERY);
                let json = Arc::new(state.sample(&handle));
                if let Some(s) = SAMPLER.get() {
                    *s.latest.write().unwrap_or_else(|e| e.into_inner()) = Some(json);
                }
            })
            .map(|_| ())
            .map_err(ServeError::Sampler);
        sampler
    });
    started
}

/// What the sampler keeps between samples.
struct State {
    started: Instant,
    recent: VecDeque<Snapshot>,
    depth: BTreeMap<String, VecDeque<DepthPoint>>,
}

#[derive(Clone, Copy, Debug, Serialize)]
struct DepthPoint {
    /// Unix time, seconds.
    t: f64,
    /// Messages queued, summed over the role's mailboxes.
    depth: f64,
    /// Capacity of all the role's live mailboxes together; `None` when unbounded.
    capacity: Option<f64>,
}

impl State {
    fn new() -> Self {
        State {
            started: Instant::now(),
            recent: VecDeque::new(),
            depth: BTreeMap::new(),
        }
    }

    /// Reads the recorder once and returns the `/api/stats` JSON for that moment.
    fn sample(&mut self, handle: &PrometheusHandle) -> String {
        mm::flush_all();
        let snap = parse(&handle.render(), Instant::now());
        self.recent.push_back(snap);
        while self.recent.len() > QUANTILE_WINDOW + 1 {
            self.recent.pop_front();
        }
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let stats = self.stats(now_unix);
        serde_json::to_string(&stats).unwrap_or_else(|e| {
            serde_json::json!({ "error": format!("cannot encode stats: {e}") }).to_string()
        })
    }

    fn stats(&mut self, now_unix: f64) -> Stats {
        let Some(new) = self.recent.back() else {
            return Stats::default();
        };
        let rate_old = &self.recent[self.recent.len().saturating_sub(RATE_WINDOW + 1)];
        let q_old = &self.recent[0];
        let secs = new.at.duration_since(rate_old.at).as_secs_f64();
        let rate = |name: &str, with: &[(&str, &str)]| -> f64 {
            if secs <= 0.0 {
                0.0
            } else {
                ((new.sum(name, with) - rate_old.sum(name, with)) / secs).max(0.0)
            }
        };
        let q = |name: &str, with: &[(&str, &str)], p: f64| {
            quantile(&q_old.buckets(name, with), &new.buckets(name, with), p)
        };

        let mut mailboxes = Vec::new();
        for role in new.label_values(mm::MAILBOXES, "mailbox") {
            let r = [("mailbox", role.as_str())];
            let live = new.sum(mm::MAILBOXES, &r);
            let policies: Vec<String> = new
                .series
                .get(mm::MAILBOXES)
                .into_iter()
                .flatten()
                .filter(|p| matches(p, &r) && p.value > 0.0)
                .filter_map(|p| p.labels.get("policy").cloned())
                .collect();
            let capacity = policies
                .first()
                .map(|p| new.sum(mm::CAPACITY, &[("mailbox", role.as_str()), ("policy", p)]))
                .filter(|c| *c > 0.0);
            let depth = new.sum(mm::DEPTH, &r);
            let mut totals = BTreeMap::new();
            let mut rates = BTreeMap::new();
            for o in Outcome::ALL {
                let with = [("mailbox", role.as_str()), ("outcome", o.label())];
                totals.insert(o.label(), new.sum(mm::MESSAGES, &with) as u64);
                rates.insert(o.label(), round3(rate(mm::MESSAGES, &with)));
            }
            let refusing = rates["rejected"] + rates["timed_out"] > 0.0;
            let shedding = rates["dropped_oldest"] + rates["shed"] + rates["expired"] > 0.0;
            let history = self.depth.entry(role.clone()).or_default();
            history.push_back(DepthPoint {
                t: now_unix.floor(),
                depth,
                capacity: capacity.map(|c| c * live),
            });
            while history.len() > HISTORY {
                history.pop_front();
            }
            mailboxes.push(MailboxRole {
                sojourn_p50_s: q(mm::SOJOURN, &r, 0.5),
                sojourn_p99_s: q(mm::SOJOURN, &r, 0.99),
                send_wait_p99_s: q(mm::SEND_WAIT, &r, 0.99),
                role,
                policy: if policies.is_empty() {
                    None
                } else {
                    Some(policies.join("+"))
                },
                capacity: capacity.map(|c| c as u64),
                mailboxes: live as u64,
                depth: depth as u64,
                refusing,
                shedding,
                totals,
                rates,
                depth_history: history.iter().copied().collect(),
            });
        }

        let mut roles = BTreeSet::new();
        for name in [
            rm::CALLS,
            rm::RESTARTS,
            rm::ESCALATIONS,
            rm::LIVE_SERVERS,
            rm::CAST_ERRORS,
        ] {
            roles.extend(new.label_values(name, "role"));
        }
        let servers = roles
            .into_iter()
            .map(|role| {
                let r = [("role", role.as_str())];
                let mut calls = BTreeMap::new();
                let mut call_rates = BTreeMap::new();
                for result in new.label_values(rm::CALLS, "result") {
                    let with = [("role", role.as_str()), ("result", result.as_str())];
                    let n = new.sum(rm::CALLS, &with);
                    if n > 0.0 {
                        call_rates.insert(result.clone(), round3(rate(rm::CALLS, &with)));
                        calls.insert(result, n as u64);
                    }
                }
                let mut cast_errors = BTreeMap::new();
                for error in new.label_values(rm::CAST_ERRORS, "error") {
                    let n = new.sum(
                        rm::CAST_ERRORS,
                        &[("role", role.as_str()), ("error", &error)],
                    );
                    if n > 0.0 {
                        cast_errors.insert(error, n as u64);
                    }
                }
                ServerRole {
                    live: new
                        .series
                        .get(rm::LIVE_SERVERS)
                        .is_some_and(|ps| ps.iter().any(|p| matches(p, &r)))
                        .then(|| new.sum(rm::LIVE_SERVERS, &r) as u64),
                    restarts: new.sum(rm::RESTARTS, &r) as u64,
                    escalations: new.sum(rm::ESCALATIONS, &r) as u64,
                    call_p99_s: q(rm::CALL_DURATION, &r, 0.99),
                    role,
                    calls,
                    call_rates,
                    cast_errors,
                }
            })
            .collect();

        let mut http: BTreeMap<(String, String), HttpRoute> = BTreeMap::new();
        for p in new.series.get(HTTP_REQUESTS).into_iter().flatten() {
            let get = |k: &str| p.labels.get(k).cloned().unwrap_or_default();
            let (method, route, status) = (get("method"), get("route"), get("status"));
            let with = [
                ("method", method.as_str()),
                ("route", route.as_str()),
                ("status", status.as_str()),
            ];
            let per_s = round3(rate(HTTP_REQUESTS, &with));
            let entry = http
                .entry((route.clone(), method.clone()))
                .or_insert_with(|| HttpRoute {
                    route,
                    method,
                    statuses: BTreeMap::new(),
                    rates: BTreeMap::new(),
                });
            *entry.statuses.entry(status.clone()).or_default() += p.value as u64;
            *entry.rates.entry(status).or_default() += per_s;
        }

        let limit = new.series.contains_key(super::limit::LIMIT).then(|| Limit {
            limit: new.sum(super::limit::LIMIT, &[]) as u64,
            in_flight: new.sum(super::limit::IN_FLIGHT, &[]) as u64,
            refused: new.sum(super::limit::REFUSED, &[]) as u64,
            refused_per_s: round3(rate(super::limit::REFUSED, &[])),
        });

        Stats {
            version: STATS_VERSION,
            time: now_unix,
            uptime_s: round3(self.started.elapsed().as_secs_f64()),
            sample_every_s: SAMPLE_EVERY.as_secs_f64(),
            rate_window_s: round3(secs),
            quantile_window_s: round3(new.at.duration_since(q_old.at).as_secs_f64()),
            mailboxes,
            servers,
            http: http.into_values().collect(),
            limit,
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The `/api/stats` document the live dashboard polls: one object per mailbox role,
/// server role and HTTP route, sampled from this process's metrics.
#[derive(Debug, Default, Serialize)]
struct Stats {
    /// The document's format version.
    version: u32,
    /// When it was sampled, in seconds since the Unix epoch.
    time: f64,
    /// Seconds since the service started.
    uptime_s: f64,
    /// How often the sampler runs, in seconds.
    sample_every_s: f64,
    /// The window rates are taken over, in seconds.
    rate_window_s: f64,
    /// The window the sojourn and wait quantiles are taken over, in seconds.
    quantile_window_s: f64,
    /// Per mailbox role: policy, depth, totals and rates by outcome, quantiles.
    mailboxes: Vec<MailboxRole>,
    /// Per server role: live servers, calls by outcome and their rates, restarts.
    servers: Vec<ServerRole>,
    /// Per HTTP route: requests by status, and their rates.
    http: Vec<HttpRoute>,
    /// The edge's concurrency limit; absent when it is off.
    limit: Option<Limit>,
}

/// The adaptive concurrency limit as last sampled.
#[derive(Debug, Serialize)]
struct Limit {
    limit: u64,
    in_flight: u64,
    refused: u64,
    refused_per_s: f64,
}

#[derive(Debug, Serialize)]
struct MailboxRole {
    role: String,
    policy: Option<String>,
    capacity: Option<u64>,
    mailboxes: u64,
    depth: u64,
    refusing: bool,
    shedding: bool,
    totals: BTreeMap<&'static str, u64>,
    rates: BTreeMap<&'static str, f64>,
    sojourn_p50_s: Option<f64>,
    sojourn_p99_s: Option<f64>,
    send_wait_p99_s: Option<f64>,
    depth_history: Vec<DepthPoint>,
}

#[derive(Debug, Serialize)]
struct ServerRole {
    role: String,
    live: Option<u64>,
    calls: BTreeMap<String, u64>,
    call_rates: BTreeMap<String, f64>,
    call_p99_s: Option<f64>,
    cast_errors: BTreeMap<String, u64>,
    restarts: u64,
    escalations: u64,
}

#[derive(Debug, Serialize)]
struct HttpRoute {
    route: String,
    method: String,
    statuses: BTreeMap<String, u64>,
    rates: BTreeMap<String, f64>,
}
