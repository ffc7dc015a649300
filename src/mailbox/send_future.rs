//! The future a send returns ([`SendFuture`]): written by hand, so that a send the
//! policy accepts, refuses or closes at once completes inside its first poll with
//! nothing set up for a wait that never comes.
//!
//! # States
//!
//! The future starts holding its message. Its first poll charges tokio's cooperative
//! budget ([`COOP_EVERY`](super::COOP_EVERY)); a spent budget makes it yield once,
//! holding the message, before any offer. Then it offers the message once (through
//! the lock-free ring, or under one lock round); every outcome but a wait resolves
//! the future there. Where the policy makes the sender wait, the message is parked
//! inside the mailbox in the same lock round, and the future keeps only the wait cell
//! in which the receiver (or a close, or a policy change) records how the send ended,
//! plus a timer when a `send_timeout` applies. A later poll reads the cell without
//! the lock; only a poll that finds the send still unresolved locks, to keep the
//! waker current.
//!
//! # Cancel safety
//!
//! Dropping the future before its first poll drops the message, which was never
//! offered (nothing counted). Dropping it while parked takes the parked message back
//! under the lock: still parked, it was never accepted and goes with the future (not
//! counted as sent); accepted meanwhile, it stays queued; refused or closed
//! meanwhile, it was counted and becomes a dead letter. So an accepted message is
//! never lost or duplicated, whatever happens to the future (tests/mailbox_cancel.rs,
//! tests/loom_mailbox.rs).
//!
//! # Allocation
//!
//! None of its own: the message, its [`Meta`] and the timer live inside the future
//! (the timer is pinned in place, `pin-project-lite`), and a wait cell comes from
//! the mailbox's pool, which allocates only while it grows.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::coop::{made_progress, poll_coop};
use super::core::WaitCell;
use super::{sync, Eviction, Meta, Offer, SendError, Shared};

pin_project_lite::pin_project! {
    #[project = SendFutureProj]
    /// The future of [`Sender::send`](super::Sender::send) and its variants
    /// (`send_with`, `send_timeout`, `send_timeout_with`): resolves to `Ok(())` once
    /// the message is accepted, or to a [`SendError`] that hands it back.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in the sense of [`Sender::send`](super::Sender::send): dropping
    /// it never loses or duplicates an accepted message; a message not yet accepted
    /// goes with the future, uncounted.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluicegate::mailbox::{Builder, Policy, SendFuture};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, mut rx) = Builder::new(Policy::Unbounded).build().unwrap();
    /// let send: SendFuture<'_, u32> = tx.send(7);
    /// send.await.unwrap();
    /// assert_eq!(rx.recv().await, Some(7));
    /// # }
    /// ```
    #[must_use = "a send does nothing unless awaited or polled"]
    pub struct SendFuture<'a, T> {
        shared: &'a Shared<T>,
        // The message until its first offer.
        pending: Option<(T, Meta)>,
        // The caller's own limit on a wait (the policy's applies too).
        timeout: Option<Duration>,
        // While parked: where the send's outcome is recorded; dropping it while
        // `Some` cancels the wait.
        cell: Option<Parked<'a, T>>,
        // When the wait began (for the send-wait histogram).
        started: Option<Instant>,
        // The wait's limit, when one applies.
        #[pin]
        sleep: Option<Sleep>,
    }

}

impl<'a, T> SendFuture<'a, T> {
    /// A send of `msg` with `meta`, waiting at most `timeout` besides the policy's
    /// own limit.
    pub(super) fn new(
        shared: &'a Shared<T>,
        msg: T,
        meta: Meta,
        timeout: Option<Duration>,
    ) -> Self {
        SendFuture {
            shared,
            pending: Some((msg, meta)),
            timeout,
            cell: None,
            started: None,
            sleep: None,
        }
    }
}

