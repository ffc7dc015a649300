//! The synchronisation the mailbox core uses: std's `Arc` and `Mutex` normally, loom's
//! under `RUSTFLAGS="--cfg sluicegate_loom"` so tests/loom_mailbox.rs can model-check it.

#[cfg(sluicegate_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(sluicegate_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
