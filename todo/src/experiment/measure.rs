//! Measuring one run: a fresh system on a fresh data directory, the workload,
//! depth and p99 sampled while it runs, then how long until every acknowledged
//! write is durable, and what survives a restart, as one [`RunReport`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::ExperimentError;
use super::procfs::peak_rss_kib;
use super::report::{RunReport, Sample};
use super::scenario::Scenario;
use super::storage::{discard_backend, open_backend, open_with_latency, Counting};
use super::workload::{self, Acked, Recorder, Workload};
use super::Scale;
use crate::config::Config;
use crate::domain::{ListName, TodoSystem};
use crate::start::backend_kind;
use crate::storage::{BackendKind, Storage};

/// Whether nothing is queued in any mailbox and no store is in flight: every
/// write handed to the database so far has reached the backend.
fn quiescent(system: &TodoSystem, counting: &Counting) -> bool {
    counting.in_flight() == 0 && system.mailbox_stats().iter().all(|r| r.depth == 0)
}

/// Acknowledged writes missing from storage, and lists that could not be read.
pub(super) async fn check_storage(storage: &dyn Storage, acked: &[Acked]) -> (u64, u64) {
    let mut by_list: HashMap<&ListName, Vec<&str>> = HashMap::new();
    for a in acked {
        by_list.entry(&a.list).or_default().push(&a.title);
    }
    let (mut missing, mut unreadable) = (0u64, 0u64);
    for (list, titles) in by_list {
        match storage.load(list).await {
            Ok(Some(l)) => {
                let have: HashSet<String> = l.all_entries().into_iter().map(|e| e.title).collect();
                missing += titles.iter().filter(|t| !have.contains(**t)).count() as u64;
            }
            Ok(None) => missing += titles.len() as u64,
            Err(_) => {
                unreadable += 1;
                missing += titles.len() as u64;
            }
        }
    }
    (missing, unreadable)
}

/// Entries stored more than once among the lists `acked` names (each extra copy of
/// a title counts one; titles are unique per write).
pub(super) async fn count_duplicates(storage: &dyn Storage, acked: &[Acked]) -> u64 {
    let lists: HashSet<&ListName> = acked.iter().map(|a| &a.list).collect();
    let mut duplicates = 0u64;
    for list in lists {
        if let Ok(Some(l)) = storage.load(list).await {
            let mut seen: HashSet<String> = HashSet::new();
            for e in l.all_entries() {
                if !seen.insert(e.title) {
                    duplicates += 1;
                }
            }
        }
    }
    duplicates
}

/// Points wanted on each run's plotted line: a sample every `1/SAMPLES_PER_RUN` of
/// the workload's operations (so a run of 50 ms has as many points as one of a
/// minute), besides the time-based samples of [`sample_every`].
pub(super) const SAMPLES_PER_RUN: usize = 50;

/// Every how many completed operations (successful or not) a sample is taken.
pub(super) fn sample_every_ops(w: &Workload) -> u64 {
    (w.clients * w.ops_per_client / SAMPLES_PER_RUN).max(1) as u64
}

/// The time series of one run: samples of depth (all mailboxes) and p99 (of the
/// operations since the previous sample), taken by the workload's clients every
/// [`sample_every_ops`] operations and by a timer during stalls.
struct Series {
    system: TodoSystem,
    rec: Arc<Recorder>,
    started: Instant,
    samples: std::sync::Mutex<Vec<Sample>>,
}

impl Series {
    /// Takes a sample now; with `min_gap`, only if the last one is at least that old.
    fn sample(&self, min_gap: Option<Duration>) {
        let mut out = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let t_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        if let (Some(gap), Some(last)) = (min_gap, out.last()) {
            if t_ms - last.t_ms < gap.as_secs_f64() * 1000.0 {
                return;
            }
        }
        let depth = self.system.mailbox_stats().iter().map(|r| r.depth).sum();
        out.push(Sample {
            t_ms,
            depth,
            p99_ms: self.rec.take_window_p99_ms(),
        });
    }

    fn take(&self) -> Vec<Sample> {
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A timer beside the workload: a sample whenever none was taken for half a
/// `period` (so a stalled run, whose clients complete nothing, still has points).
fn spawn_timer(
    series: Arc<Series>,
    period: Duration,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::watch::Sender<bool>,
) {
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            series.sample(Some(period / 2));
        }
    });
    (task, stop_tx)
}

/// How long a quick run waits for every acknowledged write to be durable before it
/// reports "not reached" (a full run waits 60 s).
pub const QUICK_DURABLE_LIMIT: Duration = Duration::from_secs(2);

