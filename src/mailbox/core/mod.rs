//! The queue under the mailbox lock: policy decisions, the coalesce index, waiting
//! senders and exact accounting. Synchronous; `mailbox/mod.rs` wraps it with locking
//! and wake-ups, and reaches it only through the methods here (no field is visible
//! outside this module).
//!
//! One state machine in four files, one job each: this one holds the state and the
//! hot paths (offer, take, the fast paths, parking); `slot.rs` the values that move
//! through it (slots, stamps, effects); `lifecycle.rs` what changes the mailbox as a
//! whole (close, discard, a live policy change); `invariants.rs` the invariants
//! every operation restores and the `Stats` snapshot taken from the counters.
//!
//! Every method leaves the invariants listed at [`Core::check_invariants`] true before
//! it returns, so the lock never exposes a half-done change; debug builds check them
//! after each operation. Work that must not run under the lock (wake-ups, eviction
//! hooks, dropping refused messages) is handed back in [`Effects`].

use std::collections::VecDeque;
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use super::codel::Codel;
use super::long_queue::LongWatch;
use super::metrics::{publish_due, Handles};
use super::policy::{Behaviour, WhenFull};
use super::stats::{Counts, Eviction, Outcome};
use super::sync::Arc;
pub(crate) use super::wait::{Resolved, WaitCell, WAITING};
use super::{Key, Lane, Policy};

mod invariants;
mod keys;
mod lanes;
mod lazy;
mod lifecycle;
mod parking;
mod slot;

use keys::KeyIndex;
use lanes::Lanes;
use lazy::LazyDeque;
use slot::Waiting;
pub(crate) use slot::{CoalesceHook, Effects, Fast, Push, Reserve, Slot, Stamp};

/// The mailbox's state, behind its lock.
pub(crate) struct Core<T> {
    /// Origin of every [`Stamp`] of this mailbox.
    base: Instant,
    /// The policy in force (changed live by `set_policy`).
    policy: Policy,
    /// What the policy does at each decision (derived from `policy`).
    behaviour: Behaviour,
    /// The queued messages of the normal lane, oldest first.
    queue: VecDeque<Slot<T>>,
    /// The control, `High` and `Low` lanes (see `lanes.rs`): `None` until a message
    /// is sent on one of them.
    lanes: Option<Box<Lanes<T>>>,
    /// Messages queued on `lanes` (0 while it is `None`): all the hot paths look at.
    others: usize,
    /// Permits out. Under the policies that wait or refuse when full, each holds a
    /// place ([`held`](Self::held)).
    reserved: usize,
    /// Permits out at the last live policy change: they still land whatever the new
    /// capacity, so the queue may exceed it by at most this many (invariant 4).
    grace: usize,
    /// Sequence number of the queue's front; slot `i` has number `head_seq + i`.
    head_seq: u64,
    /// Coalesce index: key -> sequence number of the queued slot with that key.
    keys: KeyIndex,
    /// Senders parked for space (`block`, `coalesce`), first come first served.
    waiting: LazyDeque<Waiting<T>>,
    /// Wait cells of resolved sends, reused once their sender has let go.
    spare: LazyDeque<Arc<WaitCell<T>>>,
    /// CoDel's state (idle unless the policy is `codel`).
    codel: Codel,
    /// Every message offered, and each one's outcome.
    counts: Counts,
    /// The most messages queued at once.
    peak: usize,
    /// Queued slots that carry a deadline: purging is skipped while zero.
    with_deadline: usize,
    /// Whether every message is stamped with its enqueue time (CoDel needs every
    /// sojourn). Otherwise, with metrics on, one in [`SOJOURN_SAMPLE_EVERY`] is.
    stamp: bool,
    /// Messages offered since the last sampled stamp.
    sample_tick: u32,
    /// The clock as [`take_fast`](Self::take_fast) read it before handing a dequeue
    /// over to [`take`](Self::take) (`Fast::Slow`) in the same lock hold, for `take`
    /// to use instead of reading again (a read costs as much as a whole message on
    /// some machines: docs/benchmarks.md). Always [`Stamp::NONE`] once an
    /// operation has returned and the lock can be released (invariant 8).
    read_at: Stamp,
    /// No message is accepted any more (the receiver closed or went away).
    closed: bool,
    /// Live `Sender` handles; at 0 the receiver sees the end once drained.
    senders: usize,
    /// The receiver, when it waits for a message.
    rx_waker: Option<Waker>,
    /// Metric handles, when metrics are on.
    metrics: Option<Handles>,
    /// The role label of the mailbox's metrics and logs.
    role: &'static str,
    /// Merges a replaced message into its replacement (coalesce).
    on_coalesce: Option<CoalesceHook<T>>,
    /// The long-queue watch, when an alert is set: every operation then takes the
    /// slow paths, which report the depth to it. Boxed, as rare: every live actor
    /// would carry its size.
    long: Option<Box<LongWatch>>,
}

/// The most queue slots a mailbox keeps allocated while its receiver waits on an
/// empty queue: a mailbox that has only ever held a few messages at once keeps its
/// small buffer and never reallocates (a server answering one caller at a time
/// holds one slot: the first message allocates room for exactly one); one a burst
/// grew past this gives the buffer back when it next waits. (4 is what a
/// `VecDeque` grows to from one slot.)
pub const IDLE_SLOTS: usize = 4;

