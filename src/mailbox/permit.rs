//! Reservations: [`Sender::reserve`] takes a place in the mailbox before the message
//! exists and hands back a [`Permit`], whose `send` never waits and is never refused
//! for room (tokio's `Permit`, per policy).
//!
//! The module is one job: the reservation side of [`Sender`] and the permits; what
//! a reservation means per policy, how it is counted, and its cancel safety are
//! documented on [`Permit`], where users read them.

use std::fmt;
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use super::coop::{made_progress, poll_coop};
use super::core::{Effects, Reserve, Resolved, WaitCell};
use super::{sync, Meta, ReserveError, SendError, Sender, Shared};

/// A place held in a mailbox for one message: [`send`](Self::send) it, or drop the
/// permit to give the place back.
///
/// # What a reservation means under each policy
///
/// | policy | no room | the permit |
/// |---|---|---|
/// | `block`, `coalesce` | `reserve` waits in the same FIFO as waiting `send`s (a `send` never overtakes an earlier waiting `reserve`, nor the other way round), up to the policy's `send_timeout` or `reserve_timeout`'s; `try_reserve` answers `Full` | holds a place |
/// | `drop_newest`, `codel` | `Full` at once, nothing waits | holds a place |
/// | `drop_oldest` | never: granted at once | holds no place: `drop_oldest` always finds room, so the eviction happens when the permit's message is sent, as for any send. A permit dropped unused has cost no message |
/// | `unbounded` | never: granted at once | holds no place (there is no limit) |
///
/// A place held by a permit counts against the capacity like a queued message
/// ([`Stats::reserved`](super::Stats::reserved)), so a permit's message is always
/// accepted: it goes ahead of senders that are waiting (their turn comes with the next
/// place that frees), and after a live policy change that shrinks the capacity the
/// permits already out still land, over the new capacity (or, under `block` and
/// `coalesce`, which keep what is queued at a shrink, over what was kept) by at most
/// their number. Under `coalesce`, a
/// permit's keyed message still replaces the queued one with its key; senders still
/// waiting with that key are let in first through the permit's place, so newer
/// content never lands before older. Only a closed mailbox refuses a permit's message
/// (`SendError::Closed`, with the message handed back and counted as closed).
///
/// A permit is not a message: it enters the accounting only when its message is sent
/// (then it is counted like any send). A permit dropped unused, a reservation refused,
/// and a waiting reservation given up are counted nowhere.
///
/// # Cancel safety and allocation
///
/// Dropping a [`Permit`] (or [`OwnedPermit`]) unused gives its place back at once and
/// lets in the first waiting sender, so a caller that decides not to send, or whose
/// task is cancelled while it builds the message, loses nothing and blocks nobody.
/// Dropping a `reserve` future is cancel safe in the same way: still waiting, it
/// leaves the FIFO; granted a place in the same instant, it gives the place back to
/// the next waiter (`tests/loom_mailbox.rs` checks that race for lost wake-ups).
///
/// A reservation and its send take the mailbox lock once each and allocate nothing,
/// except a wait cell when the reservation must wait (recycled, as for `send`). Permits
/// use the locked core: while one is out, the lock-free ring stays closed (its gate
/// locked); the receiver opens it again once no permit is out and the queue is
/// empty.
///
/// # Examples
///
/// ```
/// use sluicegate::mailbox::{channel, Policy, ReserveError};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (tx, mut rx) = channel::<String>(Policy::DropNewest { capacity: 1 });
/// let permit = tx.reserve().await.unwrap();
/// // The only place is held: nothing else gets in, and the message is not built yet.
/// assert_eq!(tx.try_reserve().err(), Some(ReserveError::Full));
/// permit.send("built after the place was secured".to_string()).unwrap();
/// assert_eq!(rx.recv().await.as_deref(), Some("built after the place was secured"));
/// # }
/// ```
pub struct Permit<'a, T> {
    shared: &'a Shared<T>,
}

