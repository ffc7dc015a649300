//! Metric handles of mailboxes, registered through the `metrics` facade and
//! labelled by role (`mailbox`) and `policy`: once per (recorder, role, policy),
//! and shared through an `Arc` by every live mailbox of that role and policy, so a
//! mailbox costs one pointer and what it last published instead of fourteen
//! registered series.
//!
//! # When the counters catch up
//!
//! The counters are fed from the mailbox's own exact counts (the ones
//! [`Stats`](super::Stats) reads), in deltas, at these moments, each under the
//! mailbox's lock:
//! - whenever one outcome's count reaches a multiple of [`FLUSH_EVERY`] (64): the
//!   message that makes it so publishes every outcome;
//! - at every [`Stats`](super::Stats) snapshot (`Sender::stats`, `Receiver::stats`);
//! - at [`flush_all`], which `/metrics` calls before it renders and `sluicegate
//!   serve` every 5 s;
//! - when the receiver is dropped or the policy changes (the old labels get
//!   everything up to then).
//!
//! The lock-free ring (`fast.rs`) counts its deliveries, refusals and evictions in
//! its own atomics; they are folded into the core's counts before each of the
//! moments above, when the gate locks (and then published), and whenever the
//! ring's receiver, or one of its four stripes of senders, reaches a multiple of
//! [`FLUSH_EVERY`] of an outcome (and then published).
//!
//! So a counter read straight from the recorder lags the mailbox's `Stats` by at
//! most [`FLUSH_EVERY`]` - 1` messages of its outcome per place that counts it
//! (the core; on the ring, the receiver for deliveries and each stripe for refusals
//! and evictions), never leads it, and equals it after any of the moments above
//! with nothing in progress: a scrape through `/metrics` is exact. Each publication also brings the depth gauge to the
//! queue's length then (the hot path records no depth change at all), so the gauge
//! shows the depth of the last publication.

use std::cell::Cell;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use metrics::{Counter, Gauge, Histogram};

use super::stats::Outcome;

/// Number of live mailboxes per role and policy.
pub const MAILBOXES: &str = "sluicegate_mailboxes";
/// Messages queued now, summed over the role's mailboxes.
pub const DEPTH: &str = "sluicegate_mailbox_depth";
/// Capacity of one mailbox of the role (0 = unbounded).
pub const CAPACITY: &str = "sluicegate_mailbox_capacity";
/// Messages by outcome.
pub const MESSAGES: &str = "sluicegate_mailbox_messages_total";
/// Time from enqueue to delivery, in seconds, of one message in
/// [`SOJOURN_SAMPLE_EVERY`](super::SOJOURN_SAMPLE_EVERY) (of every one under CoDel).
pub const SOJOURN: &str = "sluicegate_mailbox_sojourn_seconds";
/// Time senders spent waiting for space (only sends that waited), in seconds.
pub const SEND_WAIT: &str = "sluicegate_mailbox_send_wait_seconds";

/// Mailboxes of the role whose queue is long now (a long-queue alert raised and not
/// recovered; see [`Builder::long_queue`](super::Builder::long_queue)). Recorded
/// whenever an alert is set, with or without [`Builder::metrics`](super::Builder::metrics).
pub const LONG_QUEUES: &str = "sluicegate_mailbox_long_queues";
/// Long-queue events by `event` (`long`, `recovered`).
pub const LONG_QUEUE_EVENTS: &str = "sluicegate_mailbox_long_queue_events_total";

/// Every metric a mailbox exports, for documentation and dashboard checks.
pub const ALL: [&str; 8] = [
    MAILBOXES,
    DEPTH,
    CAPACITY,
    MESSAGES,
    SOJOURN,
    SEND_WAIT,
    LONG_QUEUES,
    LONG_QUEUE_EVENTS,
];

/// Messages of one outcome a mailbox counts between publications (see the module
/// docs: the recorder lags the mailbox's `Stats` by at most this many minus one per
/// outcome until the next publication).
///
/// Publishing touches atomics shared by every mailbox of a role and by the threads
/// of both sides; batching keeps those cache lines from bouncing on every message.
/// A power of two, so the check on each message is a mask test.
pub const FLUSH_EVERY: u32 = 64;