/// With metrics on (and no CoDel), one message in this many is stamped for the
/// sojourn histogram; counts stay exact.
pub const SOJOURN_SAMPLE_EVERY: u32 = 16;

impl<T> Core<T> {
    pub(crate) fn new(
        policy: Policy,
        role: &'static str,
        metrics: bool,
        on_coalesce: Option<CoalesceHook<T>>,
        long: Option<Box<LongWatch>>,
    ) -> Self {
        let handles =
            metrics.then(|| Handles::new(role, policy.name(), policy.capacity(), &[0; 9]));
        let b = policy.behaviour();
        let stamp = b.codel.is_some();
        Core {
            base: Instant::now(),
            behaviour: b,
            // Allocated by the first message, not up front: an idle actor holds no
            // queue buffer (see `park_receiver`).
            queue: VecDeque::new(),
            lanes: None,
            others: 0,
            reserved: 0,
            grace: 0,
            policy,
            head_seq: 0,
            keys: KeyIndex::default(),
            waiting: LazyDeque::default(),
            spare: LazyDeque::default(),
            codel: Codel::default(),
            counts: Counts::default(),
            peak: 0,
            with_deadline: 0,
            stamp,
            sample_tick: 0,
            read_at: Stamp::NONE,
            closed: false,
            senders: 1,
            rx_waker: None,
            metrics: handles,
            role,
            on_coalesce,
            long,
        }
    }

    /// Shows the depth to the long-queue watch, if any; an alert or recovery goes
    /// out through `fx`.
    #[inline]
    pub(crate) fn watch_depth(&mut self, fx: &mut Effects<T>) {
        if let Some(w) = &mut self.long {
            if let Some(ev) = w.observe(self.queue.len() + self.others) {
                fx.long_queue = Some(Box::new(ev));
            }
        }
    }

    /// Messages queued now, on every lane.
    pub(crate) fn len(&self) -> usize {
        self.queue.len() + self.others
    }

    /// `at` as a stamp of this mailbox.
    pub(crate) fn stamp(&self, at: Instant) -> Stamp {
        Stamp::at(self.base, at)
    }

    /// The policy in force.
    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether metrics are on.
    pub(crate) fn metrics_on(&self) -> bool {
        self.metrics.is_some()
    }

    /// The most messages queued at once so far.
    pub(crate) fn peak(&self) -> usize {
        self.peak
    }

    /// The origin of this mailbox's stamps (the fast path stamps with it too).
    pub(crate) fn base(&self) -> Instant {
        self.base
    }

    /// The stamp of the present instant.
    fn now(&self) -> Stamp {
        self.stamp(Instant::now())
    }

    /// Whether the next message gets an enqueue time: always under CoDel; with
    /// metrics on, one message in [`SOJOURN_SAMPLE_EVERY`], so the sojourn histogram
    /// is a systematic sample and the hot path reads the clock rarely.
    fn stamp_next(&mut self) -> bool {
        if self.stamp {
            return true;
        }
        if self.metrics.is_none() {
            return false;
        }
        self.sample_tick += 1;
        if self.sample_tick >= SOJOURN_SAMPLE_EVERY {
            self.sample_tick = 0;
            true
        } else {
            false
        }
    }

    fn capacity(&self) -> usize {
        self.behaviour.capacity
    }

    /// Places the permits out hold: all of them under the policies that wait or
    /// refuse when full; none under `drop_oldest` (a send always finds room there)
    /// and `unbounded`.
    fn held(&self) -> usize {
        match self.behaviour.when_full {
            WhenFull::Wait | WhenFull::Refuse => self.reserved,
            WhenFull::Grow | WhenFull::EvictOldest => 0,
        }
    }

    /// No room for a message under the policy (the control lane aside).
    fn is_full(&self) -> bool {
        self.bounded_len() + self.held() >= self.capacity()
    }

    /// Counts a resolved outcome for a message that never reached the queue, or left it.
    #[inline(always)]
    fn count(&mut self, outcome: Outcome) {
        let n = &mut self.counts.by_outcome[outcome.index()];
        *n += 1;
        if publish_due(*n) {
            self.flush_metrics();
        }
    }

    fn count_sent(&mut self) {
        self.counts.sent += 1;
    }

    /// Queues a slot at the back of the normal lane. The first slot of an empty
    /// buffer allocates room for exactly one: an actor answering one caller at a time
    /// (most of them, most of the time) never holds more while it waits; past that
    /// the buffer grows as a `VecDeque` does (to 4, then doubling).
    #[inline(always)]
    fn enqueue(&mut self, slot: Slot<T>) {
        if self.queue.len() == self.queue.capacity() {
            self.grow_queue();
        }
        self.queue.push_back(slot);
    }

    #[cold]
    #[inline(never)]
    fn grow_queue(&mut self) {
        if self.queue.capacity() == 0 {
            self.queue.reserve_exact(1);
        } else {
            self.queue.reserve(1);
        }
    }

    fn push_back(&mut self, slot: Slot<T>, fx: &mut Effects<T>) {
        if let (true, Some(key)) = (self.behaviour.coalesces, &slot.key) {
            self.keys
                .insert(key.clone(), self.head_seq + self.queue.len() as u64);
        }
        if slot.deadline.is_some() {
            self.with_deadline += 1;
        }
        self.enqueue(slot);
        self.count_sent();
        if self.queue.len() + self.others > self.peak {
            self.peak = self.queue.len() + self.others;
        }
        if fx.wake_rx.is_none() {
            fx.wake_rx = self.rx_waker.take();
        }
    }

