//! The mailbox: a multi-producer, single-consumer async queue on tokio whose
//! behaviour when full is a [`Policy`] value, with exact accounting and metrics.
//!
//! # Behaviour
//!
//! A mailbox is one [`VecDeque`](std::collections::VecDeque) of slots behind one
//! `parking_lot` mutex (it spins briefly before parking the thread), shared by every
//! [`Sender`] and the one [`Receiver`]. Each slot holds the message, an optional
//! coalescing [`Key`], an optional deadline, and its enqueue time when needed: always
//! under CoDel, and with metrics on for one message in [`SOJOURN_SAMPLE_EVERY`] (the
//! sojourn histogram is a sample; counts are exact). The queue's buffer is allocated
//! up front for bounded policies (up to 1024 slots) and grows like any `VecDeque`
//! beyond that; a send or receive that does not wait allocates nothing and takes the
//! lock once. A sender that must wait (`block`, `coalesce`) parks its message *inside*
//! the mailbox, in a FIFO of waiting senders, in the same lock round as its offer; the
//! receiver moves it into the queue as soon as a slot frees and records the outcome
//! in the sender's wait cell (an atomic state, recycled from a small pool, so a wait
//! allocates only while the pool grows), then wakes it: the woken sender returns
//! without taking the lock again. Waiting senders are served strictly in arrival
//! order and a newcomer never overtakes them.
//! Under `coalesce`, a keyed message replaces the queued message with its key in
//! place, except when that message's deadline has passed (it is purged as expired
//! and the newcomer is queued normally) or a sender with the same key is still
//! waiting (the newcomer queues behind it, so older content never lands after newer).
//!
//! When full, the policy decides (see [`Policy`]). Before it does, messages whose
//! deadline has passed are purged, since they would never be delivered anyway.
//! At dequeue, expired messages are skipped and CoDel may shed from the head.
//! Every message that leaves the queue without being delivered is given to the
//! eviction handler ([`Builder::on_evict`]) outside the lock, so an actor runtime can
//! answer a dropped call's caller at once.
//!
//! Every resolved send lands in exactly one [`Outcome`]; [`Stats`] is a snapshot
//! taken under the lock, so the identity in [`Stats::is_balanced`] holds at every
//! instant. The same counts go to the `metrics` facade (see [`metrics`](self::metrics)),
//! batched so that the hot path touches no shared atomic for most messages.
//!
//! `recv`, `recv_many` and `send` take part in tokio's cooperative budget inside
//! `poll`, one unit per [`COOP_EVERY`] operations: a consumer that always finds a
//! message, or a producer that always finds room, still yields to the scheduler.
//!
//! # Cancel safety
//! `recv` and `recv_many` are cancel safe: a message leaves the queue only in the poll
//! that returns it. `send` is cancel safe in the sense that matters for accounting:
//! dropping its future never loses or duplicates an accepted message (a parked message
//! not yet accepted goes with the future and is not counted as sent). Tested by
//! tests/mailbox_cancel.rs (`tokio::select!` against a timer, every policy) and, for
//! the hand-off between a parked sender and the receiver, tests/loom_mailbox.rs.
//!
//! # Example
//!
//! ```
//! use sluicegate::mailbox::{channel, Policy, SendError};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (tx, mut rx) = channel::<u32>(Policy::DropNewest { capacity: 2 });
//! tx.send(1).await.unwrap();
//! tx.send(2).await.unwrap();
//! assert!(matches!(tx.send(3).await, Err(SendError::Rejected(3))));
//! assert_eq!(rx.recv().await, Some(1));
//! let stats = rx.stats();
//! assert_eq!((stats.sent, stats.rejected, stats.delivered, stats.depth), (3, 1, 1, 1));
//! assert!(stats.is_balanced());
//! # }
//! ```

mod codel;
mod core;
mod error;
pub mod metrics;
mod policy;
mod stats;
mod sync;

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use self::core::{CoalesceHook, Core, Effects, Push, Resolved, Slot, Stamp, WaitCell};
use self::sync::{Mutex, MutexGuard};
pub use core::SOJOURN_SAMPLE_EVERY;
pub use error::{SendError, TryRecvError, TrySendError};
pub use policy::{InvalidPolicy, Policy};
pub use stats::{Eviction, Outcome, Stats};

