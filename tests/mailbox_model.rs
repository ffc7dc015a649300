//! Stateful model test of the mailbox, one proptest per policy: random sequences of
//! send / send_timeout / try_send (on every lane: control, High, Normal, Low) /
//! reserve / try_reserve / reserve_timeout / a permit's send / a dropped permit /
//! try_recv / paused-time advances / live policy changes / cancelled sends and
//! reservations / discard / close, checked step by step against a plain VecDeque
//! model (one queue in arrival order, delivered by lane rank: a different
//! representation from the mailbox's one queue per lane).
//!
//! The model (`Model` below) is written from the documented semantics in
//! `src/mailbox/mod.rs`, not from the implementation. After every step the test checks:
//! the same message (or none) is delivered, every send resolves as the model says (a
//! parked sender is woken before it resolves), the dead-letter handler got exactly the
//! dead letters the model expects, each with the key and deadline it was sent with,
//! every `Stats` field matches, the accounting identity
//! holds (`Stats::is_balanced` and a recomputation here), and the depth never grows
//! while at or above capacity. CoDel's shedding decisions are not modelled exactly: a
//! shed is accepted when RFC 8289's `ok_to_drop` holds for that message (sojourn at
//! least `target` for at least `interval` on a standing queue), so nothing is ever shed
//! below target, and what is shed must be the head the model expects.
//!
//! At the end of every case, each outcome but `delivered` is accounted for message by
//! message: its count equals the dead letters with that reason plus the messages
//! handed back as that outcome (plus merges, for `coalesced`), so every discarded
//! message reached the handler exactly once or its sender.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use sluicegate::mailbox::{
    Builder, DeadLetter, Eviction, Key, Lane, Meta, Outcome, OwnedPermit, Policy, ReserveError,
    SendError, Stats, TryRecvError, TrySendError,
};
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------------
// Operations and their generators
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Unbounded,
    DropNewest,
    DropOldest,
    Block,
    BlockTimeout,
    Codel,
    Coalesce,
}

#[derive(Clone, Copy, Debug)]
enum SendKind {
    /// `send_with`: follows the policy, may wait (up to the policy's send_timeout).
    Send,
    /// `send_timeout_with` with this many milliseconds.
    Timeout(u64),
    /// `try_send_with`: never waits.
    Try,
}

#[derive(Clone, Debug)]
enum Op {
    /// A send with an optional coalescing key and time-to-live (deadline = now + ttl),
    /// on a lane.
    Send {
        kind: SendKind,
        key: Option<u8>,
        ttl: Option<u64>,
        lane: Lane,
    },
    /// `reserve_owned` (`Send`: waits as the policy says), `try_reserve`, or a
    /// reservation raced by a timer of this many milliseconds.
    Reserve(SendKind),
    /// The n-th (mod count) held permit sends a message.
    PermitSend {
        n: usize,
        key: Option<u8>,
        ttl: Option<u64>,
        lane: Lane,
    },
    /// The n-th (mod count) held permit is dropped unused.
    PermitDrop(usize),
    /// `try_recv`.
    Recv,
    /// `poll_recv` once with a recording waker: when it is pending, the receiver must
    /// be woken as soon as a message is queued.
    PollRecv,
    /// `tokio::time::advance` by this many milliseconds.
    Advance(u64),
    /// `set_policy` on the live mailbox (resize or switch).
    SetPolicy(Policy),
    /// Drop the future of the n-th (mod count) still-waiting send or reservation.
    Cancel(usize),
    /// `discard_queued`.
    Discard,
    /// `close` on the receiver.
    Close,
}

fn policy_of(kind: Kind) -> BoxedStrategy<Policy> {
    let cap = 1usize..=4;
    match kind {
        Kind::Unbounded => Just(Policy::Unbounded).boxed(),
        Kind::DropNewest => cap
            .prop_map(|capacity| Policy::DropNewest { capacity })
            .boxed(),
        Kind::DropOldest => cap
            .prop_map(|capacity| Policy::DropOldest { capacity })
            .boxed(),
        Kind::Block => cap
            .prop_map(|capacity| Policy::Block {
                capacity,
                send_timeout: None,
            })
            .boxed(),
        Kind::BlockTimeout => (cap, 1u64..=40)
            .prop_map(|(capacity, t)| Policy::Block {
                capacity,
                send_timeout: Some(ms(t)),
            })
            .boxed(),
        Kind::Codel => (cap, 1u64..=8, 0u64..=24)
            .prop_map(|(capacity, t, extra)| Policy::Codel {
                capacity,
                target: ms(t),
                interval: ms(t + extra),
            })
            .boxed(),
        Kind::Coalesce => cap
            .prop_map(|capacity| Policy::Coalesce { capacity })
            .boxed(),
    }
}

fn any_policy() -> BoxedStrategy<Policy> {
    prop_oneof![
        policy_of(Kind::Unbounded),
        policy_of(Kind::DropNewest),
        policy_of(Kind::DropOldest),
        policy_of(Kind::Block),
        policy_of(Kind::BlockTimeout),
        policy_of(Kind::Codel),
        policy_of(Kind::Coalesce),
    ]
    .boxed()
}

fn op(kind: Kind) -> impl Strategy<Value = Op> {
    let send_kind = prop_oneof![
        3 => Just(SendKind::Send),
        1 => (1u64..=40).prop_map(SendKind::Timeout),
        2 => Just(SendKind::Try),
    ];
    let lane = prop_oneof![
        8 => Just(Lane::Normal),
        1 => Just(Lane::High),
        1 => Just(Lane::Low),
        1 => Just(Lane::Control),
    ];
    let send = (
        send_kind.clone(),
        proptest::option::of(0u8..3),
        proptest::option::weighted(0.3, 0u64..=40),
        lane.clone(),
    )
        .prop_map(|(kind, key, ttl, lane)| Op::Send {
            kind,
            key,
            ttl,
            lane,
        });
    let permit_send = (
        any::<usize>(),
        proptest::option::of(0u8..3),
        proptest::option::weighted(0.3, 0u64..=40),
        lane,
    )
        .prop_map(|(n, key, ttl, lane)| Op::PermitSend { n, key, ttl, lane });
    prop_oneof![
        12 => send,
        2 => send_kind.prop_map(Op::Reserve),
        2 => permit_send,
        1 => any::<usize>().prop_map(Op::PermitDrop),
        5 => Just(Op::Recv),
        3 => Just(Op::PollRecv),
        4 => (0u64..=25).prop_map(Op::Advance),
        2 => prop_oneof![3 => policy_of(kind), 1 => any_policy()].prop_map(Op::SetPolicy),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => Just(Op::Discard),
        1 => Just(Op::Close),
    ]
}

