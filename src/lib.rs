//! sluicegate: actor mailboxes whose overflow behaviour is a pluggable policy,
//! and the concurrent to-do system of *Elixir in Action*, chapter 7, built on them.
//!
//! # Layout
//!
//! The layers, lowest first; each uses only those listed before it
//! (`tests/layers.rs` fails when one names a higher one):
//!
//! - [`mailbox`]: the core. A multi-producer, single-consumer async queue whose
//!   behaviour when full is a [`mailbox::Policy`]: unbounded, drop-oldest,
//!   drop-newest, block, CoDel, coalesce; deadlines; exact accounting; metrics.
//! - [`runtime`]: GenServer-like servers on mailboxes (call/cast, typed errors),
//!   one-for-one supervision with restart limits, a registry of named servers
//!   (get-or-start, idle stop), keyed worker pools (routed or direct).
//! - [`todo`]: the chapter 7 domain: the pure to-do list, list names, the list
//!   server, the database pool (group commit), [`todo::TodoSystem`] that ties them
//!   together, and what it needs from above as its own types: the storage port
//!   ([`todo::port`]), the stored list format, its [`todo::Settings`] and
//!   [`todo::AckMode`].
//! - [`cluster`]: the rules of running on several nodes sharing PostgreSQL (in
//!   progress): shards, leases with epochs on each node's monotonic clock, and the
//!   fence every store of a list carries; pure code, simulated in tests.
//! - [`storage`]: the port's backends: SQLite (default), PostgreSQL, the book's
//!   crash-safe files, memory, and a fault-injecting wrapper.
//! - [`config`]: the TOML file that picks storage, acks, timeouts and a mailbox
//!   policy per role (`policies/*.toml` are ready-made ones).
//! - [`start`]: a config into [`todo::Settings`], its backend opened:
//!   `TodoSystem::start(&config, data_dir)`.
//! - [`service`]: the HTTP API (axum, OpenAPI), Prometheus `/metrics`, the live
//!   `/dashboard`, graceful shutdown.
//! - [`load`]: `sluicegate load`, open-loop HTTP load against a running service.
//! - [`experiment`]: `sluicegate experiment`, scenarios x policy files, each
//!   run in a child process, with tables and plots (cargo feature `experiment`,
//!   on by default; the binary needs it).
//!
//! # Graceful shutdown
//!
//! [`service::Running::shutdown`] (SIGTERM or Ctrl-C in `sluicegate serve`) stops
//! accepting connections, lets in-flight requests finish, then
//! [`todo::TodoSystem::shutdown`] closes every list server's mailbox and lets it
//! handle what is queued (writes already acknowledged `applied` included), and
//! finally the database workers write every queued store before they stop.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod config;
#[cfg(feature = "experiment")]
pub mod experiment;
pub mod load;
pub mod mailbox;
pub mod runtime;
pub mod service;
pub mod start;
pub mod storage;
pub mod todo;

/// The README's Rust examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
