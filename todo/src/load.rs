//! `sluicegate load`: an open-loop HTTP load generator. Requests are scheduled at a
//! constant rate and latency counts from each request's intended send time, so a
//! slow server cannot hide its queueing (no coordinated omission).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::domain::port::with_causes;

/// Options of one load run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Base URL of a running `sluicegate serve`, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Requests per second.
    pub rate: f64,
    /// How long to send.
    pub duration: Duration,
    /// Lists chosen from.
    pub lists: usize,
    /// Percent of requests that add an entry (the rest read one date).
    pub write_pct: u8,
    /// Requests in flight at most (connections).
    pub connections: usize,
    /// Seed of the request mix.
    pub seed: u64,
    /// Lists are named `{prefix}0`, `{prefix}1`, ... (they are real lists in the
    /// target's data).
    pub prefix: String,
    /// Largest share of requests (0 to 1) that may fail before the run counts as failed.
    pub max_failure_share: f64,
    /// Send every write with an `Idempotency-Key`, repeat it with the same key up to
    /// this many times while its answer is not a 2xx and not certainly refused as bad
    /// input, and read every list back at the end to count duplicates and
    /// acknowledged writes missing. `0`: no keys, no repeats, no read-back.
    pub repeats: u32,
}

/// The default `--prefix`: load writes real lists `load-0`, `load-1`, ...
pub const DEFAULT_PREFIX: &str = "load-";

/// The default `--max-failure-share`: more than 1 % failed requests fail the run.
pub const DEFAULT_MAX_FAILURE_SHARE: f64 = 0.01;

/// Why a load run could not start; the message names the flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// An option that cannot make a meaningful run (the message says which).
    #[error("{0}")]
    Invalid(String),
    /// `--prefix` makes list names the service refuses.
    #[error("--prefix {prefix:?} makes a bad list name {name:?}: {source}")]
    Prefix {
        /// The prefix given.
        prefix: String,
        /// The name it makes.
        name: String,
        /// Why the name is refused.
        source: crate::domain::InvalidListName,
    },
    /// `--target` is no URL.
    #[error("--target {target}: {source}")]
    Target {
        /// The target given.
        target: String,
        /// The URL parser's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] reqwest::Error),
    /// The latency histogram could not be made.
    #[error(transparent)]
    Histogram(#[from] hdrhistogram::CreationError),
}

impl LoadError {
    fn invalid(message: impl Into<String>) -> Self {
        LoadError::Invalid(message.into())
    }
}

impl LoadOptions {
    /// Requests the run schedules: rate x duration, rounded.
    pub fn total(&self) -> u64 {
        (self.rate.max(0.0) * self.duration.as_secs_f64()).round() as u64
    }

    /// Refuses options that cannot make a meaningful run, naming the flag.
    pub fn validate(&self) -> Result<(), LoadError> {
        if self.rate <= 0.0 || !self.rate.is_finite() {
            return Err(LoadError::invalid(format!(
                "--rate {} is not allowed: it must be above 0",
                self.rate
            )));
        }
        if self.duration.is_zero() {
            return Err(LoadError::invalid(
                "--duration 0s is not allowed: it must be above 0, e.g. 10s",
            ));
        }
        if self.total() == 0 {
            return Err(LoadError::invalid(format!(
                "--rate {} for --duration {} sends no request: raise either",
                self.rate,
                humantime::format_duration(self.duration)
            )));
        }
        if self.lists == 0 {
            return Err(LoadError::invalid(
                "--lists 0 is not allowed: it must be at least 1",
            ));
        }
        if self.connections == 0 {
            return Err(LoadError::invalid(
                "--connections 0 is not allowed: it must be at least 1",
            ));
        }
        if self.write_pct > 100 {
            return Err(LoadError::invalid(format!(
                "--write-pct {} is not allowed: it must be 0 to 100",
                self.write_pct
            )));
        }
        if !(0.0..=1.0).contains(&self.max_failure_share) {
            return Err(LoadError::invalid(format!(
                "--max-failure-share {} is not allowed: it must be from 0 to 1",
                self.max_failure_share
            )));
        }
        let last = format!("{}{}", self.prefix, self.lists - 1);
        crate::domain::ListName::new(last.as_str()).map_err(|source| LoadError::Prefix {
            prefix: self.prefix.clone(),
            name: last.clone(),
            source,
        })?;
        let base = self.target.trim_end_matches('/');
        reqwest::Url::parse(base).map_err(|e| LoadError::Target {
            target: base.to_string(),
            source: Box::new(e),
        })?;
        Ok(())
    }
}

/// What a list name escapes in a URL path segment: all but RFC 3986's unreserved characters.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why a request failed: a transport error's kind, or the HTTP status of a non-2xx answer.
fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else if e.is_request() {
        "request"
    } else {
        "other"
    }
}