/// The series of one (recorder, role, policy), shared by its live mailboxes. Every
/// update is an atomic add on the recorder's side, so mailboxes sharing a handle
/// add up as separately registered ones would.
pub(crate) struct Series {
    live: Gauge,
    depth: Gauge,
    capacity: Gauge,
    outcomes: [Counter; 9],
    pub(crate) sojourn: Histogram,
    pub(crate) send_wait: Histogram,
}

/// Which recorder, role and policy a [`Series`] is registered for. The recorder is
/// told apart by its address: the installed global one lives for the whole
/// process, a local one (tests) at least as long as the mailboxes built under it
/// are expected to report to it.
type SeriesKey = (usize, &'static str, &'static str);

/// The series of the live mailboxes, held weakly: an entry lives as long as one
/// of its mailboxes. Dead entries are pruned whenever the map has doubled.
struct SeriesCache {
    map: HashMap<SeriesKey, Weak<Series>>,
    prune_at: usize,
}

fn series_cache() -> &'static Mutex<SeriesCache> {
    static CACHE: OnceLock<Mutex<SeriesCache>> = OnceLock::new();
    CACHE.get_or_init(|| {
        Mutex::new(SeriesCache {
            map: HashMap::new(),
            prune_at: 64,
        })
    })
}

impl Series {
    /// The series of `role` and `policy` on the recorder in force (the thread's
    /// local one, else the global one): shared with the live mailboxes that have
    /// them, registered when there is none.
    fn shared(role: &'static str, policy: &'static str) -> Arc<Series> {
        let recorder =
            metrics::with_recorder(|r| (r as *const dyn metrics::Recorder).cast::<()>() as usize);
        let key = (recorder, role, policy);
        let mut cache = series_cache().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = cache.map.get(&key).and_then(Weak::upgrade) {
            return series;
        }
        let series = Arc::new(Series::register(role, policy));
        cache.map.insert(key, Arc::downgrade(&series));
        if cache.map.len() >= cache.prune_at {
            cache.map.retain(|_, w| w.strong_count() > 0);
            cache.prune_at = (cache.map.len() * 2).max(64);
        }
        series
    }

    fn register(role: &'static str, policy: &'static str) -> Self {
        let labels = [("mailbox", role), ("policy", policy)];
        let outcomes = Outcome::ALL.map(|o| {
            metrics::counter!(MESSAGES, "mailbox" => role, "policy" => policy, "outcome" => o.label())
        });
        Series {
            live: metrics::gauge!(MAILBOXES, &labels),
            depth: metrics::gauge!(DEPTH, &labels),
            capacity: metrics::gauge!(CAPACITY, &labels),
            outcomes,
            sojourn: metrics::histogram!(SOJOURN, &labels),
            send_wait: metrics::histogram!(SEND_WAIT, &labels),
        }
    }
}

/// One mailbox's metrics: the series it shares with its role and policy, and what
/// of the mailbox's counts it has published to them. Lives inside the mailbox's
/// lock; the `Cell`s let a publication go through a shared reference.
///
/// Nothing is counted here: the core's exact per-outcome counts (the ones
/// [`Stats`](super::Stats) reads) are the source, and a publication adds to each
/// counter what its outcome gained since the last one, so the hot path pays no
/// second count and a publication can neither lose nor repeat one.
pub(crate) struct Handles {
    series: Arc<Series>,
    /// This mailbox's share of the `depth` gauge as last published.
    published_depth: Cell<usize>,
    /// The mailbox's per-outcome counts as last added to the `outcomes` counters,
    /// their low 32 bits: an outcome's count grows by one at a time and is
    /// published at every multiple of [`FLUSH_EVERY`], so it gains at most that
    /// many between two publications and the wrapping difference is the exact
    /// gain, in half the room per live mailbox.
    published: [Cell<u32>; 9],
}