    /// Removes the front slot, keeping the key index and depth gauge in step
    /// (always inlined: out of line, returning the slot through memory cost about
    /// 50 instructions per message).
    #[inline(always)]
    fn pop_front(&mut self) -> Option<Slot<T>> {
        let slot = self.queue.pop_front()?;
        let seq = self.head_seq;
        self.head_seq += 1;
        self.forget(&slot, seq);
        Some(slot)
    }

    #[inline(always)]
    fn forget(&mut self, slot: &Slot<T>, seq: u64) {
        if let Some(key) = &slot.key {
            if self.keys.get(key) == Some(&seq) {
                self.keys.remove(key);
            }
        }
        if slot.deadline.is_some() {
            self.with_deadline -= 1;
        }
    }

    /// Counts a normal-lane slot's outcome and hands it over as a dead letter.
    fn evict(&mut self, slot: Slot<T>, why: Eviction, fx: &mut Effects<T>) {
        self.evict_on(Lane::Normal, slot, why, fx);
    }

    /// [`evict`](Self::evict) for a slot taken from `lane`.
    fn evict_on(&mut self, lane: Lane, slot: Slot<T>, why: Eviction, fx: &mut Effects<T>) {
        self.count(why.outcome());
        let meta = self.meta(slot.key, slot.deadline, lane);
        fx.evicted.push((slot.msg, why, meta));
    }

    /// The [`Meta`](super::Meta) a slot's message was sent with, for its dead letter.
    fn meta(&self, key: Option<Key>, deadline: Stamp, lane: Lane) -> super::Meta {
        super::Meta {
            key,
            deadline: deadline
                .is_some()
                .then(|| self.base + Duration::from_nanos(deadline.0 - 1)),
            lane,
        }
    }

    /// Takes every expired message out of the queue (only when some carry a deadline).
    fn purge_expired(&mut self, now: Stamp, fx: &mut Effects<T>) {
        if self.with_deadline == 0 {
            return;
        }
        let before = self.queue.len();
        let mut kept = VecDeque::with_capacity(before);
        let mut expired = Vec::new();
        while let Some(slot) = self.pop_front() {
            if slot.deadline.is_some() && slot.deadline <= now {
                expired.push(slot);
            } else {
                kept.push_back(slot);
            }
        }
        // Re-enqueue the survivors in order; rebuild their bookkeeping.
        for slot in kept {
            if let (true, Some(key)) = (self.behaviour.coalesces, &slot.key) {
                self.keys
                    .insert(key.clone(), self.head_seq + self.queue.len() as u64);
            }
            if slot.deadline.is_some() {
                self.with_deadline += 1;
            }
            self.enqueue(slot);
        }
        for slot in expired {
            self.evict(slot, Eviction::Expired, fx);
        }
        self.purge_other_lanes(now, fx);
    }

    /// Replaces the queued message with the same key, if any; the queued slot keeps
    /// its place and enqueue time and takes the new content and deadline.
    /// Returns the slot back when no message with its key is queued, or when that
    /// message's deadline has passed: an expired message is never replaced (that
    /// would count it as coalesced and hand it to the merge hook); it is purged as
    /// expired with every other expired message, which frees room.
    fn try_coalesce(&mut self, slot: Slot<T>, fx: &mut Effects<T>) -> Result<(), Slot<T>> {
        let Some(&seq) = slot.key.as_ref().and_then(|k| self.keys.get(k)) else {
            return Err(slot);
        };
        let idx = (seq - self.head_seq) as usize;
        let deadline = self.queue[idx].deadline;
        if deadline.is_some() {
            let now = self.now();
            if deadline <= now {
                self.purge_expired(now, fx);
                return Err(slot);
            }
        }
        let queued = &mut self.queue[idx];
        let old = std::mem::replace(&mut queued.msg, slot.msg);
        let old_deadline = std::mem::replace(&mut queued.deadline, slot.deadline);
        let had_deadline = old_deadline.is_some();
        match (had_deadline, slot.deadline.is_some()) {
            (true, false) => self.with_deadline -= 1,
            (false, true) => self.with_deadline += 1,
            _ => {}
        }
        self.count_sent();
        self.count(Outcome::Coalesced);
        match &self.on_coalesce {
            Some(hook) => hook(old, &mut self.queue[idx].msg),
            None => {
                let meta = self.meta(slot.key, old_deadline, Lane::Normal);
                fx.evicted.push((old, Eviction::Coalesced, meta));
            }
        }
        Ok(())
    }

    /// Whether a parked sender carries the same coalescing key as `slot`.
    fn key_waits(&self, slot: &Slot<T>) -> bool {
        slot.key
            .as_ref()
            .is_some_and(|k| self.waiting.iter().any(|w| w.has_key(k)))
    }

    /// The common case of [`offer`](Self::offer), decided without building an
    /// [`Effects`]: a message with no key (`deadline` may be set), an open mailbox
    /// with room and nobody waiting. Does exactly what `offer` does then (queue it,
    /// count it as sent, stamp it when [`stamp_next`](Self::stamp_next) says so) and
    /// returns the receiver's waker to wake after the lock is released; otherwise
    /// hands the message back untouched (nothing counted, no sample tick used), for
    /// `offer` to decide.
    #[inline]
    pub(crate) fn push_fast(&mut self, msg: T, deadline: Stamp) -> Result<Option<Waker>, T> {
        if self.closed
            || !self.waiting.is_empty()
            || self.queue.len() + self.others + self.reserved >= self.behaviour.capacity
            || self.long.is_some()
        {
            return Err(msg);
        }
        let enqueued = if self.stamp_next() {
            self.now()
        } else {
            Stamp::NONE
        };
        if deadline.is_some() {
            self.with_deadline += 1;
        }
        self.enqueue(Slot {
            msg,
            key: None,
            deadline,
            enqueued,
        });
        self.counts.sent += 1;
        let depth = self.queue.len() + self.others;
        if depth > self.peak {
            self.peak = depth;
        }
        let wake = self.rx_waker.take();
        self.debug_check();
        Ok(wake)
    }

