//! The closed-loop in-process workload: clients adding and reading entries, with
//! latency, errors, acknowledged writes and read-your-writes checks recorded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::domain::server::{KeyedWrite, Write};
use crate::domain::{Effect, IdempotencyKey, ListName, TodoSystem, TodoSystemError, WriteOutcome};

/// What the clients do.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Lists chosen from (uniformly).
    pub lists: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Operations per client.
    pub ops_per_client: usize,
    /// Share of operations that add an entry (the rest read one date).
    pub write_share: f64,
    /// Dates chosen from.
    pub dates: u32,
    /// List name prefix (so scenarios can mix workloads).
    pub prefix: &'static str,
    /// RNG seed: the same seed gives every policy the same operations.
    pub seed: u64,
    /// With keys: how many times a write whose outcome is unknown is repeated with
    /// its idempotency key (`0`: writes carry no key).
    pub repeats: u32,
}

/// A write that was acknowledged (`Accepted` under ack none).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Acked {
    /// The list.
    pub list: ListName,
    /// The entry's unique title.
    pub title: String,
}

/// What the workload measured.
pub struct Recorder {
    /// Latency of every operation, µs.
    pub latency: Mutex<Histogram<u64>>,
    /// Latency in the current sampling window, µs.
    pub window: Mutex<Histogram<u64>>,
    /// Operations attempted.
    pub offered: AtomicU64,
    /// Operations answered successfully.
    pub completed: AtomicU64,
    /// Errors by kind.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Writes acknowledged.
    pub acked: Mutex<Vec<Acked>>,
    /// Reads that missed the reader's own earlier acknowledged write.
    pub ryw_violations: AtomicU64,
    /// Write answers whose outcome was unknown (each try counts).
    pub unknown: AtomicU64,
    /// Writes sent again with their key.
    pub repeated: AtomicU64,
    /// Writes answered as a replay of their first result.
    pub replayed: AtomicU64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            latency: Mutex::new(histogram()),
            window: Mutex::new(histogram()),
            offered: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            acked: Mutex::new(Vec::new()),
            ryw_violations: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            repeated: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
        }
    }
}

impl Recorder {
    fn record(&self, took: Duration, result: Result<(), &TodoSystemError>) {
        let us = took.as_micros().clamp(1, 600_000_000) as u64;
        let _ = self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(us);
        let _ = self
            .window
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(us);
        match result {
            Ok(()) => {
                self.completed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                *self
                    .errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(error_kind(e))
                    .or_default() += 1;
            }
        }
    }

    /// Takes the window histogram's p99 (ms) and starts a new window.
    pub fn take_window_p99_ms(&self) -> f64 {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let p = if w.is_empty() {
            0.0
        } else {
            w.value_at_quantile(0.99) as f64 / 1000.0
        };
        w.reset();
        p
    }
}

/// A short label for an error, for tables.
pub fn error_kind(e: &TodoSystemError) -> String {
    e.kind().into()
}

/// One add: with keys, repeated with its key while its outcome is unknown (up to
/// `w.repeats` times), counting unknown answers, repeats and replays.
async fn add(
    system: &TodoSystem,
    w: &Workload,
    rec: &Recorder,
    list: &ListName,
    date: NaiveDate,
    title: &str,
) -> Result<WriteOutcome, TodoSystemError> {
    let write = Write::Add {
        date,
        title: title.to_string(),
    };
    if w.repeats == 0 {
        return system.write(list, write.into(), None).await;
    }
    // The title is unique per write: it names it.
    let key = IdempotencyKey::new(title).ok();
    let mut tries = 0;
    loop {
        tries += 1;
        let keyed = KeyedWrite {
            write: write.clone(),
            key: key.clone(),
        };
        let r = system.write(list, keyed, None).await;
        match &r {
            Ok(WriteOutcome::Replayed(_)) => {
                rec.replayed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.effect() == Effect::Unknown => {
                rec.unknown.fetch_add(1, Ordering::Relaxed);
                if tries <= w.repeats {
                    rec.repeated.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            _ => {}
        }
        return r;
    }
}

/// The list names of a workload.
pub fn list_name(prefix: &str, i: usize) -> ListName {
    ListName::new(format!("{prefix}{i}")).unwrap_or_else(|_| unreachable!("short ascii name"))
}

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default() + chrono::Days::new(day as u64)
}

/// Runs every client to completion. Each client yields to the scheduler between
/// operations so producers and consumers share the workers fairly.
pub async fn run(
    system: &TodoSystem,
    w: &Workload,
    rec: &Arc<Recorder>,
    tick: impl Fn() + Send + Sync + 'static,
) {
    let tick = Arc::new(tick);
    let mut tasks = Vec::with_capacity(w.clients);
    for c in 0..w.clients {
        let (system, w, rec, tick) = (system.clone(), w.clone(), rec.clone(), tick.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng =
                StdRng::seed_from_u64(w.seed ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            // This client's acknowledged writes per (list, date), for read-your-writes.
            let mut mine: HashMap<(usize, u32), HashSet<String>> = HashMap::new();
            for i in 0..w.ops_per_client {
                let l = rng.gen_range(0..w.lists.max(1));
                let d = rng.gen_range(0..w.dates.max(1));
                let list = list_name(w.prefix, l);
                rec.offered.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                if rng.gen_bool(w.write_share.clamp(0.0, 1.0)) {
                    let title = format!("c{c}-{i}");
                    let r = add(&system, &w, &rec, &list, date(d), &title).await;
                    rec.record(started.elapsed(), r.as_ref().map(|_| ()));
                    if let Ok(
                        WriteOutcome::Accepted | WriteOutcome::Done(_) | WriteOutcome::Replayed(_),
                    ) = r
                    {
                        mine.entry((l, d)).or_default().insert(title.clone());
                        rec.acked
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(Acked { list, title });
                    }
                } else {
                    let r = system.entries(&list, Some(date(d))).await;
                    rec.record(started.elapsed(), r.as_ref().map(|_| ()));
                    if let (Ok(entries), Some(own)) = (&r, mine.get(&(l, d))) {
                        let seen: HashSet<&str> =
                            entries.iter().map(|e| e.title.as_str()).collect();
                        if own.iter().any(|t| !seen.contains(t.as_str())) {
                            rec.ryw_violations.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                tick();
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
