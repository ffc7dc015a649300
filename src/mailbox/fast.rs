//! The lock-free fast path: a ring of plain messages beside the locked core, a gate
//! that says which of the two holds the queue, and the receiver's atomic waker.
//!
//! # Two modes
//!
//! The gate opens under every policy, in a mailbox without a long-queue alert, once
//! the mailbox has a ring (see [`FastPath`] for which mailboxes get one, and when).
//!
//! # CoDel
//!
//! Under `codel` every push carries its enqueue stamp (one clock read, as the core
//! stamps every message), and the receiver runs CoDel's cheap half at the pop: a
//! message that leaves the ring empty, or whose sojourn is below target, is
//! delivered (CoDel's state stays calm, as the gate requires to open); any other is
//! handed to the core with the clock reading that judged it, and the core's full
//! rule decides under the lock (it may start counting time above target, or shed).
//! So CoDel sheds exactly what the locked core sheds, which a test checks on a
//! script run both ways.
//!
//! # Metrics
//!
//! With metrics on, one push in [`SOJOURN_SAMPLE_EVERY`] per stripe carries an
//! enqueue stamp in its ring slot (every push under CoDel), and the receiver records
//! its sojourn under the lock when it pops it (a [`Chore`]); a message moved into
//! the core keeps its stamp.
//! The ring's counts are folded into the core's ([`FastPath::fold`]) before every
//! publication: at the 64th delivery, refusal or eviction on the ring (per stripe
//! for the last two), at each `Stats` snapshot and `flush_all`, before a policy
//! change and at the receiver's drop, so what `metrics.rs` promises holds for the
//! ring's traffic too.
//!
//! *Open*: every queued message is in the ring and the core's queue is empty; a send
//! of a message without key or deadline pushes into the ring, and the receiver pops
//! from it, neither taking the lock. A full ring refuses the newcomer under
//! `drop_newest`; evicts the oldest under `drop_oldest` with `force_push`, which
//! hands the evicted message back to be counted and given to the dead-letter
//! handler; and under `block`, `coalesce` and `unbounded` sends the sender to the
//! lock, which locks the gate: the core then makes the sender wait (FIFO among
//! waiting senders, as always) or, `unbounded`, takes the overflow in its growing
//! queue.
//!
//! *Locked*: the ring is empty and the core under its lock does everything, as it
//! always did (keys, deadlines, waiting senders, CoDel, metrics, close, a policy
//! change). Anything the ring cannot do takes the lock and *locks the gate*: it sets
//! the gate's locked bit, waits until no sender is inside a fast push and the
//! receiver is not inside a fast pop, and moves what the ring holds to the core's
//! queue, oldest first, so the order of messages never changes. The receiver opens
//! the gate again, under the lock, once the core is empty and nothing needs it
//! ([`Core::fast_kind`]).
//!
//! # Accounting
//!
//! The core counts what passed through it; the fast path counts deliveries,
//! refusals and evictions in atomics, and a message in the ring is counted as sent
//! by being there (a message moved to the core is counted as sent by the core at
//! the move, under the lock). A [`Stats`](super::Stats) snapshot reads the fast
//! counters before the ring's length, so it never counts a message twice: it lags
//! by at most the operations in flight and is exact whenever none is.
//!
//! # Ordering
//!
//! The gate is one word per stripe of senders (a sender uses its thread's stripe;
//! see [`SenderSide`]). A sender enters the fast path with one read-modify-write of
//! its stripe's word (`+IN`), which is totally ordered with the locker's `fetch_or`
//! of the locked bit on that word: either the sender sees the bit and backs off, or
//! the locker waits for its `-IN`. The same word carries the receiver's parked bit, so a sender's exit (`-IN`, which
//! returns the bit) and the receiver's park (`fetch_or`, then one more look at the
//! ring) are ordered by the word itself: the sender sees the bit and wakes the
//! receiver, or the receiver's look sees the message. A push costs three
//! read-modify-writes (enter, the ring's own, exit) and no fence. The
//! receiver, alone on its side, publishes `rx_busy` and then reads the gate, the
//! locker sets the bit and then reads `rx_busy`, each with a `SeqCst` fence between
//! (Dekker): at least one of them sees the other. tests/loom_mailbox.rs model-checks
//! these hand-offs, with a locked model of the ring (the real one is
//! `concurrent-queue`'s, checked by its own authors).

use std::task::Waker;

use tokio::time::Instant;

use super::core::{Core, Stamp, SOJOURN_SAMPLE_EVERY};
use super::metrics::publish_due;
use super::sync::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use super::Policy;

/// The gate's locked bit.
const LOCKED: usize = 1;
/// The gate's receiver-parked bit: the receiver has registered its waker and waits
/// (set by the receiver, cleared by the sender that wakes it).
const RX_PARKED: usize = 2;
/// The rest of the gate's word counts senders inside a fast push, in steps of `IN`.
const IN: usize = 4;
/// The senders' side is split in this many stripes, each on its own cache line with
/// its own gate word and counters; a sender uses its thread's stripe, so producers on
/// different threads never write the same line (see [`SenderSide`]).
const STRIPES: usize = 4;

/// The largest capacity for which a mailbox gets a ring: its slots are allocated
/// all at once (1.5 MiB of them for `u64` messages at this size), where the locked
/// core's queue grows with its contents.
pub const RING_MAX_CAPACITY: usize = 65_536;

/// The ring's slots in an `unbounded` mailbox: a backlog beyond it locks the gate
/// and grows the core's queue, until the receiver has drained it.
pub const UNBOUNDED_RING_CAPACITY: usize = 1024;

/// What a full ring does with a newcomer (set when the gate opens).
pub(crate) const KIND_GROW: u8 = 0;
pub(crate) const KIND_REFUSE: u8 = 1;
pub(crate) const KIND_EVICT: u8 = 2;
pub(crate) const KIND_WAIT: u8 = 3;
/// Full: refuse, as [`KIND_REFUSE`]; and every push carries its enqueue stamp, for
/// CoDel's check at the pop ([`FastRecv::Judge`]).
pub(crate) const KIND_STAMP_REFUSE: u8 = 4;

