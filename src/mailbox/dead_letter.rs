//! Dead letters: every message that leaves a mailbox without being delivered and
//! without being handed back to its sender goes, with its reason and metadata, to a
//! handler set with [`Builder::dead_letters`](super::Builder::dead_letters), and may
//! be logged at a limited rate ([`Builder::log_dead_letters`](super::Builder::log_dead_letters)).
//!
//! # Which messages are dead letters
//!
//! A message is a dead letter when the mailbox counted it under an [`Outcome`]
//! other than `delivered` and nobody else got it back:
//!
//! | outcome | dead letter? |
//! |---|---|
//! | `dropped_oldest`, `shed`, `expired` | always ([`Eviction::DroppedOldest`], [`Eviction::Shed`], [`Eviction::Expired`]) |
//! | `coalesced` | when no merge hook is set ([`Eviction::Coalesced`]); with [`Builder::on_coalesce`](super::Builder::on_coalesce) the replaced message goes to that hook |
//! | `rejected` | when a policy change evicts a queued message ([`Eviction::Rejected`]); a refused send or `try_send` hands the message back in its error instead |
//! | `discarded` | when the receiver is dropped with messages queued ([`Eviction::Discarded`]); [`Receiver::discard_queued`](super::Receiver::discard_queued) returns them to its caller instead |
//! | `closed` | no: the refused message is handed back in the error |
//! | `timed_out` | no: the message is handed back in `SendError::Timeout` |
//!
//! One exception to "handed back": a waiting send (`block`, `coalesce`) resolved as
//! refused or closed whose future is dropped before it takes the message back; the
//! message then goes to the handler ([`Eviction::Rejected`], [`Eviction::Closed`]),
//! so that every counted message ends somewhere. A waiting send whose future is
//! dropped *before* it was resolved was never accepted (not counted as sent): its
//! message goes with the future, as with any cancelled future.
//!
//! So, at quiescence, for every outcome `o` but `delivered`: `stats.get(o)` = dead
//! letters with reason `o` + messages handed back as `o` (+ merges, for
//! `coalesced`). `tests/mailbox_model.rs` checks this after every step, under every
//! policy, against a reference model.
//!
//! The handler runs outside the mailbox lock, on the thread of the operation that
//! discarded the message (a sender evicting the oldest, the receiver expiring or
//! shedding, the receiver's drop): keep it short, and never block in it on the
//! mailbox it watches. Setting no handler costs nothing: the message is dropped
//! where it is discarded, as before.
//!
//! [`Outcome`]: super::Outcome

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{Eviction, Meta};

/// A message that left a mailbox undelivered, with why and what it carried.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use sluicegate::mailbox::{Builder, DeadLetter, Eviction, Policy};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let dead = Arc::new(Mutex::new(Vec::new()));
/// let sink = dead.clone();
/// let (tx, mut rx) = Builder::new(Policy::DropOldest { capacity: 2 })
///     .dead_letters(move |d: DeadLetter<u32>| sink.lock().unwrap().push((d.message, d.reason)))
///     .build()
///     .unwrap();
/// for i in 1..=3 {
///     tx.send(i).await.unwrap();
/// }
/// // 1 made room for 3.
/// assert_eq!(*dead.lock().unwrap(), vec![(1, Eviction::DroppedOldest)]);
/// assert_eq!(rx.recv().await, Some(2));
/// drop(rx); // 3 is still queued: discarded, and a dead letter too.
/// assert_eq!(dead.lock().unwrap()[1], (3, Eviction::Discarded));
/// # }
/// ```
#[non_exhaustive]
pub struct DeadLetter<T> {
    /// The message itself.
    pub message: T,
    /// Why it was not delivered (the outcome it is counted under).
    pub reason: Eviction,
    /// The key and deadline it was sent with ([`Meta::default`] for a plain `send`,
    /// and for a refused waiting send abandoned by its sender, whose metadata the
    /// mailbox no longer holds).
    pub meta: Meta,
    /// The mailbox's role name ([`Builder::role`](super::Builder::role)).
    pub role: &'static str,
}

impl<T> DeadLetter<T> {
    /// The message, without its reason and metadata.
    pub fn into_message(self) -> T {
        self.message
    }
}

impl<T> fmt::Debug for DeadLetter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("reason", &self.reason)
            .field("meta", &self.meta)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The dead-letter handler.
/// Boxed, not shared: a handler that captures nothing (the runtime's) allocates
/// nothing.
pub(crate) type DeadLetterHook<T> = Box<dyn Fn(DeadLetter<T>) + Send + Sync>;

/// Where a mailbox's dead letters go: the handler and/or the rate-limited log.
pub(crate) struct DeadLetters<T> {
    pub(crate) hook: Option<DeadLetterHook<T>>,
    /// Boxed: most mailboxes with dead letters (every runtime server's) do not log
    /// them, and each carries this value.
    pub(crate) log: Option<Box<LogLimit>>,
    pub(crate) role: &'static str,
}

impl<T> DeadLetters<T> {
    /// Reports one dead letter: logs it (when due) and hands it to the handler, or
    /// drops it.
    #[cold]
    pub(crate) fn report(&self, message: T, reason: Eviction, meta: Meta) {
        if let Some(log) = &self.log {
            log.record(self.role, reason, &meta);
        }
        match &self.hook {
            Some(hook) => hook(DeadLetter {
                message,
                reason,
                meta,
                role: self.role,
            }),
            None => drop(message),
        }
    }
}

/// At most one log line per `every` per mailbox; the lines in between are counted
/// and the next line says how many were left out.
pub(crate) struct LogLimit {
    every: Duration,
    base: Instant,
    /// Nanoseconds since `base` of the last line, plus one (0: none yet).
    last: AtomicU64,
    /// Dead letters not logged since the last line.
    suppressed: AtomicU64,
}

impl LogLimit {
    pub(crate) fn new(every: Duration) -> Self {
        LogLimit {
            every,
            base: Instant::now(),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    fn record(&self, role: &'static str, reason: Eviction, meta: &Meta) {
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        let last = self.last.load(Ordering::Relaxed);
        let every = u64::try_from(self.every.as_nanos()).unwrap_or(u64::MAX);
        let due = last == 0 || now.saturating_sub(last) >= every;
        if !due
            || self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(
            mailbox = role,
            reason = reason.label(),
            key = meta.key.as_ref().map(|k| k.as_str()),
            suppressed,
            "dead letter: message left the mailbox undelivered ({suppressed} more not logged since the last line)"
        );
    }
}
