//! The hand-off between a parked sender (a `send` or a `reserve`) and whoever
//! resolves its wait (the receiver freeing a slot, a close, a policy change): a small cell the sender reads without
//! taking the mailbox lock.

use super::sync::{AtomicU8, Mutex, Ordering};
use super::{ReserveError, SendError};

/// How a parked send or reservation ended while its sender was away. A refused
/// send gets its message back; a refused reservation has none (`None`).
pub(crate) enum Resolved<T> {
    Accepted,
    Closed(Option<T>),
    Rejected(Option<T>),
}

impl<T> Resolved<T> {
    /// What the sender's `send` returns for this outcome.
    pub(crate) fn into_result(self) -> Result<(), SendError<T>> {
        match self {
            Resolved::Accepted => Ok(()),
            Resolved::Closed(Some(m)) => Err(SendError::Closed(m)),
            Resolved::Rejected(Some(m)) => Err(SendError::Rejected(m)),
            // A parked send's message is stored before its refusal is published.
            Resolved::Closed(None) | Resolved::Rejected(None) => {
                unreachable!("a refused send without its message")
            }
        }
    }

    /// What a reservation returns for this outcome (a refusal by a live policy
    /// change is `Full`: the new policy refuses when full).
    pub(crate) fn into_reservation(self) -> Result<(), ReserveError> {
        match self {
            Resolved::Accepted => Ok(()),
            Resolved::Closed(_) => Err(ReserveError::Closed),
            Resolved::Rejected(_) => Err(ReserveError::Full),
        }
    }
}

/// Where a parked sender learns how its send ended, without taking the mailbox lock:
/// the side that resolves it (the receiver, a close, a policy change) stores the
/// outcome with `Release` after putting a refused message in `back`, then wakes the
/// sender; the sender reads `state` with `Acquire`. Cells are recycled through
/// `Core::spare`, so a wait allocates only while the pool grows.
pub(crate) struct WaitCell<T> {
    pub(crate) state: AtomicU8,
    pub(crate) back: Mutex<Option<T>>,
}

pub(crate) const WAITING: u8 = 0;
const ACCEPTED: u8 = 1;
const CLOSED: u8 = 2;
const REJECTED: u8 = 3;

impl<T> WaitCell<T> {
    pub(crate) fn new() -> Self {
        WaitCell {
            state: AtomicU8::new(WAITING),
            back: Mutex::new(None),
        }
    }

    /// The outcome, once resolved; lock-free while still waiting or accepted.
    pub(crate) fn resolved(&self) -> Option<Resolved<T>> {
        match self.state.load(Ordering::Acquire) {
            WAITING => None,
            ACCEPTED => Some(Resolved::Accepted),
            st => {
                let msg = self.back.lock().take();
                Some(if st == CLOSED {
                    Resolved::Closed(msg)
                } else {
                    Resolved::Rejected(msg)
                })
            }
        }
    }

    /// Resolves the wait (under the mailbox lock; the caller wakes the sender after).
    pub(crate) fn resolve(&self, outcome: Resolved<T>) {
        let st = match outcome {
            Resolved::Accepted => ACCEPTED,
            Resolved::Closed(m) => {
                *self.back.lock() = m;
                CLOSED
            }
            Resolved::Rejected(m) => {
                *self.back.lock() = m;
                REJECTED
            }
        };
        self.state.store(st, Ordering::Release);
    }
}
