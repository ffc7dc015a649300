//! The mailbox: a multi-producer, single-consumer async queue on tokio whose
//! behaviour when full is a [`Policy`] value, with exact accounting and metrics.
//!
//! # Behaviour
//!
//! A mailbox has two places for its queue, and one holds it at a time (see
//! `fast.rs`). While the *gate* is open (under every policy, without a long-queue
//! alert), messages without key or deadline go through a lock-free ring
//! (`concurrent-queue`'s bounded Vyukov queue): a send pushes, the receiver pops,
//! and neither takes a lock; the receiver is woken through an atomic waker. A full
//! ring refuses the newcomer under `drop_newest` and `codel` and evicts the oldest
//! under `drop_oldest`, still without the lock; under `codel` the receiver checks
//! each message's sojourn as it pops. Anything the ring cannot do (a key, a
//! deadline, a close, a policy change, a sender that must wait, an `unbounded`
//! backlog beyond the ring's slots, a CoDel sojourn past target in a standing
//! queue) takes the lock and locks the gate, moving what
//! the ring holds into the core, oldest first; the receiver opens the gate again
//! once the core is empty and nobody waits.
//!
//! The core is one [`VecDeque`](std::collections::VecDeque) of slots behind one
//! `parking_lot` mutex (it spins briefly before parking the thread), shared by every
//! [`Sender`] and the one [`Receiver`]. Each slot holds the message, an optional
//! coalescing [`Key`], an optional deadline, and its enqueue time when needed: always
//! under CoDel, and with metrics on for one message in [`SOJOURN_SAMPLE_EVERY`] (the
//! sojourn histogram is a sample; counts are exact). The queue's buffer is allocated
//! by the first message, with room for that one, and grows like any `VecDeque`
//! from there; when the receiver waits on an
//! empty queue whose buffer a burst grew past [`IDLE_SLOTS`] slots, the buffer is
//! given back, so an idle mailbox holds at most that many slots whatever its
//! capacity (an idle actor is small). A `drop_newest` or `drop_oldest` mailbox that
//! has once held 32 messages (or its capacity, if smaller) also holds a lock-free
//! ring's slots, all of its capacity, from then on, unless [`Builder::lock_free`]
//! turned the ring off (the runtime's servers do). A send or receive that does not wait and does
//! not grow the buffer allocates nothing and takes the lock once. A sender that must wait (`block`, `coalesce`) parks its message *inside*
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
//! Every message that leaves the mailbox without being delivered or handed back to
//! its sender is a *dead letter*: it goes, with its reason and metadata, to the
//! handler set with [`Builder::dead_letters`] (or [`Builder::on_evict`]) outside the
//! lock, so an actor runtime can answer a dropped call's caller at once, and may be
//! logged at a limited rate ([`Builder::log_dead_letters`]). Which outcomes make
//! dead letters: [`DeadLetter`].
//!
//! # Lanes and permits
//!
//! A message travels on a [`Lane`] ([`Meta::lane`]): the control lane, outside the
//! policy (never dropped, refused, shed, expired, coalesced or made to wait, not
//! counted against the capacity, delivered first: [`Sender::try_send_control`]),
//! then the `High`, `Normal` and `Low` priorities, delivered in that order, FIFO
//! within each, sharing the capacity. The normal lane is the core's queue; the
//! others live in one box allocated at the first message sent on any of them, so a
//! mailbox that never uses them allocates nothing for them and its hot paths look at
//! one counter (what that costs: docs/benchmarks.md). A message on another lane takes
//! the locked core, and the lock-free ring stays closed while one is queued.
//!
//! [`Sender::reserve`] holds a place before the message exists and returns a
//! [`Permit`]; `permit.send` never waits and is never refused for room; a permit
//! dropped unused gives its place back to the first waiting sender. What a
//! reservation means under each policy, how permits are counted and their cancel
//! safety: [`Permit`].
//!
//! [`Builder::long_queue`] raises an edge-triggered alert (callback, log line,
//! metrics) when the depth stays above a threshold for a set time, and a recovery
//! when it comes back (OTP's `long_message_queue`).
//!
//! Every resolved send lands in exactly one [`Outcome`]; the identity in
//! [`Stats::is_balanced`] holds exactly whenever no send or receive is in progress,
//! and a [`Stats`] snapshot taken meanwhile never shows an outcome that did not
//! happen (it lags by at most the operations in flight). The same counts go to the `metrics` facade (see [`metrics`]),
//! published in deltas from these exact counts every [`FLUSH_EVERY`](metrics::FLUSH_EVERY)
//! messages of an outcome, at every `Stats` snapshot and at
//! [`flush_all`](metrics::flush_all), so that the hot path touches no shared atomic
//! for most messages (how far the recorder may lag: [`metrics`]).
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
//! For a send that must lose nothing when cancelled, reserve first: `reserve` is
//! cancel safe (a dropped future holds no place, and one granted in the same instant
//! is passed on), and a permit dropped unused gives its place back
//! (tests/mailbox_reserve.rs, tests/loom_mailbox.rs).
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
mod coop;
mod core;
mod dead_letter;
mod error;
mod fast;
mod lane;
mod long_queue;
pub mod metrics;
mod permit;
mod policy;
mod receiver;
mod send_future;
mod sender;
mod stats;
mod sync;
mod wait;

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;