// ---------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------

/// Delivery rank of a lane: higher first.
fn rank(lane: Lane) -> u8 {
    match lane {
        Lane::Control => 3,
        Lane::High => 2,
        Lane::Normal => 1,
        _ => 0,
    }
}

#[derive(Clone, Debug)]
struct MSlot {
    id: u64,
    key: Option<u8>,
    deadline: Option<Instant>,
    /// Enqueue stamp (only when the mailbox stamps: metrics on, or CoDel ever in force).
    enq: Option<Instant>,
    lane: Lane,
}

impl MSlot {
    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }
}

/// A parked send (`slot` is its message) or reservation (`slot` is `None`).
#[derive(Debug)]
struct MWaiter {
    id: u64,
    slot: Option<MSlot>,
    timeout_at: Option<Instant>,
}

/// How a parked send or reservation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Res {
    Accepted,
    Rejected,
    TimedOut,
    Closed,
}

/// What a send or reservation sees at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offer {
    Accepted,
    Full,
    Closed,
    Parked,
}

#[derive(Clone, Debug, Default)]
struct Counts {
    sent: u64,
    delivered: u64,
    rejected: u64,
    timed_out: u64,
    dropped_oldest: u64,
    shed: u64,
    coalesced: u64,
    expired: u64,
    closed: u64,
    discarded: u64,
}

struct Model {
    policy: Policy,
    /// Every queued message, in arrival order (delivery picks by lane rank).
    queue: VecDeque<MSlot>,
    /// Parked senders and reservations, FIFO.
    waiting: VecDeque<MWaiter>,
    /// Permits out.
    reserved: usize,
    /// Permits out at the last live policy change.
    grace: usize,
    /// Parked reservations granted (by id).
    reserved_ids: HashSet<u64>,
    closed: bool,
    stamp: bool,
    c: Counts,
    peak: usize,
    /// Evictions expected from the current step.
    evicted: Vec<(u64, Eviction)>,
    /// Parked sends and reservations resolved by the current step.
    resolved: Vec<(u64, Res)>,
    /// RFC 8289 `first_above_time`, to judge the mailbox's CoDel sheds.
    first_above: Option<Instant>,
    /// Whether a coalesce hook merges a replaced message into its replacement
    /// (instead of evicting it).
    merge: bool,
    /// (old, new) merges expected from the current step.
    merged: Vec<(u64, u64)>,
    /// Every sender handle is gone.
    senders_gone: bool,
}

impl Model {
    fn new(policy: Policy, metrics: bool, merge: bool) -> Self {
        Model {
            stamp: metrics || matches!(policy, Policy::Codel { .. }),
            policy,
            queue: VecDeque::new(),
            waiting: VecDeque::new(),
            reserved: 0,
            grace: 0,
            reserved_ids: HashSet::new(),
            closed: false,
            c: Counts::default(),
            peak: 0,
            evicted: Vec::new(),
            resolved: Vec::new(),
            first_above: None,
            merge,
            merged: Vec::new(),
            senders_gone: false,
        }
    }

    fn cap(&self) -> usize {
        self.policy.capacity().unwrap_or(usize::MAX)
    }

    /// Queued messages the capacity applies to (all but the control lane's).
    fn bounded(&self) -> usize {
        self.queue
            .iter()
            .filter(|s| s.lane != Lane::Control)
            .count()
    }

    fn control(&self) -> usize {
        self.queue.len() - self.bounded()
    }

    /// Whether permits hold a place under the policy in force.
    fn permits_hold(&self) -> bool {
        matches!(
            self.policy,
            Policy::Block { .. }
                | Policy::Coalesce { .. }
                | Policy::DropNewest { .. }
                | Policy::Codel { .. }
        )
    }

    fn held(&self) -> usize {
        if self.permits_hold() {
            self.reserved
        } else {
            0
        }
    }

    fn full(&self) -> bool {
        self.bounded() + self.held() >= self.cap()
    }

    fn waits(&self) -> bool {
        matches!(self.policy, Policy::Block { .. } | Policy::Coalesce { .. })
    }

    fn coalescing(&self) -> bool {
        matches!(self.policy, Policy::Coalesce { .. })
    }

    fn push(&mut self, s: MSlot) {
        self.queue.push_back(s);
        self.c.sent += 1;
        self.peak = self.peak.max(self.queue.len());
    }

    fn evict(&mut self, s: MSlot, why: Eviction) {
        match why {
            Eviction::DroppedOldest => self.c.dropped_oldest += 1,
            Eviction::Shed => self.c.shed += 1,
            Eviction::Coalesced => self.c.coalesced += 1,
            Eviction::Expired => self.c.expired += 1,
            Eviction::Rejected => self.c.rejected += 1,
            Eviction::Discarded => self.c.discarded += 1,
            other => panic!("the model does not know eviction {other:?}"),
        }
        self.evicted.push((s.id, why));
    }

    /// A parked send or reservation ends; a reservation has no message to count.
    fn resolve(&mut self, w: MWaiter, res: Res) {
        if w.slot.is_some() {
            match res {
                Res::Accepted => {}
                Res::Rejected => {
                    self.c.sent += 1;
                    self.c.rejected += 1;
                }
                Res::TimedOut => {
                    self.c.sent += 1;
                    self.c.timed_out += 1;
                }
                Res::Closed => {
                    self.c.sent += 1;
                    self.c.closed += 1;
                }
            }
        } else if res == Res::Accepted {
            self.reserved += 1;
            self.reserved_ids.insert(w.id);
        }
        self.resolved.push((w.id, res));
    }

    /// Takes every expired message out of the queue.
    fn purge(&mut self, now: Instant) {
        let (expired, kept): (Vec<MSlot>, Vec<MSlot>) =
            self.queue.drain(..).partition(|s| s.expired(now));
        self.queue = kept.into();
        for s in expired {
            self.evict(s, Eviction::Expired);
        }
    }