/// How a fast send ended. `Due`: metrics are on and the ring's counts are due to
/// be folded into the core's and published ([`FastPath::fold`]).
pub(crate) enum FastSend<T> {
    /// Queued; `Some` is the oldest message, evicted to make room (`drop_oldest`),
    /// already counted.
    Accepted(Option<T>, Due),
    /// Full under `drop_newest`: refused, already counted as rejected.
    Rejected(T, Due),
    /// The gate is locked: the core decides.
    Locked(T),
    /// Full under a policy that makes the sender wait: the core decides, after the
    /// gate is locked.
    Full(T),
}

/// Whether the ring's counts are due to be folded into the core's and published
/// (metrics on, and an outcome's count on the ring reached a multiple of
/// [`FLUSH_EVERY`](super::metrics::FLUSH_EVERY)).
pub(crate) type Due = bool;

/// What the receiver owes the core after a fast pop, with metrics on: the sampled
/// message's sojourn to record, and a publication (see [`Due`]). Both need the
/// lock; most pops owe nothing.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub(crate) struct Chore {
    /// The delivered message's enqueue stamp, if it was sampled.
    pub(crate) sojourn_from: Stamp,
    pub(crate) publish: Due,
}

impl Chore {
    /// Nothing owed.
    #[inline]
    pub(crate) fn is_none(self) -> bool {
        !self.publish && !self.sojourn_from.is_some()
    }
}

/// A message the ring's CoDel check hands to the core ([`FastRecv::Judge`]): not yet
/// counted anywhere, with its enqueue stamp and the clock reading that judged it
/// (the core decides with the same reading).
pub(crate) struct Judged<T> {
    pub(crate) msg: T,
    pub(crate) enqueued: Stamp,
    pub(crate) now: Stamp,
}

/// A message in the ring with its enqueue stamp ([`Stamp::NONE`] unless sampled
/// for the sojourn histogram).
struct Item<T> {
    msg: T,
    stamp: Stamp,
}

/// How a fast receive ended.
pub(crate) enum FastRecv<T> {
    Got(T, Chore),
    /// Under CoDel, a message taken from a standing queue with a sojourn at or
    /// above target: the full rule decides under the lock (it may shed it).
    Judge(Judged<T>),
    /// The gate is open and the ring empty.
    Empty,
    /// The gate is locked: the core has the queue.
    Locked,
}

/// The fast path's shared state. Fields are grouped by who writes
/// them, each group on its own cache line ([`Line`]), so a sender's writes never
/// evict the receiver's line and back: senders write their stripe's `gate`,
/// `rejected` and `dropped_oldest`; the receiver writes `rx_busy`, `delivered` and
/// `peak`; the lock holder writes `locked` and `kind`, rarely. The receiver writes
/// the senders' lines only to park (each gate's [`RX_PARKED`] bit), once per wait.
/// Six lines, the ring's handle (`concurrent-queue` pads its own indices) and the
/// waker: 1,408 bytes besides the ring's slots, boxed, and only in a mailbox that
/// can open the gate.
struct Inner<T> {
    senders: [Line<SenderSide>; STRIPES],
    receiver: Line<ReceiverSide>,
    mode: Line<Mode>,
    /// The messages, when the gate is open.
    ring: Ring<Item<T>>,
    /// Metrics are on: sample enqueue stamps, report publications due.
    metrics: bool,
    /// The core's [`Stamp`] origin.
    base: Instant,
    /// Wakes the receiver after a fast push.
    waker: RxWaker,
}

/// A value alone on its cache line (two lines: adjacent-line prefetch pairs them).
#[repr(align(128))]
struct Line<T>(T);

impl<T> std::ops::Deref for Line<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Written by senders, one per stripe: a sender enters and leaves through its
/// thread's stripe and counts its refusals and evictions there. Every stripe's gate
/// carries the same [`LOCKED`] bit (the locker sets and clears it on all of them),
/// and the receiver parks by setting [`RX_PARKED`] on all of them: a push wakes it
/// if its own stripe shows the bit (and clears it there; a bit left on another
/// stripe costs one spurious, empty wake at most). With one gate word for all, four
/// producers measured 0.5x of one: each push moved the word's line between cores
/// twice beside the ring's own.
struct SenderSide {
    /// [`LOCKED`] bit (changed only under the core's lock), [`RX_PARKED`] bit, plus
    /// [`IN`] per sender inside a fast push through this stripe.
    gate: AtomicUsize,
    /// Refused by a full ring (`drop_newest`).
    rejected: AtomicU64,
    /// Evicted by `force_push` (`drop_oldest`).
    dropped_oldest: AtomicU64,
    /// Pushes through this stripe since the last stamped one (metrics on). A load
    /// and a store, not a read-modify-write: two threads sharing the stripe may
    /// lose a tick, which only shifts the sample.
    tick: AtomicU32,
}

/// The stripe of the calling thread: given out round-robin at a thread's first
/// push and kept.
#[cfg(not(sluicegate_loom))]
#[inline]
fn stripe_index() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;
    static NEXT: StdAtomicUsize = StdAtomicUsize::new(0);
    thread_local! {
        static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    MINE.with(|mine| {
        let i = mine.get();
        if i < STRIPES {
            return i;
        }
        let i = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        mine.set(i);
        i
    })
}

/// Under loom, the model thread's number (deterministic in every execution), so that
/// the two senders of a model use different stripes.
#[cfg(sluicegate_loom)]
fn stripe_index() -> usize {
    let id = format!("{:?}", loom::thread::current().id());
    let n: usize = id
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0);
    n % STRIPES
}