/// The longest gap between two samples: 20 ms in a quick run, 100 ms otherwise
/// (most samples come every [`sample_every_ops`] operations).
pub(super) fn sample_every(scale: &Scale) -> Duration {
    Duration::from_millis(if scale.quick { 20 } else { 100 })
}

/// A task run beside the workload; its figures land in the report's `extra`.
pub(super) type SideTask =
    Box<dyn FnOnce(TodoSystem) -> tokio::task::JoinHandle<BTreeMap<String, f64>> + Send>;

/// Runs one workload on a fresh system and fills a report.
pub(super) async fn measure(
    scenario: Scenario,
    label: String,
    config: &Config,
    w: &Workload,
    scale: &Scale,
    during: Option<SideTask>,
) -> Result<RunReport, ExperimentError> {
    let dir = tempfile::tempdir()?;
    let storage = open_with_latency(config, dir.path(), scenario.disk_latency()).await?;
    let counting = Counting::wrap(storage.clone());
    let system = TodoSystem::start_with_storage(config, counting.clone()).await?;
    let rec = Arc::new(Recorder::default());
    let started = Instant::now();
    let series = Arc::new(Series {
        system: system.clone(),
        rec: rec.clone(),
        started,
        samples: std::sync::Mutex::new(Vec::with_capacity(2 * SAMPLES_PER_RUN)),
    });
    let (timer, stop) = spawn_timer(series.clone(), sample_every(scale));
    let side = during.map(|f| f(system.clone()));
    let every = sample_every_ops(w);
    let done = Arc::new(AtomicU64::new(0));
    let on_op = series.clone();
    workload::run(&system, w, &rec, move || {
        if (done.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(every) {
            on_op.sample(None);
        }
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let extra = match side {
        Some(h) => h.await.unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let _ = stop.send(true);
    let _ = timer.await;
    let samples = series.take();
    drop(series);
    let roles = system.mailbox_stats();
    let acked = rec.acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (lost_at_end, _) = check_storage(storage.as_ref(), &acked).await;
    // How long until everything acknowledged is durable (bounded wait).
    let limit = if scale.quick {
        QUICK_DURABLE_LIMIT
    } else {
        Duration::from_secs(60)
    };
    // The poll does not reload lists while the database works (that would compete
    // with the workers it times): it waits until no mailbox holds a message and no
    // store is in flight (cheap counters), then checks storage. Writes still
    // missing then (dropped or failed stores, or a write a list server was still
    // applying) are checked again at the next quiet moment, 20 ms on.
    let waited = Instant::now();
    let mut durable_after_ms = None;
    let mut missing = lost_at_end;
    while waited.elapsed() < limit {
        if missing == 0 {
            durable_after_ms = Some(waited.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        if !quiescent(&system, &counting) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let quiet_at = waited.elapsed();
        missing = check_storage(storage.as_ref(), &acked).await.0;
        if missing == 0 {
            durable_after_ms = Some(quiet_at.as_secs_f64() * 1000.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    system.shutdown().await;
    // Restart: a fresh backend object on the same data directory.
    let reopened = open_backend(config, dir.path()).await?;
    let after = if backend_kind(config) == BackendKind::Memory {
        storage.as_ref()
    } else {
        reopened.as_ref()
    };
    let (lost_after_restart, unreadable_lists) = check_storage(after, &acked).await;
    let mut extra = extra;
    if w.repeats > 0 {
        for (name, counter) in [
            ("unknown_outcomes", &rec.unknown),
            ("repeated_with_key", &rec.repeated),
            ("replayed", &rec.replayed),
        ] {
            extra.insert(name.to_string(), counter.load(Ordering::Relaxed) as f64);
        }
        extra.insert(
            "duplicates".to_string(),
            count_duplicates(after, &acked).await as f64,
        );
    }
    drop(reopened);
    discard_backend(config, dir.path()).await;
    let h = rec
        .latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let ms = |q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let errors = rec.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(RunReport {
        scenario: scenario.to_string(),
        policy: label,
        offered: rec.offered.load(Ordering::Relaxed),
        completed: rec.completed.load(Ordering::Relaxed),
        seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: if h.is_empty() {
            0.0
        } else {
            h.max() as f64 / 1000.0
        },
        errors,
        acked: acked.len() as u64,
        lost_at_end,
        lost_after_restart,
        unreadable_lists,
        ryw_violations: rec.ryw_violations.load(Ordering::Relaxed),
        durable_after_ms,
        roles,
        peak_rss_kib: peak_rss_kib(),
        extra,
        series: samples,
        ack: config.system.default_ack.to_string(),
    })
}