use self::core::{CoalesceHook, Core, Effects, Push, Reserve, WaitCell};
use self::fast::{FastPath, FastSend};
use self::sync::{Mutex, MutexGuard};
pub use coop::COOP_EVERY;
pub use core::{IDLE_SLOTS, SOJOURN_SAMPLE_EVERY};
pub use dead_letter::DeadLetter;
use dead_letter::{DeadLetterHook, DeadLetters, LogLimit};
pub use error::{ReserveError, SendError, TryRecvError, TrySendError};
pub use fast::{RING_MAX_CAPACITY, UNBOUNDED_RING_CAPACITY};
pub use lane::Lane;
pub use long_queue::{LongQueueEvent, LongQueueKind};
use long_queue::{LongQueueHook, LongWatch};
pub use permit::{OwnedPermit, Permit};
pub use policy::{InvalidPolicy, Policy};
pub use receiver::Receiver;
pub use send_future::SendFuture;
pub use sender::Sender;
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
    /// Coalescing key (used only under [`Policy::Coalesce`], on the normal lane).
    pub key: Option<Key>,
    /// A message still queued at this instant is never delivered: it is counted as
    /// expired and given to the dead-letter handler. Not applied on the control lane.
    pub deadline: Option<Instant>,
    /// The lane the message travels on: the control lane or a priority (see [`Lane`]).
    pub lane: Lane,
}

impl Meta {
    /// Meta with a coalescing key.
    pub fn keyed(key: impl Into<Key>) -> Self {
        Meta {
            key: Some(key.into()),
            ..Meta::default()
        }
    }

    /// Meta of a message on the control lane (see [`Lane::Control`]).
    pub fn control() -> Self {
        Meta::default().with_lane(Lane::Control)
    }

    /// Adds a deadline.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Puts the message on another lane.
    pub fn with_lane(mut self, lane: Lane) -> Self {
        self.lane = lane;
        self
    }
}

/// How an offer ended on its first try.
enum Offer<T> {
    Accepted,
    /// Refused (full under a refusing policy, or `try_send` where it would wait).
    Full(T),
    Closed(T),
    /// Parked for space, with the policy's `send_timeout`.
    Parked(sync::Arc<WaitCell<T>>, Option<std::time::Duration>),
}

/// State shared by the senders, the receiver and monitors.
struct Shared<T> {
    /// The queue and its accounting while the fast path's gate is locked, and every
    /// decision the fast path cannot make, under this lock.
    core: Mutex<Core<T>>,
    /// The lock-free ring and its gate (see `fast.rs`).
    fast: FastPath<T>,
    /// Receives every dead letter (`None`: none is wanted; they are dropped). Boxed:
    /// most mailboxes have none, and each live actor would carry its size.
    dead: Option<Box<DeadLetters<T>>>,
    /// Receives long-queue alerts and recoveries.
    on_long_queue: Option<LongQueueHook>,
    /// A long-queue alert is set (fixed at build).
    watches_depth: bool,
    /// The fast path may make a ring: built under a policy that fits one, with the
    /// builder's `lock_free` and no long-queue alert (fixed at build; a mailbox
    /// switched to `drop_newest` or `drop_oldest` later keeps the locked core).
    ring_allowed: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Core<T>> {
        self.core.lock()
    }

