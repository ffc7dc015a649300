//! The sending half: offers a message through the lock-free ring or under one lock
//! round and, where the policy makes it wait, parks it in the mailbox and waits on
//! its wait cell.

use std::fmt;
use std::future::poll_fn;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::coop::{made_progress, poll_coop};
use super::core::WaitCell;
use super::{sync, Eviction, Meta, Monitor, Offer, SendError, Shared, Stats, TrySendError};

/// The sending half; cheap to clone. The mailbox stays open while any sender lives.
pub struct Sender<T> {
    pub(super) shared: sync::Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().add_sender();
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = { self.shared.lock().drop_sender() };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// Takes a parked message back if its send future is dropped before it resolved.
struct ParkGuard<'a, T> {
    shared: &'a Shared<T>,
    cell: Option<sync::Arc<WaitCell<T>>>,
}

impl<T> Drop for ParkGuard<'_, T> {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            // Accepted meanwhile: the message is queued and stays. Still parked: it
            // was never accepted and goes with the future. Refused or closed: it was
            // counted, and nobody takes it back, so it is a dead letter.
            let outcome = self.shared.lock().cancel_parked(&cell, false);
            match outcome {
                Some(Err(SendError::Rejected(m))) => {
                    self.shared
                        .dead_letter(m, Eviction::Rejected, Meta::default());
                }
                Some(Err(SendError::Closed(m))) => {
                    self.shared
                        .dead_letter(m, Eviction::Closed, Meta::default());
                }
                _ => {}
            }
        }
    }
}

