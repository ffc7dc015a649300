//! sluicegate: actor mailboxes whose overflow behaviour is a pluggable policy,
//! and the concurrent to-do system of *Elixir in Action*, chapter 7, built on them.
#![forbid(unsafe_code)]

pub mod mailbox;
pub mod runtime;
