//! Long-queue alerts (OTP's `long_message_queue` system monitor): an edge-triggered
//! event when a mailbox's depth has stayed above a threshold for a while, and one
//! when it comes back to the threshold or below. Set with
//! [`Builder::long_queue`](super::Builder::long_queue); each event is logged with
//! `tracing` (`WARN` when long, `INFO` on recovery), counted in metrics (see
//! [`LONG_QUEUES`](super::metrics::LONG_QUEUES) and
//! [`LONG_QUEUE_EVENTS`](super::metrics::LONG_QUEUE_EVENTS)) and given to the
//! callback of [`Builder::on_long_queue`](super::Builder::on_long_queue).
//!
//! # When it is checked
//!
//! The depth is watched under the mailbox lock at every send and receive, and at
//! every [`stats`](super::Sender::stats) snapshot and metrics flush
//! ([`flush_all`](super::metrics::flush_all), which `/metrics` and `sluicegate serve`
//! call every 5 s). No timer runs per mailbox: a mailbox on which none of those
//! happens reports at the next one, so an alert may come later than `for_at_least`,
//! never earlier. The depth stays above the threshold *continuously*: any operation
//! that finds it at the threshold or below starts the wait over.
//!
//! A mailbox with an alert set has no lock-free ring: each operation must see the
//! depth under the lock.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// What happened to a mailbox's depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LongQueueKind {
    /// The depth has stayed above the threshold for at least `for_at_least`.
    Long,
    /// After a `Long` event, the depth came back to the threshold or below (also
    /// when the receiver is dropped: the queue is emptied).
    Recovered,
}

/// A long-queue alert or its recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LongQueueEvent {
    /// Long, or recovered.
    pub kind: LongQueueKind,
    /// The mailbox's role name.
    pub role: &'static str,
    /// Messages queued when the event was seen.
    pub depth: usize,
    /// The threshold it was set with.
    pub threshold: usize,
    /// How long the depth had been above the threshold when the event was seen.
    pub above_for: Duration,
}

/// The long-queue callback.
pub(crate) type LongQueueHook = Arc<dyn Fn(LongQueueEvent) + Send + Sync>;

/// The watch on one mailbox's depth (in the core, under its lock).
pub(crate) struct LongWatch {
    threshold: usize,
    for_at_least: Duration,
    role: &'static str,
    /// Since when the depth has been above the threshold without a break.
    above_since: Option<Instant>,
    /// A `Long` event was reported and no `Recovered` yet.
    alerted: bool,
}

impl LongWatch {
    pub(crate) fn new(threshold: usize, for_at_least: Duration, role: &'static str) -> Self {
        LongWatch {
            threshold,
            for_at_least,
            role,
            above_since: None,
            alerted: false,
        }
    }

    /// Looks at the depth now; the event, on an edge. Reads the clock only while
    /// above the threshold or when leaving it.
    pub(crate) fn observe(&mut self, depth: usize) -> Option<LongQueueEvent> {
        if depth > self.threshold {
            let now = Instant::now();
            let since = *self.above_since.get_or_insert(now);
            let above_for = now.saturating_duration_since(since);
            if !self.alerted && above_for >= self.for_at_least {
                self.alerted = true;
                return Some(self.event(LongQueueKind::Long, depth, above_for));
            }
            return None;
        }
        let since = self.above_since.take()?;
        if !std::mem::take(&mut self.alerted) {
            return None;
        }
        let above_for = Instant::now().saturating_duration_since(since);
        Some(self.event(LongQueueKind::Recovered, depth, above_for))
    }

    fn event(&self, kind: LongQueueKind, depth: usize, above_for: Duration) -> LongQueueEvent {
        LongQueueEvent {
            kind,
            role: self.role,
            depth,
            threshold: self.threshold,
            above_for,
        }
    }
}

/// Reports an event outside the lock: log line, metrics, callback.
#[cold]
pub(crate) fn report(event: LongQueueEvent, hook: Option<&LongQueueHook>) {
    use super::metrics::{LONG_QUEUES, LONG_QUEUE_EVENTS};
    let role = event.role;
    let above_for_ms = u64::try_from(event.above_for.as_millis()).unwrap_or(u64::MAX);
    let (label, delta) = match event.kind {
        LongQueueKind::Long => {
            tracing::warn!(
                mailbox = role,
                depth = event.depth,
                threshold = event.threshold,
                above_for_ms,
                "long message queue: depth above the threshold"
            );
            ("long", 1.0)
        }
        LongQueueKind::Recovered => {
            tracing::info!(
                mailbox = role,
                depth = event.depth,
                above_for_ms,
                "long message queue recovered"
            );
            ("recovered", -1.0)
        }
    };
    metrics::gauge!(LONG_QUEUES, "mailbox" => role).increment(delta);
    metrics::counter!(LONG_QUEUE_EVENTS, "mailbox" => role, "event" => label).increment(1);
    if let Some(hook) = hook {
        hook(event);
    }
}