    /// Takes over a message from the fast path's ring as the gate locks: queued at
    /// the back (the ring's messages are the newest; the core's queue is empty while
    /// the gate is open) with its enqueue stamp, if sampled, and counted as sent
    /// here, where it is counted from now on.
    pub(crate) fn adopt(&mut self, msg: T, enqueued: Stamp) {
        self.enqueue(Slot {
            msg,
            key: None,
            deadline: Stamp::NONE,
            enqueued,
        });
        self.count_adopted();
    }

    /// Counts a message taken from the ring as sent here, and the queue's peak.
    fn count_adopted(&mut self) {
        self.counts.sent += 1;
        if self.queue.len() > self.peak {
            self.peak = self.queue.len();
        }
    }

    /// CoDel's target in nanoseconds (0 without CoDel), for the ring's check.
    pub(crate) fn codel_target_nanos(&self) -> u64 {
        self.behaviour.codel.map_or(0, |(target, _)| {
            u64::try_from(target.as_nanos()).unwrap_or(u64::MAX)
        })
    }

    /// Takes back, at the head of the queue, a message the ring's CoDel check handed
    /// over ([`Judged`](super::fast::Judged)): it was the oldest queued (the core was
    /// empty when it left the ring, and the gate is locked now, so what the core holds
    /// came after it), counted as sent here as [`adopt`](Self::adopt) counts, and
    /// `now`, the reading that judged it, is handed to the [`take`](Self::take) that
    /// must follow under the same lock hold.
    pub(crate) fn adopt_judged(&mut self, msg: T, enqueued: Stamp, now: Stamp) {
        debug_assert!(!self.behaviour.coalesces, "keys index slots by position");
        if self.queue.len() == self.queue.capacity() {
            self.grow_queue();
        }
        self.queue.push_front(Slot {
            msg,
            key: None,
            deadline: Stamp::NONE,
            enqueued,
        });
        self.head_seq = self.head_seq.wrapping_sub(1);
        self.count_adopted();
        self.read_at = now;
    }

    /// What a full ring of `ring_capacity` slots does under the policy in force,
    /// when the fast path may take over: the core's queue empty, nobody waiting,
    /// open, CoDel (if on) calm (no time above target pending, not dropping: the
    /// ring's pop keeps it so, or hands the message to the core) and a ring of the
    /// policy's capacity (any ring, for `unbounded`). `None` otherwise. (Which
    /// mailboxes get a ring at all: `FastPath::fits`.)
    pub(crate) fn fast_kind(&self, ring_capacity: usize) -> Option<u8> {
        use super::fast::{KIND_EVICT, KIND_GROW, KIND_REFUSE, KIND_STAMP_REFUSE, KIND_WAIT};
        if !self.queue.is_empty()
            || self.others != 0
            || self.reserved != 0
            || !self.waiting.is_empty()
            || self.closed
            || (self.behaviour.codel.is_some() && !self.codel.calm())
            || self.policy.capacity().is_some_and(|c| c != ring_capacity)
        {
            return None;
        }
        if self.stamp {
            // Every message stamped: CoDel, which refuses when full, on the ring that
            // stamps every push. (A mailbox that has been under CoDel keeps stamping
            // after a change of policy, and keeps the locked core.)
            let refuses = matches!(self.behaviour.when_full, WhenFull::Refuse);
            return (self.behaviour.codel.is_some() && refuses).then_some(KIND_STAMP_REFUSE);
        }
        match self.behaviour.when_full {
            WhenFull::Grow => Some(KIND_GROW),
            WhenFull::Refuse => Some(KIND_REFUSE),
            WhenFull::EvictOldest => Some(KIND_EVICT),
            WhenFull::Wait => Some(KIND_WAIT),
        }
    }

    /// The common case of [`take`](Self::take), with nothing to do but pop: no
    /// sender waiting, and a front message that has not expired and that CoDel, if
    /// on, certainly does not shed (so no expiry, shedding, hand-over or wake-up can
    /// follow). Does exactly what `take` does then, reading the clock only when the
    /// front message carries a deadline or an enqueue stamp, or CoDel needs its
    /// sojourn; [`Fast::Slow`] when one of those may apply, for `take` to handle,
    /// with nothing changed.
    ///
    /// Under CoDel it takes a message that is certainly not shed
    /// ([`Codel::quiet`]): the last one queued (the queue is not standing then, and
    /// the clock is not read unless the message carries a deadline or metrics record
    /// its sojourn), or one whose sojourn is below target; otherwise `Fast::Slow`.
    #[inline]
    pub(crate) fn take_fast(&mut self) -> Fast<T> {
        if !self.waiting.is_empty() || self.long.is_some() || self.others != 0 {
            return Fast::Slow;
        }
        let Some(front) = self.queue.front() else {
            self.codel.on_empty();
            return Fast::Empty;
        };
        if front.deadline.is_some() || self.behaviour.codel.is_some() {
            return self.take_fast_checked();
        }
        // Nothing to check: a plain pop (what `take_fast_checked` does then). A
        // sampled enqueue stamp (metrics on) is recorded after it, out of line: the
        // clock is read only for those.
        let Some(slot) = self.pop_front() else {
            return Fast::Empty;
        };
        self.count(Outcome::Delivered);
        if slot.enqueued.is_some() {
            self.record_sojourn(slot.enqueued, Stamp::NONE);
        }
        self.debug_check();
        Fast::Got(slot.msg)
    }

