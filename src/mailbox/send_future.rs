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
//! waker current. What a wait needs (the cell, when it began, the timer) lives in a
//! box made when the send parks, so the future of a send that never waits holds
//! only the message, its [`Meta`], the caller's limit and one pointer, and its drop
//! checks that pointer.
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
//! None for a send that does not wait: the message and its [`Meta`] live inside the
//! future. A send that parks allocates one box for its wait (the timer pinned
//! inside it, `pin-project-lite`), beside the lock round and the wake-up a wait
//! costs anyway; its wait cell comes from the mailbox's pool, which allocates only
//! while it grows.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::coop::{made_progress, poll_coop};
use super::core::WaitCell;
use super::{sync, Eviction, Meta, Offer, SendError, Shared};

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
    // While parked: the wait; dropped unresolved, it cancels the wait.
    wait: Option<Pin<Box<Wait<'a, T>>>>,
}

pin_project_lite::pin_project! {
    /// A parked send's wait, boxed when the send parks.
    struct Wait<'a, T> {
        // Where the send's outcome is recorded; dropped unresolved, it takes the
        // parked message back.
        parked: Parked<'a, T>,
        // When the wait began (for the send-wait histogram).
        started: Instant,
        // The wait's limit, when one applies.
        #[pin]
        sleep: Option<Sleep>,
    }
}

// No field is pinned structurally (the message is moved out at the first poll, the
// timer is pinned in its own box), so the future may move between polls whatever
// the message's type.
impl<T> Unpin for SendFuture<'_, T> {}

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
            wait: None,
        }
    }
}

impl<T> std::fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendFuture")
            .field("parked", &self.wait.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Unpin: the pinned timer lives in the wait's box.
        let this = self.get_mut();
        if this.pending.is_none() {
            return poll_parked(this, cx);
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
            Offer::Parked(cell, timeout) => parked(this, cx, cell, timeout),
        }
    }
}

/// The first poll parked the message: the future boxes its wait, with the timer
/// if a limit applies (out of line: a send that does not wait never comes here).
#[inline(never)]
fn parked<'a, T>(
    this: &mut SendFuture<'a, T>,
    cx: &mut Context<'_>,
    cell: sync::Arc<WaitCell<T>>,
    policy_timeout: Option<Duration>,
) -> Poll<Result<(), SendError<T>>> {
    let limit = match (this.timeout, policy_timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let wait = this.wait.insert(Box::pin(Wait {
        parked: Parked {
            shared: this.shared,
            cell: Some(cell),
        },
        started: Instant::now(),
        sleep: limit.map(tokio::time::sleep),
    }));
    // Parked with this waker a moment ago: resolved meanwhile, the resolver wakes
    // it; only the timer still needs registering.
    match wait
        .as_mut()
        .project()
        .sleep
        .as_pin_mut()
        .map(|s| s.poll(cx))
    {
        Some(Poll::Ready(())) => Poll::Ready(timed_out(this)),
        _ => Poll::Pending,
    }
}

/// A poll after the first: the send waits (out of line, as [`parked`]).
#[inline(never)]
fn poll_parked<T>(
    this: &mut SendFuture<'_, T>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), SendError<T>>> {
    let Some(wait) = this.wait.as_mut() else {
        panic!("SendFuture polled after completion")
    };
    let wait = wait.as_mut().project();
    let Some(cell) = wait.parked.cell.as_ref() else {
        panic!("SendFuture polled after completion")
    };
    // The resolving side stores the outcome in the cell before waking this task, so
    // a wake-up is answered without the mailbox lock.
    if let Some(r) = cell.resolved() {
        return Poll::Ready(finish(this, r.into_result()));
    }
    if let Some(Poll::Ready(())) = wait.sleep.as_pin_mut().map(|s| s.poll(cx)) {
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
fn timed_out<T>(this: &mut SendFuture<'_, T>) -> Result<(), SendError<T>> {
    let Some(cell) = this.wait.as_ref().and_then(|w| w.parked.cell.as_ref()) else {
        unreachable!("parked")
    };
    let r = this.shared.lock().cancel_parked(cell, true);
    finish(this, r.unwrap_or(Ok(())))
}

/// The wait is over: the future owes nothing more on drop; records how long it was.
fn finish<T>(
    this: &mut SendFuture<'_, T>,
    outcome: Result<(), SendError<T>>,
) -> Result<(), SendError<T>> {
    if let Some(mut wait) = this.wait.take() {
        // Resolved: let go of the cell without cancelling.
        let wait = wait.as_mut().project();
        wait.parked.cell = None;
        this.shared.lock().record_send_wait(wait.started.elapsed());
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

#[cfg(all(test, not(sluicegate_loom)))]
mod tests {
    use super::*;

    /// A send that does not wait carries its message, its `Meta`, the caller's limit
    /// and one pointer for a wait: the wait's state and its timer (a tokio `Sleep`,
    /// 112 bytes on x86-64 with tokio 1.54) are boxed only when it parks.
    #[test]
    fn a_send_future_holds_no_timer_until_it_parks() {
        let size = std::mem::size_of::<SendFuture<'_, u64>>();
        let meta = std::mem::size_of::<Meta>();
        let sleep = std::mem::size_of::<Sleep>();
        assert!(
            size <= 8 + 8 + meta + 16 + 8 && size < sleep,
            "SendFuture<u64> is {size} bytes (Meta {meta}, Sleep {sleep})"
        );
    }
}