/// A coalescing key: under [`Policy::Coalesce`], a message with a key replaces the
/// queued message with an equal key. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Key(Arc<String>);

// One pointer wide (not a fat `Arc<str>`), so an `Option<Key>` in every queued slot
// costs 8 bytes.
impl Key {
    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key(Arc::new(s.to_owned()))
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Key(Arc::new(s))
    }
}

impl From<u64> for Key {
    fn from(n: u64) -> Self {
        Key(Arc::new(n.to_string()))
    }
}

/// What travels with a message besides its content.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    /// Coalescing key (used only under [`Policy::Coalesce`]).
    pub key: Option<Key>,
    /// A message still queued at this instant is never delivered: it is counted as
    /// expired and given to the eviction handler.
    pub deadline: Option<Instant>,
}

impl Meta {
    /// Meta with a coalescing key.
    pub fn keyed(key: impl Into<Key>) -> Self {
        Meta {
            key: Some(key.into()),
            deadline: None,
        }
    }

    /// Adds a deadline.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

type EvictHook<T> = Arc<dyn Fn(T, Eviction) + Send + Sync>;

/// State shared by the senders, the receiver and monitors.
struct Shared<T> {
    /// The queue and its accounting; every decision is made under this lock.
    core: Mutex<Core<T>>,
    /// Receives every accepted message that leaves without being delivered.
    on_evict: Option<EvictHook<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Core<T>> {
        self.core.lock()
    }

    /// Runs the effects gathered under the lock, after it is released.
    fn apply(&self, fx: Effects<T>) {
        if let Some(w) = fx.wake_rx {
            w.wake();
        }
        for w in fx.wake_senders {
            w.wake();
        }
        for (msg, why) in fx.evicted {
            match &self.on_evict {
                Some(hook) => hook(msg, why),
                None => drop(msg),
            }
        }
    }

    fn stats(&self) -> Stats {
        self.lock().stats()
    }

    fn set_policy(&self, policy: Policy) -> Result<(), InvalidPolicy> {
        policy.validate()?;
        let mut fx = Effects::default();
        self.lock().set_policy(policy, &mut fx);
        self.apply(fx);
        Ok(())
    }
}

impl<T: Send> metrics::Flush for Shared<T> {
    fn flush(&self) {
        if let Some(m) = &self.lock().metrics {
            m.flush();
        }
    }
}

/// Builds a mailbox with a role name, metrics switch and eviction hooks.
///
/// ```
/// use sluicegate::mailbox::{Builder, Policy};
/// let (tx, rx) = Builder::<String>::new(Policy::DropOldest { capacity: 8 })
///     .role("example")
///     .on_evict(|msg, why| eprintln!("{why:?}: {msg}"))
///     .build()
///     .unwrap();
/// # drop((tx, rx));
/// ```
pub struct Builder<T> {
    policy: Policy,
    role: &'static str,
    metrics: bool,
    on_evict: Option<EvictHook<T>>,
    on_coalesce: Option<CoalesceHook<T>>,
}

impl<T: Send + 'static> Builder<T> {
    /// A builder for the given policy; role `"mailbox"`, metrics on, no hooks.
    pub fn new(policy: Policy) -> Self {
        Builder {
            policy,
            role: "mailbox",
            metrics: true,
            on_evict: None,
            on_coalesce: None,
        }
    }

    /// The role name used as the `mailbox` metric label (e.g. `todo_server`).
    /// Many mailboxes may share a role; their metrics add up.
    pub fn role(mut self, role: &'static str) -> Self {
        self.role = role;
        self
    }

    /// Whether to export metrics and sample sojourn times (default on).
    /// Accounting in [`Stats`] is always on.
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Called, outside the lock, with every accepted message that leaves the queue
    /// undelivered (dropped as oldest, shed, expired, coalesced without a merge
    /// hook, or refused after a shrink).
    pub fn on_evict(mut self, hook: impl Fn(T, Eviction) + Send + Sync + 'static) -> Self {
        self.on_evict = Some(Arc::new(hook));
        self
    }

