//! Exact accounting: every message that reaches a mailbox ends in exactly one
//! [`Outcome`]; the identity of [`Stats::is_balanced`] holds exactly whenever no
//! send or receive on the mailbox is in progress, and a snapshot taken meanwhile
//! never shows an outcome that did not happen.

use super::Policy;

/// Where a message that entered a mailbox's accounting ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Handed to the receiver.
    Delivered,
    /// Refused because the mailbox was full (or, after a shrink, evicted as the newest).
    Rejected,
    /// The sender's wait for space ran past its timeout.
    TimedOut,
    /// Evicted as the oldest queued message by `drop_oldest`.
    DroppedOldest,
    /// Shed by CoDel because the queue stood too long.
    Shed,
    /// Replaced in the queue by a newer message with the same key.
    Coalesced,
    /// Its deadline passed while it was queued; never delivered.
    Expired,
    /// Refused because the mailbox was closed.
    Closed,
    /// Still queued when the receiver was dropped, or thrown away by its owner
    /// (see [`Receiver::discard_queued`](super::Receiver::discard_queued)).
    Discarded,
}

impl Outcome {
    /// Every outcome, in a fixed order (the order of the metric handles).
    pub const ALL: [Outcome; 9] = [
        Outcome::Delivered,
        Outcome::Rejected,
        Outcome::TimedOut,
        Outcome::DroppedOldest,
        Outcome::Shed,
        Outcome::Coalesced,
        Outcome::Expired,
        Outcome::Closed,
        Outcome::Discarded,
    ];

    /// The `outcome` label value in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Rejected => "rejected",
            Outcome::TimedOut => "timed_out",
            Outcome::DroppedOldest => "dropped_oldest",
            Outcome::Shed => "shed",
            Outcome::Coalesced => "coalesced",
            Outcome::Expired => "expired",
            Outcome::Closed => "closed",
            Outcome::Discarded => "discarded",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Why a message left the mailbox without being delivered and without being handed
/// back to its sender: the reason of a [`DeadLetter`](super::DeadLetter), given to
/// the dead-letter handler together with the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Eviction {
    /// `drop_oldest` made room for a newer message.
    DroppedOldest,
    /// CoDel shed it from the head of a standing queue.
    Shed,
    /// A newer message with the same key took its place (only when no
    /// coalesce hook is set; see [`Builder::on_coalesce`](super::Builder::on_coalesce)).
    Coalesced,
    /// Its deadline passed while queued.
    Expired,
    /// A policy change left no room for it and the new policy refuses (counted as
    /// rejected); or a waiting send was refused by a policy change and its sender
    /// went away before taking the message back.
    Rejected,
    /// Still queued when the receiver was dropped (counted as discarded).
    /// [`Receiver::discard_queued`](super::Receiver::discard_queued) hands the
    /// messages to its caller instead: those are not dead letters.
    Discarded,
    /// A waiting send was refused because the mailbox closed, and its sender went
    /// away before taking the message back (counted as closed).
    Closed,
}

impl Eviction {
    /// The reason as a short label for logs (the [`Outcome`] label it is counted under).
    pub fn label(self) -> &'static str {
        self.outcome().label()
    }
}

impl Eviction {
    /// The [`Outcome`] a message discarded for this reason is counted under.
    pub fn outcome(self) -> Outcome {
        match self {
            Eviction::DroppedOldest => Outcome::DroppedOldest,
            Eviction::Shed => Outcome::Shed,
            Eviction::Coalesced => Outcome::Coalesced,
            Eviction::Expired => Outcome::Expired,
            Eviction::Rejected => Outcome::Rejected,
            Eviction::Discarded => Outcome::Discarded,
            Eviction::Closed => Outcome::Closed,
        }
    }
}

/// A snapshot of one mailbox's accounting.
///
/// Whenever no send or receive on the mailbox is in progress, `sent == delivered +
/// rejected + timed_out + dropped_oldest + shed + coalesced + expired + closed +
/// discarded + depth`; [`Stats::is_balanced`] checks it. A snapshot taken while
/// operations run never shows an outcome that did not happen, and lags by at most
/// the operations in flight (the lock-free ring counts in atomics beside the locked
/// core). A send is counted once it is resolved: a sender still waiting for
/// space is in `waiting_senders`, not in `sent`.
///
/// A [permit](super::Permit) is not a message: it enters none of these counts until
/// its message is sent (then `sent` and an outcome, like any send), and a permit
/// dropped unused, or a reservation refused, is counted nowhere. The permits out
/// are in `reserved`; under `block`, `coalesce`, `drop_newest` and `codel` each holds
/// a place, so `depth - control_depth + reserved <= capacity` there (a live policy
/// change aside: the permits out at the change still land, so the depth may go over
/// the new capacity, or over what `block` and `coalesce` kept at a shrink, by at most
/// their number). Messages on the control lane are in
/// `depth` and counted like any other, but outside the capacity (`control_depth`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The policy in force.
    pub policy: Policy,
    /// Messages whose send was resolved (accepted or refused).
    pub sent: u64,
    /// Messages handed to the receiver.
    pub delivered: u64,
    /// Messages refused by a full mailbox.
    pub rejected: u64,
    /// Sends that waited past their timeout.
    pub timed_out: u64,
    /// Messages evicted by `drop_oldest`.
    pub dropped_oldest: u64,
    /// Messages shed by CoDel.
    pub shed: u64,
    /// Messages replaced by a newer one with the same key.
    pub coalesced: u64,
    /// Messages whose deadline passed in the queue.
    pub expired: u64,
    /// Sends refused because the mailbox was closed.
    pub closed: u64,
    /// Messages left in the queue when the receiver went away or discarded by its owner.
    pub discarded: u64,
    /// Messages queued now.
    pub depth: usize,
    /// The most messages ever queued at once.
    pub peak_depth: usize,
    /// Senders waiting for space now (`send` and `reserve` alike).
    pub waiting_senders: usize,
    /// Permits out now (reserved, not yet sent or dropped).
    pub reserved: usize,
    /// Of `depth`, messages queued on the control lane (outside the capacity).
    pub control_depth: usize,
}

impl Stats {
    /// The count for one outcome.
    pub fn get(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Delivered => self.delivered,
            Outcome::Rejected => self.rejected,
            Outcome::TimedOut => self.timed_out,
            Outcome::DroppedOldest => self.dropped_oldest,
            Outcome::Shed => self.shed,
            Outcome::Coalesced => self.coalesced,
            Outcome::Expired => self.expired,
            Outcome::Closed => self.closed,
            Outcome::Discarded => self.discarded,
        }
    }

    /// Sum of every outcome plus the current depth: equals `sent` when balanced.
    pub fn accounted(&self) -> u64 {
        Outcome::ALL.iter().map(|o| self.get(*o)).sum::<u64>() + self.depth as u64
    }

    /// Whether the accounting identity holds.
    pub fn is_balanced(&self) -> bool {
        self.sent == self.accounted()
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Counts {
    pub(crate) sent: u64,
    pub(crate) by_outcome: [u64; 9],
}
