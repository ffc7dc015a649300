//! The receiving half: takes messages from the lock-free ring while the fast path's
//! gate is open, otherwise under the lock (one, or up to N with `recv_many`), waits
//! when none is queued, and closes the mailbox when dropped.

use std::fmt;
use std::future::poll_fn;
use std::task::{Context, Poll};

use super::coop::{made_progress, Credit};
use super::core::{Core, Effects, Fast};
use super::fast::{FastPath, FastRecv, Judged};
use super::sync::MutexGuard;
use super::{sync, InvalidPolicy, Monitor, Policy, Shared, Stats, TryRecvError};

/// The receiving half. Dropping it closes the mailbox: waiting senders get their
/// messages back as `Closed`, queued messages are counted as discarded.
pub struct Receiver<T> {
    pub(super) shared: sync::Arc<Shared<T>>,
    /// This receiver's share of tokio's cooperative budget.
    pub(super) coop: Credit,
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut fx = Effects::default();
        let left = {
            let mut core = self.shared.lock_all();
            // The ring's counts go out with the core's in the retirement below.
            self.shared.fast.fold(&mut core);
            core.close(&mut fx);
            // What is still queued becomes dead letters (discarded), given to the
            // handler below with anything else evicted meanwhile.
            let left = core.discard_all(&mut fx, false);
            core.retire_metrics();
            left
        };
        debug_assert!(left.is_empty());
        self.shared.apply(fx);
    }
}