    /// Records the sojourn of a delivered message stamped at `enqueued`, as of `now`
    /// (the clock is read here when `now` is none), if metrics are on.
    #[inline(never)]
    pub(crate) fn record_sojourn(&self, enqueued: Stamp, now: Stamp) {
        if let Some(m) = &self.metrics {
            let now = if now.is_some() { now } else { self.now() };
            m.sojourn
                .record(now.0.saturating_sub(enqueued.0) as f64 / 1_000_000_000.0);
        }
    }

    /// [`take_fast`](Self::take_fast) when the front message carries a deadline, or
    /// CoDel is on (out of line, so the plain pop stays small).
    ///
    /// A dequeue handed over to [`take`](Self::take) after reading the clock leaves
    /// the reading in `read_at`, and `take` (which the receiver calls next, under
    /// the same lock hold) decides with it: one read per dequeue instead of two
    /// (or three: the receiver's slow path calls this again first, which also uses
    /// it). The reading stands for the instant of the dequeue as a fresh one would,
    /// since the lock is not released in between.
    #[inline(never)]
    fn take_fast_checked(&mut self) -> Fast<T> {
        let stashed = std::mem::take(&mut self.read_at);
        let Some(front) = self.queue.front() else {
            self.codel.on_empty();
            return Fast::Empty;
        };
        // CoDel's `standing`: the queue is not empty after this dequeue.
        let standing = self.queue.len() > 1;
        let codel = self.behaviour.codel;
        if codel.is_some() && standing && !self.codel.calm() {
            // A sojourn above target was seen last: this one is likely too, and the
            // full rule (which reads the clock itself) decides.
            return Fast::Slow;
        }
        let mut now = Stamp::NONE;
        if front.deadline.is_some() || (codel.is_some() && standing) {
            now = if stashed.is_some() {
                stashed
            } else {
                self.now()
            };
            if front.deadline.is_some() && front.deadline <= now {
                self.read_at = now;
                return Fast::Slow;
            }
        }
        if let Some((target, _)) = codel {
            // As in `take_one`: a message without an enqueue stamp counts as fresh.
            // (In nanoseconds, as stamps are: no `Duration` built on the hot path.)
            let sojourn = now.is_some().then(|| match front.enqueued.is_some() {
                true => now.0.saturating_sub(front.enqueued.0),
                false => 0,
            });
            if !self.codel.quiet(sojourn, standing, target) {
                self.read_at = now;
                return Fast::Slow;
            }
            self.codel.settle();
        }
        let Some(slot) = self.pop_front() else {
            return Fast::Empty;
        };
        self.count(Outcome::Delivered);
        if slot.enqueued.is_some() && self.metrics.is_some() {
            // One clock read serves CoDel's decision and the histogram.
            self.record_sojourn(slot.enqueued, now);
        }
        self.debug_check();
        Fast::Got(slot.msg)
    }

    /// Offers a message on `lane` under the policy. `waker` is `None` for `try_send`
    /// (which never waits); a sender that must wait is parked with it. `permit`: the
    /// message comes with a permit (see [`reserve`](Self::reserve)), which is used
    /// up here: it never waits and, where permits hold a place, always has one.
    pub(crate) fn offer(
        &mut self,
        slot: Slot<T>,
        lane: Lane,
        waker: Option<&Waker>,
        permit: bool,
        fx: &mut Effects<T>,
    ) -> Push<T> {
        if permit {
            self.reserved -= 1;
        }
        let out = self.offer_unchecked(slot, lane, waker, permit, fx);
        if permit && self.behaviour.when_full == WhenFull::Wait {
            // A permit that ended without using its place (coalesced, closed) frees it.
            self.fill_from_waiting(fx);
        }
        self.watch_depth(fx);
        self.debug_check();
        out
    }