    /// Called when a message with a key replaces a queued one: `hook(old, &mut new)`,
    /// so the newer message can take over what the old one carried (e.g. reply
    /// channels of callers waiting on the replaced write). Runs under the mailbox
    /// lock: keep it short and never touch the mailbox from it.
    pub fn on_coalesce(mut self, hook: impl Fn(T, &mut T) + Send + Sync + 'static) -> Self {
        self.on_coalesce = Some(Arc::new(hook));
        self
    }

    /// Creates the mailbox, or says which policy parameter is out of range.
    pub fn build(self) -> Result<(Sender<T>, Receiver<T>), InvalidPolicy> {
        self.policy.validate()?;
        let shared = sync::Arc::new(Shared {
            core: Mutex::new(Core::new(
                self.policy,
                self.role,
                self.metrics,
                self.on_coalesce,
            )),
            on_evict: self.on_evict,
        });
        // loom's Arc has no Weak: mailboxes built for model checking are not registered.
        #[cfg(not(sluicegate_loom))]
        if self.metrics {
            let weak: std::sync::Weak<dyn metrics::Flush> = Arc::downgrade(&shared) as _;
            metrics::register(weak);
        }
        Ok((
            Sender {
                shared: shared.clone(),
            },
            Receiver { shared },
        ))
    }
}

/// Creates a mailbox with the given policy, metrics on, role `"mailbox"`.
///
/// # Panics
/// If the policy's parameters are out of range (capacity 0, CoDel target 0);
/// use [`Builder::build`] to get the error instead.
pub fn channel<T: Send + 'static>(policy: Policy) -> (Sender<T>, Receiver<T>) {
    match Builder::new(policy).build() {
        Ok(pair) => pair,
        Err(e) => panic!("invalid mailbox policy: {e}"),
    }
}

/// The sending half; cheap to clone. The mailbox stays open while any sender lives.
pub struct Sender<T> {
    shared: sync::Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut core = self.shared.lock();
            core.senders -= 1;
            if core.senders == 0 {
                core.rx_waker.take()
            } else {
                None
            }
        };
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
            // was never accepted and goes with the future. Refused: dropped here.
            let outcome = self.shared.lock().cancel_parked(&cell, false);
            drop(outcome);
        }
    }
}

/// Mailbox operations charge tokio's cooperative budget one unit per this many
/// (counted per thread), so a task that always finds room or a message still yields
/// to the scheduler, after `128 * COOP_EVERY` operations at most; charging every
/// single one made producer and consumer yield so often that they spread over the
/// workers and fought over the lock (see benches/mailbox.rs).
pub const COOP_EVERY: u32 = 8;