/// Failures of one kind: how many, and the first one's message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FailureKind {
    /// How many requests failed this way.
    pub count: u64,
    /// The first such failure's message (error text or answer body).
    pub example: String,
}

/// What a load run measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Requests scheduled.
    pub sent: u64,
    /// Seconds from the first scheduled send to the last answer.
    pub seconds: f64,
    /// Latency from intended send time, µs.
    pub latency: Histogram<u64>,
    /// Latency from intended send time of the 2xx answers, µs: what an accepted
    /// request waited, the client's own queueing included.
    pub accepted: Histogram<u64>,
    /// Response time of the `503` answers that carried `Retry-After`, µs, from the
    /// moment the request was sent (the client's queueing excluded): how fast an
    /// overloaded service refuses.
    pub refused: Histogram<u64>,
    /// `503` answers without `Retry-After`.
    pub refused_without_retry_after: u64,
    /// Answers by HTTP status (`error` for transport failures).
    pub statuses: BTreeMap<String, u64>,
    /// Failed requests (transport errors and non-2xx answers) by kind:
    /// `connect`, `timeout`, `request`, `body`, `other`, or `http 503` etc.
    pub failures: BTreeMap<String, FailureKind>,
    /// Final answers to writes whose outcome was unknown: a `504` or another answer
    /// saying `"outcome": "unknown"`, or no answer at all.
    pub unknown: u64,
    /// Writes sent again with their key ([`LoadOptions::repeats`]).
    pub repeated: u64,
    /// Answers marked `Idempotent-Replayed: true`.
    pub replayed: u64,
    /// With keys, what reading the lists back found.
    pub check: Option<ReadBack>,
}

/// What reading every list back after a keyed run found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadBack {
    /// Entries stored more than once for one write (each extra copy counts one).
    pub duplicates: u64,
    /// Writes answered 201 that are not stored.
    pub missing: u64,
    /// Entries read.
    pub entries: u64,
}

impl LoadReport {
    /// Human-readable summary.
    pub fn summary(&self) -> String {
        let q = |p: f64| self.latency.value_at_quantile(p) as f64 / 1000.0;
        let mut s = format!(
            "requests: {}  duration: {:.1} s  throughput: {:.0} req/s\n\
             latency from intended send (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n\
             statuses:",
            self.sent,
            self.seconds,
            self.latency.len() as f64 / self.seconds.max(1e-9),
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            self.latency.max() as f64 / 1000.0
        );
        for (k, v) in &self.statuses {
            s.push_str(&format!(" {k}={v}"));
        }
        s.push('\n');
        let ms = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        s.push_str(&format!(
            "accepted (2xx): {}  {:.0} req/s  latency from intended send (ms): p50 {:.2}  p99 {:.2}\n",
            self.accepted.len(),
            self.accepted.len() as f64 / self.seconds.max(1e-9),
            ms(&self.accepted, 0.5),
            ms(&self.accepted, 0.99),
        ));
        if !self.refused.is_empty() || self.refused_without_retry_after > 0 {
            s.push_str(&format!(
                "refused (503 with Retry-After): {}  response time from send (ms): p50 {:.2}  p99 {:.2}  max {:.2}; 503 without Retry-After: {}\n",
                self.refused.len(),
                ms(&self.refused, 0.5),
                ms(&self.refused, 0.99),
                self.refused.max() as f64 / 1000.0,
                self.refused_without_retry_after,
            ));
        }
        s.push_str(&format!(
            "failures: {} of {} ({:.1} %)\n",
            self.failed(),
            self.sent,
            self.failure_share() * 100.0
        ));
        for (kind, f) in &self.failures {
            s.push_str(&format!("  {kind}: {}  e.g. {}\n", f.count, f.example));
        }
        s.push_str(&format!(
            "writes with an unknown outcome: {}  repeated with their key: {}  answered as replays: {}\n",
            self.unknown, self.repeated, self.replayed
        ));
        if let Some(c) = &self.check {
            s.push_str(&format!(
                "read back: {} entries, {} duplicates, {} acknowledged writes missing\n",
                c.entries, c.duplicates, c.missing
            ));
        }
        s
    }