    fn offer_unchecked(
        &mut self,
        slot: Slot<T>,
        lane: Lane,
        waker: Option<&Waker>,
        permit: bool,
        fx: &mut Effects<T>,
    ) -> Push<T> {
        let coalescing = self.behaviour.coalesces && lane == Lane::Normal && slot.key.is_some();
        // Fast path: open, room, nobody waiting, nothing to coalesce with.
        if !self.closed
            && lane != Lane::Control
            && self.waiting.is_empty()
            && !self.is_full()
            && !coalescing
        {
            self.push_on(lane, slot, fx);
            return Push::Accepted;
        }
        if self.closed {
            self.count_sent();
            self.count(Outcome::Closed);
            return Push::Closed(slot);
        }
        if lane == Lane::Control {
            // Outside the policy: no capacity, no waiting, nothing dropped.
            self.push_on(Lane::Control, slot, fx);
            return Push::Accepted;
        }
        // A keyed message replaces the queued one with its key, unless a sender with
        // that key is still waiting: its older content must not land after this newer
        // one, so the newcomer queues behind it instead; a permit's message cannot
        // wait, so those senders are let in first, through the permit's place.
        let slot = if coalescing {
            if permit && self.key_waits(&slot) {
                self.admit_same_key(&slot, fx);
            }
            if self.key_waits(&slot) {
                slot
            } else {
                match self.try_coalesce(slot, fx) {
                    Ok(()) => return Push::Accepted,
                    Err(slot) => slot,
                }
            }
        } else {
            slot
        };
        if permit && matches!(self.behaviour.when_full, WhenFull::Wait | WhenFull::Refuse) {
            // The permit's place: ahead of waiting senders, whatever a live policy
            // change did to the capacity.
            self.push_on(lane, slot, fx);
            return Push::Accepted;
        }
        if !self.waiting.is_empty() && !self.is_full() {
            // Room freed by the purge of an expired coalesce target: waiters go first.
            self.fill_from_waiting(fx);
        }
        if !self.is_full() && self.waiting.is_empty() {
            self.push_on(lane, slot, fx);
            return Push::Accepted;
        }
        // Full (or others wait first): expired messages free room before the policy acts.
        if self.with_deadline > 0 {
            self.purge_expired(self.now(), fx);
            if !self.is_full() {
                self.fill_from_waiting(fx);
                if !self.is_full() && self.waiting.is_empty() {
                    self.push_on(lane, slot, fx);
                    return Push::Accepted;
                }
            }
        }
        match self.behaviour.when_full {
            WhenFull::Grow => {
                self.push_on(lane, slot, fx);
                Push::Accepted
            }
            WhenFull::EvictOldest => {
                if self.evict_lowest_for(lane, fx) {
                    self.push_on(lane, slot, fx);
                } else {
                    // Every queued message outranks the newcomer: it is the one to go.
                    self.count_sent();
                    self.evict_on(lane, slot, Eviction::DroppedOldest, fx);
                }
                Push::Accepted
            }
            WhenFull::Refuse => {
                self.count_sent();
                self.count(Outcome::Rejected);
                Push::Full(slot)
            }
            WhenFull::Wait => {
                if let Some(waker) = waker {
                    let cell = self.wait_cell();
                    self.waiting.push_back(Waiting {
                        cell: cell.clone(),
                        slot: Some(slot),
                        lane,
                        waker: waker.clone(),
                    });
                    Push::Parked(cell)
                } else {
                    self.count_sent();
                    self.count(Outcome::Rejected);
                    Push::Full(slot)
                }
            }
        }
    }

    /// Asks for a permit: a place held for a message not built yet (see
    /// `permit.rs`). Granted at once under `unbounded` and `drop_oldest` (where it
    /// holds no place), and where there is room and nobody waits; otherwise `Full`
    /// under a refusing policy, or parked (`waker`) in the FIFO of waiting senders.
    pub(crate) fn reserve(&mut self, waker: Option<&Waker>, fx: &mut Effects<T>) -> Reserve<T> {
        let out = self.reserve_unchecked(waker, fx);
        self.watch_depth(fx);
        self.debug_check();
        out
    }

    fn reserve_unchecked(&mut self, waker: Option<&Waker>, fx: &mut Effects<T>) -> Reserve<T> {
        if self.closed {
            return Reserve::Closed;
        }
        if self.waiting.is_empty() && !self.is_full() {
            self.reserved += 1;
            return Reserve::Granted;
        }
        if self.with_deadline > 0 {
            self.purge_expired(self.now(), fx);
            self.fill_from_waiting(fx);
            if self.waiting.is_empty() && !self.is_full() {
                self.reserved += 1;
                return Reserve::Granted;
            }
        }
        match (self.behaviour.when_full, waker) {
            (WhenFull::Grow | WhenFull::EvictOldest, _) => {
                self.reserved += 1;
                Reserve::Granted
            }
            (WhenFull::Wait, Some(waker)) => {
                let cell = self.wait_cell();
                self.waiting.push_back(Waiting {
                    cell: cell.clone(),
                    slot: None,
                    lane: Lane::Normal,
                    waker: waker.clone(),
                });
                Reserve::Parked(cell)
            }
            (WhenFull::Refuse | WhenFull::Wait, _) => Reserve::Full,
        }
    }

    /// A permit is dropped unused: its place goes to the first waiting sender.
    pub(crate) fn release_permit(&mut self, fx: &mut Effects<T>) {
        self.reserved -= 1;
        self.fill_from_waiting(fx);
        self.watch_depth(fx);
        self.debug_check();
    }

    /// Takes the next deliverable message, applying expiry and CoDel at dequeue, and
    /// records its sojourn when it was stamped and metrics are on.
    pub(crate) fn take(&mut self, fx: &mut Effects<T>) -> Option<T> {
        let out = self.take_unchecked(fx);
        self.watch_depth(fx);
        self.debug_check();
        let (msg, sojourn) = out?;
        if let (Some(m), Some(s)) = (&self.metrics, sojourn) {
            m.sojourn.record(s.as_secs_f64());
        }
        Some(msg)
    }

    /// Builds the slot for a message about to be offered.
    /// A control-lane message keeps neither key nor deadline (neither applies there).
    pub(crate) fn make_slot(&mut self, msg: T, meta: super::Meta) -> Slot<T> {
        let (key, deadline) = match meta.lane {
            Lane::Control => (None, None),
            _ => (meta.key, meta.deadline),
        };
        let deadline = deadline.map_or(Stamp::NONE, |d| self.stamp(d));
        let enqueued = if self.stamp_next() {
            self.stamp(Instant::now())
        } else {
            Stamp::NONE
        };
        Slot {
            msg,
            key,
            deadline,
            enqueued,
        }
    }