/// Written by the receiver only.
struct ReceiverSide {
    /// The receiver is inside a fast pop.
    rx_busy: AtomicBool,
    /// Deliveries from the ring.
    delivered: AtomicU64,
    /// The most messages the ring held at once, as the receiver saw it before each
    /// pop (see [`FastPath::counts`]).
    peak: AtomicUsize,
}

/// Written under the core's lock, when the gate opens or locks.
struct Mode {
    /// The gate's locked bit as readers see it (the receiver never reads the
    /// senders' line, and a sender finds a locked gate without writing to it): set
    /// before the gate's bit when locking, cleared after it when opening.
    locked: AtomicBool,
    /// What a full ring does ([`KIND_GROW`]...), written before the gate opens.
    kind: AtomicU8,
    /// CoDel's target in nanoseconds, 0 without CoDel; written before the gate
    /// opens (by the receiver, its only reader).
    codel_target: AtomicU64,
    /// Of the ring's delivered, rejected and evicted counts, what has been folded
    /// into the core's ([`FastPath::fold`]); written under the core's lock only.
    folded: [AtomicU64; 3],
}

/// Fast counts for a [`Stats`](super::Stats) snapshot.
#[derive(Default)]
pub(crate) struct FastCounts {
    pub(crate) delivered: u64,
    pub(crate) rejected: u64,
    pub(crate) dropped_oldest: u64,
    pub(crate) depth: usize,
    pub(crate) peak: usize,
}

/// The fast path of one mailbox: empty until the mailbox first needs it, so that a
/// mailbox carries two words for it and allocates nothing until then. A ring is
/// made ([`make_ring`](Self::make_ring)) once the queue has held
/// [`RING_AFTER`] messages at once (or its whole capacity, if smaller): a producer
/// has outrun its consumer, the case the ring is for; a mailbox that never sees
/// a backlog (an actor answering one caller at a time) never pays for its slots,
/// which are allocated all at once. Made under every policy up to
/// [`RING_MAX_CAPACITY`]; an `unbounded` mailbox's ring has
/// [`UNBOUNDED_RING_CAPACITY`] slots (a bounded ring: `concurrent-queue`'s
/// unbounded one, a list of blocks, measured 0.63x the locked core with one
/// producer). Under `block`, `coalesce` and `unbounded` a full ring locks the gate,
/// moving its messages into the core, which keeps the queue until it has drained
/// and nobody waits; under `codel` a standing queue past target does (see
/// "CoDel" above). The figures against the locked core are in docs/benchmarks.md
/// ("Mailbox: the ring for every policy").
pub(crate) struct FastPath<T>(std::sync::OnceLock<Box<Inner<T>>>);

/// Messages queued at once after which a mailbox that may have a ring gets one
/// (under loom, 2: a model's few messages reach it, so `unbounded` meets its ring).
#[cfg(not(sluicegate_loom))]
pub(crate) const RING_AFTER: usize = 32;
#[cfg(sluicegate_loom)]
pub(crate) const RING_AFTER: usize = 2;

/// The ring's slots under `unbounded` (under loom, 2: a model's few messages
/// overflow it into the core).
#[cfg(not(sluicegate_loom))]
const UNBOUNDED_RING: usize = UNBOUNDED_RING_CAPACITY;
#[cfg(sluicegate_loom)]
const UNBOUNDED_RING: usize = 2;

impl<T> FastPath<T> {
    /// A fast path without a ring yet.
    pub(crate) fn new() -> Self {
        FastPath(std::sync::OnceLock::new())
    }

    /// Whether a mailbox under `policy` can have a ring: up to
    /// [`RING_MAX_CAPACITY`].
    #[inline]
    pub(crate) fn fits(policy: &Policy) -> bool {
        policy.capacity().is_none_or(|c| c <= RING_MAX_CAPACITY)
    }

    /// The ring's slots for a mailbox under `policy`: its capacity, or
    /// [`UNBOUNDED_RING_CAPACITY`].
    fn ring_capacity(policy: &Policy) -> usize {
        policy.capacity().unwrap_or(UNBOUNDED_RING)
    }

    /// Whether the core's queue has shown the backlog after which the ring pays
    /// ([`RING_AFTER`], or the whole capacity if smaller).
    #[inline]
    pub(crate) fn backlog_seen(peak: usize, policy: &Policy) -> bool {
        peak >= policy.capacity().map_or(RING_AFTER, |c| c.min(RING_AFTER))
    }

    /// Makes the ring (under the core's lock), gate locked, if the policy in force
    /// fits one and none exists: for the policy's capacity, sampling stamps when the
    /// core has metrics on.
    #[cold]
    #[inline(never)]
    pub(crate) fn make_ring(&self, core: &Core<T>) {
        if self.0.get().is_none() && Self::fits(core.policy()) {
            let inner = Inner::new(core.policy(), core.metrics_on(), core.base());
            let _ = self.0.set(Box::new(inner));
        }
    }

    /// Whether the ring exists.
    #[inline]
    pub(crate) fn has_ring(&self) -> bool {
        self.0.get().is_some()
    }

    #[inline(always)]
    fn get(&self) -> Option<&Inner<T>> {
        self.0.get().map(|b| &**b)
    }

    /// Folds the ring's delivered, rejected and evicted counts gained since the last
    /// fold into the core's counts (under the core's lock), so that a publication of
    /// the core's counts carries them; see `metrics.rs`.
    pub(crate) fn fold(&self, core: &mut Core<T>) {
        if let Some(f) = self.get() {
            f.fold(core);
        }
    }