impl<T: Send + 'static> Sender<T> {
    /// Sends a message under the policy: may wait for space (`block`, `coalesce`,
    /// up to the policy's `send_timeout`), otherwise resolves at once. Under
    /// `drop_oldest` the message is always accepted and the oldest queued one
    /// evicted to make room.
    ///
    /// # Errors
    ///
    /// [`SendError`] hands the message back: `Rejected` by a full `drop_newest` or
    /// `codel` mailbox, `Timeout` after the policy's `send_timeout`, `Closed` once
    /// the receiver is dropped or closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never loses or duplicates an accepted message: once
    /// accepted, the message is in the mailbox whatever happens to the future; a
    /// message still parked when the future is dropped was never accepted (not
    /// counted as sent) and is dropped with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluicegate::mailbox::{channel, Policy, SendError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, mut rx) = channel(Policy::DropNewest { capacity: 1 });
    /// tx.send("first").await.unwrap();
    /// // Full: the newcomer is refused and handed back.
    /// assert_eq!(tx.send("second").await, Err(SendError::Rejected("second")));
    /// assert_eq!(rx.recv().await, Some("first"));
    /// # }
    /// ```
    pub async fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.send_inner(msg, Meta::default(), None).await
    }

    /// [`send`](Self::send) with a coalescing key and/or deadline.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send).
    pub async fn send_with(&self, msg: T, meta: Meta) -> Result<(), SendError<T>> {
        self.send_inner(msg, meta, None).await
    }

    /// Like [`send`](Self::send), but waits for space at most `timeout`
    /// (or the policy's `send_timeout`, whichever is shorter).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send); `Timeout` once `timeout` has passed.
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send).
    pub async fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.send_inner(msg, Meta::default(), Some(timeout)).await
    }

    /// [`send_timeout`](Self::send_timeout) with a coalescing key and/or deadline.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Self::send_timeout).
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send).
    pub async fn send_timeout_with(
        &self,
        msg: T,
        meta: Meta,
        timeout: Duration,
    ) -> Result<(), SendError<T>> {
        self.send_inner(msg, meta, Some(timeout)).await
    }

    /// Sends without ever waiting: where the policy would make the sender wait, the
    /// message is refused as `Full` (and counted as rejected).
    ///
    /// # Errors
    ///
    /// [`TrySendError`] hands the message back: `Full` when the policy refuses
    /// or would make the sender wait, `Closed` once the receiver is gone.
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.try_send_with(msg, Meta::default())
    }

    /// [`try_send`](Self::try_send) with a coalescing key and/or deadline.
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send).
    pub fn try_send_with(&self, msg: T, meta: Meta) -> Result<(), TrySendError<T>> {
        match self.shared.offer(msg, meta, None) {
            Offer::Accepted => Ok(()),
            Offer::Full(m) => Err(TrySendError::Full(m)),
            Offer::Closed(m) => Err(TrySendError::Closed(m)),
            Offer::Parked(..) => unreachable!("try_send never parks"),
        }
    }

    /// Sends on the control lane (see [`Lane::Control`](super::Lane::Control)):
    /// never waits, never refused, dropped, shed, expired or coalesced by the policy,
    /// outside the capacity, delivered before every other message.
    ///
    /// # Errors
    ///
    /// `TrySendError::Closed` with the message once the receiver is gone or closed
    /// (the only error).
    ///
    /// # Examples
    ///
    /// ```
    /// use sluicegate::mailbox::{channel, Policy};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (tx, mut rx) = channel::<&str>(Policy::DropOldest { capacity: 1 });
    /// tx.send("work").await.unwrap();
    /// tx.try_send_control("stop").unwrap();
    /// tx.send("more work").await.unwrap(); // evicts "work", never "stop"
    /// assert_eq!(rx.recv().await, Some("stop"));
    /// assert_eq!(rx.recv().await, Some("more work"));
    /// # }
    /// ```
    pub fn try_send_control(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.try_send_with(msg, Meta::control())
    }

    async fn send_inner(
        &self,
        msg: T,
        meta: Meta,
        timeout: Option<Duration>,
    ) -> Result<(), SendError<T>> {
        // First poll: charge the budget, then offer (through the ring, or under one
        // lock round), parking with this task's waker if the policy makes the sender
        // wait.
        let mut pending = Some((msg, meta));
        let res = poll_fn(|cx| {
            let coop = std::task::ready!(poll_coop(cx));
            let Some((msg, meta)) = pending.take() else {
                unreachable!("polled after completion")
            };
            let out = self.shared.offer(msg, meta, Some(cx.waker()));
            made_progress(coop);
            Poll::Ready(out)
        })
        .await;
        let (cell, policy_timeout) = match res {
            Offer::Accepted => return Ok(()),
            Offer::Full(m) => return Err(SendError::Rejected(m)),
            Offer::Closed(m) => return Err(SendError::Closed(m)),
            Offer::Parked(cell, timeout) => (cell, timeout),
        };
        let started = Instant::now();
        let mut guard = ParkGuard {
            shared: &self.shared,
            cell: Some(cell.clone()),
        };
        let limit = match (timeout, policy_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // The resolving side stores the outcome in the cell before waking this task,
        // so a wake-up is answered without the mailbox lock; only a poll that finds
        // the send still unresolved locks, to keep the waker current.
        let mut first = true;
        let wait = poll_fn(|cx: &mut Context<'_>| {
            if let Some(r) = cell.resolved() {
                return Poll::Ready(r);
            }
            if std::mem::take(&mut first) {
                // Parked with this waker a moment ago, in the same poll.
                return Poll::Pending;
            }
            match self.shared.lock().repark(&cell, cx.waker()) {
                Some(r) => Poll::Ready(r),
                None => Poll::Pending,
            }
        });
        let outcome = match limit {
            None => wait.await.into_result(),
            Some(limit) => match tokio::time::timeout(limit, wait).await {
                Ok(r) => r.into_result(),
                Err(_) => {
                    let r = self.shared.lock().cancel_parked(&cell, true);
                    r.unwrap_or(Ok(()))
                }
            },
        };
        guard.cell = None;
        self.shared.lock().record_send_wait(started.elapsed());
        outcome
    }

    /// A snapshot of the mailbox's accounting.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Whether the receiver is gone or closed.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().is_closed()
    }

    /// A handle for stats and policy changes that does not keep the mailbox open.
    pub fn monitor(&self) -> Monitor<T> {
        Monitor {
            shared: self.shared.clone(),
        }
    }
}