impl<T> std::fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendFuture")
            .field("parked", &self.cell.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.pending.is_none() {
            return poll_parked(&mut this, cx);
        }
        // First poll: charge the budget, then offer, parking with this task's waker
        // if the policy makes the sender wait.
        let coop = std::task::ready!(poll_coop(cx));
        let Some((msg, meta)) = this.pending.take() else {
            unreachable!("checked above")
        };
        let out = this.shared.offer(msg, meta, Some(cx.waker()));
        made_progress(coop);
        match out {
            Offer::Accepted => Poll::Ready(Ok(())),
            Offer::Full(m) => Poll::Ready(Err(SendError::Rejected(m))),
            Offer::Closed(m) => Poll::Ready(Err(SendError::Closed(m))),
            Offer::Parked(cell, timeout) => parked(&mut this, cx, cell, timeout),
        }
    }
}

/// The first poll parked the message: the future keeps the wait cell and starts the
/// timer, if a limit applies (out of line: a send that does not wait never comes
/// here).
#[inline(never)]
fn parked<'a, T>(
    this: &mut SendFutureProj<'_, 'a, T>,
    cx: &mut Context<'_>,
    cell: sync::Arc<WaitCell<T>>,
    policy_timeout: Option<Duration>,
) -> Poll<Result<(), SendError<T>>> {
    *this.cell = Some(Parked {
        shared: this.shared,
        cell: Some(cell),
    });
    *this.started = Some(Instant::now());
    let limit = match (*this.timeout, policy_timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(limit) = limit {
        this.sleep.set(Some(tokio::time::sleep(limit)));
    }
    // Parked with this waker a moment ago: resolved meanwhile, the resolver wakes
    // it; only the timer still needs registering.
    match this.sleep.as_mut().as_pin_mut().map(|s| s.poll(cx)) {
        Some(Poll::Ready(())) => Poll::Ready(timed_out(this)),
        _ => Poll::Pending,
    }
}

/// A poll after the first: the send waits (out of line, as [`parked`]).
#[inline(never)]
fn poll_parked<T>(
    this: &mut SendFutureProj<'_, '_, T>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), SendError<T>>> {
    let Some(Parked {
        cell: Some(cell), ..
    }) = this.cell.as_ref()
    else {
        panic!("SendFuture polled after completion")
    };
    // The resolving side stores the outcome in the cell before waking this task, so
    // a wake-up is answered without the mailbox lock.
    if let Some(r) = cell.resolved() {
        return Poll::Ready(finish(this, r.into_result()));
    }
    if let Some(Poll::Ready(())) = this.sleep.as_mut().as_pin_mut().map(|s| s.poll(cx)) {
        return Poll::Ready(timed_out(this));
    }
    let repark = this.shared.lock().repark(cell, cx.waker());
    match repark {
        Some(r) => Poll::Ready(finish(this, r.into_result())),
        None => Poll::Pending,
    }
}

/// The wait's limit passed: takes the parked message back as `Timeout` (or, resolved
/// in the same instant, returns how it ended).
fn timed_out<T>(this: &mut SendFutureProj<'_, '_, T>) -> Result<(), SendError<T>> {
    let Some(Parked {
        cell: Some(cell), ..
    }) = this.cell.as_ref()
    else {
        unreachable!("parked")
    };
    let r = this.shared.lock().cancel_parked(cell, true);
    finish(this, r.unwrap_or(Ok(())))
}

/// The wait is over: the future owes nothing more on drop; records how long it was.
fn finish<T>(
    this: &mut SendFutureProj<'_, '_, T>,
    outcome: Result<(), SendError<T>>,
) -> Result<(), SendError<T>> {
    // Resolved: let go of the cell without cancelling.
    if let Some(mut parked) = this.cell.take() {
        parked.cell = None;
    }
    if let Some(started) = this.started.take() {
        this.shared.lock().record_send_wait(started.elapsed());
    }
    outcome
}

/// A parked send's wait cell; dropped before the send resolved (the future dropped),
/// it takes the parked message back. A field of its own, not a `Drop` of the whole
/// future, so that a send that never waited drops nothing but its own fields.
struct Parked<'a, T> {
    shared: &'a Shared<T>,
    /// `None` once resolved: nothing left to cancel.
    cell: Option<sync::Arc<WaitCell<T>>>,
}

impl<T> Drop for Parked<'_, T> {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else {
            return;
        };
        // Accepted meanwhile: the message is queued and stays. Still parked: it was
        // never accepted and goes with the future. Refused or closed: it was counted,
        // and nobody takes it back, so it is a dead letter.
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