/// The shared series' handles (`sojourn`, `send_wait`) are used in place.
impl Deref for Handles {
    type Target = Series;

    fn deref(&self) -> &Series {
        &self.series
    }
}

/// Whether an outcome whose count has just reached `n` is due to publish: every
/// [`FLUSH_EVERY`]-th message of each outcome (a mask test on the count the core
/// keeps anyway).
#[inline(always)]
pub(crate) fn publish_due(n: u64) -> bool {
    n.is_multiple_of(u64::from(FLUSH_EVERY))
}

impl Handles {
    /// Handles for a mailbox whose outcome counts are `counts` now (zero for a new
    /// mailbox; a policy change starts new handles from where the old ones left, so
    /// the new labels carry only what happens after it).
    pub(crate) fn new(
        role: &'static str,
        policy: &'static str,
        capacity: Option<usize>,
        counts: &[u64; 9],
    ) -> Self {
        let series = Series::shared(role, policy);
        series.capacity.set(capacity.unwrap_or(0) as f64);
        series.live.increment(1.0);
        Handles {
            series,
            published_depth: Cell::new(0),
            published: counts.map(|n| Cell::new(n as u32)),
        }
    }

    /// Called when the mailbox goes away or moves to another policy label, with its
    /// counts and the queue's length now: publishes what is pending and takes this
    /// mailbox's share out of the `depth` gauge.
    pub(crate) fn retire(&self, counts: &[u64; 9], depth: usize) {
        self.flush(counts, depth);
        self.live.decrement(1.0);
        self.depth.decrement(self.published_depth.replace(0) as f64);
    }

    /// Publishes the mailbox's counts (`counts`, the core's exact per-outcome
    /// counts): each counter gains what its outcome gained since the last
    /// publication; and moves the `depth` gauge by the change of the queue's length
    /// (`depth`) since then.
    pub(crate) fn flush(&self, counts: &[u64; 9], depth: usize) {
        let before = self.published_depth.replace(depth);
        if depth != before {
            self.depth.increment(depth as f64 - before as f64);
        }
        for ((&now, published), counter) in counts.iter().zip(&self.published).zip(&self.outcomes) {
            let now = now as u32; // the low bits: see `published`
            let delta = u64::from(now.wrapping_sub(published.replace(now)));
            if delta != 0 {
                counter.increment(delta);
            }
        }
    }
}

/// Something holding batched metrics: a mailbox, seen through its shared state.
pub(crate) trait Flush: Send + Sync {
    /// Publishes what the mailbox has batched.
    fn flush(&self);
}

/// Every mailbox built with metrics on, so that [`flush_all`] can reach it.
/// Dead entries are pruned whenever the list has doubled since the last prune.
#[cfg_attr(sluicegate_loom, allow(dead_code))]
struct Registry {
    live: Vec<Weak<dyn Flush>>,
    prune_at: usize,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Mutex::new(Registry {
            live: Vec::new(),
            prune_at: 64,
        })
    })
}

/// Adds a mailbox to the ones [`flush_all`] publishes.
// Unused in loom builds (tests/loom_mailbox.rs), whose mailboxes are not registered.
#[cfg_attr(sluicegate_loom, allow(dead_code))]
pub(crate) fn register(mailbox: Weak<dyn Flush>) {
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    reg.live.push(mailbox);
    if reg.live.len() >= reg.prune_at {
        reg.live.retain(|w| w.strong_count() > 0);
        reg.prune_at = (reg.live.len() * 2).max(64);
    }
}

/// Publishes the batched counts and the depth of every live mailbox, so the
/// recorder holds exact figures. `sluicegate serve` calls it before rendering
/// `/metrics`; call it yourself before reading a recorder in tests.
pub fn flush_all() {
    let live: Vec<_> = {
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        reg.live.retain(|w| w.strong_count() > 0);
        reg.live.clone()
    };
    // Outside the registry lock: each flush takes that mailbox's own lock.
    for mailbox in live.iter().filter_map(Weak::upgrade) {
        mailbox.flush();
    }
}