thread_local! {
    static COOP_CREDIT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Takes part in tokio's cooperative budget (see [`COOP_EVERY`]): `Pending` when the
/// task has used its budget (it is woken at once to run again later), otherwise a
/// guard to mark progress with.
fn poll_coop(cx: &mut Context<'_>) -> Poll<Option<tokio::task::coop::RestoreOnPending>> {
    let due = COOP_CREDIT.with(|c| {
        let n = c.get();
        if n == 0 {
            true
        } else {
            c.set(n - 1);
            false
        }
    });
    if !due {
        return Poll::Ready(None);
    }
    let guard = std::task::ready!(tokio::task::coop::poll_proceed(cx));
    COOP_CREDIT.with(|c| c.set(COOP_EVERY - 1));
    Poll::Ready(Some(guard))
}

fn made_progress(coop: Option<tokio::task::coop::RestoreOnPending>) {
    if let Some(c) = coop {
        c.made_progress();
    }
}

impl<T: Send + 'static> Sender<T> {
    /// Sends a message under the policy: may wait for space (`block`, `coalesce`,
    /// up to the policy's `send_timeout`), otherwise resolves at once.
    ///
    /// # Cancel safety
    /// Dropping the future never loses or duplicates an accepted message: once
    /// accepted, the message is in the mailbox whatever happens to the future; a
    /// message still parked when the future is dropped was never accepted (not
    /// counted as sent) and is dropped with it.
    pub async fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.send_inner(msg, Meta::default(), None).await
    }

    /// [`send`](Self::send) with a coalescing key and/or deadline.
    pub async fn send_with(&self, msg: T, meta: Meta) -> Result<(), SendError<T>> {
        self.send_inner(msg, meta, None).await
    }

    /// Like [`send`](Self::send), but waits for space at most `timeout`
    /// (or the policy's `send_timeout`, whichever is shorter).
    pub async fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.send_inner(msg, Meta::default(), Some(timeout)).await
    }

    /// [`send_timeout`](Self::send_timeout) with a coalescing key and/or deadline.
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
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.try_send_with(msg, Meta::default())
    }

    /// [`try_send`](Self::try_send) with a coalescing key and/or deadline.
    pub fn try_send_with(&self, msg: T, meta: Meta) -> Result<(), TrySendError<T>> {
        let mut fx = Effects::default();
        let res = {
            let mut core = self.shared.lock();
            let slot = make_slot(&mut core, msg, meta);
            core.offer(slot, None, &mut fx)
        };
        self.shared.apply(fx);
        match res {
            Push::Accepted => Ok(()),
            Push::Full(s) => Err(TrySendError::Full(s.msg)),
            Push::Closed(s) => Err(TrySendError::Closed(s.msg)),
            Push::Parked(_) => unreachable!("try_send never parks"),
        }
    }

    async fn send_inner(
        &self,
        msg: T,
        meta: Meta,
        timeout: Option<Duration>,
    ) -> Result<(), SendError<T>> {
        // First poll: charge the budget, then offer under one lock, parking with
        // this task's waker if the policy makes the sender wait.
        let mut pending = Some((msg, meta));
        let (res, policy_timeout) = poll_fn(|cx| {
            let coop = std::task::ready!(poll_coop(cx));
            let Some((msg, meta)) = pending.take() else {
                unreachable!("polled after completion")
            };
            let mut fx = Effects::default();
            let out = {
                let mut core = self.shared.lock();
                let slot = make_slot(&mut core, msg, meta);
                let t = match core.policy {
                    Policy::Block { send_timeout, .. } => send_timeout,
                    _ => None,
                };
                (core.offer(slot, Some(cx.waker()), &mut fx), t)
            };
            self.shared.apply(fx);
            made_progress(coop);
            Poll::Ready(out)
        })
        .await;
        let cell = match res {
            Push::Accepted => return Ok(()),
            Push::Full(s) => return Err(SendError::Rejected(s.msg)),
            Push::Closed(s) => return Err(SendError::Closed(s.msg)),
            Push::Parked(cell) => cell,
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
            None => resolved_to_result(wait.await),
            Some(limit) => match tokio::time::timeout(limit, wait).await {
                Ok(r) => resolved_to_result(r),
                Err(_) => {
                    let r = self.shared.lock().cancel_parked(&cell, true);
                    r.unwrap_or(Ok(()))
                }
            },
        };
        guard.cell = None;
        if let Some(m) = &self.shared.lock().metrics {
            m.send_wait.record(started.elapsed().as_secs_f64());
        }
        outcome
    }

    /// A snapshot of the mailbox's accounting.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Whether the receiver is gone or closed.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// A handle for stats and policy changes that does not keep the mailbox open.
    pub fn monitor(&self) -> Monitor<T> {
        Monitor {
            shared: self.shared.clone(),
        }
    }
}

fn resolved_to_result<T>(r: Resolved<T>) -> Result<(), SendError<T>> {
    match r {
        Resolved::Accepted => Ok(()),
        Resolved::Closed(m) => Err(SendError::Closed(m)),
        Resolved::Rejected(m) => Err(SendError::Rejected(m)),
    }
}

fn make_slot<T>(core: &mut Core<T>, msg: T, meta: Meta) -> Slot<T> {
    Slot {
        msg,
        key: meta.key,
        deadline: meta.deadline.map_or(Stamp::NONE, |d| core.stamp(d)),
        enqueued: if core.stamp_next() {
            core.stamp(Instant::now())
        } else {
            Stamp::NONE
        },
    }
}

/// The receiving half. Dropping it closes the mailbox: waiting senders get their
/// messages back as `Closed`, queued messages are counted as discarded.
pub struct Receiver<T> {
    shared: sync::Arc<Shared<T>>,
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
            let mut core = self.shared.lock();
            core.close(&mut fx);
            let left = core.discard_all(&mut fx);
            if let Some(m) = &core.metrics {
                m.retire(0);
            }
            left
        };
        drop(left);
        // Evicted messages at this point go to the hook like any other.
        self.shared.apply(fx);
    }
}