    /// Index of the oldest queued message of `lane`, and of the newest.
    fn first_of(&self, lane: Lane) -> Option<usize> {
        self.queue.iter().position(|s| s.lane == lane)
    }

    fn last_of(&self, lane: Lane) -> Option<usize> {
        self.queue.iter().rposition(|s| s.lane == lane)
    }

    /// The lowest priority queued (the control lane aside).
    fn lowest(&self) -> Option<Lane> {
        [Lane::Low, Lane::Normal, Lane::High]
            .into_iter()
            .find(|&l| self.first_of(l).is_some())
    }

    /// drop_oldest makes room for `s`: the oldest of the lowest priority goes,
    /// counting the newcomer.
    fn evict_for(&mut self, s: MSlot) {
        match self.lowest() {
            Some(low) if rank(s.lane) < rank(low) => {
                self.c.sent += 1;
                self.evict(s, Eviction::DroppedOldest);
            }
            Some(low) => {
                let i = self.first_of(low).unwrap();
                let oldest = self.queue.remove(i).unwrap();
                self.evict(oldest, Eviction::DroppedOldest);
                self.push(s);
            }
            None => self.push(s),
        }
    }

    /// Coalesce: the queued normal-lane message with the same key takes the new
    /// content and keeps its place. Gives the slot back when no such message is
    /// queued, or when that message's deadline has passed (it is expired, never
    /// replaced: every expired message is purged then, which frees room).
    fn coalesce(&mut self, s: MSlot, now: Instant) -> Option<MSlot> {
        let Some(key) = s.key else { return Some(s) };
        let Some(i) = self
            .queue
            .iter()
            .rposition(|q| q.key == Some(key) && q.lane == Lane::Normal)
        else {
            return Some(s);
        };
        if self.queue[i].expired(now) {
            self.purge(now);
            return Some(s);
        }
        let old = self.queue[i].id;
        self.queue[i].id = s.id;
        self.queue[i].deadline = s.deadline;
        self.c.sent += 1;
        self.c.coalesced += 1;
        if self.merge {
            self.merged.push((old, s.id));
        } else {
            self.evicted.push((old, Eviction::Coalesced));
        }
        None
    }

    fn same_key_waits(&self, s: &MSlot) -> bool {
        s.key.is_some()
            && self.waiting.iter().any(|w| {
                w.slot
                    .as_ref()
                    .is_some_and(|p| p.key == s.key && p.lane == Lane::Normal)
            })
    }

    /// Lets parked senders and reservations in, oldest first, while the policy has
    /// room for them.
    fn fill(&mut self, now: Instant) {
        while let Some(front) = self.waiting.front() {
            let keyed_match = self.coalescing()
                && front.slot.as_ref().is_some_and(|f| {
                    f.key.is_some()
                        && f.lane == Lane::Normal
                        && self
                            .queue
                            .iter()
                            .any(|q| q.key == f.key && q.lane == Lane::Normal)
                });
            let fits = !self.full()
                || matches!(self.policy, Policy::Unbounded | Policy::DropOldest { .. })
                || keyed_match;
            if !fits {
                break;
            }
            let w = self.waiting.pop_front().unwrap();
            if let Some(slot) = w.slot.clone() {
                let slot = if self.coalescing() && slot.lane == Lane::Normal {
                    self.coalesce(slot, now)
                } else {
                    Some(slot)
                };
                if let Some(s) = slot {
                    if self.full() {
                        self.evict_for(s);
                    } else {
                        self.push(s);
                    }
                }
            }
            self.resolve(w, Res::Accepted);
        }
    }

    /// Every parked send with `s`'s key goes in first, through the permit's place.
    fn admit_same_key(&mut self, s: &MSlot, now: Instant) {
        while let Some(pos) = self.waiting.iter().position(|w| {
            w.slot
                .as_ref()
                .is_some_and(|p| p.key == s.key && p.lane == Lane::Normal)
        }) {
            let w = self.waiting.remove(pos).unwrap();
            let parked = w.slot.clone().unwrap();
            if let Some(p) = self.coalesce(parked, now) {
                self.push(p);
            }
            self.resolve(w, Res::Accepted);
        }
    }

    /// A send (`permit`: with a permit, which it uses up).
    fn offer(
        &mut self,
        s: MSlot,
        may_wait: bool,
        now: Instant,
        timeout_at: Option<Instant>,
        permit: bool,
    ) -> Offer {
        if permit {
            self.reserved -= 1;
        }
        let out = self.offer_inner(s, may_wait, now, timeout_at, permit);
        if permit && self.waits() {
            self.fill(now);
        }
        out
    }

    fn offer_inner(
        &mut self,
        s: MSlot,
        may_wait: bool,
        now: Instant,
        timeout_at: Option<Instant>,
        permit: bool,
    ) -> Offer {
        if self.closed {
            self.c.sent += 1;
            self.c.closed += 1;
            return Offer::Closed;
        }
        if s.lane == Lane::Control {
            self.push(s);
            return Offer::Accepted;
        }
        // A parked sender with the same key goes first: the newer content must not
        // be overtaken by the older one.
        let s = if self.coalescing() && s.lane == Lane::Normal && s.key.is_some() {
            if permit && self.same_key_waits(&s) {
                self.admit_same_key(&s, now);
            }
            if self.same_key_waits(&s) {
                s
            } else {
                match self.coalesce(s, now) {
                    None => return Offer::Accepted,
                    Some(s) => s,
                }
            }
        } else {
            s
        };
        if permit && self.permits_hold() {
            self.push(s);
            return Offer::Accepted;
        }
        if !self.waiting.is_empty() && !self.full() {
            self.fill(now);
        }
        if !self.full() && self.waiting.is_empty() {
            self.push(s);
            return Offer::Accepted;
        }
        // Full: expired messages make room before the policy acts.
        if self.queue.iter().any(|q| q.deadline.is_some()) {
            self.purge(now);
            if !self.full() {
                self.fill(now);
                if !self.full() && self.waiting.is_empty() {
                    self.push(s);
                    return Offer::Accepted;
                }
            }
        }
        match &self.policy {
            Policy::Unbounded => {
                self.push(s);
                Offer::Accepted
            }
            Policy::DropOldest { .. } => {
                self.evict_for(s);
                Offer::Accepted
            }
            Policy::DropNewest { .. } | Policy::Codel { .. } => {
                self.c.sent += 1;
                self.c.rejected += 1;
                Offer::Full
            }
            Policy::Block { .. } | Policy::Coalesce { .. } => {
                if may_wait {
                    self.waiting.push_back(MWaiter {
                        id: s.id,
                        slot: Some(s),
                        timeout_at,
                    });
                    Offer::Parked
                } else {
                    self.c.sent += 1;
                    self.c.rejected += 1;
                    Offer::Full
                }
            }
            other => panic!("the model does not know policy {other}"),
        }
    }