    /// Whether the gate is open (only stable under the core's lock).
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.get().is_some_and(|f| f.is_open())
    }

    /// Whether the mailbox has a ring and its gate is locked (only stable under the
    /// core's lock): the receiver may open it once the core is empty.
    #[inline]
    pub(crate) fn can_open(&self) -> bool {
        self.get().is_some_and(|f| !f.is_open())
    }

    /// A send of a message without key or deadline.
    #[inline(always)]
    pub(crate) fn send(&self, msg: T) -> FastSend<T> {
        match self.get() {
            Some(f) => f.send(msg),
            None => FastSend::Locked(msg),
        }
    }

    /// The receiver takes the next message from the ring, if the gate is open.
    #[inline(always)]
    pub(crate) fn recv(&self) -> FastRecv<T> {
        match self.get() {
            Some(f) => f.recv(),
            None => FastRecv::Locked,
        }
    }

    /// The receiver takes the next message from the ring under the core's lock,
    /// with the gate open (no locker can run meanwhile).
    pub(crate) fn recv_locked(&self) -> FastRecv<T> {
        match self.get() {
            Some(f) => f.pop(),
            None => FastRecv::Locked,
        }
    }

    /// The receiver, under the lock with the gate open and the ring found empty:
    /// registers its waker, then looks once more (a push in between has woken it or
    /// is seen here).
    pub(crate) fn register_and_recv(&self, waker: &Waker) -> FastRecv<T> {
        match self.get() {
            Some(f) => {
                f.register(waker);
                f.pop()
            }
            None => FastRecv::Locked,
        }
    }

    /// Registers the receiver's waker for the next fast push (under the lock, with
    /// the gate open).
    pub(crate) fn register(&self, waker: &Waker) {
        if let Some(f) = self.get() {
            f.register(waker);
        }
    }

    /// Locks the gate (under the core's lock): see [`Inner::lock`].
    pub(crate) fn lock(&self, core: &mut Core<T>) {
        if let Some(f) = self.get() {
            f.lock(core);
        }
    }

    /// Opens the gate (under the core's lock): see [`Inner::open`].
    pub(crate) fn open(&self, core: &Core<T>) {
        if let Some(f) = self.get() {
            f.open(core);
        }
    }

    /// Messages in the ring now.
    pub(crate) fn len(&self) -> usize {
        self.get().map_or(0, |f| f.ring.len())
    }

    /// The fast path's counts (see [`Inner::counts`]).
    pub(crate) fn counts(&self) -> FastCounts {
        self.get().map(|f| f.counts()).unwrap_or_default()
    }
}

impl<T> Inner<T> {
    /// The fast path for a mailbox built with `policy`, gate locked until
    /// [`open`](Self::open), with a ring of [`FastPath::ring_capacity`] slots.
    fn new(policy: &Policy, metrics: bool, base: Instant) -> Self {
        Inner {
            senders: std::array::from_fn(|_| {
                Line(SenderSide {
                    gate: AtomicUsize::new(LOCKED),
                    rejected: AtomicU64::new(0),
                    dropped_oldest: AtomicU64::new(0),
                    tick: AtomicU32::new(0),
                })
            }),
            receiver: Line(ReceiverSide {
                rx_busy: AtomicBool::new(false),
                delivered: AtomicU64::new(0),
                peak: AtomicUsize::new(0),
            }),
            mode: Line(Mode {
                locked: AtomicBool::new(true),
                kind: AtomicU8::new(KIND_GROW),
                codel_target: AtomicU64::new(0),
                folded: std::array::from_fn(|_| AtomicU64::new(0)),
            }),
            ring: Ring::new(FastPath::<T>::ring_capacity(policy)),
            metrics,
            base,
            waker: RxWaker::default(),
        }
    }

