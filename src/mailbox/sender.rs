//! The sending half: offers a message through the lock-free ring or under one lock
//! round and, where the policy makes it wait, parks it in the mailbox and waits on
//! its wait cell (the future that does it: `send_future.rs`).

use std::fmt;
use std::time::Duration;

use super::send_future::SendFuture;
use super::{sync, Meta, Monitor, Offer, Shared, Stats, TrySendError};

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

impl<T: Send + 'static> Sender<T> {
    /// Sends a message under the policy: may wait for space (`block`, `coalesce`,
    /// up to the policy's `send_timeout`), otherwise resolves at once. Under
    /// `drop_oldest` the message is always accepted and the oldest queued one
    /// evicted to make room. The returned [`SendFuture`] resolves in its first poll
    /// unless the sender has to wait or the task's cooperative budget is spent (then
    /// it yields once before offering).
    ///
    /// # Errors
    ///
    /// [`SendError`](super::SendError) hands the message back: `Rejected` by a full `drop_newest` or
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
    pub fn send(&self, msg: T) -> SendFuture<'_, T> {
        SendFuture::new(&self.shared, msg, Meta::default(), None)
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
    ///
    /// # Examples
    ///
    /// Under `coalesce`, a keyed message replaces the queued one with the same key;
    /// a deadline drops a message still queued when it passes:
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluicegate::mailbox::{channel, Meta, Policy};
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, mut rx) = channel(Policy::Coalesce { capacity: 8 });
    /// let soon = Instant::now() + Duration::from_secs(5);
    /// tx.send_with("draft", Meta::keyed("list-1").with_deadline(soon)).await.unwrap();
    /// tx.send_with("final", Meta::keyed("list-1").with_deadline(soon)).await.unwrap();
    /// assert_eq!(rx.recv().await, Some("final"));
    /// assert_eq!(rx.stats().coalesced, 1);
    /// # }
    /// ```
    pub fn send_with(&self, msg: T, meta: Meta) -> SendFuture<'_, T> {
        SendFuture::new(&self.shared, msg, meta, None)
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluicegate::mailbox::{channel, Policy, SendError};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, _rx) = channel(Policy::Block { capacity: 1, send_timeout: None });
    /// tx.send(1).await.unwrap();
    /// // Full, and nobody receives: the wait ends at the timeout, message handed back.
    /// let late = tx.send_timeout(2, Duration::from_millis(50)).await;
    /// assert_eq!(late, Err(SendError::Timeout(2)));
    /// # }
    /// ```
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> SendFuture<'_, T> {
        SendFuture::new(&self.shared, msg, Meta::default(), Some(timeout))
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
    pub fn send_timeout_with(&self, msg: T, meta: Meta, timeout: Duration) -> SendFuture<'_, T> {
        SendFuture::new(&self.shared, msg, meta, Some(timeout))
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
