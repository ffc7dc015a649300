//! sluicegate-todo: the concurrent to-do system of *Elixir in Action*, chapter 7,
//! built as a real service on the [`sluicegate`] framework's mailboxes and runtime.
//!
//! # Layout
//!
//! The layers, lowest first; each uses only those listed before it
//! (`todo/tests/repo/layers.rs` fails when one names a higher one). The framework itself
//! (`sluicegate::mailbox`, `sluicegate::runtime`) is a crate of its own below them all.
//!
//! - [`domain`]: the chapter 7 domain: the pure to-do list, list names, the list
//!   server, the database pool (group commit), [`domain::TodoSystem`] that ties them
//!   together, and what it needs from above as its own types: the storage port
//!   ([`domain::port`]), the stored list format, its [`domain::Settings`] and
//!   [`domain::AckMode`].
//! - [`cluster`]: running on several nodes sharing PostgreSQL: shards, leases with
//!   epochs on each node's monotonic clock, the keeper task that renews and claims
//!   them, and the fence every store of a list carries.
//! - [`storage`]: the port's backends: SQLite (default), PostgreSQL, the book's
//!   crash-safe files, memory, and a fault-injecting wrapper.
//! - [`config`]: the TOML file that picks storage, acks, timeouts and a mailbox
//!   policy per role (`policies/*.toml` are ready-made ones).
//! - [`start`]: a config into [`domain::Settings`], its backend opened:
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
//! [`domain::TodoSystem::shutdown`] closes every list server's mailbox and lets it
//! handle what is queued (writes already acknowledged `applied` included), and
//! finally the database workers write every queued store before they stop.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod config;
pub mod domain;
#[cfg(feature = "experiment")]
pub mod experiment;
pub mod load;
pub mod service;
pub mod start;
pub mod storage;