    /// Requests that failed (transport error or non-2xx answer).
    pub fn failed(&self) -> u64 {
        self.failures.values().map(|f| f.count).sum()
    }

    /// Failed requests as a share of those sent (0 when none were sent).
    pub fn failure_share(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.failed() as f64 / self.sent as f64
        }
    }
}

/// Runs the load; `progress` is told of every answered request.
pub async fn run(
    opts: &LoadOptions,
    progress: impl Fn() + Send + Sync + 'static,
) -> Result<LoadReport, LoadError> {
    opts.validate()?;
    let base = opts.target.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.connections)
        .timeout(Duration::from_secs(30))
        .build()?;
    let hist = Arc::new(Mutex::new(Latencies::new()?));
    let statuses: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let failures: Arc<Mutex<BTreeMap<String, FailureKind>>> = Arc::default();
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.connections));
    let progress = Arc::new(progress);
    let total = opts.total();
    let names: Arc<Vec<String>> = Arc::new(
        (0..opts.lists)
            .map(|n| {
                let name = format!("{}{n}", opts.prefix);
                percent_encoding::utf8_percent_encode(&name, PATH_SEGMENT).to_string()
            })
            .collect(),
    );
    let interval = Duration::from_secs_f64(1.0 / opts.rate);
    let mut rng = StdRng::seed_from_u64(opts.seed);
    // Keys differ between runs, so a second run on the same data is not all replays.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let counts = Arc::new(Counts::default());
    let start = tokio::time::Instant::now();
    let wall = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(intended).await;
        let list = rng.gen_range(0..opts.lists.max(1));
        let day = rng.gen_range(1..=28);
        let write = rng.gen_range(0..100) < opts.write_pct;
        let (client, hist, statuses, failures, permits, progress, base) = (
            client.clone(),
            hist.clone(),
            statuses.clone(),
            failures.clone(),
            permits.clone(),
            progress.clone(),
            base.clone(),
        );
        let list = names[list].clone();
        let (acked, counts, repeats) = (acked.clone(), counts.clone(), opts.repeats);
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let sent = Instant::now();
            let date = format!("2026-01-{day:02}");
            let title = format!("load {i}");
            let key = format!("load-{seed}-{i}", seed = seed);
            let mut sends = 0u32;
            let resp = loop {
                sends += 1;
                let resp = if write {
                    let mut req = client
                        .post(format!("{base}/lists/{list}/entries"))
                        .json(&serde_json::json!({"date": date, "title": title}));
                    if repeats > 0 {
                        req = req.header("Idempotency-Key", key.as_str());
                    }
                    req.send().await
                } else {
                    client
                        .get(format!("{base}/lists/{list}/entries?date={date}"))
                        .send()
                        .await
                };
                let answer = match resp {
                    Ok(r) => {
                        let status = r.status();
                        let replayed = r.headers().contains_key("idempotent-replayed");
                        let retry_after = r.headers().contains_key(reqwest::header::RETRY_AFTER);
                        (Ok((status, retry_after)), replayed, r.bytes().await)
                    }
                    Err(e) => (Err(e), false, Ok(Default::default())),
                };
                let known = match &answer {
                    (Ok((status, _)), ..) if status.is_success() => true,
                    // Bad input or a reused key: repeating cannot change it.
                    (Ok((status, _)), ..) if status.is_client_error() => true,
                    (Ok(_), _, Ok(body)) => outcome_of(body) == Some("not_applied"),
                    _ => false,
                };
                if !write || repeats == 0 || known || sends > repeats {
                    break answer;
                }
                counts.repeated.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let served = sent.elapsed();
            let mut kind = AnswerKind::Other;
            let (key, failure) = match resp {
                (Ok((status, retry_after)), replayed, body) => {
                    kind = match status {
                        s if s.is_success() => AnswerKind::Accepted,
                        reqwest::StatusCode::SERVICE_UNAVAILABLE if retry_after => {
                            AnswerKind::Refused
                        }
                        reqwest::StatusCode::SERVICE_UNAVAILABLE => AnswerKind::RefusedBare,
                        _ => AnswerKind::Other,
                    };
                    if replayed {
                        counts.replayed.fetch_add(1, Ordering::Relaxed);
                    }
                    if write && status == reqwest::StatusCode::CREATED {
                        acked
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((list.clone(), title.clone()));
                    }
                    let unknown = status == reqwest::StatusCode::GATEWAY_TIMEOUT
                        || body
                            .as_ref()
                            .is_ok_and(|b| outcome_of(b) == Some("unknown"));
                    if write && unknown {
                        counts.unknown.fetch_add(1, Ordering::Relaxed);
                    }
                    // A read of a list nobody wrote yet is a 404, not a failure.
                    let fine =
                        status.is_success() || (!write && status == reqwest::StatusCode::NOT_FOUND);
                    let failure = match body {
                        _ if !fine => Some((
                            format!("http {}", status.as_u16()),
                            body.map(|b| String::from_utf8_lossy(&b).chars().take(200).collect())
                                .unwrap_or_default(),
                        )),
                        Err(e) => Some((transport_kind(&e).to_string(), e.to_string())),
                        Ok(_) => None,
                    };
                    (status.as_u16().to_string(), failure)
                }
                (Err(e), ..) => {
                    if write {
                        counts.unknown.fetch_add(1, Ordering::Relaxed);
                    }
                    (
                        "error".to_string(),
                        Some((transport_kind(&e).to_string(), with_causes(&e))),
                    )
                }
            };
            if let Some((kind, example)) = failure {
                let mut f = failures.lock().unwrap_or_else(|e| e.into_inner());
                let entry = f.entry(kind).or_default();
                if entry.count == 0 {
                    entry.example = example;
                }
                entry.count += 1;
            }
            hist.lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(kind, intended.elapsed(), served);
            *statuses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default() += 1;
            progress();
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let latencies = std::mem::replace(
        &mut *hist.lock().unwrap_or_else(|e| e.into_inner()),
        Latencies::new()?,
    );
    let statuses = statuses.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let failures = failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let seconds = wall.elapsed().as_secs_f64();
    let check = if opts.repeats > 0 {
        let acked = std::mem::take(&mut *acked.lock().unwrap_or_else(|e| e.into_inner()));
        Some(read_back(&client, &base, &names, &acked).await)
    } else {
        None
    };
    Ok(LoadReport {
        sent: total,
        seconds,
        latency: latencies.all,
        accepted: latencies.accepted,
        refused: latencies.refused,
        refused_without_retry_after: latencies.refused_bare,
        statuses,
        failures,
        unknown: counts.unknown.load(Ordering::Relaxed),
        repeated: counts.repeated.load(Ordering::Relaxed),
        replayed: counts.replayed.load(Ordering::Relaxed),
        check,
    })
}

