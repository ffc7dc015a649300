//! Stateful model test of the mailbox, one proptest per policy: random sequences of
//! send / send_timeout / try_send / try_recv / paused-time advances / live policy changes /
//! cancelled sends / discard / close, checked step by step against a plain VecDeque model.
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

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use sluicegate::mailbox::{
    Builder, DeadLetter, Eviction, Key, Meta, Outcome, Policy, SendError, Stats, TryRecvError,
    TrySendError,
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
    /// A send with an optional coalescing key and time-to-live (deadline = now + ttl).
    Send {
        kind: SendKind,
        key: Option<u8>,
        ttl: Option<u64>,
    },
    /// `try_recv`.
    Recv,
    /// `poll_recv` once with a recording waker: when it is pending, the receiver must
    /// be woken as soon as a message is queued.
    PollRecv,
    /// `tokio::time::advance` by this many milliseconds.
    Advance(u64),
    /// `set_policy` on the live mailbox (resize or switch).
    SetPolicy(Policy),
    /// Drop the future of the n-th (mod count) still-waiting send.
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
    let send = (
        send_kind,
        proptest::option::of(0u8..3),
        proptest::option::weighted(0.3, 0u64..=40),
    )
        .prop_map(|(kind, key, ttl)| Op::Send { kind, key, ttl });
    prop_oneof![
        12 => send,
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

#[derive(Clone, Debug)]
struct MSlot {
    id: u64,
    key: Option<u8>,
    deadline: Option<Instant>,
    /// Enqueue stamp (only when the mailbox stamps: metrics on, or CoDel ever in force).
    enq: Option<Instant>,
}

impl MSlot {
    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }
}

#[derive(Debug)]
struct MWaiter {
    slot: MSlot,
    timeout_at: Option<Instant>,
}

/// How a parked send ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Res {
    Accepted,
    Rejected,
    TimedOut,
    Closed,
}