impl<T: Send + 'static> Receiver<T> {
    /// Receives the next message; `None` once the mailbox is closed or every sender
    /// is gone, and everything queued has been received. Messages whose deadline
    /// passed while queued are never returned (they go to the dead-letter handler).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is taken out of the mailbox only in the poll that
    /// returns it, so dropping the future (e.g. in `tokio::select!`) loses nothing.
    ///
    /// # Examples
    ///
    /// An actor's loop that also stops on a signal; a message that arrives as the
    /// signal wins stays queued for the drain:
    ///
    /// ```
    /// use sluicegate::mailbox::{channel, Policy};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, mut rx) = channel(Policy::DropNewest { capacity: 16 });
    /// let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
    /// tx.send(1).await.unwrap();
    /// stop_tx.send(()).unwrap();
    /// let mut seen = Vec::new();
    /// loop {
    ///     tokio::select! {
    ///         biased;
    ///         _ = &mut stop => break,
    ///         Some(m) = rx.recv() => seen.push(m),
    ///     }
    /// }
    /// rx.close();
    /// while let Some(m) = rx.recv().await {
    ///     seen.push(m);
    /// }
    /// assert_eq!(seen, vec![1]);
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message (see [`recv`](Self::recv)); consumes tokio's
    /// cooperative budget for each message.
    #[inline]
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let coop = std::task::ready!(self.coop.poll(cx));
        let ring = self.shared.ring_allowed;
        if ring {
            match self.shared.fast.recv() {
                FastRecv::Got(msg, chore) => {
                    self.shared.settle(chore);
                    made_progress(coop);
                    return Poll::Ready(Some(msg));
                }
                FastRecv::Judge(j) => return recv_judged(&self.shared, j, cx, coop),
                FastRecv::Empty | FastRecv::Locked => {}
            }
        }
        let mut core = self.shared.lock();
        // The common case under the lock: a message at the head with nothing else to
        // do (no expiry, shedding, waiting sender or alert), taken without gathering
        // effects.
        if !ring || !self.shared.fast.is_open() {
            if let Fast::Got(msg) = core.take_fast() {
                reopen(&self.shared, &mut core);
                drop(core);
                made_progress(coop);
                return Poll::Ready(Some(msg));
            }
        }
        recv_slow(&self.shared, core, cx, coop, Effects::default())
    }

    /// Receives up to `limit` messages into `buf` under one lock, waiting while none
    /// is queued; returns how many were appended, and 0 only once the mailbox has
    /// ended (closed or every sender gone, and drained) or when `limit` is 0.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: messages are moved into `buf` only in the poll that returns them.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluicegate::mailbox::{channel, Policy};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, mut rx) = channel(Policy::Unbounded);
    /// for i in 0..5 {
    ///     tx.send(i).await.unwrap();
    /// }
    /// let mut batch = Vec::with_capacity(4);
    /// assert_eq!(rx.recv_many(&mut batch, 4).await, 4);
    /// assert_eq!(batch, vec![0, 1, 2, 3]);
    /// # }
    /// ```
    pub async fn recv_many(&mut self, buf: &mut Vec<T>, limit: usize) -> usize {
        poll_fn(|cx| self.poll_recv_many(cx, buf, limit)).await
    }

    /// Polls for up to `limit` messages (see [`recv_many`](Self::recv_many)).
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<T>,
        limit: usize,
    ) -> Poll<usize> {
        if limit == 0 {
            return Poll::Ready(0);
        }
        let coop = std::task::ready!(self.coop.poll(cx));
        let mut n = 0;
        let mut judged = None;
        while n < limit {
            match self.shared.fast.recv() {
                FastRecv::Got(msg, chore) => {
                    self.shared.settle(chore);
                    buf.push(msg);
                    n += 1;
                }
                FastRecv::Judge(j) => {
                    judged = Some(j);
                    break;
                }
                FastRecv::Empty | FastRecv::Locked => break,
            }
        }
        if n > 0 && judged.is_none() {
            made_progress(coop);
            return Poll::Ready(n);
        }
        let mut fx = Effects::default();
        let mut core = self.shared.lock();
        if let Some(j) = judged {
            if let Some(msg) = judge_locked(&self.shared, &mut core, j, &mut fx) {
                buf.push(msg);
                n += 1;
            }
        }
        while n < limit {
            match take_locked(&self.shared, &mut core, &mut fx) {
                Some(msg) => buf.push(msg),
                None => break,
            }
            n += 1;
        }
        let poll = if n > 0 {
            made_progress(coop);
            Poll::Ready(n)
        } else {
            match park(&self.shared, &mut core, cx, &mut fx) {
                Poll::Ready(Some(msg)) => {
                    buf.push(msg);
                    made_progress(coop);
                    Poll::Ready(1)
                }
                Poll::Ready(None) => Poll::Ready(0),
                Poll::Pending => Poll::Pending,
            }
        };
        drop(core);
        self.shared.apply(fx);
        poll
    }

    /// Takes a message if one is ready, never waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError`]: nothing queued now, or the mailbox has ended.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let judged = match self.shared.fast.recv() {
            FastRecv::Got(msg, chore) => {
                self.shared.settle(chore);
                return Ok(msg);
            }
            FastRecv::Judge(j) => Some(j),
            FastRecv::Empty | FastRecv::Locked => None,
        };
        let mut fx = Effects::default();
        let mut core = self.shared.lock();
        // `judge_locked` ends in the same take.
        let taken = match judged {
            Some(j) => judge_locked(&self.shared, &mut core, j, &mut fx),
            None => take_locked(&self.shared, &mut core, &mut fx),
        };
        let res = match taken {
            Some(msg) => Ok(msg),
            None if core.ended() => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        };
        drop(core);
        self.shared.apply(fx);
        res
    }

    /// Refuses new messages (senders get `Closed`, waiting senders get their message
    /// back) and lets the receiver drain what is queued: graceful shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluicegate::mailbox::{channel, Policy, SendError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, mut rx) = channel(Policy::Unbounded);
    /// tx.send("queued").await.unwrap();
    /// rx.close();
    /// assert_eq!(tx.send("late").await, Err(SendError::Closed("late")));
    /// assert_eq!(rx.recv().await, Some("queued"));
    /// assert_eq!(rx.recv().await, None);
    /// # }
    /// ```
    pub fn close(&mut self) {
        let mut fx = Effects::default();
        self.shared.lock_all().close(&mut fx);
        self.shared.apply(fx);
    }

    /// Takes every queued message out without delivering it, counted as
    /// [`Outcome::Discarded`](super::Outcome::Discarded); for an owner that will not
    /// process them (a crashed server answers each queued call with an error). They
    /// are handed to the caller, so they are not dead letters.
    pub fn discard_queued(&mut self) -> Vec<T> {
        let mut fx = Effects::default();
        let out = self.shared.lock_all().discard_all(&mut fx, true);
        self.shared.apply(fx);
        out
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the mailbox's accounting.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Switches the policy on the live mailbox (see [`Monitor::set_policy`]).
    ///
    /// # Errors
    ///
    /// [`InvalidPolicy`] naming the parameter out of range; the policy in force stays.
    pub fn set_policy(&self, policy: Policy) -> Result<(), InvalidPolicy> {
        self.shared.set_policy(policy)
    }

    /// A handle for stats and policy changes that does not keep the mailbox open.
    pub fn monitor(&self) -> Monitor<T> {
        Monitor {
            shared: self.shared.clone(),
        }
    }
}

/// Takes the next message under the lock: from the ring when the gate is open (the
/// core is empty then), otherwise from the core, opening the gate once the core is
/// empty and nothing needs it.
fn take_locked<T>(
    shared: &Shared<T>,
    core: &mut MutexGuard<'_, Core<T>>,
    fx: &mut Effects<T>,
) -> Option<T> {
    if shared.fast.is_open() {
        return match shared.fast.recv_locked() {
            FastRecv::Got(msg, chore) => {
                shared.settle_locked(core, chore);
                Some(msg)
            }
            FastRecv::Judge(j) => judge_locked(shared, core, j, fx),
            FastRecv::Empty | FastRecv::Locked => None,
        };
    }
    let out = match core.take_fast() {
        Fast::Got(msg) => Some(msg),
        Fast::Empty => None,
        Fast::Slow => core.take(fx),
    };
    reopen(shared, core);
    out
}