    /// Runs the effects gathered under the lock, after it is released.
    #[inline]
    fn apply(&self, fx: Effects<T>) {
        let Effects {
            wake_rx,
            wake_senders,
            evicted,
            long_queue,
        } = fx;
        if let Some(w) = wake_rx {
            w.wake();
        }
        // Most operations have nothing else to do: skip building the iterators.
        if !wake_senders.is_empty() {
            for w in wake_senders {
                w.wake();
            }
        }
        if !evicted.is_empty() {
            self.evicted(evicted);
        }
        if let Some(ev) = long_queue {
            long_queue::report(*ev, self.on_long_queue.as_ref());
        }
    }

    /// Shows the depth to the long-queue watch between operations (a stats snapshot,
    /// a metrics flush), so an alert comes even when no message moves.
    fn watch_depth(&self) {
        if !self.watches_depth {
            return;
        }
        let mut fx = Effects::default();
        self.lock().watch_depth(&mut fx);
        self.apply(fx);
    }

    /// Hands dead letters to the handler and the log (or drops them).
    #[cold]
    fn evicted(&self, evicted: Vec<(T, Eviction, Meta)>) {
        for (msg, why, meta) in evicted {
            self.dead_letter(msg, why, meta);
        }
    }

    /// Reports one dead letter (or drops it when nobody wants them).
    #[inline]
    fn dead_letter(&self, msg: T, why: Eviction, meta: Meta) {
        match &self.dead {
            Some(dead) => dead.report(msg, why, meta),
            None => drop(msg),
        }
    }

    /// Folds the ring's counts into the core's and publishes them (metrics on; see
    /// `metrics.rs`): at every [`FLUSH_EVERY`](metrics::FLUSH_EVERY)-th outcome on
    /// the ring, and at `flush_all`.
    #[cold]
    #[inline(never)]
    fn publish(&self) {
        let mut core = self.lock();
        self.publish_locked(&mut core);
    }

    /// [`publish`](Self::publish) with the lock held; the depth gauge counts the
    /// ring's messages too.
    fn publish_locked(&self, core: &mut Core<T>) {
        self.fast.fold(core);
        core.flush_metrics_with(self.fast.len());
    }

    /// Does what the receiver owes after a fast pop ([`fast::Chore`]), if anything,
    /// taking the lock only then.
    #[inline]
    fn settle(&self, chore: fast::Chore) {
        if !chore.is_none() {
            self.settle_cold(chore);
        }
    }

    #[cold]
    #[inline(never)]
    fn settle_cold(&self, chore: fast::Chore) {
        let mut core = self.lock();
        self.settle_locked(&mut core, chore);
    }

    /// [`settle`](Self::settle) with the lock held.
    #[inline]
    fn settle_locked(&self, core: &mut Core<T>, chore: fast::Chore) {
        if chore.is_none() {
            return;
        }
        if chore.sojourn_from.is_some() {
            core.record_sojourn(chore.sojourn_from, core::Stamp::NONE);
        }
        if chore.publish {
            self.publish_locked(core);
        }
    }

    /// The core's counts plus the fast path's, under the lock (so no message moves
    /// between the two meanwhile). Publishes the metrics too (with metrics on), so
    /// the recorder matches the snapshot (see `metrics.rs`).
    fn stats(&self) -> Stats {
        self.watch_depth();
        let mut core = self.lock();
        self.publish_locked(&mut core);
        let mut st = core.stats();
        let f = self.fast.counts();
        st.delivered += f.delivered;
        st.rejected += f.rejected;
        st.dropped_oldest += f.dropped_oldest;
        st.sent += f.delivered + f.rejected + f.dropped_oldest + f.depth as u64;
        st.depth += f.depth;
        st.peak_depth = st.peak_depth.max(f.peak).max(st.depth);
        st
    }