/// What a send sees at once.
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
    queue: VecDeque<MSlot>,
    /// Parked senders, FIFO.
    waiting: VecDeque<MWaiter>,
    closed: bool,
    stamp: bool,
    c: Counts,
    peak: usize,
    /// Evictions expected from the current step.
    evicted: Vec<(u64, Eviction)>,
    /// Parked sends resolved by the current step.
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

    fn full(&self) -> bool {
        self.queue.len() >= self.cap()
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

    fn resolve(&mut self, w: MWaiter, res: Res) {
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
        self.resolved.push((w.slot.id, res));
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

    /// Coalesce: the queued message with the same key takes the new content and keeps
    /// its place. Gives the slot back when no such message is queued, or when that
    /// message's deadline has passed (it is expired, never replaced: every expired
    /// message is purged then, which frees room).
    fn coalesce(&mut self, s: MSlot, now: Instant) -> Option<MSlot> {
        let Some(key) = s.key else { return Some(s) };
        let Some(i) = self.queue.iter().rposition(|q| q.key == Some(key)) else {
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

    /// Lets parked senders in, oldest first, while the policy has room for them.
    fn fill(&mut self, now: Instant) {
        while let Some(front) = self.waiting.front() {
            let keyed_match = self.coalescing()
                && front.slot.key.is_some()
                && self.queue.iter().any(|q| q.key == front.slot.key);
            let fits = !self.full()
                || matches!(self.policy, Policy::Unbounded | Policy::DropOldest { .. })
                || keyed_match;
            if !fits {
                break;
            }
            let w = self.waiting.pop_front().unwrap();
            let slot = if self.coalescing() {
                self.coalesce(w.slot.clone(), now)
            } else {
                Some(w.slot.clone())
            };
            if let Some(s) = slot {
                if self.full() {
                    let oldest = self.queue.pop_front().unwrap();
                    self.evict(oldest, Eviction::DroppedOldest);
                }
                self.push(s);
            }
            self.resolve(w, Res::Accepted);
        }
    }

    fn offer(
        &mut self,
        s: MSlot,
        may_wait: bool,
        now: Instant,
        timeout_at: Option<Instant>,
    ) -> Offer {
        if self.closed {
            self.c.sent += 1;
            self.c.closed += 1;
            return Offer::Closed;
        }
        // A parked sender with the same key goes first: the newer content must not
        // be overtaken by the older one.
        let same_key_waits = s.key.is_some() && self.waiting.iter().any(|w| w.slot.key == s.key);
        let s = if self.coalescing() && !same_key_waits {
            match self.coalesce(s, now) {
                None => return Offer::Accepted,
                Some(s) => s,
            }
        } else {
            s
        };
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
                let oldest = self.queue.pop_front().unwrap();
                self.evict(oldest, Eviction::DroppedOldest);
                self.push(s);
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
                        slot: s,
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

    /// Time moved on: parked sends past their timeout give up.
    fn advance(&mut self, now: Instant) {
        let (out, kept): (Vec<MWaiter>, Vec<MWaiter>) = self
            .waiting
            .drain(..)
            .partition(|w| w.timeout_at.is_some_and(|t| t <= now));
        self.waiting = kept.into();
        for w in out {
            self.resolve(w, Res::TimedOut);
        }
    }

    /// A parked send's future was dropped: it leaves without being counted.
    fn cancel(&mut self, id: u64) {
        let pos = self
            .waiting
            .iter()
            .position(|w| w.slot.id == id)
            .expect("cancelled send is parked in the model");
        self.waiting.remove(pos);
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
            let Some(s) = self.queue.pop_front() else {
                self.first_above = None;
                return None;
            };
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
                let standing = !self.queue.is_empty();
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

    fn discard(&mut self, now: Instant) -> Vec<u64> {
        let out: Vec<u64> = self.queue.drain(..).map(|s| s.id).collect();
        self.c.discarded += out.len() as u64;
        self.first_above = None;
        self.fill(now);
        out
    }

    /// The receiver is dropped: what is queued becomes dead letters (discarded).
    fn discard_dead(&mut self) {
        while let Some(s) = self.queue.pop_front() {
            self.evict(s, Eviction::Discarded);
        }
    }

    fn set_policy(&mut self, policy: Policy, now: Instant) {
        if matches!(policy, Policy::Codel { .. }) {
            self.stamp = true;
        }
        self.policy = policy;
        self.first_above = None;
        let cap = self.cap();
        match self.policy {
            Policy::DropOldest { .. } => {
                while self.queue.len() > cap {
                    let s = self.queue.pop_front().unwrap();
                    self.evict(s, Eviction::DroppedOldest);
                }
            }
            Policy::DropNewest { .. } | Policy::Codel { .. } => {
                while self.queue.len() > cap {
                    let s = self.queue.pop_back().unwrap();
                    self.evict(s, Eviction::Rejected);
                }
            }
            _ => {}
        }
        self.fill(now);
        if !matches!(self.policy, Policy::Block { .. } | Policy::Coalesce { .. }) {
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

type SendFut = Pin<Box<dyn Future<Output = Result<(), SendError<u64>>>>>;

/// A send that is waiting for space, polled by hand.
struct Parked {
    id: u64,
    fut: SendFut,
    flag: Arc<Flag>,
}

fn poll_once(fut: &mut SendFut, flag: &Arc<Flag>) -> Poll<Result<(), SendError<u64>>> {
    flag.0.store(false, Ordering::SeqCst);
    let waker = Waker::from(flag.clone());
    fut.as_mut().poll(&mut Context::from_waker(&waker))
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
    let mut sent_meta: HashMap<u64, (Option<Key>, Option<Instant>)> = HashMap::new();
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
    let mut next_id = 0u64;
    let mut prev_depth = 0usize;
    let len = ops.len();
    let ops = ops.into_iter().map(Some).chain(std::iter::once(None));
    for (step, op) in ops.enumerate() {
        let now = Instant::now();
        let mut resized = false;
        match (op, rx.as_mut()) {
            (None, Some(rx_end)) if drop_senders_at_end => {
                // The end, first way: every sender goes (parked sends are abandoned);
                // the receiver is woken, drains what is queued, then sees the end.
                for p in parked.drain(..) {
                    model.cancel(p.id);
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
            (Some(Op::Send { kind, key, ttl }), Some(_)) => {
                let id = next_id;
                next_id += 1;
                let deadline = ttl.map(|t| now + ms(t));
                let meta = Meta {
                    key: key.map(|k| Key::from(u64::from(k))),
                    deadline,
                    ..Meta::default()
                };
                sent_meta.insert(id, (meta.key.clone(), deadline));
                let slot = MSlot {
                    id,
                    key,
                    deadline,
                    enq: model.stamp.then_some(now),
                };
                if let SendKind::Try = kind {
                    let got = tx.as_ref().unwrap().try_send_with(id, meta);
                    match (model.offer(slot, false, now, None), got) {
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
                                sender.send_timeout_with(id, meta, ms(t)).await
                            })),
                            Some(policy_timeout.map_or(ms(t), |p| p.min(ms(t)))),
                        ),
                        _ => (
                            Box::pin(tokio::task::unconstrained(async move {
                                sender.send_with(id, meta).await
                            })),
                            policy_timeout,
                        ),
                    };
                    let flag = Arc::new(Flag::default());
                    let got = poll_once(&mut fut, &flag);
                    match (model.offer(slot, true, now, limit.map(|l| now + l)), got) {
                        (Offer::Accepted, Poll::Ready(Ok(()))) => {}
                        (Offer::Full, Poll::Ready(Err(SendError::Rejected(m)))) => {
                            assert_eq!(m, id);
                            *handed_back.entry(Outcome::Rejected).or_default() += 1;
                        }
                        (Offer::Closed, Poll::Ready(Err(SendError::Closed(m)))) => {
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
                    model.cancel(id);
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
                        (Res::Accepted, Poll::Ready(Ok(()))) => {}
                        (Res::Rejected, Poll::Ready(Err(SendError::Rejected(m))))
                        | (Res::TimedOut, Poll::Ready(Err(SendError::Timeout(m))))
                        | (Res::Closed, Poll::Ready(Err(SendError::Closed(m)))) => {
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
                (&meta.key, meta.deadline),
                (&want.0, want.1),
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
        assert!(
            stats.depth <= cap || stats.depth <= prev_depth || resized,
            "step {step}: depth {} grew above capacity {cap}",
            stats.depth
        );
        assert!(
            stats.waiting_senders == 0 || stats.depth >= cap,
            "step {step}: a sender waits while there is room"
        );
        prev_depth = stats.depth;
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