    /// How long a sender may wait for space under the policy (`block`'s `send_timeout`).
    pub(crate) fn send_timeout(&self) -> Option<Duration> {
        match self.policy {
            Policy::Block { send_timeout, .. } => send_timeout,
            _ => None,
        }
    }

    /// A sender handle was cloned.
    pub(crate) fn add_sender(&mut self) {
        self.senders += 1;
    }

    /// A sender handle was dropped; the receiver's waker when it was the last one,
    /// so the receiver sees the end.
    pub(crate) fn drop_sender(&mut self) -> Option<Waker> {
        self.senders -= 1;
        if self.senders == 0 {
            self.rx_waker.take()
        } else {
            None
        }
    }

    /// Whether the receiver has seen everything it will get: closed, or every sender
    /// gone (the caller checks that nothing is queued).
    pub(crate) fn ended(&self) -> bool {
        self.closed || self.senders == 0
    }

    /// Whether the mailbox refuses new messages.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// The receiver waits: it is woken by the next push, a close or the last sender's drop.
    /// A queue found empty then gives its buffer back if it has grown past
    /// [`IDLE_SLOTS`] (a burst is over), so a mailbox that waits holds no more than
    /// that many slots, and the box of the other lanes once they are empty.
    pub(crate) fn park_receiver(&mut self, waker: &Waker) {
        if self.queue.is_empty() && self.queue.capacity() > IDLE_SLOTS {
            self.queue = VecDeque::new();
        }
        // The other lanes' box goes too once they are empty; the next message on
        // one of them allocates it again.
        if self.others == 0 && self.lanes.is_some() {
            self.lanes = None;
        }
        match &self.rx_waker {
            Some(w) if w.will_wake(waker) => {}
            _ => self.rx_waker = Some(waker.clone()),
        }
    }

    /// The waker of a receiver that waits (registered by its last pending poll).
    pub(crate) fn rx_waker(&self) -> Option<&Waker> {
        self.rx_waker.as_ref()
    }

    /// Records how long a sender waited for space (metrics on only).
    pub(crate) fn record_send_wait(&self, waited: Duration) {
        if let Some(m) = &self.metrics {
            m.send_wait.record(waited.as_secs_f64());
        }
    }

    /// Publishes the counts and depth to the metrics, if on (see `metrics.rs`:
    /// every [`FLUSH_EVERY`](super::metrics::FLUSH_EVERY)-th message of an outcome,
    /// every `Stats` snapshot, `flush_all`). Out of line: most messages only test
    /// whether it is due.
    #[cold]
    #[inline(never)]
    pub(crate) fn flush_metrics(&self) {
        self.flush_metrics_with(0);
    }

    /// [`flush_metrics`](Self::flush_metrics) with `ring` more messages queued in
    /// the fast path's ring (whose counts have just been folded in).
    #[cold]
    #[inline(never)]
    pub(crate) fn flush_metrics_with(&self, ring: usize) {
        if let Some(m) = &self.metrics {
            m.flush(&self.counts.by_outcome, self.len() + ring);
        }
    }

    /// Takes in what the fast path's ring delivered, refused and evicted since the
    /// last fold (see `FastPath::fold`): counted here as sent and as their outcome,
    /// as if they had passed through the core, so the identity holds and the next
    /// publication carries them.
    pub(crate) fn fold_fast(&mut self, delivered: u64, rejected: u64, dropped_oldest: u64) {
        self.counts.by_outcome[Outcome::Delivered.index()] += delivered;
        self.counts.by_outcome[Outcome::Rejected.index()] += rejected;
        self.counts.by_outcome[Outcome::DroppedOldest.index()] += dropped_oldest;
        self.counts.sent += delivered + rejected + dropped_oldest;
    }

    /// Takes this mailbox's series out of the metrics (the receiver is gone).
    pub(crate) fn retire_metrics(&self) {
        if let Some(m) = &self.metrics {
            m.retire(&self.counts.by_outcome, self.len());
        }
    }

    fn take_unchecked(&mut self, fx: &mut Effects<T>) -> Option<(T, Option<Duration>)> {
        loop {
            let out = self.take_one(fx);
            if !self.waiting.is_empty() {
                self.fill_from_waiting(fx);
            }
            // Expiry or shedding may have emptied the queue and let a waiting sender
            // in: take that one now, or the receiver would sleep on a non-empty queue.
            if out.is_some() || self.len() == 0 {
                return out;
            }
        }
    }

