//! The synchronisation the mailbox core uses: `parking_lot`'s spin-then-park `Mutex`
//! and std's `Arc` normally, loom's under `RUSTFLAGS="--cfg sluicegate_loom"` so that
//! tests/loom_mailbox.rs can model-check it. Both lock without poisoning: the core
//! restores its invariants before any user hook runs, so a panic never wedges it.

#[cfg(not(sluicegate_loom))]
pub(crate) use parking_lot::{Mutex, MutexGuard};
#[cfg(not(sluicegate_loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    Arc,
};

#[cfg(sluicegate_loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    Arc, MutexGuard,
};

/// One step of a wait for a short critical section on another thread: spins a few
/// times, then yields the thread.
#[cfg(not(sluicegate_loom))]
pub(crate) fn backoff(spins: &mut u32) {
    if *spins < 64 {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Under loom every wait yields, so the model checker runs the other threads.
#[cfg(sluicegate_loom)]
pub(crate) fn backoff(_spins: &mut u32) {
    loom::thread::yield_now();
}

/// loom's `Mutex` behind `parking_lot`'s signature (`lock` returns the guard).
#[cfg(sluicegate_loom)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(sluicegate_loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
