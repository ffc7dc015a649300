//! sluicegate: actor mailboxes whose overflow behaviour is a pluggable policy,
//! and a small OTP-style runtime on them.
//!
//! - [`mailbox`]: a multi-producer, single-consumer async queue whose behaviour
//!   when full is a [`mailbox::Policy`]: unbounded, drop-oldest, drop-newest,
//!   block, CoDel, coalesce; deadlines; exact accounting; metrics.
//! - [`runtime`]: GenServer-like servers on mailboxes (call/cast, typed errors),
//!   one-for-one supervision with restart limits, a registry of named servers
//!   (get-or-start, idle stop), keyed worker pools (routed or direct).
#![forbid(unsafe_code)]

pub mod mailbox;
pub mod runtime;

/// The README's Rust examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
