//! [`Done`]: the flag a server's task raises once when it has ended for good, and
//! that its handles wait on (`ServerRef::stopped`). One small allocation per server
//! (an atomic flag and a [`Notify`]), where a `watch` channel carried a lock and
//! eight wait lists for a value that changes once.
//!
//! Waiting is cancel safe: a dropped waiter leaves nothing behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Shared between a server's task and its handles.
#[derive(Default)]
pub(super) struct Done {
    ended: AtomicBool,
    notify: Notify,
}

impl Done {
    /// A flag not yet raised.
    pub(super) fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Raises the flag and wakes every waiter (the server task, once).
    pub(super) fn raise(&self) {
        self.ended.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Whether the flag is up.
    pub(super) fn is_raised(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Waits until the flag is up.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only withdraws this waiter.
    pub(super) async fn wait(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read: a raise after the read wakes it.
        notified.as_mut().enable();
        if self.is_raised() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_before_the_raise_is_woken_and_one_after_returns_at_once() {
        let done = Done::new();
        assert!(!done.is_raised());
        let d = done.clone();
        let waiter = tokio::spawn(async move { d.wait().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        done.raise();
        waiter.await.unwrap();
        assert!(done.is_raised());
        done.wait().await;
    }

    #[tokio::test]
    async fn a_dropped_waiter_leaves_the_others_waiting() {
        let done = Done::new();
        let first = done.wait();
        drop(first);
        let d = done.clone();
        let second = tokio::spawn(async move { d.wait().await });
        tokio::task::yield_now().await;
        done.raise();
        second.await.unwrap();
    }
}