/// Registers descriptions (HELP lines) for every mailbox metric on the installed recorder.
pub fn describe() {
    metrics::describe_gauge!(MAILBOXES, "Live mailboxes per role and policy.");
    metrics::describe_gauge!(
        DEPTH,
        "Messages queued now, summed over a role's mailboxes."
    );
    metrics::describe_gauge!(
        CAPACITY,
        "Capacity of one mailbox of the role (0 = unbounded)."
    );
    metrics::describe_counter!(MESSAGES, "Messages by outcome.");
    metrics::describe_histogram!(
        SOJOURN,
        metrics::Unit::Seconds,
        "Time from enqueue to delivery."
    );
    metrics::describe_histogram!(
        SEND_WAIT,
        metrics::Unit::Seconds,
        "Time senders waited for space (only sends that waited)."
    );
    metrics::describe_gauge!(
        LONG_QUEUES,
        "Mailboxes of the role whose queue has stayed long (alert raised, not recovered)."
    );
    metrics::describe_counter!(
        LONG_QUEUE_EVENTS,
        "Long-queue alerts (event=long) and recoveries (event=recovered)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    fn value(text: &str, name: &str, with: &str) -> Option<f64> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(with))
            .find_map(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// A mailbox's outcome counts with `n` delivered and nothing else.
    fn counted(n: u64) -> [u64; 9] {
        let mut counts = [0; 9];
        counts[Outcome::Delivered.index()] = n;
        counts
    }

    #[test]
    fn mailboxes_of_one_role_and_policy_share_their_series_and_add_up() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let scrape = recorder.handle();
        let (a, b, other) = metrics::with_local_recorder(&recorder, || {
            (
                Handles::new("share_test", "drop_newest", Some(8), &[0; 9]),
                Handles::new("share_test", "drop_newest", Some(8), &[0; 9]),
                Handles::new("share_test", "unbounded", None, &[0; 9]),
            )
        });
        assert!(Arc::ptr_eq(&a.series, &b.series), "one series, shared");
        assert!(
            !Arc::ptr_eq(&a.series, &other.series),
            "a policy has its own"
        );
        a.flush(&counted(3), 1);
        b.flush(&counted(4), 2);
        // A publication adds only what was gained since the last one.
        a.flush(&counted(3), 1);
        let text = scrape.render();
        let delivered = "policy=\"drop_newest\",outcome=\"delivered\"";
        assert_eq!(value(&text, MESSAGES, delivered), Some(7.0), "{text}");
        let mine = "policy=\"drop_newest\"";
        assert_eq!(value(&text, MAILBOXES, mine), Some(2.0), "{text}");
        assert_eq!(value(&text, DEPTH, mine), Some(3.0), "{text}");
        // One mailbox goes: its share leaves the gauges, the other's stays.
        a.retire(&counted(3), 1);
        drop(a);
        let text = scrape.render();
        assert_eq!(value(&text, MAILBOXES, mine), Some(1.0), "{text}");
        assert_eq!(value(&text, DEPTH, mine), Some(2.0), "{text}");
        drop((b, other));
    }

    #[test]
    fn mailboxes_under_different_recorders_report_to_their_own() {
        let first = PrometheusBuilder::new().build_recorder();
        let second = PrometheusBuilder::new().build_recorder();
        let a = metrics::with_local_recorder(&first, || {
            Handles::new("own_test", "block", Some(4), &[0; 9])
        });
        let b = metrics::with_local_recorder(&second, || {
            Handles::new("own_test", "block", Some(4), &[0; 9])
        });
        assert!(!Arc::ptr_eq(&a.series, &b.series));
        a.flush(&counted(5), 0);
        b.flush(&counted(2), 0);
        for (recorder, n) in [(&first, 5.0), (&second, 2.0)] {
            let text = recorder.handle().render();
            assert_eq!(value(&text, MESSAGES, "delivered"), Some(n), "{text}");
        }
    }
}