    /// Whether the gate is open (only stable under the core's lock).
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.senders[0].gate.load(Ordering::Acquire) & LOCKED == 0
    }

    /// A send of a message without key or deadline.
    #[inline(always)]
    pub(crate) fn send(&self, msg: T) -> FastSend<T> {
        if self.mode.locked.load(Ordering::Relaxed) {
            return FastSend::Locked(msg);
        }
        let side = &self.senders[stripe_index()];
        let prev = side.gate.fetch_add(IN, Ordering::Acquire);
        if prev & LOCKED != 0 {
            side.gate.fetch_sub(IN, Ordering::Release);
            return FastSend::Locked(msg);
        }
        let kind = self.mode.kind.load(Ordering::Relaxed);
        let item = Item {
            msg,
            stamp: if self.metrics || kind == KIND_STAMP_REFUSE {
                self.stamp(side, kind)
            } else {
                Stamp::NONE
            },
        };
        let out = match kind {
            KIND_EVICT => match self.ring.force_push(item) {
                Some(evicted) => {
                    let n = side.dropped_oldest.fetch_add(1, Ordering::Relaxed) + 1;
                    FastSend::Accepted(Some(evicted.msg), self.metrics && publish_due(n))
                }
                None => FastSend::Accepted(None, false),
            },
            kind => match self.ring.push(item) {
                Ok(()) => FastSend::Accepted(None, false),
                Err(item) if kind == KIND_REFUSE || kind == KIND_STAMP_REFUSE => {
                    let n = side.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                    FastSend::Rejected(item.msg, self.metrics && publish_due(n))
                }
                Err(item) => FastSend::Full(item.msg),
            },
        };
        // The push and the receiver's park meet on this one word: if the receiver's
        // `fetch_or` of RX_PARKED comes first in the gate's order, this `fetch_sub`
        // sees the bit; if it comes later, it reads this release and its pop sees
        // the message. Either way no wake-up is lost, and no fence is needed.
        let prev = side.gate.fetch_sub(IN, Ordering::AcqRel);
        if prev & RX_PARKED != 0
            && matches!(out, FastSend::Accepted(..))
            && side.gate.fetch_and(!RX_PARKED, Ordering::AcqRel) & RX_PARKED != 0
        {
            self.waker.wake();
        }
        out
    }

    /// The enqueue stamp of a push through `side` with metrics on or under CoDel
    /// (`kind` [`KIND_STAMP_REFUSE`]: the present instant, for every push); out of
    /// line, so the plain push stays small.
    #[inline(never)]
    fn stamp(&self, side: &SenderSide, kind: u8) -> Stamp {
        if kind == KIND_STAMP_REFUSE {
            Stamp::at(self.base, Instant::now())
        } else {
            self.sample(side)
        }
    }

    /// The enqueue stamp of a push through `side`: the present instant for one push
    /// in [`SOJOURN_SAMPLE_EVERY`], [`Stamp::NONE`] for the others.
    #[inline]
    fn sample(&self, side: &SenderSide) -> Stamp {
        let tick = side.tick.load(Ordering::Relaxed) + 1;
        if tick < SOJOURN_SAMPLE_EVERY {
            side.tick.store(tick, Ordering::Relaxed);
            return Stamp::NONE;
        }
        side.tick.store(0, Ordering::Relaxed);
        Stamp::at(self.base, Instant::now())
    }

    /// The receiver takes the next message from the ring, if the gate is open.
    #[inline(always)]
    pub(crate) fn recv(&self) -> FastRecv<T> {
        if self.mode.locked.load(Ordering::Relaxed) {
            return FastRecv::Locked;
        }
        self.receiver.rx_busy.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.mode.locked.load(Ordering::Relaxed) {
            self.receiver.rx_busy.store(false, Ordering::Release);
            return FastRecv::Locked;
        }
        let out = self.pop();
        self.receiver.rx_busy.store(false, Ordering::Release);
        out
    }

    /// Pops and counts a delivery (the receiver, with the gate open). The peak is
    /// the ring's depth before the pop; once it has reached the ring's capacity it
    /// cannot rise, and the depth (a read of both ends of the ring) is not taken.
    ///
    /// Under CoDel, a message that leaves the ring empty is delivered without a
    /// clock read, as the core does (an empty queue never counts as standing), and
    /// so is one whose sojourn is below target: CoDel's state stays calm then, as
    /// the gate requires. Any other goes to the core to be judged
    /// ([`FastRecv::Judge`]), uncounted. With metrics on, every delivery records
    /// its sojourn, as the core does under CoDel (a [`Chore`]: the lock, once per
    /// delivery, though no sender takes it).
    #[inline(always)]
    fn pop(&self) -> FastRecv<T> {
        let peak = self.receiver.peak.load(Ordering::Relaxed);
        let depth = if peak >= self.ring.capacity() {
            0
        } else {
            self.ring.len()
        };
        match self.ring.pop() {
            Some(item) => {
                if depth > peak {
                    self.receiver.peak.store(depth, Ordering::Relaxed);
                }
                let target = self.mode.codel_target.load(Ordering::Relaxed);
                if target != 0 {
                    return self.codel_check(item, target);
                }
                let n = self.count_delivery();
                let chore = Chore {
                    sojourn_from: item.stamp,
                    publish: self.metrics && publish_due(n),
                };
                FastRecv::Got(item.msg, chore)
            }
            None => FastRecv::Empty,
        }
    }

    /// Counts a delivery from the ring; the count so far.
    #[inline]
    fn count_delivery(&self) -> u64 {
        let n = self.receiver.delivered.load(Ordering::Relaxed) + 1;
        self.receiver.delivered.store(n, Ordering::Relaxed);
        n
    }

    /// The pop's CoDel check (see [`pop`](Self::pop)), for a target of `target`
    /// nanoseconds.
    #[inline(never)]
    fn codel_check(&self, item: Item<T>, target: u64) -> FastRecv<T> {
        if !self.ring.is_empty() {
            let now = Stamp::at(self.base, Instant::now());
            if now.nanos_since(item.stamp) >= target {
                return FastRecv::Judge(Judged {
                    msg: item.msg,
                    enqueued: item.stamp,
                    now,
                });
            }
        }
        let n = self.count_delivery();
        let chore = Chore {
            sojourn_from: if self.metrics {
                item.stamp
            } else {
                Stamp::NONE
            },
            publish: self.metrics && publish_due(n),
        };
        FastRecv::Got(item.msg, chore)
    }

    /// Registers the receiver's waker for the next fast push (under the lock): the
    /// waker, then the gate's [`RX_PARKED`] bit, whose read-modify-write orders it
    /// with every push's exit from the gate (see [`send`](Self::send)).
    fn register(&self, waker: &Waker) {
        self.waker.register(waker);
        for side in &self.senders {
            side.gate.fetch_or(RX_PARKED, Ordering::AcqRel);
        }
    }

    /// Locks the gate (under the core's lock): waits for fast pushes and the fast pop
    /// in progress, then moves what the ring holds into the core, oldest first.
    pub(crate) fn lock(&self, core: &mut Core<T>) {
        if self.senders[0].gate.load(Ordering::Relaxed) & LOCKED != 0 {
            return;
        }
        self.mode.locked.store(true, Ordering::Relaxed);
        for side in &self.senders {
            side.gate.fetch_or(LOCKED, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
        let mut spins = 0u32;
        while self
            .senders
            .iter()
            .any(|side| side.gate.load(Ordering::Acquire) >= IN)
            || self.receiver.rx_busy.load(Ordering::Acquire)
        {
            super::sync::backoff(&mut spins);
        }
        while let Some(item) = self.ring.pop() {
            core.adopt(item.msg, item.stamp);
        }
        // The core counts from here on: it starts from everything the ring counted,
        // published, so the recorder's lag stays within one batch of the core's.
        if self.fold(core) && self.metrics {
            core.flush_metrics();
        }
    }

    /// Opens the gate (under the core's lock) when the core is empty and nothing
    /// needs it ([`Core::fast_kind`]) and the ring fits the policy in force.
    pub(crate) fn open(&self, core: &Core<T>) {
        if self.senders[0].gate.load(Ordering::Relaxed) & LOCKED == 0 {
            return;
        }
        let Some(kind) = core.fast_kind(self.ring.capacity()) else {
            return;
        };
        debug_assert!(self.ring.is_empty(), "ring holds messages while locked");
        self.mode.kind.store(kind, Ordering::Relaxed);
        self.mode
            .codel_target
            .store(core.codel_target_nanos(), Ordering::Relaxed);
        for side in &self.senders {
            side.gate.fetch_and(!LOCKED, Ordering::Release);
        }
        self.mode.locked.store(false, Ordering::Release);
    }

    /// The ring's delivered, rejected and evicted counts since the mailbox was built.
    fn totals(&self) -> [u64; 3] {
        let delivered = self.receiver.delivered.load(Ordering::Acquire);
        let (mut rejected, mut dropped_oldest) = (0, 0);
        for side in &self.senders {
            rejected += side.rejected.load(Ordering::Acquire);
            dropped_oldest += side.dropped_oldest.load(Ordering::Acquire);
        }
        [delivered, rejected, dropped_oldest]
    }

    /// Of `totals`, what has not been folded into the core's counts.
    fn unfolded(&self, totals: [u64; 3]) -> [u64; 3] {
        let mut out = totals;
        for (n, folded) in out.iter_mut().zip(&self.mode.folded) {
            *n -= folded.load(Ordering::Relaxed);
        }
        out
    }

    /// See [`FastPath::fold`]; whether anything was folded.
    fn fold(&self, core: &mut Core<T>) -> bool {
        let totals = self.totals();
        let [delivered, rejected, dropped_oldest] = self.unfolded(totals);
        if delivered + rejected + dropped_oldest == 0 {
            return false;
        }
        for (folded, n) in self.mode.folded.iter().zip(totals) {
            folded.store(n, Ordering::Relaxed);
        }
        core.fold_fast(delivered, rejected, dropped_oldest);
        true
    }

    /// The fast path's counts not yet folded into the core's, read before the
    /// ring's length (so a message is never
    /// counted both as delivered and as queued).
    pub(crate) fn counts(&self) -> FastCounts {
        let [delivered, rejected, dropped_oldest] = self.unfolded(self.totals());
        fence(Ordering::SeqCst);
        let depth = self.ring.len();
        FastCounts {
            delivered,
            rejected,
            dropped_oldest,
            depth,
            peak: self.receiver.peak.load(Ordering::Relaxed).max(depth),
        }
    }
}

/// The ring: `concurrent-queue`'s bounded (Vyukov) queue; under loom, a locked model
/// of it with the same contract.
#[cfg(not(sluicegate_loom))]
struct Ring<T> {
    queue: concurrent_queue::ConcurrentQueue<T>,
}

#[cfg(not(sluicegate_loom))]
impl<T> Ring<T> {
    /// A ring of `capacity` slots.
    fn new(capacity: usize) -> Self {
        Ring {
            queue: concurrent_queue::ConcurrentQueue::bounded(capacity),
        }
    }

    #[inline]
    fn capacity(&self) -> usize {
        self.queue.capacity().unwrap_or(usize::MAX)
    }

    #[inline(always)]
    fn push(&self, msg: T) -> Result<(), T> {
        self.queue.push(msg).map_err(|e| e.into_inner())
    }

    #[inline]
    fn force_push(&self, msg: T) -> Option<T> {
        // The queue is never closed, so `force_push` never fails.
        self.queue
            .force_push(msg)
            .unwrap_or_else(|e| Some(e.into_inner()))
    }

    #[inline(always)]
    fn pop(&self) -> Option<T> {
        self.queue.pop().ok()
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(sluicegate_loom)]
struct Ring<T> {
    queue: super::sync::Mutex<std::collections::VecDeque<T>>,
    capacity: usize,
}

#[cfg(sluicegate_loom)]
impl<T> Ring<T> {
    fn new(capacity: usize) -> Self {
        Ring {
            queue: super::sync::Mutex::new(std::collections::VecDeque::new()),
            capacity,
        }
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn push(&self, msg: T) -> Result<(), T> {
        let mut q = self.queue.lock();
        if q.len() >= self.capacity {
            return Err(msg);
        }
        q.push_back(msg);
        Ok(())
    }

    fn force_push(&self, msg: T) -> Option<T> {
        let mut q = self.queue.lock();
        let evicted = if q.len() >= self.capacity {
            q.pop_front()
        } else {
            None
        };
        q.push_back(msg);
        evicted
    }

    fn pop(&self) -> Option<T> {
        self.queue.lock().pop_front()
    }

    fn len(&self) -> usize {
        self.queue.lock().len()
    }

    fn is_empty(&self) -> bool {
        self.queue.lock().is_empty()
    }
}

/// The receiver's waker for fast pushes: `futures`' `AtomicWaker` (no lock; a push
/// that finds nobody registered costs one read-modify-write); under loom, a locked
/// model of it.
#[cfg(not(sluicegate_loom))]
#[derive(Default)]
struct RxWaker(futures_util::task::AtomicWaker);

#[cfg(not(sluicegate_loom))]
impl RxWaker {
    fn register(&self, waker: &Waker) {
        self.0.register(waker);
    }

    #[inline]
    fn wake(&self) {
        self.0.wake();
    }
}

#[cfg(sluicegate_loom)]
#[derive(Default)]
struct RxWaker(super::sync::Mutex<Option<Waker>>);

#[cfg(sluicegate_loom)]
impl Default for super::sync::Mutex<Option<Waker>> {
    fn default() -> Self {
        super::sync::Mutex::new(None)
    }
}

#[cfg(sluicegate_loom)]
impl RxWaker {
    fn register(&self, waker: &Waker) {
        *self.0.lock() = Some(waker.clone());
    }

    fn wake(&self) {
        let w = self.0.lock().take();
        if let Some(w) = w {
            w.wake();
        }
    }
}

#[cfg(all(test, not(sluicegate_loom)))]
mod tests {
    use super::*;
    use crate::mailbox::Stats;

    /// The boxed state of a mailbox that has a ring, besides the ring's slots: six
    /// 128-byte lines (four stripes, the receiver's, the mode's), then the ring's
    /// handle and the waker. A field that pushes a stripe past its line, or a line
    /// more, fails here.
    #[test]
    fn the_fast_paths_state_stays_within_its_lines() {
        assert_eq!(std::mem::size_of::<Line<SenderSide>>(), 128);
        assert!(
            std::mem::size_of::<Inner<u64>>() <= 1408,
            "{} bytes",
            std::mem::size_of::<Inner<u64>>()
        );
    }

    /// No ring while the queue never holds [`RING_AFTER`] messages; the first
    /// backlog makes one (locked), the drained core opens it, and plain messages
    /// then go through it. `lock_free(false)` never gets one.
    #[tokio::test]
    async fn a_backlog_makes_the_ring_and_the_drained_core_opens_it() {
        use crate::mailbox::Builder;
        for lock_free in [true, false] {
            let (tx, mut rx) = Builder::new(Policy::DropNewest { capacity: 64 })
                .lock_free(lock_free)
                .build()
                .unwrap();
            for i in 0..100u64 {
                tx.send(i).await.unwrap();
                assert_eq!(rx.recv().await, Some(i));
            }
            assert!(!rx.shared.fast.has_ring(), "one message at a time");
            let n = RING_AFTER as u64;
            for i in 0..n {
                tx.send(i).await.unwrap();
            }
            for i in 0..n {
                assert_eq!(rx.recv().await, Some(i));
            }
            assert_eq!(rx.shared.fast.has_ring(), lock_free);
            assert_eq!(rx.shared.fast.is_open(), lock_free);
            tx.send(7).await.unwrap();
            assert_eq!(rx.shared.fast.len(), usize::from(lock_free), "in the ring");
            assert_eq!(rx.recv().await, Some(7));
            let s = rx.stats();
            assert_eq!(
                (s.sent, s.delivered, s.peak_depth),
                (100 + n + 1, 100 + n + 1, 32)
            );
        }
    }

    /// A ring under every policy, up to its largest capacity (1,024 slots under
    /// `unbounded`); made once the queue has held 32 messages, or the whole
    /// capacity if smaller.
    #[test]
    fn a_ring_fits_every_policy_and_waits_for_a_backlog() {
        assert!(FastPath::<u64>::fits(&Policy::DropNewest {
            capacity: 1024
        }));
        assert!(FastPath::<u64>::fits(&Policy::DropOldest {
            capacity: RING_MAX_CAPACITY
        }));
        assert!(!FastPath::<u64>::fits(&Policy::DropOldest {
            capacity: RING_MAX_CAPACITY + 1
        }));
        assert!(FastPath::<u64>::fits(&Policy::Unbounded));
        assert_eq!(
            FastPath::<u64>::ring_capacity(&Policy::Unbounded),
            UNBOUNDED_RING_CAPACITY
        );
        assert!(FastPath::<u64>::fits(&Policy::Block {
            capacity: 8,
            send_timeout: None
        }));
        assert!(FastPath::<u64>::fits(&Policy::Coalesce { capacity: 8 }));
        assert!(FastPath::<u64>::fits(&Policy::Codel {
            capacity: 8,
            target: std::time::Duration::from_millis(5),
            interval: std::time::Duration::from_millis(100),
        }));
        let big = Policy::DropNewest { capacity: 1024 };
        assert!(!FastPath::<u64>::backlog_seen(RING_AFTER - 1, &big));
        assert!(FastPath::<u64>::backlog_seen(RING_AFTER, &big));
        let small = Policy::DropNewest { capacity: 4 };
        assert!(!FastPath::<u64>::backlog_seen(3, &small));
        assert!(FastPath::<u64>::backlog_seen(4, &small));
    }

    /// Fills a fresh mailbox to its first backlog (32 messages, or its capacity)
    /// and drains it, so that its ring exists and the gate is open.
    async fn opened(
        policy: Policy,
    ) -> (crate::mailbox::Sender<u64>, crate::mailbox::Receiver<u64>) {
        let backlog = policy.capacity().map_or(RING_AFTER, |c| c.min(RING_AFTER)) as u64;
        let (tx, mut rx) = crate::mailbox::Builder::new(policy).build().unwrap();
        for i in 0..backlog {
            tx.send(i).await.unwrap();
        }
        for i in 0..backlog {
            assert_eq!(rx.recv().await, Some(i));
        }
        assert!(rx.shared.fast.is_open(), "the drained core opens the gate");
        (tx, rx)
    }

    /// `unbounded`: a backlog beyond the ring's slots locks the gate and grows the
    /// core's queue behind the ring's messages; everything comes out once, in order,
    /// counted exactly, and the drained core opens the gate again.
    #[tokio::test]
    async fn an_unbounded_backlog_overflows_the_ring_into_the_core_in_order() {
        let (tx, mut rx) = opened(Policy::Unbounded).await;
        let n = 3 * UNBOUNDED_RING_CAPACITY as u64;
        for i in 0..n {
            tx.send(i).await.unwrap();
            if i + 1 == UNBOUNDED_RING_CAPACITY as u64 {
                assert_eq!(
                    rx.shared.fast.len(),
                    UNBOUNDED_RING_CAPACITY,
                    "all in the ring"
                );
            }
        }
        assert!(!rx.shared.fast.is_open(), "the overflow locked the gate");
        assert_eq!(rx.shared.fast.len(), 0, "moved into the core");
        assert_eq!(rx.len(), n as usize);
        for i in 0..n {
            assert_eq!(rx.recv().await, Some(i));
        }
        assert!(rx.shared.fast.is_open(), "open again once drained");
        let s = rx.stats();
        let total = RING_AFTER as u64 + n;
        assert_eq!((s.sent, s.delivered, s.depth), (total, total, 0));
        assert_eq!(s.peak_depth, n as usize);
        assert!(s.is_balanced(), "{s:?}");
    }

    /// `block`: senders that find the ring full wait in the core (FIFO among
    /// waiting senders) and are let in as the receiver takes messages; every message
    /// comes out once, per sender in order, and the gate opens again once the core
    /// has drained and nobody waits.
    #[tokio::test]
    async fn block_senders_wait_for_a_full_ring_and_lose_nothing() {
        let capacity = 64;
        let (tx, mut rx) = opened(Policy::Block {
            capacity,
            send_timeout: None,
        })
        .await;
        let per = 1_000u64;
        let producers: Vec<_> = (0..3u64)
            .map(|p| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0..per {
                        tx.send(p << 32 | i).await.unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        // One thread: the producers run until each waits for room.
        while rx.stats().waiting_senders < 3 {
            tokio::task::yield_now().await;
        }
        assert!(
            !rx.shared.fast.is_open(),
            "a waiting sender locked the gate"
        );
        assert_eq!(rx.len(), capacity, "the ring's messages moved to the core");
        let mut next = [0u64; 3];
        while let Some(m) = rx.recv().await {
            let (p, i) = ((m >> 32) as usize, m & 0xffff_ffff);
            assert_eq!(i, next[p], "producer {p} in order");
            next[p] += 1;
            assert!(rx.len() <= capacity);
        }
        for p in producers {
            p.await.unwrap();
        }
        assert_eq!(next, [per; 3]);
        let s = rx.stats();
        let total = RING_AFTER as u64 + 3 * per;
        assert_eq!((s.sent, s.delivered, s.rejected), (total, total, 0));
        assert!(s.is_balanced(), "{s:?}");
    }

    /// `coalesce`: plain messages go through the ring; a keyed one locks the gate,
    /// lands behind them in the core and merges with a queued message of its key.
    #[tokio::test]
    async fn a_keyed_message_locks_the_gate_behind_the_rings_messages() {
        use crate::mailbox::{Key, Meta};
        let (tx, mut rx) = opened(Policy::Coalesce { capacity: 16 }).await;
        tx.send(100).await.unwrap();
        tx.send(101).await.unwrap();
        assert_eq!(rx.shared.fast.len(), 2, "plain messages in the ring");
        tx.send_with(200, Meta::keyed(Key::from(7u64)))
            .await
            .unwrap();
        assert!(!rx.shared.fast.is_open(), "the key locked the gate");
        tx.send_with(201, Meta::keyed(Key::from(7u64)))
            .await
            .unwrap();
        tx.send(102).await.unwrap();
        let got: Vec<u64> = [(); 4].iter().map(|_| rx.try_recv().unwrap()).collect();
        assert_eq!(got, [100, 101, 201, 102]);
        let s = rx.stats();
        assert_eq!(s.coalesced, 1, "{s:?}");
        assert!(s.is_balanced(), "{s:?}");
    }

    /// Runs one CoDel script on paused time: bursts that build a standing queue
    /// (sojourns past target, for longer than the interval: CoDel sheds), then
    /// lulls that drain it, with `try_send` and `try_recv` only. Returns what was
    /// delivered, what was shed (dead letters), the final counts, and whether the
    /// ring's gate was ever seen open.
    async fn codel_script(lock_free: bool) -> (Vec<u64>, Vec<u64>, Stats, bool) {
        use crate::mailbox::Builder;
        use std::sync::{Arc, Mutex};
        use std::time::Duration;
        let shed = Arc::new(Mutex::new(Vec::new()));
        let log = shed.clone();
        let (tx, mut rx) = Builder::new(Policy::Codel {
            capacity: 512,
            target: Duration::from_millis(5),
            interval: Duration::from_millis(50),
        })
        .lock_free(lock_free)
        .metrics(false)
        .on_evict(move |m: u64, _| log.lock().unwrap().push(m))
        .build()
        .unwrap();
        let mut delivered = Vec::new();
        let mut next = 0u64;
        let mut opened = false;
        // (messages sent per millisecond, messages received per millisecond, ms)
        let phases = [
            (40, 40, 5),
            (6, 3, 150),
            (0, 5, 60),
            (3, 3, 40),
            (8, 2, 120),
            (0, 8, 100),
        ];
        for (send, take, ms) in phases {
            for _ in 0..ms {
                for _ in 0..send {
                    let _ = tx.try_send(next);
                    next += 1;
                }
                for _ in 0..take {
                    if let Ok(m) = rx.try_recv() {
                        delivered.push(m);
                    }
                }
                opened |= rx.shared.fast.is_open();
                tokio::time::advance(Duration::from_millis(1)).await;
            }
        }
        drop(tx);
        while let Ok(m) = rx.try_recv() {
            delivered.push(m);
        }
        let shed = shed.lock().unwrap().clone();
        (delivered, shed, rx.stats(), opened)
    }

    /// CoDel through the ring decides exactly as the locked core: the same script
    /// delivers and sheds the same messages with the same counts, whether plain
    /// messages take the ring (checked: its gate was open) or the locked core.
    #[tokio::test(start_paused = true)]
    async fn codel_through_the_ring_sheds_exactly_what_the_locked_core_sheds() {
        let (ring_got, ring_shed, ring_stats, ring_open) = codel_script(true).await;
        let (core_got, core_shed, core_stats, core_open) = codel_script(false).await;
        assert!(ring_open && !core_open, "the ring was used, and only there");
        assert!(!core_shed.is_empty(), "the script makes CoDel shed");
        assert_eq!(ring_got, core_got, "the same deliveries, in order");
        assert_eq!(ring_shed, core_shed, "the same messages shed");
        let counts = |s: &Stats| (s.sent, s.delivered, s.shed, s.rejected, s.depth);
        assert_eq!(counts(&ring_stats), counts(&core_stats));
        assert!(ring_stats.is_balanced(), "{ring_stats:?}");
    }
}