    /// Messages queued now (the ring's and the core's).
    fn len(&self) -> usize {
        let core = self.lock();
        core.len() + self.fast.len()
    }

    /// The lock, with the fast path's gate locked: the core holds every queued
    /// message until the receiver opens the gate again.
    fn lock_all(&self) -> MutexGuard<'_, Core<T>> {
        let mut core = self.lock();
        self.fast.lock(&mut core);
        core
    }

    fn set_policy(&self, policy: Policy) -> Result<(), InvalidPolicy> {
        policy.validate()?;
        let mut fx = Effects::default();
        let mut core = self.lock_all();
        // The old labels get everything up to the change, the ring's counts too.
        self.fast.fold(&mut core);
        core.set_policy(policy, &mut fx);
        drop(core);
        self.apply(fx);
        Ok(())
    }

    /// Offers a message: through the ring when the gate is open and the message has
    /// no key or deadline, otherwise under the lock (the old fast path first, then
    /// the policy). `waker` is `None` for `try_send`.
    #[inline]
    fn offer(&self, msg: T, meta: Meta, waker: Option<&std::task::Waker>) -> Offer<T> {
        if meta.key.is_none() && meta.deadline.is_none() && meta.lane == Lane::Normal {
            return self.offer_plain(msg, waker);
        }
        let mut core = self.lock();
        self.fast.lock(&mut core);
        self.offer_locked(core, msg, meta, waker, false)
    }

    /// [`offer`](Self::offer) of a message without key or deadline on the normal lane
    /// (a plain `send`): the ring while the gate is open, else the core's fast path,
    /// else the policy; no [`Meta`] is carried on the way.
    #[inline]
    fn offer_plain(&self, mut msg: T, waker: Option<&std::task::Waker>) -> Offer<T> {
        loop {
            // A mailbox that can never have a ring skips the fast path's checks.
            let out = if self.ring_allowed {
                self.fast.send(msg)
            } else {
                FastSend::Locked(msg)
            };
            match out {
                FastSend::Accepted(None, _) => return Offer::Accepted,
                FastSend::Accepted(Some(evicted), due) => {
                    if due {
                        self.publish();
                    }
                    self.dead_letter(evicted, Eviction::DroppedOldest, Meta::default());
                    return Offer::Accepted;
                }
                FastSend::Rejected(m, due) => {
                    if due {
                        self.publish();
                    }
                    return Offer::Full(m);
                }
                FastSend::Full(m) => {
                    // Full under a policy that makes senders wait, or `unbounded`:
                    // the core decides (the gate locked, it takes the ring's messages
                    // first).
                    let mut core = self.lock();
                    self.fast.lock(&mut core);
                    return self.offer_locked(core, m, Meta::default(), waker, false);
                }
                FastSend::Locked(m) => {
                    let mut core = self.lock();
                    if self.ring_allowed && self.fast.is_open() {
                        // The receiver opened the gate meanwhile.
                        drop(core);
                        msg = m;
                        continue;
                    }
                    return match core.push_fast(m, core::Stamp::NONE) {
                        Ok(wake) => {
                            drop(core);
                            if let Some(w) = wake {
                                w.wake();
                            }
                            Offer::Accepted
                        }
                        Err(m) => self.offer_policy(core, m, Meta::default(), waker, false),
                    };
                }
            }
        }
    }

    /// [`offer`](Self::offer) under the lock, with the gate locked: the core's
    /// fast path for a normal-lane message without a key, then the policy.
    /// `permit`: the message uses a permit (see `permit.rs`).
    fn offer_locked(
        &self,
        mut core: MutexGuard<'_, Core<T>>,
        mut msg: T,
        meta: Meta,
        waker: Option<&std::task::Waker>,
        permit: bool,
    ) -> Offer<T> {
        if meta.key.is_none() && meta.lane == Lane::Normal && !permit {
            let deadline = meta.deadline.map_or(core::Stamp::NONE, |d| core.stamp(d));
            match core.push_fast(msg, deadline) {
                Ok(wake) => {
                    drop(core);
                    if let Some(w) = wake {
                        w.wake();
                    }
                    return Offer::Accepted;
                }
                Err(back) => msg = back,
            }
        }
        self.offer_policy(core, msg, meta, waker, permit)
    }

    /// [`offer_locked`](Self::offer_locked) once the core's fast path has declined
    /// the message: the policy decides.
    #[inline(never)]
    fn offer_policy(
        &self,
        mut core: MutexGuard<'_, Core<T>>,
        msg: T,
        meta: Meta,
        waker: Option<&std::task::Waker>,
        permit: bool,
    ) -> Offer<T> {
        let mut fx = Effects::default();
        let lane = meta.lane;
        let slot = core.make_slot(msg, meta);
        let timeout = core.send_timeout();
        let res = core.offer(slot, lane, waker, permit, &mut fx);
        drop(core);
        self.apply(fx);
        match res {
            Push::Accepted => Offer::Accepted,
            Push::Full(s) => Offer::Full(s.msg),
            Push::Closed(s) => Offer::Closed(s.msg),
            Push::Parked(cell) => Offer::Parked(cell, timeout),
        }
    }
}

