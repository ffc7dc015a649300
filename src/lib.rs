//! sluicegate: actor mailboxes whose behaviour when full is a policy you choose, with
//! exact accounting and metrics, and a small OTP-style runtime built on them.
//!
//! - [`mailbox`]: a multi-producer, single-consumer async queue on tokio. What it does
//!   when full is a [`Policy`](mailbox::Policy) value: unbounded, drop-newest,
//!   drop-oldest, block, CoDel or coalesce. Messages may carry deadlines and
//!   coalescing keys; every message is accounted for.
//! - [`runtime`]: GenServer-like servers on mailboxes (call and cast with typed
//!   errors), one-for-one supervision with restart limits, a registry of named
//!   servers started on first use and stopped when idle, keyed worker pools.
//!
//! The mailbox does not need the runtime; the runtime is one user of the mailbox.
//!
//! # What a mailbox is
//!
//! [`channel`](mailbox::channel) (or [`Builder`](mailbox::Builder) for a role name,
//! hooks and a metrics switch) returns a [`Sender`](mailbox::Sender), cheap to clone,
//! and the one [`Receiver`](mailbox::Receiver). Under every policy, plain
//! messages (no key, no deadline) go through a
//! lock-free ring while nothing needs the lock; everything else is decided by a core
//! behind one lock shared by both halves. While it has room, a send is accepted at once. When it is full,
//! the policy decides: refuse the newcomer, evict the oldest message, make the sender
//! wait, or merge the newcomer into a queued message with the same key. Refused
//! messages are handed back inside the error ([`SendError`](mailbox::SendError),
//! [`TrySendError`](mailbox::TrySendError)), so the sender decides what to do with
//! them; every other message that leaves without being delivered (dropped as oldest,
//! shed, expired, replaced by a newer one with its key, still queued when the
//! receiver goes) is a *dead letter*: it goes, exactly once, with its reason, key and
//! deadline, to the handler set with
//! [`Builder::dead_letters`](mailbox::Builder::dead_letters) (a
//! [`DeadLetter`](mailbox::DeadLetter) lists which outcomes are dead letters), so an
//! actor can answer a dropped request's caller at once;
//! [`Builder::log_dead_letters`](mailbox::Builder::log_dead_letters) logs them at a
//! limited rate. With neither set, a dead letter is dropped where it is discarded.
//!
//! A message travels on a [`Lane`](mailbox::Lane): the control lane, which the policy
//! never touches and which is delivered first
//! ([`Sender::try_send_control`](mailbox::Sender::try_send_control)), or a priority
//! (`High`, `Normal`, `Low`), FIFO within each.
//! [`Sender::reserve`](mailbox::Sender::reserve) holds a place before the message
//! exists and returns a [`Permit`](mailbox::Permit) whose `send` never waits; a
//! dropped permit gives its place back.
//!
//! [`Builder::long_queue(threshold, for_at_least)`](mailbox::Builder::long_queue)
//! watches the depth: when it has stayed above `threshold` for `for_at_least`, one
//! alert ([`LongQueueEvent`](mailbox::LongQueueEvent), kind `Long`) goes to the
//! callback of [`on_long_queue`](mailbox::Builder::on_long_queue), to a `WARN` log
//! line and to the metrics below; when it is back at or below, one `Recovered`
//! event (`INFO`). OTP's `long_message_queue` system monitor; checked at each
//! operation, stats snapshot and metrics flush rather than by a timer.
//!
//! A message sent with [`Meta`](mailbox::Meta) may carry a deadline (a message still
//! queued when it passes is never delivered) and a coalescing [`Key`](mailbox::Key).
//! The policy of a live mailbox can be changed with
//! [`Monitor::set_policy`](mailbox::Monitor::set_policy); what the new policy has
//! no room for is dropped and counted as that policy drops (never lost uncounted).
//!
//! # Choosing a policy
//!
//! The cost column is the throughput relative to kanal's `bounded_async` channel,
//! with 1 and with 4 producers, capacity 1024, metrics off (on, the default, in
//! brackets), measured with `cargo bench -p sluicegate --bench mailbox` on 2026-12-05
//! on a quiet 2-core VM (24 GiB). On the same run tokio's bounded mpsc was 0.22 / 0.21x
//! kanal; the full table is in `docs/benchmarks.md` in the repository.
//!
//! | policy | when full | the sender sees | x kanal (1 / 4) | use it when | avoid it when |
//! |---|---|---|---|---|---|
//! | [`Unbounded`](mailbox::Policy::Unbounded) | never full | `Ok` | 0.37 / 0.28 (0.29 / 0.25) | the producer cannot outrun the consumer, or is bounded elsewhere | load can exceed capacity: the backlog grows in memory with no signal to anyone |
//! | [`DropNewest`](mailbox::Policy::DropNewest) | the newcomer is refused | `Err(Rejected(msg))`, `Err(Full(msg))` from `try_send` | 0.35 / 1.04 (0.31 / 0.80) | the sender can answer "busy, retry later" (an HTTP 503) | the message must not be lost and nobody can retry it |
//! | [`DropOldest`](mailbox::Policy::DropOldest) | the oldest queued message is evicted | `Ok`; the evicted one goes to the [dead-letter handler](mailbox::Builder::dead_letters) | 0.32 / 0.26 (0.32 / 0.28) | the newest data matters most (state updates, telemetry) | every message must be processed |
//! | [`Block`](mailbox::Policy::Block) | the sender waits, FIFO among waiters, at most `send_timeout` | `Ok` after the wait, or `Err(Timeout(msg))` | 0.35 / 0.30 (0.30 / 0.27) | lossless pipelines that should slow their producer down | the senders must stay responsive (request handlers): their latency grows with the queue |
//! | [`Codel`](mailbox::Policy::Codel) | sheds from the head once the queue stood above `target` for `interval`; refuses at `capacity` | `Ok`; shed messages go to the [dead-letter handler](mailbox::Builder::dead_letters); `Err(Rejected(msg))` at capacity | 0.16 / 0.23 (0.12 / 0.20) | latency-sensitive work that is worthless when stale | every message matters; it stamps every message, so it is the slowest |
//! | [`Coalesce`](mailbox::Policy::Coalesce) | a keyed message replaces the queued one with the same key; full of distinct keys, the sender waits like `Block` | `Ok` | 0.35 / 0.31 (0.29 / 0.24) | only the latest message per key matters (one pending store per list) | messages have no key (it is then `Block`) or each must be seen |
//!
//! With the `serde` feature a `Policy` reads from a config file in the form
//! `policy = "drop_oldest"` and `capacity = 64` (durations as `"5ms"`).
//!
//! # Example
//!
//! ```
//! use sluicegate::mailbox::{channel, Policy, SendError, TrySendError};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // A full drop_newest mailbox refuses and hands the message back.
//! let (tx, mut rx) = channel::<&str>(Policy::DropNewest { capacity: 1 });
//! tx.send("first").await.unwrap();
//! assert!(matches!(tx.send("second").await, Err(SendError::Rejected("second"))));
//! assert!(matches!(tx.try_send("third"), Err(TrySendError::Full("third"))));
//! assert_eq!(rx.recv().await, Some("first"));
//!
//! // A drop_oldest mailbox keeps the newest `capacity` messages.
//! let (tx, mut rx) = channel::<u32>(Policy::DropOldest { capacity: 2 });
//! for i in 0..5 {
//!     tx.send(i).await.unwrap();
//! }
//! drop(tx);
//! let mut got = Vec::new();
//! while let Some(i) = rx.recv().await {
//!     got.push(i);
//! }
//! assert_eq!(got, [3, 4]);
//! let stats = rx.stats();
//! assert_eq!((stats.sent, stats.delivered, stats.dropped_oldest), (5, 2, 3));
//! assert!(stats.is_balanced());
//! # }
//! ```
//!
//! # Accounting
//!
//! Every message that reaches a mailbox ends in exactly one
//! [`Outcome`](mailbox::Outcome), and a [`Stats`](mailbox::Stats) snapshot
//! ([`Sender::stats`](mailbox::Sender::stats), [`Receiver::stats`](mailbox::Receiver::stats),
//! [`Monitor::stats`](mailbox::Monitor::stats)) never shows an outcome that did not
//! happen and lags by at most the operations in flight, so whenever no send or
//! receive on the mailbox is in progress
//!
//! ```text
//! sent = delivered + rejected + timed_out + dropped_oldest + shed + coalesced
//!        + expired + closed + discarded + depth
//! ```
//!
//! [`Stats::is_balanced`](mailbox::Stats::is_balanced) checks it. A send is counted once
//! it is resolved: a sender still waiting for space is in `waiting_senders`, not in
//! `sent`. `peak_depth` is the most messages ever queued at once.
//!
//! # Metrics
//!
//! Mailboxes and servers report through the [`metrics`](https://docs.rs/metrics)
//! facade, so any recorder (Prometheus, StatsD, ...) can export them. Mailbox metrics
//! carry the labels `mailbox` (the role set with
//! [`Builder::role`](mailbox::Builder::role); mailboxes of one role add up) and
//! `policy`:
//!
//! | name | constant | what |
//! |---|---|---|
//! | `sluicegate_mailboxes` | [`MAILBOXES`](mailbox::metrics::MAILBOXES) | live mailboxes |
//! | `sluicegate_mailbox_depth` | [`DEPTH`](mailbox::metrics::DEPTH) | messages queued now |
//! | `sluicegate_mailbox_capacity` | [`CAPACITY`](mailbox::metrics::CAPACITY) | capacity of one mailbox (0 = unbounded) |
//! | `sluicegate_mailbox_messages_total` | [`MESSAGES`](mailbox::metrics::MESSAGES) | messages by `outcome` (the [`Outcome`](mailbox::Outcome) labels) |
//! | `sluicegate_mailbox_sojourn_seconds` | [`SOJOURN`](mailbox::metrics::SOJOURN) | enqueue to delivery, one message in [`SOJOURN_SAMPLE_EVERY`](mailbox::SOJOURN_SAMPLE_EVERY) (every one under CoDel) |
//! | `sluicegate_mailbox_send_wait_seconds` | [`SEND_WAIT`](mailbox::metrics::SEND_WAIT) | time senders waited for space |
//! | `sluicegate_mailbox_long_queues` | [`LONG_QUEUES`](mailbox::metrics::LONG_QUEUES) | mailboxes of the role with a long-queue alert in force (whenever an alert is set, metrics on or off) |
//! | `sluicegate_mailbox_long_queue_events_total` | [`LONG_QUEUE_EVENTS`](mailbox::metrics::LONG_QUEUE_EVENTS) | long-queue alerts and recoveries by `event` (`long`, `recovered`) |
//!
//! Counts are published in batches (each outcome every
//! [`FLUSH_EVERY`](mailbox::metrics::FLUSH_EVERY) messages, and at each `Stats` snapshot) and
//! [`flush_all`](mailbox::metrics::flush_all) publishes every batch, so a scrape taken
//! after it is exact. [`Builder::metrics(false)`](mailbox::Builder::metrics) turns a
//! mailbox's metrics off; its `Stats` are always kept.
//!
//! Runtime metrics carry the label `role`: `sluicegate_call_duration_seconds`
//! ([`CALL_DURATION`](runtime::metrics::CALL_DURATION), sampled: each call with
//! probability 1 / [`CALL_LATENCY_SAMPLE_EVERY`](runtime::metrics::CALL_LATENCY_SAMPLE_EVERY)),
//! `sluicegate_calls_total{result}` ([`CALLS`](runtime::metrics::CALLS)),
//! `sluicegate_cast_errors_total` ([`CAST_ERRORS`](runtime::metrics::CAST_ERRORS)),
//! `sluicegate_casts_crashed_total` ([`CASTS_CRASHED`](runtime::metrics::CASTS_CRASHED)),
//! `sluicegate_server_restarts_total` ([`RESTARTS`](runtime::metrics::RESTARTS)),
//! `sluicegate_server_escalations_total` ([`ESCALATIONS`](runtime::metrics::ESCALATIONS)),
//! `sluicegate_registry_live_servers` ([`LIVE_SERVERS`](runtime::metrics::LIVE_SERVERS))
//! and `sluicegate_registry_starts_total` ([`SERVER_STARTS`](runtime::metrics::SERVER_STARTS));
//! [`runtime::metrics::ALL`] lists every one.
//!
//! # Cancel safety
//!
//! [`Receiver::recv`](mailbox::Receiver::recv) and
//! [`Receiver::recv_many`](mailbox::Receiver::recv_many) are cancel safe: a message
//! leaves the queue only in the poll that returns it, so using them in
//! `tokio::select!` loses nothing. Dropping a [`Sender::send`](mailbox::Sender::send)
//! future never loses or duplicates an accepted message; a message still parked
//! waiting for space was never accepted (not counted as sent) and is dropped with the
//! future.
//!
//! # Using the mailbox without the runtime
//!
//! Spawn a task that owns the [`Receiver`](mailbox::Receiver) and loops on `recv` (or
//! `recv_many` to take a batch under one lock), and give clones of the
//! [`Sender`](mailbox::Sender) to the producers. The loop ends when every sender is
//! gone and the queue is drained; [`Receiver::close`](mailbox::Receiver::close)
//! refuses new messages and lets the task drain what is queued, for a graceful stop.
//! A [`Monitor`](mailbox::Monitor) reads the stats and changes the policy without
//! keeping the mailbox open. Both sides take part in tokio's cooperative budget, so a
//! busy loop still yields to the scheduler.
//!
//! # The runtime
//!
//! A server is a state that implements [`runtime::Server`]; it runs in its own task
//! behind a mailbox of the policy you give, and a [`runtime::ServerRef`] handle sends
//! it calls (a request answered with a reply or a typed [`runtime::CallError`], always
//! within the caller's timeout) and casts (fire and forget, subject to the mailbox
//! policy). A panic in a handler answers its caller and fails every queued call; the
//! server's one-for-one supervisor ([`runtime::Supervisor`], OTP's restart kinds and
//! limits) starts a fresh state behind the same handles, and gives up and reports
//! after too many restarts in a time window. A [`runtime::Registry`] starts one server
//! per name on first use and stops servers that stay idle. A [`runtime::KeyedPool`]
//! sends each key always to the same worker, through a router server or straight to
//! the worker ([`runtime::Routing`]).
//!
//! Each call request carries its own [`runtime::ReplyTo`], so each request has its own
//! reply type and the compiler checks what a caller gets back:
//!
//! ```
//! use std::time::Duration;
//! use sluicegate::mailbox::Policy;
//! use sluicegate::runtime::{start, ReplyTo, Server, Spec};
//!
//! struct Counter(u64);
//!
//! enum Call {
//!     Get(ReplyTo<u64>),
//!     TakeAtMost(u64, ReplyTo<Result<u64, &'static str>>),
//! }
//!
//! impl Server for Counter {
//!     type Call = Call;
//!     type Cast = u64; // add
//!
//!     async fn handle_call(&mut self, call: Call) {
//!         match call {
//!             Call::Get(reply) => reply.send(self.0),
//!             Call::TakeAtMost(n, reply) if n > self.0 => reply.send(Err("not enough")),
//!             Call::TakeAtMost(n, reply) => {
//!                 self.0 -= n;
//!                 reply.send(Ok(self.0))
//!             }
//!         }
//!     }
//!
//!     async fn handle_cast(&mut self, n: u64) {
//!         self.0 += n;
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let counter = start(Spec::new("counter", Policy::Block { capacity: 64, send_timeout: None }, || Counter(0))).await?;
//! let t = Duration::from_secs(1);
//! counter.cast(5).await?;
//! assert_eq!(counter.call(Call::Get, t).await?, 5);
//! assert_eq!(counter.call(|r| Call::TakeAtMost(2, r), t).await?, Ok(3));
//! assert_eq!(counter.call(|r| Call::TakeAtMost(9, r), t).await?, Err("not enough"));
//! # Ok(()) }
//! ```
//!
//! # Cargo features
//!
//! - `serde`: [`Policy`](mailbox::Policy) implements `Serialize` and `Deserialize`.
#![forbid(unsafe_code)]

pub mod mailbox;
pub mod runtime;

/// The README's Rust examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