    /// A reservation: a place held for a message not built yet.
    fn reserve(
        &mut self,
        id: u64,
        may_wait: bool,
        now: Instant,
        timeout_at: Option<Instant>,
    ) -> Offer {
        if self.closed {
            return Offer::Closed;
        }
        if self.waiting.is_empty() && !self.full() {
            self.reserved += 1;
            return Offer::Accepted;
        }
        if self.queue.iter().any(|q| q.deadline.is_some()) {
            self.purge(now);
            self.fill(now);
            if self.waiting.is_empty() && !self.full() {
                self.reserved += 1;
                return Offer::Accepted;
            }
        }
        match &self.policy {
            Policy::Unbounded | Policy::DropOldest { .. } => {
                self.reserved += 1;
                Offer::Accepted
            }
            Policy::Block { .. } | Policy::Coalesce { .. } if may_wait => {
                self.waiting.push_back(MWaiter {
                    id,
                    slot: None,
                    timeout_at,
                });
                Offer::Parked
            }
            _ => Offer::Full,
        }
    }

    /// A permit is dropped unused.
    fn release(&mut self, now: Instant) {
        self.reserved -= 1;
        self.fill(now);
    }

    /// Time moved on: parked sends past their timeout give up.
    fn advance(&mut self, now: Instant) {
        let (out, kept): (Vec<MWaiter>, Vec<MWaiter>) = self
            .waiting
            .drain(..)
            .partition(|w| w.timeout_at.is_some_and(|t| t <= now));
        self.waiting = kept.into();
        let reservation_left = out.iter().any(|w| w.slot.is_none());
        for w in out {
            self.resolve(w, Res::TimedOut);
        }
        if reservation_left {
            // A reservation leaving the FIFO lets those behind it in if they fit.
            self.fill(now);
        }
    }

    /// A parked send's or reservation's future was dropped: it leaves without being
    /// counted (a reservation lets those behind it in if they fit).
    fn cancel(&mut self, id: u64, now: Instant) {
        let pos = self
            .waiting
            .iter()
            .position(|w| w.id == id)
            .expect("cancelled wait is parked in the model");
        let w = self.waiting.remove(pos).unwrap();
        if w.slot.is_none() {
            self.fill(now);
        }
    }

    /// A parked future was dropped: cancelled if still parked; if it was resolved
    /// earlier in this step (let in by another cancel), the resolution is dropped
    /// with it, and a granted reservation gives its place back.
    fn cancel_or_forget(&mut self, id: u64, now: Instant) {
        if self.waiting.iter().any(|w| w.id == id) {
            self.cancel(id, now);
            return;
        }
        let pos = self
            .resolved
            .iter()
            .position(|(r, _)| *r == id)
            .expect("a dropped wait is parked or resolved in this step");
        let (_, res) = self.resolved.remove(pos);
        if res == Res::Accepted && self.reserved_ids.remove(&id) {
            self.release(now);
        }
    }

    /// Index of the next message to deliver: the oldest of the highest lane.
    fn next(&self) -> Option<usize> {
        let top = self.queue.iter().map(|s| rank(s.lane)).max()?;
        self.queue.iter().position(|s| rank(s.lane) == top)
    }

    /// `try_recv`: `shed(id)` says whether the mailbox shed that message (CoDel).
    fn take(&mut self, now: Instant, shed: &dyn Fn(u64) -> bool) -> Option<u64> {
        loop {
            let out = self.take_one(now, shed);
            if !self.waiting.is_empty() {
                self.fill(now);
            }
            if out.is_some() || self.queue.is_empty() {
                return out;
            }
        }
    }

    fn take_one(&mut self, now: Instant, shed: &dyn Fn(u64) -> bool) -> Option<u64> {
        loop {
            let Some(i) = self.next() else {
                self.first_above = None;
                return None;
            };
            let s = self.queue.remove(i).unwrap();
            if s.lane == Lane::Control {
                self.c.delivered += 1;
                return Some(s.id);
            }
            if s.expired(now) {
                self.evict(s, Eviction::Expired);
                continue;
            }
            if let Policy::Codel {
                target, interval, ..
            } = self.policy
            {
                let sojourn = s.enq.map(|e| now.saturating_duration_since(e));
                let sojourn = sojourn.unwrap_or_default();
                let standing = self.bounded() > 0;
                // RFC 8289 ok_to_drop.
                let ok = if sojourn < target || !standing {
                    self.first_above = None;
                    false
                } else {
                    match self.first_above {
                        None => {
                            self.first_above = Some(now + interval);
                            false
                        }
                        Some(t) => now >= t,
                    }
                };
                if shed(s.id) {
                    assert!(
                        ok,
                        "CoDel shed message {} with sojourn {sojourn:?} (target {target:?}, \
                         interval {interval:?}, standing {standing}) although ok_to_drop is false",
                        s.id
                    );
                    self.evict(s, Eviction::Shed);
                    continue;
                }
            }
            self.c.delivered += 1;
            return Some(s.id);
        }
    }

    fn close(&mut self) {
        self.closed = true;
        while let Some(w) = self.waiting.pop_front() {
            self.resolve(w, Res::Closed);
        }
    }

    /// Every queued message in delivery order.
    fn drain_in_order(&mut self) -> Vec<MSlot> {
        let mut all: Vec<MSlot> = self.queue.drain(..).collect();
        all.sort_by_key(|s| std::cmp::Reverse(rank(s.lane)));
        all
    }