impl<T> Shared<T> {
    /// Asks for a permit, with the gate locked (permits use the locked core; the
    /// receiver opens the gate again once none is out and the core is empty).
    fn reserve(
        &self,
        waker: Option<&std::task::Waker>,
    ) -> (Reserve<T>, Option<std::time::Duration>) {
        let mut fx = Effects::default();
        let (res, timeout) = {
            let mut core = self.lock_all();
            (core.reserve(waker, &mut fx), core.send_timeout())
        };
        self.apply(fx);
        (res, timeout)
    }

    /// Sends a message with a permit: it never waits and, where permits hold a
    /// place, always has one. Only a closed mailbox refuses it.
    fn send_with_permit(&self, msg: T, meta: Meta) -> Result<(), SendError<T>> {
        match self.offer_locked(self.lock_all(), msg, meta, None, true) {
            Offer::Accepted => Ok(()),
            Offer::Closed(m) => Err(SendError::Closed(m)),
            // A permit's message is queued, merged, or (drop_oldest) evicts: never
            // refused for room, never parked.
            Offer::Full(_) | Offer::Parked(..) => {
                unreachable!("a permit's message refused for room")
            }
        }
    }

    /// A permit dropped unused: its place goes to the first waiting sender.
    fn release_permit(&self) {
        let mut fx = Effects::default();
        self.lock_all().release_permit(&mut fx);
        self.apply(fx);
    }
}

impl<T: Send> metrics::Flush for Shared<T> {
    fn flush(&self) {
        self.watch_depth();
        self.publish();
    }
}

/// Builds a mailbox with a role name, metrics switch, dead-letter handler and
/// coalesce hook.
///
/// ```
/// use std::time::Duration;
/// use sluicegate::mailbox::{Builder, Policy};
/// let (tx, rx) = Builder::<String>::new(Policy::DropOldest { capacity: 8 })
///     .role("example")
///     .dead_letters(|d| eprintln!("{:?}: {}", d.reason, d.message))
///     .log_dead_letters(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// # drop((tx, rx));
/// ```
pub struct Builder<T> {
    policy: Policy,
    role: &'static str,
    metrics: bool,
    lock_free: bool,
    dead_letters: Option<DeadLetterHook<T>>,
    log_dead_letters: Option<std::time::Duration>,
    on_coalesce: Option<CoalesceHook<T>>,
    long_queue: Option<(usize, std::time::Duration)>,
    on_long_queue: Option<LongQueueHook>,
}

