//! Metric handles of one mailbox, registered once through the `metrics` facade
//! and labelled by role (`mailbox`) and `policy`, so the hot path only touches atomics.

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
/// Time from enqueue to delivery, in seconds.
pub const SOJOURN: &str = "sluicegate_mailbox_sojourn_seconds";
/// Time senders spent waiting for space (only sends that waited), in seconds.
pub const SEND_WAIT: &str = "sluicegate_mailbox_send_wait_seconds";

/// Every metric a mailbox exports, for documentation and dashboard checks.
pub const ALL: [&str; 6] = [MAILBOXES, DEPTH, CAPACITY, MESSAGES, SOJOURN, SEND_WAIT];

/// Handles bound to the recorder that was installed when the mailbox was built.
pub(crate) struct Handles {
    live: Gauge,
    pub(crate) depth: Gauge,
    pub(crate) outcomes: [Counter; 9],
    pub(crate) sojourn: Histogram,
    pub(crate) send_wait: Histogram,
}

impl Handles {
    pub(crate) fn new(role: &'static str, policy: &'static str, capacity: Option<usize>) -> Self {
        let labels = [("mailbox", role), ("policy", policy)];
        let outcomes = Outcome::ALL.map(|o| {
            metrics::counter!(MESSAGES, "mailbox" => role, "policy" => policy, "outcome" => o.label())
        });
        metrics::gauge!(CAPACITY, &labels).set(capacity.unwrap_or(0) as f64);
        let live = metrics::gauge!(MAILBOXES, &labels);
        live.increment(1.0);
        Handles {
            live,
            depth: metrics::gauge!(DEPTH, &labels),
            outcomes,
            sojourn: metrics::histogram!(SOJOURN, &labels),
            send_wait: metrics::histogram!(SEND_WAIT, &labels),
        }
    }

    /// Called when the mailbox goes away or moves to another policy label.
    pub(crate) fn retire(&self, depth: usize) {
        self.live.decrement(1.0);
        self.depth.decrement(depth as f64);
    }

    #[inline]
    pub(crate) fn count(&self, outcome: Outcome, n: u64) {
        self.outcomes[outcome.index()].increment(n);
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
}