    fn discard(&mut self, now: Instant) -> Vec<u64> {
        let out: Vec<u64> = self.drain_in_order().iter().map(|s| s.id).collect();
        self.c.discarded += out.len() as u64;
        self.first_above = None;
        self.fill(now);
        out
    }

    /// The receiver is dropped: what is queued becomes dead letters (discarded).
    fn discard_dead(&mut self) {
        for s in self.drain_in_order() {
            self.evict(s, Eviction::Discarded);
        }
    }

    fn set_policy(&mut self, policy: Policy, now: Instant) {
        if matches!(policy, Policy::Codel { .. }) {
            self.stamp = true;
        }
        self.policy = policy;
        self.first_above = None;
        self.grace = self.reserved;
        let cap = self.cap();
        match self.policy {
            Policy::DropOldest { .. } => {
                while self.bounded() > cap {
                    let i = self.first_of(self.lowest().unwrap()).unwrap();
                    let s = self.queue.remove(i).unwrap();
                    self.evict(s, Eviction::DroppedOldest);
                }
            }
            Policy::DropNewest { .. } | Policy::Codel { .. } => {
                while self.bounded() > cap {
                    let i = self.last_of(self.lowest().unwrap()).unwrap();
                    let s = self.queue.remove(i).unwrap();
                    self.evict(s, Eviction::Rejected);
                }
            }
            _ => {}
        }
        self.fill(now);
        if !self.waits() {
            while let Some(w) = self.waiting.pop_front() {
                self.resolve(w, Res::Rejected);
            }
        }
    }

    fn check_stats(&self, s: &Stats) {
        let c = &self.c;
        assert_eq!(s.policy, self.policy);
        assert_eq!(
            (
                s.sent,
                s.delivered,
                s.rejected,
                s.timed_out,
                s.dropped_oldest
            ),
            (
                c.sent,
                c.delivered,
                c.rejected,
                c.timed_out,
                c.dropped_oldest
            ),
            "sent, delivered, rejected, timed_out, dropped_oldest"
        );
        assert_eq!(
            (s.shed, s.coalesced, s.expired, s.closed, s.discarded),
            (c.shed, c.coalesced, c.expired, c.closed, c.discarded),
            "shed, coalesced, expired, closed, discarded"
        );
        assert_eq!(
            (s.depth, s.peak_depth, s.waiting_senders),
            (self.queue.len(), self.peak, self.waiting.len()),
            "depth, peak_depth, waiting_senders"
        );
        assert_eq!(
            (s.reserved, s.control_depth),
            (self.reserved, self.control()),
            "reserved, control_depth"
        );
        assert!(s.is_balanced(), "Stats::is_balanced is false: {s:?}");
        let accounted = s.delivered
            + s.rejected
            + s.timed_out
            + s.dropped_oldest
            + s.shed
            + s.coalesced
            + s.expired
            + s.closed
            + s.discarded
            + s.depth as u64;
        assert_eq!(s.sent, accounted, "accounting identity: {s:?}");
    }
}
// ---------------------------------------------------------------------------------
// The harness: drives the real mailbox and the model side by side
// ---------------------------------------------------------------------------------

/// A waker that records that it was woken.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// How a send or a reservation ended.
#[derive(Debug)]
enum Done {
    Sent(Result<(), SendError<u64>>),
    Reserved(Result<OwnedPermit<u64>, ReserveError>),
}

type SendFut = Pin<Box<dyn Future<Output = Done>>>;

/// A send or reservation that is waiting for space, polled by hand.
struct Parked {
    id: u64,
    fut: SendFut,
    flag: Arc<Flag>,
}

fn poll_once(fut: &mut SendFut, flag: &Arc<Flag>) -> Poll<Done> {
    flag.0.store(false, Ordering::SeqCst);
    let waker = Waker::from(flag.clone());
    fut.as_mut().poll(&mut Context::from_waker(&waker))
}

/// A message's meta and its model slot (the control lane keeps neither key nor
/// deadline: the mailbox drops them).
fn message(
    id: u64,
    key: Option<u8>,
    ttl: Option<u64>,
    lane: Lane,
    now: Instant,
    stamp: bool,
) -> (Meta, MSlot) {
    let deadline = ttl.map(|t| now + ms(t));
    let meta = Meta {
        key: key.map(|k| Key::from(u64::from(k))),
        deadline,
        lane,
    };
    let control = lane == Lane::Control;
    let slot = MSlot {
        id,
        key: if control { None } else { key },
        deadline: if control { None } else { deadline },
        enq: stamp.then_some(now),
        lane,
    };
    (meta, slot)
}

fn run_case(policy: Policy, metrics: bool, merge: bool, drop_senders_at_end: bool, ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(run(policy, metrics, merge, drop_senders_at_end, ops));
}