/// What kind of answer a request got, for the latency split.
#[derive(Clone, Copy)]
enum AnswerKind {
    /// A 2xx.
    Accepted,
    /// A 503 with `Retry-After`.
    Refused,
    /// A 503 without `Retry-After`.
    RefusedBare,
    /// Anything else (other statuses, transport errors).
    Other,
}

/// The latency histograms the request tasks share (µs, 1 µs to 120 s).
struct Latencies {
    all: Histogram<u64>,
    accepted: Histogram<u64>,
    refused: Histogram<u64>,
    refused_bare: u64,
}

impl Latencies {
    fn new() -> Result<Self, LoadError> {
        let h = || Histogram::<u64>::new_with_bounds(1, 120_000_000, 3);
        Ok(Latencies {
            all: h()?,
            accepted: h()?,
            refused: h()?,
            refused_bare: 0,
        })
    }

    /// Records one answer: `waited` from its intended send, `served` from its send.
    fn record(&mut self, kind: AnswerKind, waited: Duration, served: Duration) {
        let us = |d: Duration| d.as_micros().clamp(1, 120_000_000) as u64;
        let _ = self.all.record(us(waited));
        match kind {
            AnswerKind::Accepted => {
                let _ = self.accepted.record(us(waited));
            }
            AnswerKind::Refused => {
                let _ = self.refused.record(us(served));
            }
            AnswerKind::RefusedBare => self.refused_bare += 1,
            AnswerKind::Other => {}
        }
    }
}