/// A [`Permit`] that owns its [`Sender`] (from [`Sender::reserve_owned`]), so it can
/// move into another task.
pub struct OwnedPermit<T> {
    /// `None` only once used.
    sender: Option<Sender<T>>,
}

impl<T> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for OwnedPermit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit").finish_non_exhaustive()
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        self.shared.release_permit();
    }
}

impl<T> Drop for OwnedPermit<T> {
    fn drop(&mut self) {
        if let Some(tx) = &self.sender {
            tx.shared.release_permit();
        }
    }
}

impl<T> Permit<'_, T> {
    /// Sends the message in the held place: never waits, never refused for room.
    ///
    /// # Errors
    ///
    /// `SendError::Closed` with the message, if the mailbox closed since the
    /// reservation (the only error).
    pub fn send(self, msg: T) -> Result<(), SendError<T>> {
        self.send_with(msg, Meta::default())
    }

    /// [`send`](Self::send) with a coalescing key, deadline or lane. On the control
    /// lane the held place is simply given back.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_with(self, msg: T, meta: Meta) -> Result<(), SendError<T>> {
        let shared = self.shared;
        // The place is used by the send, not given back by the drop.
        std::mem::forget(self);
        shared.send_with_permit(msg, meta)
    }
}

impl<T> OwnedPermit<T> {
    /// As [`Permit::send`]; hands the sender back.
    ///
    /// # Errors
    ///
    /// As [`Permit::send`].
    pub fn send(self, msg: T) -> Result<Sender<T>, SendError<T>> {
        self.send_with(msg, Meta::default())
    }

    /// As [`Permit::send_with`]; hands the sender back.
    ///
    /// # Errors
    ///
    /// As [`Permit::send`].
    pub fn send_with(mut self, msg: T, meta: Meta) -> Result<Sender<T>, SendError<T>> {
        let Some(tx) = self.sender.take() else {
            unreachable!("an owned permit is used once")
        };
        tx.shared.send_with_permit(msg, meta)?;
        Ok(tx)
    }

    /// Gives the place back without sending, and the sender with it.
    pub fn release(mut self) -> Sender<T> {
        let Some(tx) = self.sender.take() else {
            unreachable!("an owned permit is used once")
        };
        tx.shared.release_permit();
        tx
    }
}

impl<T: Send + 'static> Sender<T> {
    /// Waits for a place and holds it in a [`Permit`]; see [`Permit`] for what that
    /// means under each policy.
    ///
    /// # Errors
    ///
    /// [`ReserveError`]: `Full` under `drop_newest` and `codel` with no room,
    /// `Timeout` after the policy's `send_timeout`, `Closed` once the receiver is
    /// gone or closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped `reserve` future holds no place (one granted in the
    /// meantime is given back to the next waiter), and no message was involved.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluicegate::mailbox::{channel, Policy};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (tx, mut rx) = channel::<u32>(Policy::Block { capacity: 1, send_timeout: None });
    /// let permit = tx.reserve().await.unwrap();
    /// drop(permit); // changed our mind: the place is free again
    /// tx.reserve().await.unwrap().send(7).unwrap();
    /// assert_eq!(rx.recv().await, Some(7));
    /// # }
    /// ```
    pub async fn reserve(&self) -> Result<Permit<'_, T>, ReserveError> {
        reserve_on(&self.shared, None).await?;
        Ok(Permit {
            shared: &self.shared,
        })
    }

    /// [`reserve`](Self::reserve), waiting at most `timeout` (or the policy's
    /// `send_timeout`, whichever is shorter).
    ///
    /// # Errors
    ///
    /// As [`reserve`](Self::reserve); `Timeout` once `timeout` has passed.
    ///
    /// # Cancel safety
    ///
    /// As [`reserve`](Self::reserve).
    pub async fn reserve_timeout(&self, timeout: Duration) -> Result<Permit<'_, T>, ReserveError> {
        reserve_on(&self.shared, Some(timeout)).await?;
        Ok(Permit {
            shared: &self.shared,
        })
    }

    /// [`reserve`](Self::reserve) without waiting: `Full` where it would wait.
    ///
    /// # Errors
    ///
    /// [`ReserveError`]: `Full` when there is no room now (or others wait first),
    /// `Closed` once the receiver is gone or closed.
    pub fn try_reserve(&self) -> Result<Permit<'_, T>, ReserveError> {
        match self.shared.reserve(None).0 {
            Reserve::Granted => Ok(Permit {
                shared: &self.shared,
            }),
            Reserve::Closed => Err(ReserveError::Closed),
            Reserve::Full | Reserve::Parked(_) => Err(ReserveError::Full),
        }
    }

    /// [`try_reserve`](Self::try_reserve) into a permit that owns this sender.
    ///
    /// # Errors
    ///
    /// As [`try_reserve`](Self::try_reserve) (the sender is dropped then).
    pub fn try_reserve_owned(self) -> Result<OwnedPermit<T>, ReserveError> {
        self.try_reserve().map(std::mem::forget)?;
        Ok(OwnedPermit { sender: Some(self) })
    }

    /// [`reserve`](Self::reserve) into a permit that owns this sender.
    ///
    /// # Errors
    ///
    /// As [`reserve`](Self::reserve) (the sender is dropped then).
    ///
    /// # Cancel safety
    ///
    /// As [`reserve`](Self::reserve).
    pub async fn reserve_owned(self) -> Result<OwnedPermit<T>, ReserveError> {
        reserve_on(&self.shared, None).await?;
        Ok(OwnedPermit { sender: Some(self) })
    }
}