impl<T: Send + 'static> Builder<T> {
    /// A builder for the given policy; role `"mailbox"`, metrics on, no hooks.
    pub fn new(policy: Policy) -> Self {
        Builder {
            policy,
            role: "mailbox",
            metrics: true,
            lock_free: true,
            dead_letters: None,
            log_dead_letters: None,
            on_coalesce: None,
            long_queue: None,
            on_long_queue: None,
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

    /// Whether plain messages (no key, deadline or lane) may go through the
    /// lock-free ring, under every policy (default on; see the module
    /// docs). The ring is made at the mailbox's first backlog (32 messages queued at
    /// once, or its capacity if smaller), with all its slots: the capacity (1,024
    /// under `unbounded`, [`UNBOUNDED_RING_CAPACITY`]) times the message's size plus
    /// 16 bytes. A message that needs the
    /// lock (one with a deadline, say) moves the ring's contents into the locked
    /// core until the queue drains. Turn it off for a mailbox that must stay small, one
    /// of very many, or whose messages mostly carry deadlines: the runtime's
    /// servers do, since every call carries one. No ring is made for a capacity
    /// above [`RING_MAX_CAPACITY`] either way.
    pub fn lock_free(mut self, on: bool) -> Self {
        self.lock_free = on;
        self
    }

    /// Called, outside the lock, with every dead letter: each message that leaves
    /// the mailbox without being delivered or handed back to its sender (dropped as
    /// oldest, shed, expired, coalesced without a merge hook, refused after a
    /// shrink, still queued when the receiver is dropped), exactly once, with its
    /// reason and the key and deadline it was sent with. See [`DeadLetter`] for the
    /// full list and what is *not* a dead letter (a message handed back in an
    /// error). Replaces a handler set with [`on_evict`](Self::on_evict). With no
    /// handler, dead letters are dropped where they are discarded, at no cost.
    pub fn dead_letters(mut self, hook: impl Fn(DeadLetter<T>) + Send + Sync + 'static) -> Self {
        self.dead_letters = Some(Box::new(hook));
        self
    }

    /// [`dead_letters`](Self::dead_letters) with the message and reason only (the
    /// runtime's form). Replaces a handler set with `dead_letters`.
    pub fn on_evict(self, hook: impl Fn(T, Eviction) + Send + Sync + 'static) -> Self {
        self.dead_letters(move |d: DeadLetter<T>| hook(d.message, d.reason))
    }

    /// Logs dead letters with `tracing` at `WARN` (target `sluicegate::mailbox::dead_letter`:
    /// role, reason, key; never the message), at most one line per `every` for this
    /// mailbox; the next line says how many were left out. Independent of the
    /// handler: both may be set.
    pub fn log_dead_letters(mut self, every: std::time::Duration) -> Self {
        self.log_dead_letters = Some(every);
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

    /// Raises a long-queue alert when the depth stays above `threshold` messages for
    /// at least `for_at_least` (`Duration::ZERO`: as soon as it goes above), and a
    /// recovery when it is back at `threshold` or below: each is an edge, reported
    /// once, as a `tracing` line (`WARN` when long, `INFO` on recovery), in metrics
    /// ([`metrics::LONG_QUEUES`], [`metrics::LONG_QUEUE_EVENTS`]) and to the
    /// callback of [`on_long_queue`](Self::on_long_queue). OTP's
    /// `long_message_queue` system monitor.
    ///
    /// The depth is checked under the lock at each send and receive, and at each
    /// [`Stats`] snapshot and metrics flush ([`metrics::flush_all`], for mailboxes
    /// with metrics on: call it before each scrape; `sluicegate serve` does, and
    /// every 5 s); no
    /// timer runs per mailbox. So an alert comes at the first check at least
    /// `for_at_least` after the depth went above (later than that on a mailbox where
    /// nothing happens, never earlier), and the depth must stay above
    /// continuously: a check that finds it at or below the threshold starts the wait
    /// over. The receiver's drop empties the queue, so it recovers an alert in force.
    /// A mailbox with an alert set does not use the lock-free ring: every operation
    /// goes through the core, which sees the depth.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use sluicegate::mailbox::{Builder, LongQueueKind, Policy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// let (tx, mut rx) = Builder::new(Policy::Unbounded)
    ///     .long_queue(2, Duration::from_secs(1))
    ///     .on_long_queue(move |ev| s.lock().unwrap().push(ev.kind))
    ///     .build()
    ///     .unwrap();
    /// for i in 0..3 {
    ///     tx.send(i).await.unwrap(); // 3 queued: above 2, for now 0 s
    /// }
    /// tokio::time::advance(Duration::from_secs(2)).await;
    /// let _ = rx.stats(); // above 2 for 2 s: long
    /// rx.recv().await; // 2 queued: recovered
    /// assert_eq!(*seen.lock().unwrap(), [LongQueueKind::Long, LongQueueKind::Recovered]);
    /// # }
    /// ```
    pub fn long_queue(mut self, threshold: usize, for_at_least: std::time::Duration) -> Self {
        self.long_queue = Some((threshold, for_at_least));
        self
    }

    /// Called, outside the lock, with each long-queue alert and recovery (see
    /// [`long_queue`](Self::long_queue), without which it is never called).
    pub fn on_long_queue(mut self, hook: impl Fn(LongQueueEvent) + Send + Sync + 'static) -> Self {
        self.on_long_queue = Some(Arc::new(hook));
        self
    }

    /// Creates the mailbox.
    ///
    /// # Errors
    ///
    /// [`InvalidPolicy`] naming the policy parameter out of range.
    pub fn build(self) -> Result<(Sender<T>, Receiver<T>), InvalidPolicy> {
        self.policy.validate()?;
        let long = self
            .long_queue
            .map(|(threshold, at_least)| Box::new(LongWatch::new(threshold, at_least, self.role)));
        let watches_depth = long.is_some();
        let core = Core::new(self.policy, self.role, self.metrics, self.on_coalesce, long);
        let ring_allowed = self.lock_free && !watches_depth && FastPath::<T>::fits(core.policy());
        let fast = FastPath::new();
        // Model checks start with the ring, so that every interleaving explores it.
        #[cfg(sluicegate_loom)]
        if ring_allowed {
            fast.make_ring(&core);
            fast.open(&core);
        }
        let dead = (self.dead_letters.is_some() || self.log_dead_letters.is_some()).then(|| {
            Box::new(DeadLetters {
                hook: self.dead_letters,
                log: self
                    .log_dead_letters
                    .map(|every| Box::new(LogLimit::new(every))),
                role: self.role,
            })
        });
        let shared = sync::Arc::new(Shared {
            core: Mutex::new(core),
            fast,
            dead,
            on_long_queue: self.on_long_queue,
            watches_depth,
            ring_allowed,
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
            Receiver {
                shared,
                coop: Default::default(),
            },
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

/// Watches and reconfigures a mailbox without being a sender: it neither keeps the
/// mailbox open nor stops the receiver from seeing the end.
///
/// # Examples
///
/// Shrinking a live `drop_oldest` mailbox evicts what no longer fits, counted
/// (`examples/live_policy.rs` switches policies under load):
///
/// ```
/// use sluicegate::mailbox::{channel, Policy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, mut rx) = channel(Policy::DropOldest { capacity: 8 });
/// let monitor = rx.monitor();
/// for i in 0..6 {
///     tx.send(i).await.unwrap();
/// }
/// monitor.set_policy(Policy::DropOldest { capacity: 2 }).unwrap();
/// let s = monitor.stats();
/// assert_eq!((s.depth, s.dropped_oldest), (2, 4));
/// assert_eq!(rx.recv().await, Some(4));
/// # }
/// ```
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

    /// Switches policy and parameters; no accepted message disappears uncounted:
    /// what no longer fits is handled by the new policy and counted (evicted as oldest under
    /// `drop_oldest`; evicted as newest and counted as rejected under `drop_newest`
    /// and `codel`; kept under `block`, `coalesce` and `unbounded`, where senders
    /// then wait until the queue drains below the new capacity). Senders waiting for
    /// space are let in if the new policy has room or never waits (`drop_oldest`,
    /// `unbounded`), and refused if it refuses when full.
    ///
    /// # Errors
    ///
    /// [`InvalidPolicy`] naming the parameter out of range; nothing changes then.
    pub fn set_policy(&self, policy: Policy) -> Result<(), InvalidPolicy> {
        self.shared.set_policy(policy)
    }
}