/// [`Receiver::poll_recv`] with a message the ring's CoDel check handed over (out
/// of line, so the plain receive stays small).
#[cold]
#[inline(never)]
fn recv_judged<T>(
    shared: &Shared<T>,
    judged: Judged<T>,
    cx: &mut Context<'_>,
    coop: Option<tokio::task::coop::RestoreOnPending>,
) -> Poll<Option<T>> {
    let mut fx = Effects::default();
    let mut core = shared.lock();
    if let Some(msg) = judge_locked(shared, &mut core, judged, &mut fx) {
        drop(core);
        shared.apply(fx);
        made_progress(coop);
        return Poll::Ready(Some(msg));
    }
    recv_slow(shared, core, cx, coop, fx)
}

/// A message the ring's CoDel check handed over, under the lock: the gate locks
/// (what the ring still holds, all younger, moves into the core behind it), the
/// message goes back to the head of the core, and the core's full rule takes the
/// next message with the same clock reading: this one, or, if CoDel sheds it, a
/// later one (`None`: everything queued was shed). The gate opens again once the
/// core has drained with CoDel calm.
fn judge_locked<T>(
    shared: &Shared<T>,
    core: &mut MutexGuard<'_, Core<T>>,
    judged: Judged<T>,
    fx: &mut Effects<T>,
) -> Option<T> {
    shared.fast.lock(core);
    core.adopt_judged(judged.msg, judged.enqueued, judged.now);
    take_locked(shared, core, fx)
}

/// After a take from the core: opens the gate once the core is empty and nothing
/// needs it (a mailbox with a ring whose gate is locked).
#[inline(always)]
fn reopen<T>(shared: &Shared<T>, core: &mut MutexGuard<'_, Core<T>>) {
    if core.len() == 0 {
        if shared.fast.can_open() {
            open_gate(shared, core);
        }
    } else if shared.ring_allowed
        && !shared.fast.has_ring()
        && FastPath::<T>::backlog_seen(core.peak(), core.policy())
    {
        // A backlog: the ring pays from now on. Made locked; it opens once the
        // core has drained.
        shared.fast.make_ring(core);
    }
}

/// The gate of [`reopen`], out of line.
#[cold]
#[inline(never)]
fn open_gate<T>(shared: &Shared<T>, core: &mut MutexGuard<'_, Core<T>>) {
    shared.fast.open(core);
    // A receiver still waiting from an earlier pending poll (this call being a
    // `try_recv` in between) registered its waker with the core only: from now on
    // pushes go to the ring, so the ring must wake it too, or it is never woken.
    if let (true, Some(w)) = (shared.fast.is_open(), core.rx_waker()) {
        shared.fast.register(w);
    }
}

/// Nothing to take: the end (`Ready(None)`), or the receiver waits for the next push
/// to either side, unless the ring got a message while the waker was registered.
fn park<T>(
    shared: &Shared<T>,
    core: &mut MutexGuard<'_, Core<T>>,
    cx: &mut Context<'_>,
    fx: &mut Effects<T>,
) -> Poll<Option<T>> {
    if core.ended() {
        return Poll::Ready(None);
    }
    core.park_receiver(cx.waker());
    // Only the receiver opens the gate: while it is locked, no fast push can come
    // before the receiver's next poll, and the core's waker is enough.
    if shared.fast.is_open() {
        match shared.fast.register_and_recv(cx.waker()) {
            FastRecv::Got(msg, chore) => {
                shared.settle_locked(core, chore);
                return Poll::Ready(Some(msg));
            }
            FastRecv::Judge(j) => {
                if let Some(msg) = judge_locked(shared, core, j, fx) {
                    return Poll::Ready(Some(msg));
                }
                // Everything queued was shed: wait for the next push, which goes
                // to the core now (the gate is locked) and wakes the waker
                // registered above.
            }
            FastRecv::Empty | FastRecv::Locked => {}
        }
    }
    Poll::Pending
}

/// [`Receiver::poll_recv`] when the head message needs the core's full rules, or
/// none is queued.
#[inline(never)]
fn recv_slow<T>(
    shared: &Shared<T>,
    mut core: MutexGuard<'_, Core<T>>,
    cx: &mut Context<'_>,
    coop: Option<tokio::task::coop::RestoreOnPending>,
    mut fx: Effects<T>,
) -> Poll<Option<T>> {
    let poll = match take_locked(shared, &mut core, &mut fx) {
        Some(msg) => {
            made_progress(coop);
            Poll::Ready(Some(msg))
        }
        None => park(shared, &mut core, cx, &mut fx).map(|m| {
            if m.is_some() {
                made_progress(coop);
            }
            m
        }),
    };
    drop(core);
    shared.apply(fx);
    poll
}