/// Gives up a parked reservation if its future is dropped before it resolved, and
/// gives back a place granted meanwhile.
struct ReserveGuard<'a, T> {
    shared: &'a Shared<T>,
    cell: Option<sync::Arc<WaitCell<T>>>,
}

impl<T> Drop for ReserveGuard<'_, T> {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            let mut fx = Effects::default();
            {
                let mut core = self.shared.lock();
                if let Some(Resolved::Accepted) = core.cancel_reserve(&cell, &mut fx) {
                    core.release_permit(&mut fx);
                }
            }
            self.shared.apply(fx);
        }
    }
}

/// Takes a place, waiting in the FIFO of waiting senders where the policy waits.
async fn reserve_on<T>(shared: &Shared<T>, timeout: Option<Duration>) -> Result<(), ReserveError> {
    let (res, policy_timeout) = poll_fn(|cx| {
        let coop = std::task::ready!(poll_coop(cx));
        let out = shared.reserve(Some(cx.waker()));
        made_progress(coop);
        Poll::Ready(out)
    })
    .await;
    let cell = match res {
        Reserve::Granted => return Ok(()),
        Reserve::Full => return Err(ReserveError::Full),
        Reserve::Closed => return Err(ReserveError::Closed),
        Reserve::Parked(cell) => cell,
    };
    let mut guard = ReserveGuard {
        shared,
        cell: Some(cell.clone()),
    };
    let limit = match (timeout, policy_timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // As for a parked send: the resolving side stores the outcome before waking us.
    let mut first = true;
    let wait = poll_fn(|cx| {
        if let Some(r) = cell.resolved() {
            return Poll::Ready(r);
        }
        if std::mem::take(&mut first) {
            return Poll::Pending;
        }
        match shared.lock().repark(&cell, cx.waker()) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    });
    let out = match limit {
        None => wait.await.into_reservation(),
        Some(limit) => match tokio::time::timeout(limit, wait).await {
            Ok(r) => r.into_reservation(),
            Err(_) => {
                let mut fx = Effects::default();
                let r = shared.lock().cancel_reserve(&cell, &mut fx);
                shared.apply(fx);
                // Granted in the same instant: the place is ours after all.
                r.map_or(Err(ReserveError::Timeout), Resolved::into_reservation)
            }
        },
    };
    guard.cell = None;
    out
}
