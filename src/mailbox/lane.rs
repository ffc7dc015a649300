//! Lanes: the control lane, which the policy never touches, and three priorities,
//! delivered highest first and first in, first out within each.

/// The lane a message travels on ([`Meta::lane`](super::Meta::lane)). The receiver
/// takes the control lane first, then `High`, `Normal` and `Low`, each in the order
/// its messages were queued (FIFO among equals).
///
/// **The control lane** (Akka's `ControlAwareMailbox`) is for messages that must
/// arrive whatever the load: a stop request, a supervisor's signal. The policy never
/// drops, refuses, sheds, expires, coalesces or delays them: they do not count
/// against the capacity, never wait for space, and their key and deadline are not
/// applied. They are counted like any message (`sent`, then `delivered`; `depth`
/// includes them and [`Stats::control_depth`](super::Stats::control_depth) says how
/// many are queued); only a closed mailbox refuses them (`Closed`, handed back), and
/// only the receiver's drop or [`discard_queued`](super::Receiver::discard_queued)
/// takes them out undelivered. The lane is unbounded: it is meant for a few
/// messages, not for traffic.
///
/// **Priorities** order delivery and nothing else about the policy: `High`, `Normal`
/// and `Low` messages share the capacity, a full mailbox refuses or makes a sender
/// wait whatever its priority (waiting senders stay first come, first served), and
/// deadlines apply. Two choices are made for priorities: under `drop_oldest` the
/// message evicted to make room is the oldest of the *lowest* priority queued,
/// counting the newcomer (a `Low` newcomer to a mailbox full of `Normal` messages is
/// itself the one evicted, as a dead letter; its sender still sees `Ok`, as always
/// under `drop_oldest`); and under `coalesce` only `Normal` messages replace each
/// other by key (a keyed `High` or `Low` message is queued as it is).
///
/// The other lanes' queues are allocated at their first message: a mailbox where only
/// `Normal` messages are sent never allocates them, and its hot paths look at one
/// counter for them (what that costs: docs/benchmarks.md).
///
/// ```
/// use sluicegate::mailbox::{channel, Lane, Meta, Policy};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (tx, mut rx) = channel::<&str>(Policy::DropNewest { capacity: 2 });
/// tx.send("a").await.unwrap();
/// tx.send_with("urgent", Meta::default().with_lane(Lane::High)).await.unwrap();
/// // Full for normal traffic, but the control lane is outside the capacity.
/// assert!(tx.send("b").await.is_err());
/// tx.try_send_control("stop").unwrap();
/// assert_eq!(rx.recv().await, Some("stop"));
/// assert_eq!(rx.recv().await, Some("urgent"));
/// assert_eq!(rx.recv().await, Some("a"));
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Lane {
    /// Before everything else; outside the policy (see above).
    Control,
    /// Before `Normal` and `Low` messages.
    High,
    /// The default.
    #[default]
    Normal,
    /// After every other message.
    Low,
}

impl Lane {
    /// Delivery rank: higher is taken first.
    pub(crate) fn rank(self) -> u8 {
        match self {
            Lane::Control => 3,
            Lane::High => 2,
            Lane::Normal => 1,
            Lane::Low => 0,
        }
    }
}