impl<T: Send + 'static> Receiver<T> {
    /// Receives the next message; `None` once the mailbox is closed or every sender
    /// is gone, and everything queued has been received.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message (see [`recv`](Self::recv)); consumes tokio's
    /// cooperative budget for each message.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let coop = std::task::ready!(poll_coop(cx));
        let mut fx = Effects::default();
        let mut core = self.shared.lock();
        let got = core.take(&mut fx);
        let poll = match got {
            Some((msg, sojourn)) => {
                if let (Some(m), Some(s)) = (&core.metrics, sojourn) {
                    m.sojourn.record(s.as_secs_f64());
                }
                made_progress(coop);
                Poll::Ready(Some(msg))
            }
            None if core.closed || core.senders == 0 => Poll::Ready(None),
            None => {
                match &core.rx_waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => core.rx_waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        };
        drop(core);
        self.shared.apply(fx);
        poll
    }

    /// Receives up to `limit` messages into `buf` under one lock, waiting while none
    /// is queued; returns how many were appended, and 0 only once the mailbox has
    /// ended (closed or every sender gone, and drained) or when `limit` is 0.
    ///
    /// # Cancel safety
    /// Cancel safe: messages are moved into `buf` only in the poll that returns them.
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
        let coop = std::task::ready!(poll_coop(cx));
        let mut fx = Effects::default();
        let mut core = self.shared.lock();
        let mut n = 0;
        while n < limit {
            let Some((msg, sojourn)) = core.take(&mut fx) else {
                break;
            };
            if let (Some(m), Some(s)) = (&core.metrics, sojourn) {
                m.sojourn.record(s.as_secs_f64());
            }
            buf.push(msg);
            n += 1;
        }
        let poll = if n > 0 {
            made_progress(coop);
            Poll::Ready(n)
        } else if core.closed || core.senders == 0 {
            Poll::Ready(0)
        } else {
            match &core.rx_waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => core.rx_waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        };
        drop(core);
        self.shared.apply(fx);
        poll
    }

    /// Takes a message if one is ready, never waiting.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut fx = Effects::default();
        let mut core = self.shared.lock();
        let got = core.take(&mut fx);
        let res = match got {
            Some((msg, sojourn)) => {
                if let (Some(m), Some(s)) = (&core.metrics, sojourn) {
                    m.sojourn.record(s.as_secs_f64());
                }
                Ok(msg)
            }
            None if core.closed || core.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        };
        drop(core);
        self.shared.apply(fx);
        res
    }

    /// Refuses new messages (senders get `Closed`, waiting senders get their message
    /// back) and lets the receiver drain what is queued: graceful shutdown.
    pub fn close(&mut self) {
        let mut fx = Effects::default();
        self.shared.lock().close(&mut fx);
        self.shared.apply(fx);
    }

    /// Takes every queued message out without delivering it, counted as
    /// [`Outcome::Discarded`]; for an owner that will not process them (a crashed
    /// server answers each queued call with an error).
    pub fn discard_queued(&mut self) -> Vec<T> {
        let mut fx = Effects::default();
        let out = self.shared.lock().discard_all(&mut fx);
        self.shared.apply(fx);
        out
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.shared.lock().len()
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

/// Watches and reconfigures a mailbox without being a sender: it neither keeps the
/// mailbox open nor stops the receiver from seeing the end.
pub struct Monitor<T> {
    shared: sync::Arc<Shared<T>>,
}

impl<T> Clone for Monitor<T> {
    fn clone(&self) -> Self {
        Monitor {
            shared: self.shared.clone(),
        }
    }
}

impl<T> fmt::Debug for Monitor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

impl<T> Monitor<T> {
    /// A snapshot of the mailbox's accounting.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Switches policy and parameters without losing an accepted message: what no
    /// longer fits is handled by the new policy and counted (evicted as oldest under
    /// `drop_oldest`; evicted as newest and counted as rejected under `drop_newest`
    /// and `codel`; kept under `block`, `coalesce` and `unbounded`, where senders
    /// then wait until the queue drains below the new capacity). Senders waiting for
    /// space are let in if the new policy has room or never waits (`drop_oldest`,
    /// `unbounded`), and refused if it refuses when full.
    pub fn set_policy(&self, policy: Policy) -> Result<(), InvalidPolicy> {
        self.shared.set_policy(policy)
    }
}