async fn run(policy: Policy, metrics: bool, merge: bool, drop_senders_at_end: bool, ops: Vec<Op>) {
    let log: Arc<Mutex<Vec<(u64, Eviction)>>> = Arc::default();
    let metas: Arc<Mutex<Vec<(u64, Meta)>>> = Arc::default();
    let merges: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let (l, lm) = (log.clone(), metas.clone());
    let mut builder =
        Builder::new(policy.clone())
            .metrics(metrics)
            .dead_letters(move |d: DeadLetter<u64>| {
                assert_eq!(d.role, "mailbox");
                l.lock().unwrap().push((d.message, d.reason));
                lm.lock().unwrap().push((d.message, d.meta));
            });
    // What each message was sent with, and every message handed back or merged, by
    // outcome: with the dead letters, they must account for every outcome at the end.
    let mut sent_meta: HashMap<u64, (Option<Key>, Option<Instant>, Lane)> = HashMap::new();
    let mut handed_back: HashMap<Outcome, u64> = HashMap::new();
    let mut dead_total: HashMap<Outcome, u64> = HashMap::new();
    let mut merged_total = 0u64;
    if merge {
        let mg = merges.clone();
        builder =
            builder.on_coalesce(move |old, new: &mut u64| mg.lock().unwrap().push((old, *new)));
    }
    let (tx, rx) = builder.build().unwrap();
    let monitor = tx.monitor();
    let mut tx = Some(tx);
    let mut rx = Some(rx);
    let mut model = Model::new(policy, metrics, merge);
    // The receiver's recording waker, and whether its last poll was pending.
    let rx_flag = Arc::new(Flag::default());
    let mut rx_pending = false;
    let mut parked: Vec<Parked> = Vec::new();
    // Permits held (each owns a sender handle, as a task's would).
    let mut permits: Vec<OwnedPermit<u64>> = Vec::new();
    let mut next_id = 0u64;
    let mut prev_depth = 0usize;
    let len = ops.len();
    let ops = ops.into_iter().map(Some).chain(std::iter::once(None));
    for (step, op) in ops.enumerate() {
        let now = Instant::now();
        let mut resized = false;
        let mut landed_with_permit = false;
        match (op, rx.as_mut()) {
            (None, Some(rx_end)) if drop_senders_at_end => {
                // The end, first way: every sender goes (parked sends are abandoned);
                // the receiver is woken, drains what is queued, then sees the end.
                for p in parked.drain(..) {
                    let id = p.id;
                    drop(p);
                    model.cancel_or_forget(id, now);
                }
                for p in permits.drain(..) {
                    drop(p);
                    model.release(now);
                }
                drop(tx.take());
                model.senders_gone = true;
                assert!(
                    !rx_pending || rx_flag.0.load(Ordering::SeqCst),
                    "the pending receiver was not woken when the last sender went"
                );
                loop {
                    let got = rx_end.try_recv();
                    let shed: Vec<u64> = log
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(_, why)| *why == Eviction::Shed)
                        .map(|(m, _)| *m)
                        .collect();
                    let want = model
                        .take(now, &|id| shed.contains(&id))
                        .ok_or(TryRecvError::Disconnected);
                    assert_eq!(got, want, "step {step}: try_recv after the senders went");
                    if got.is_err() {
                        break;
                    }
                }
            }
            (None, _) | (Some(_), None) => {
                // The end, second way: drop the receiver; what is queued is discarded
                // and becomes dead letters.
                drop(rx.take());
                model.close();
                model.discard_dead();
            }
            (
                Some(Op::Send {
                    kind,
                    key,
                    ttl,
                    lane,
                }),
                Some(_),
            ) => {
                let id = next_id;
                next_id += 1;
                let (meta, slot) = message(id, key, ttl, lane, now, model.stamp);
                // The control lane keeps neither key nor deadline.
                sent_meta.insert(
                    id,
                    (
                        slot.key.map(|k| Key::from(u64::from(k))),
                        slot.deadline,
                        lane,
                    ),
                );
                if let SendKind::Try = kind {
                    let got = tx.as_ref().unwrap().try_send_with(id, meta);
                    match (model.offer(slot, false, now, None, false), got) {
                        (Offer::Accepted, Ok(())) => {}
                        (Offer::Full, Err(TrySendError::Full(m))) => {
                            assert_eq!(m, id);
                            *handed_back.entry(Outcome::Rejected).or_default() += 1;
                        }
                        (Offer::Closed, Err(TrySendError::Closed(m))) => {
                            assert_eq!(m, id);
                            *handed_back.entry(Outcome::Closed).or_default() += 1;
                        }
                        (want, got) => {
                            panic!("step {step}: try_send {id}: model {want:?}, mailbox {got:?}")
                        }
                    }
                } else {
                    let policy_timeout = match model.policy {
                        Policy::Block { send_timeout, .. } => send_timeout,
                        _ => None,
                    };
                    // Each send future owns a sender handle, as a task would.
                    let sender = tx.as_ref().unwrap().clone();
                    let (mut fut, limit): (SendFut, _) = match kind {
                        SendKind::Timeout(t) => (
                            Box::pin(tokio::task::unconstrained(async move {
                                Done::Sent(sender.send_timeout_with(id, meta, ms(t)).await)
                            })),
                            Some(policy_timeout.map_or(ms(t), |p| p.min(ms(t)))),
                        ),
                        _ => (
                            Box::pin(tokio::task::unconstrained(async move {
                                Done::Sent(sender.send_with(id, meta).await)
                            })),
                            policy_timeout,
                        ),
                    };
                    let flag = Arc::new(Flag::default());
                    let got = poll_once(&mut fut, &flag);
                    match (
                        model.offer(slot, true, now, limit.map(|l| now + l), false),
                        got,
                    ) {
                        (Offer::Accepted, Poll::Ready(Done::Sent(Ok(())))) => {}
                        (Offer::Full, Poll::Ready(Done::Sent(Err(SendError::Rejected(m))))) => {
                            assert_eq!(m, id);
                            *handed_back.entry(Outcome::Rejected).or_default() += 1;
                        }
                        (Offer::Closed, Poll::Ready(Done::Sent(Err(SendError::Closed(m))))) => {
                            assert_eq!(m, id);
                            *handed_back.entry(Outcome::Closed).or_default() += 1;
                        }
                        (Offer::Parked, Poll::Pending) => parked.push(Parked { id, fut, flag }),
                        (want, got) => {
                            panic!("step {step}: send {id}: model {want:?}, mailbox {got:?}")
                        }
                    }
                }
            }
            (Some(Op::Recv), Some(rx)) => {
                let got = rx.try_recv();
                let shed: Vec<u64> = log
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, why)| *why == Eviction::Shed)
                    .map(|(m, _)| *m)
                    .collect();
                let want = model.take(now, &|id| shed.contains(&id));
                let want = match want {
                    Some(id) => Ok(id),
                    None if model.closed || model.senders_gone => Err(TryRecvError::Disconnected),
                    None => Err(TryRecvError::Empty),
                };
                assert_eq!(got, want, "step {step}: try_recv");
            }
            (Some(Op::PollRecv), Some(rx)) => {
                rx_flag.0.store(false, Ordering::SeqCst);
                let waker = Waker::from(rx_flag.clone());
                let mut fut = std::pin::pin!(tokio::task::unconstrained(std::future::poll_fn(
                    |cx| rx.poll_recv(cx)
                )));
                let got = fut.as_mut().poll(&mut Context::from_waker(&waker));
                let shed: Vec<u64> = log
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, why)| *why == Eviction::Shed)
                    .map(|(m, _)| *m)
                    .collect();
                let want = match model.take(now, &|id| shed.contains(&id)) {
                    Some(id) => Poll::Ready(Some(id)),
                    None if model.closed => Poll::Ready(None),
                    None => Poll::Pending,
                };
                assert_eq!(got, want, "step {step}: poll_recv");
                rx_pending = got.is_pending();
            }
            (Some(Op::Advance(d)), Some(_)) => {
                tokio::time::advance(ms(d)).await;
                tokio::task::yield_now().await;
                model.advance(Instant::now());
            }
            (Some(Op::SetPolicy(p)), Some(rx)) => {
                rx.set_policy(p.clone()).unwrap();
                model.set_policy(p, now);
                resized = true;
            }
            (Some(Op::Cancel(n)), Some(_)) => {
                if !parked.is_empty() {
                    let p = parked.remove(n % parked.len());
                    let id = p.id;
                    drop(p);
                    model.cancel_or_forget(id, now);
                }
            }
            (Some(Op::Reserve(kind)), Some(_)) => {
                let id = next_id;
                next_id += 1;
                let sender = tx.as_ref().unwrap().clone();
                if let SendKind::Try = kind {
                    let got = sender.try_reserve_owned();
                    match (model.reserve(id, false, now, None), got) {
                        (Offer::Accepted, Ok(p)) => permits.push(p),
                        (Offer::Full, Err(ReserveError::Full))
                        | (Offer::Closed, Err(ReserveError::Closed)) => {}
                        (want, got) => {
                            panic!("step {step}: try_reserve {id}: model {want:?}, mailbox {got:?}")
                        }
                    }
                } else {
                    let policy_timeout = match model.policy {
                        Policy::Block { send_timeout, .. } => send_timeout,
                        _ => None,
                    };
                    // A caller's own timeout races the reservation: on expiry the
                    // future is dropped (the cancel path), which must act as a timeout.
                    let (mut fut, limit): (SendFut, _) = match kind {
                        SendKind::Timeout(t) => (
                            Box::pin(tokio::task::unconstrained(async move {
                                let r = tokio::time::timeout(ms(t), sender.reserve_owned()).await;
                                Done::Reserved(r.unwrap_or(Err(ReserveError::Timeout)))
                            })),
                            Some(policy_timeout.map_or(ms(t), |p| p.min(ms(t)))),
                        ),
                        _ => (
                            Box::pin(tokio::task::unconstrained(async move {
                                Done::Reserved(sender.reserve_owned().await)
                            })),
                            policy_timeout,
                        ),
                    };
                    let flag = Arc::new(Flag::default());
                    let got = poll_once(&mut fut, &flag);
                    match (model.reserve(id, true, now, limit.map(|l| now + l)), got) {
                        (Offer::Accepted, Poll::Ready(Done::Reserved(Ok(p)))) => permits.push(p),
                        (Offer::Full, Poll::Ready(Done::Reserved(Err(ReserveError::Full))))
                        | (Offer::Closed, Poll::Ready(Done::Reserved(Err(ReserveError::Closed)))) =>
                            {}
                        (Offer::Parked, Poll::Pending) => parked.push(Parked { id, fut, flag }),
                        (want, got) => {
                            panic!("step {step}: reserve {id}: model {want:?}, mailbox {got:?}")
                        }
                    }
                }
            }
            (Some(Op::PermitSend { n, key, ttl, lane }), Some(_)) => {
                if !permits.is_empty() {
                    let permit = permits.remove(n % permits.len());
                    let id = next_id;
                    next_id += 1;
                    let (meta, slot) = message(id, key, ttl, lane, now, model.stamp);
                    sent_meta.insert(
                        id,
                        (
                            slot.key.map(|k| Key::from(u64::from(k))),
                            slot.deadline,
                            lane,
                        ),
                    );
                    let got = permit.send_with(id, meta);
                    landed_with_permit = true;
                    match (model.offer(slot, false, now, None, true), got) {
                        (Offer::Accepted, Ok(_sender)) => {}
                        (Offer::Closed, Err(SendError::Closed(m))) => {
                            assert_eq!(m, id);
                            *handed_back.entry(Outcome::Closed).or_default() += 1;
                        }
                        (want, got) => {
                            panic!("step {step}: permit send {id}: model {want:?}, mailbox {got:?}")
                        }
                    }
                }
            }
            (Some(Op::PermitDrop(n)), Some(_)) => {
                if !permits.is_empty() {
                    drop(permits.remove(n % permits.len()));
                    model.release(now);
                }
            }
            (Some(Op::Discard), Some(rx)) => {
                let got = rx.discard_queued();
                assert_eq!(got, model.discard(now), "step {step}: discard_queued");
                *handed_back.entry(Outcome::Discarded).or_default() += got.len() as u64;
            }
            (Some(Op::Close), Some(rx)) => {
                rx.close();
                model.close();
            }
        }

        // Parked sends: those the model resolved must have been woken and be ready
        // with the model's outcome; the others must still wait.
        let mut resolved: HashMap<u64, Res> = model.resolved.drain(..).collect();
        let mut still = Vec::new();
        for mut p in parked.drain(..) {
            let want = resolved.remove(&p.id);
            let woken = p.flag.0.load(Ordering::SeqCst);
            let got = poll_once(&mut p.fut, &p.flag);
            match (want, got) {
                (None, Poll::Pending) => still.push(p),
                (Some(res), got) => {
                    assert!(
                        woken,
                        "step {step}: send {} resolved ({res:?}) unwoken",
                        p.id
                    );
                    match (res, got) {
                        (Res::Accepted, Poll::Ready(Done::Sent(Ok(())))) => {}
                        (Res::Accepted, Poll::Ready(Done::Reserved(Ok(permit)))) => {
                            permits.push(permit);
                        }
                        (Res::Rejected, Poll::Ready(Done::Reserved(Err(ReserveError::Full))))
                        | (
                            Res::TimedOut,
                            Poll::Ready(Done::Reserved(Err(ReserveError::Timeout))),
                        )
                        | (Res::Closed, Poll::Ready(Done::Reserved(Err(ReserveError::Closed)))) => {
                        }
                        (Res::Rejected, Poll::Ready(Done::Sent(Err(SendError::Rejected(m)))))
                        | (Res::TimedOut, Poll::Ready(Done::Sent(Err(SendError::Timeout(m)))))
                        | (Res::Closed, Poll::Ready(Done::Sent(Err(SendError::Closed(m))))) => {
                            assert_eq!(m, p.id);
                            let outcome = match res {
                                Res::Rejected => Outcome::Rejected,
                                Res::TimedOut => Outcome::TimedOut,
                                _ => Outcome::Closed,
                            };
                            *handed_back.entry(outcome).or_default() += 1;
                        }
                        (res, got) => panic!(
                            "step {step}: parked send {}: model {res:?}, mailbox {got:?}",
                            p.id
                        ),
                    }
                }
                (None, got) => panic!(
                    "step {step}: parked send {} resolved ({got:?}), model says it waits",
                    p.id
                ),
            }
        }
        parked = still;
        assert!(resolved.is_empty(), "step {step}: unmatched {resolved:?}");

        // Evictions: exactly those the model expects (order within a step is free).
        let mut got: Vec<(u64, Eviction)> = std::mem::take(&mut *log.lock().unwrap());
        for (_, why) in &got {
            *dead_total.entry(why.outcome()).or_default() += 1;
        }
        for (id, meta) in std::mem::take(&mut *metas.lock().unwrap()) {
            let want = sent_meta
                .get(&id)
                .expect("a dead letter that was never sent");
            assert_eq!(
                (&meta.key, meta.deadline, meta.lane),
                (&want.0, want.1, want.2),
                "step {step}: dead letter {id} carries the meta it was sent with"
            );
        }
        let mut want = std::mem::take(&mut model.evicted);
        got.sort_by_key(|(m, _)| *m);
        want.sort_by_key(|(m, _)| *m);
        assert_eq!(got, want, "step {step}: evictions");
        let got = std::mem::take(&mut *merges.lock().unwrap());
        merged_total += got.len() as u64;
        let want = std::mem::take(&mut model.merged);
        assert_eq!(got, want, "step {step}: coalesce merges");
        if rx_pending && !model.queue.is_empty() {
            assert!(
                rx_flag.0.load(Ordering::SeqCst),
                "step {step}: a message is queued but the pending receiver was not woken"
            );
        }

        let stats = monitor.stats();
        model.check_stats(&stats);
        let cap = model.cap();
        // The capacity bounds every lane but control, counting the places permits
        // hold; permits out at a live policy change may land over it.
        let bounded = stats.depth - stats.control_depth;
        // Under block and coalesce a shrink keeps what is queued: a permit out at the
        // change still lands on top of it.
        let permit_landed = landed_with_permit && model.grace > 0 && bounded <= prev_depth + 1;
        assert!(
            bounded + model.held() <= cap.saturating_add(model.grace)
                || bounded <= prev_depth
                || permit_landed
                || resized,
            "step {step}: depth {bounded} (+{} held) grew above capacity {cap}",
            model.held()
        );
        assert!(
            stats.waiting_senders == 0 || bounded + model.held() >= cap,
            "step {step}: a sender waits while there is room"
        );
        prev_depth = bounded;
        if step == len {
            break;
        }
    }
    assert!(
        parked.is_empty(),
        "sends still parked after the receiver went"
    );
    // Every message counted under an outcome but `delivered` reached the dead-letter
    // handler or its sender (or the merge hook), exactly once.
    let stats = monitor.stats();
    for outcome in Outcome::ALL {
        if outcome == Outcome::Delivered {
            continue;
        }
        let dead = dead_total.get(&outcome).copied().unwrap_or(0);
        let back = handed_back.get(&outcome).copied().unwrap_or(0);
        let merged = if outcome == Outcome::Coalesced {
            merged_total
        } else {
            0
        };
        assert_eq!(
            stats.get(outcome),
            dead + back + merged,
            "{outcome:?}: {dead} dead letters + {back} handed back + {merged} merged: {stats:?}"
        );
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES=n runs a deeper search.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn unbounded_matches_the_model(
        p in policy_of(Kind::Unbounded), metrics in any::<bool>(), merge in any::<bool>(), drop_senders_at_end in any::<bool>(),
        ops in vec(op(Kind::Unbounded), 1..60),
    ) {
        run_case(p, metrics, merge, drop_senders_at_end, ops);
    }

    #[test]
    fn drop_newest_matches_the_model(
        p in policy_of(Kind::DropNewest), metrics in any::<bool>(), merge in any::<bool>(), drop_senders_at_end in any::<bool>(),
        ops in vec(op(Kind::DropNewest), 1..60),
    ) {
        run_case(p, metrics, merge, drop_senders_at_end, ops);
    }

    #[test]
    fn drop_oldest_matches_the_model(
        p in policy_of(Kind::DropOldest), metrics in any::<bool>(), merge in any::<bool>(), drop_senders_at_end in any::<bool>(),
        ops in vec(op(Kind::DropOldest), 1..60),
    ) {
        run_case(p, metrics, merge, drop_senders_at_end, ops);
    }

    #[test]
    fn block_matches_the_model(
        p in policy_of(Kind::Block), metrics in any::<bool>(), merge in any::<bool>(), drop_senders_at_end in any::<bool>(),
        ops in vec(op(Kind::Block), 1..60),
    ) {
        run_case(p, metrics, merge, drop_senders_at_end, ops);
    }

    #[test]
    fn block_with_send_timeout_matches_the_model(
        p in policy_of(Kind::BlockTimeout), metrics in any::<bool>(), merge in any::<bool>(), drop_senders_at_end in any::<bool>(),
        ops in vec(op(Kind::BlockTimeout), 1..60),
    ) {
        run_case(p, metrics, merge, drop_senders_at_end, ops);
    }

    #[test]
    fn codel_matches_the_model(
        p in policy_of(Kind::Codel), metrics in any::<bool>(), merge in any::<bool>(), drop_senders_at_end in any::<bool>(),
        ops in vec(op(Kind::Codel), 1..60),
    ) {
        run_case(p, metrics, merge, drop_senders_at_end, ops);
    }

    #[test]
    fn coalesce_matches_the_model(
        p in policy_of(Kind::Coalesce), metrics in any::<bool>(), merge in any::<bool>(), drop_senders_at_end in any::<bool>(),
        ops in vec(op(Kind::Coalesce), 1..60),
    ) {
        run_case(p, metrics, merge, drop_senders_at_end, ops);
    }
}