    fn take_one(&mut self, fx: &mut Effects<T>) -> Option<(T, Option<Duration>)> {
        let needs_now = self.with_deadline > 0 || self.stamp;
        // The reading `take_fast` handed over in this lock hold, if any (the same
        // instant, back from its stamp: stamps are exact nanoseconds since `base`).
        let stashed = std::mem::take(&mut self.read_at);
        let now_instant = needs_now.then(|| match stashed.is_some() {
            true => self.base + Duration::from_nanos(stashed.0 - 1),
            false => Instant::now(),
        });
        let now = now_instant.map(|at| self.stamp(at));
        loop {
            let Some((slot, lane)) = self.pop_next() else {
                self.codel.on_empty();
                break None;
            };
            if lane == Lane::Control {
                // Outside the policy: no expiry, no shedding.
                self.count(Outcome::Delivered);
                let sojourn = slot.enqueued.is_some().then(|| {
                    let now = now.unwrap_or_else(|| self.now());
                    Duration::from_nanos(now.0.saturating_sub(slot.enqueued.0))
                });
                break Some((slot.msg, sojourn));
            }
            if let (true, Some(now)) = (slot.deadline.is_some(), now) {
                if slot.deadline <= now {
                    self.evict_on(lane, slot, Eviction::Expired, fx);
                    continue;
                }
            }
            // A sampled stamp without CoDel or deadlines reads the clock only here.
            let sojourn = slot.enqueued.is_some().then(|| {
                let now = now.unwrap_or_else(|| self.now());
                Duration::from_nanos(now.0.saturating_sub(slot.enqueued.0))
            });
            if let (Some((target, interval)), Some(now)) = (self.behaviour.codel, now_instant) {
                let standing = self.bounded_len() > 0;
                if self.codel.should_shed(
                    now,
                    sojourn.unwrap_or_default(),
                    standing,
                    target,
                    interval,
                ) {
                    self.evict_on(lane, slot, Eviction::Shed, fx);
                    continue;
                }
            }
            self.count(Outcome::Delivered);
            break Some((slot.msg, sojourn));
        }
    }
}

#[cfg(all(test, not(sluicegate_loom)))]
mod tests {
    use super::*;
    use futures_util::task::noop_waker_ref;

    fn core() -> Core<u32> {
        Core::new(
            Policy::DropNewest { capacity: 1024 },
            "test",
            false,
            None,
            None,
        )
    }

    /// Queues `n` messages, then takes them all.
    fn burst(core: &mut Core<u32>, n: u32) {
        for i in 0..n {
            assert!(core.push_fast(i, Stamp::NONE).is_ok());
        }
        for i in 0..n {
            assert!(matches!(core.take_fast(), Fast::Got(m) if m == i));
        }
        assert!(matches!(core.take_fast(), Fast::Empty));
    }

    /// A dequeue that `take_fast` hands over to `take` after reading the clock is
    /// decided by `take` with that very reading (not a second one), exactly: CoDel's
    /// time above target starts at the reading plus one interval, to the
    /// nanosecond, and no reading is left behind.
    #[tokio::test(start_paused = true)]
    async fn a_dequeue_handed_over_decides_with_the_reading_of_the_fast_check() {
        let (target, interval) = (Duration::from_millis(5), Duration::from_millis(100));
        let mut core: Core<u32> = Core::new(
            Policy::Codel {
                capacity: 16,
                target,
                interval,
            },
            "test",
            false,
            None,
            None,
        );
        for i in 0..3 {
            assert!(core.push_fast(i, Stamp::NONE).is_ok());
        }
        // A standing queue whose head waited past target: not quiet.
        tokio::time::advance(Duration::from_millis(50) + Duration::from_nanos(7)).await;
        let read = Instant::now();
        assert!(matches!(core.take_fast(), Fast::Slow));
        assert_eq!(core.read_at, core.stamp(read), "the reading is handed over");
        // Time moves on before `take` (it cannot under the lock; here it shows
        // which reading `take` used).
        tokio::time::advance(Duration::from_millis(1)).await;
        let mut fx = Effects::default();
        assert_eq!(core.take(&mut fx), Some(0), "the first time above target");
        assert_eq!(core.codel.first_above_time(), Some(read + interval));
        assert!(!core.read_at.is_some());
    }

    #[test]
    fn a_new_mailbox_holds_no_queue_buffer_whatever_its_capacity() {
        assert_eq!(core().queue.capacity(), 0);
    }

    #[test]
    fn a_burst_s_buffer_is_given_back_when_the_receiver_next_waits() {
        let mut core = core();
        burst(&mut core, 100);
        assert!(core.queue.capacity() >= 100, "grown by the burst");
        core.park_receiver(noop_waker_ref());
        assert_eq!(core.queue.capacity(), 0);
        // And it grows again for the next burst, every message accounted for.
        burst(&mut core, 10);
        assert_eq!(core.counts.sent, 110);
    }

    #[test]
    fn the_other_lanes_box_is_given_back_when_they_are_empty_and_the_receiver_waits() {
        let mut core = core();
        let mut fx = Effects::default();
        let slot = |msg| Slot {
            msg,
            key: None,
            deadline: Stamp::NONE,
            enqueued: Stamp::NONE,
        };
        core.push_on(Lane::High, slot(1), &mut fx);
        core.park_receiver(noop_waker_ref());
        assert!(core.lanes.is_some(), "kept while a message is queued on it");
        assert!(core.pop_lane_front(Lane::High).is_some_and(|s| s.msg == 1));
        core.park_receiver(noop_waker_ref());
        assert!(core.lanes.is_none());
        // A later message on a lane allocates it again.
        core.push_on(Lane::Low, slot(2), &mut fx);
        assert_eq!(core.lane_len(Lane::Low), 1);
    }

    #[test]
    fn a_small_buffer_is_kept_across_waits_so_one_message_at_a_time_never_reallocates() {
        let mut core = core();
        burst(&mut core, 1);
        let kept = core.queue.capacity();
        assert_eq!(kept, 1, "one message at a time needs one slot");
        core.park_receiver(noop_waker_ref());
        assert_eq!(core.queue.capacity(), kept);
    }
}
