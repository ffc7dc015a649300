//! The values that move through the core: a queued [`Slot`] and its [`Stamp`]s, a
//! parked sender ([`Waiting`]), and what an operation hands back to be done once the
//! lock is released ([`Effects`], [`Fast`], [`Push`], [`Reserve`]).

use std::task::Waker;
use tokio::time::Instant;

use super::super::long_queue::LongQueueEvent;
use super::super::stats::Eviction;
use super::super::sync::Arc;
use super::super::wait::WaitCell;
use super::super::{Key, Lane, Meta};

/// A queued message with what the policies need to know about it.
pub(crate) struct Slot<T> {
    pub(crate) msg: T,
    pub(crate) key: Option<Key>,
    pub(crate) deadline: Stamp,
    /// Enqueue time, when stamped (see `Core::stamp_next`).
    pub(crate) enqueued: Stamp,
}

/// An instant as nanoseconds since the mailbox was built, plus one; 0 means none.
/// Eight bytes instead of sixteen for an `Option<Instant>`, and compared as integers.
/// Instants before the mailbox was built map to 1 (the earliest), which keeps every
/// comparison with a later instant right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(pub(super) u64);

impl Stamp {
    pub(crate) const NONE: Stamp = Stamp(0);

    /// `at` as a stamp of a mailbox built at `base`.
    #[inline]
    pub(crate) fn at(base: Instant, at: Instant) -> Stamp {
        let nanos = at.saturating_duration_since(base).as_nanos();
        Stamp(u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1)
    }

    pub(crate) fn is_some(self) -> bool {
        self.0 != 0
    }

    /// Nanoseconds from `earlier` to this stamp (0 if it is not earlier).
    #[inline]
    pub(crate) fn nanos_since(self, earlier: Stamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A sender waiting for space, with its message parked here so that the receiver
/// can hand it the freed slot directly (strict FIFO among waiters); a waiting
/// `reserve` has no message (`slot` is `None`) and is handed a place instead.
pub(super) struct Waiting<T> {
    pub(super) cell: Arc<WaitCell<T>>,
    pub(super) slot: Option<Slot<T>>,
    /// The lane the parked message goes to (`Normal` for a reservation).
    pub(super) lane: Lane,
    pub(super) waker: Waker,
}

impl<T> Waiting<T> {
    /// Whether this is a parked send on the normal lane with coalescing key `key`.
    pub(super) fn has_key(&self, key: &Key) -> bool {
        self.lane == Lane::Normal
            && self
                .slot
                .as_ref()
                .is_some_and(|s| s.key.as_ref() == Some(key))
    }
}

/// Hook that merges a replaced message into its replacement (coalesce).
pub(crate) type CoalesceHook<T> = std::sync::Arc<dyn Fn(T, &mut T) + Send + Sync>;

/// Things to do once the lock is released: wake-ups and dead letters (each with its
/// reason and the key and deadline it was sent with).
pub(crate) struct Effects<T> {
    pub(crate) wake_rx: Option<Waker>,
    pub(crate) wake_senders: Vec<Waker>,
    pub(crate) evicted: Vec<(T, Eviction, Meta)>,
    /// A long-queue alert or recovery seen by the operation (boxed: every slow
    /// operation builds an `Effects`, and this keeps it one word larger, not seven).
    pub(crate) long_queue: Option<Box<LongQueueEvent>>,
}

impl<T> Default for Effects<T> {
    fn default() -> Self {
        Effects {
            wake_rx: None,
            wake_senders: Vec::new(),
            evicted: Vec::new(),
            long_queue: None,
        }
    }
}

/// Result of [`Core::take_fast`].
pub(crate) enum Fast<T> {
    /// The next message, delivered.
    Got(T),
    /// Nothing queued.
    Empty,
    /// The fast path does not apply: use [`Core::take`].
    Slow,
}

/// Result of offering a message to the queue.
pub(crate) enum Push<T> {
    Accepted,
    /// Full and the policy refuses.
    Full(Slot<T>),
    Closed(Slot<T>),
    /// Full and the policy makes the sender wait: the message is parked; the cell
    /// says how it ends.
    Parked(Arc<WaitCell<T>>),
}

/// Result of asking for a permit.
pub(crate) enum Reserve<T> {
    /// A permit: counted in `reserved`.
    Granted,
    /// No room and the policy refuses (or `try_reserve` where it would wait).
    Full,
    Closed,
    /// No room and the policy makes the sender wait: parked without a message; the
    /// cell says how it ends.
    Parked(Arc<WaitCell<T>>),
}