/// Counters the request tasks share.
#[derive(Default)]
struct Counts {
    unknown: AtomicU64,
    repeated: AtomicU64,
    replayed: AtomicU64,
}

/// The `outcome` of a JSON error body, if it has one.
fn outcome_of(body: &[u8]) -> Option<&'static str> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    match v.get("outcome")?.as_str()? {
        "not_applied" => Some("not_applied"),
        "unknown" => Some("unknown"),
        _ => None,
    }
}

/// Reads every list of the run (following `Link: rel="next"`) and counts titles of
/// this run's writes stored more than once, and acknowledged ones not stored. A list
/// that cannot be read counts its acknowledged writes as missing.
async fn read_back(
    client: &reqwest::Client,
    base: &str,
    names: &[String],
    acked: &[(String, String)],
) -> ReadBack {
    let mut stored: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut check = ReadBack::default();
    for list in names {
        let mut next = Some(format!("/lists/{list}/entries"));
        while let Some(path) = next.take() {
            let Ok(resp) = client.get(format!("{base}{path}")).send().await else {
                break;
            };
            next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| Some(l[l.find('<')? + 1..l.find('>')?].to_string()));
            let Ok(entries) = resp.json::<Vec<serde_json::Value>>().await else {
                break;
            };
            for e in entries {
                check.entries += 1;
                if let Some(t) = e["title"].as_str() {
                    *stored.entry((list.clone(), t.to_string())).or_default() += 1;
                }
            }
        }
    }
    for (list, title) in acked {
        if !stored.contains_key(&(list.clone(), title.clone())) {
            check.missing += 1;
        }
    }
    check.duplicates = stored
        .iter()
        .filter(|((_, t), _)| t.starts_with("load "))
        .map(|(_, n)| n.saturating_sub(1))
        .sum();
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(latencies: Latencies) -> LoadReport {
        LoadReport {
            sent: 4,
            seconds: 1.0,
            latency: latencies.all,
            accepted: latencies.accepted,
            refused: latencies.refused,
            refused_without_retry_after: latencies.refused_bare,
            statuses: BTreeMap::new(),
            failures: BTreeMap::new(),
            unknown: 0,
            repeated: 0,
            replayed: 0,
            check: None,
        }
    }

    #[test]
    fn accepted_and_refused_answers_are_timed_apart() {
        let mut l = Latencies::new().unwrap();
        let ms = Duration::from_millis;
        // An accepted request that queued 40 ms in the client and was served in 10.
        l.record(AnswerKind::Accepted, ms(50), ms(10));
        // A refusal counts from its send, not from its intended send.
        l.record(AnswerKind::Refused, ms(30), Duration::from_micros(400));
        l.record(AnswerKind::RefusedBare, ms(5), ms(5));
        l.record(AnswerKind::Other, ms(7), ms(7));
        assert_eq!(l.all.len(), 4);
        assert_eq!(l.accepted.len(), 1);
        assert!((49_000..=51_000).contains(&l.accepted.max()));
        assert_eq!(l.refused.len(), 1);
        assert!((390..=410).contains(&l.refused.max()));
        let text = report(l).summary();
        assert!(text.contains("accepted (2xx): 1 "), "{text}");
        assert!(
            text.contains("refused (503 with Retry-After): 1 ")
                && text.contains("503 without Retry-After: 1"),
            "{text}"
        );
    }

    #[test]
    fn a_run_without_refusals_has_no_refused_line() {
        let mut l = Latencies::new().unwrap();
        l.record(
            AnswerKind::Accepted,
            Duration::from_millis(1),
            Duration::from_millis(1),
        );
        let text = report(l).summary();
        assert!(!text.contains("refused"), "{text}");
    }
}
