//! What a server's handles and its task share beside the mailbox, in one small
//! cell (about 80 bytes with the `Arc`): the stop requests sent around the mailbox
//! (an atomic request word and a waker), and the flag the task raises once when the
//! server has ended for good, with the waiters on it (`ServerRef::stopped`). One
//! allocation per server: a tokio unbounded channel here cost about 600 bytes, and
//! two cells (requests, end) 104 bytes.
//!
//! Requests: a busy receive loop sees "nothing asked" with one atomic load, and an
//! idle server holds no channel. Only the first request of an instance counts, as
//! the loop acts on it at once: a drain stops looking at requests (it ends when the
//! queue is empty), and a stop without drain ends the instance. So the cell keeps
//! the first request not yet taken, and later ones while it waits are dropped. A
//! request is stored first and the waker woken after it; the loop registers its
//! waker before it looks again, so a request is never missed. Every handle being
//! gone is seen through the mailbox instead (it ends with its senders, which the
//! handles hold).
//!
//! The end: an atomic flag and a [`Notify`], where a `watch` channel carried a
//! lock and eight wait lists for a value that changes once. Waiting is cancel safe:
//! a dropped waiter leaves nothing behind.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

/// Asks a running server's task to stop; sent around the mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Control {
    /// Stop after the message in hand; `drain` processes what is queued first.
    Stop { drain: bool },
}

/// No request waiting.
const NONE: u8 = 0;
/// `Stop { drain: true }` waiting.
const DRAIN: u8 = 1;
/// `Stop { drain: false }` waiting.
const NOW: u8 = 2;

struct Cell {
    request: AtomicU8,
    waker: AtomicWaker,
    /// The server task dropped its side.
    gone: AtomicBool,
    /// The server has ended for good (raised once by its task).
    ended: AtomicBool,
    /// The waiters on `ended`.
    notify: Notify,
}

/// The handles' side: cheap to clone.
#[derive(Clone)]
pub(super) struct ControlTx {
    cell: Arc<Cell>,
}

/// The server task's side.
pub(super) struct ControlRx {
    cell: Arc<Cell>,
}

/// A connected pair.
pub(super) fn channel() -> (ControlTx, ControlRx) {
    let cell = Arc::new(Cell {
        request: AtomicU8::new(NONE),
        waker: AtomicWaker::new(),
        gone: AtomicBool::new(false),
        ended: AtomicBool::new(false),
        notify: Notify::new(),
    });
    (ControlTx { cell: cell.clone() }, ControlRx { cell })
}

impl ControlTx {
    /// Sends a request (kept unless an earlier one is still waiting); `false` when
    /// the server task is gone.
    pub(super) fn send(&self, c: Control) -> bool {
        let word = match c {
            Control::Stop { drain: true } => DRAIN,
            Control::Stop { drain: false } => NOW,
        };
        let _ =
            self.cell
                .request
                .compare_exchange(NONE, word, Ordering::Release, Ordering::Relaxed);
        self.cell.waker.wake();
        !self.is_closed()
    }

    /// Whether the server task has dropped its side.
    pub(super) fn is_closed(&self) -> bool {
        self.cell.gone.load(Ordering::Acquire)
    }

    /// Whether the server has ended for good.
    pub(super) fn is_ended(&self) -> bool {
        self.cell.is_ended()
    }

    /// Waits until the server has ended for good.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only withdraws this waiter.
    pub(super) async fn ended(&self) {
        let notified = self.cell.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read: a raise after the read wakes it.
        notified.as_mut().enable();
        if self.cell.is_ended() {
            return;
        }
        notified.await;
    }
}

impl Cell {
    fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

impl ControlRx {
    /// The request sent since the last look, if any: one atomic load when none was.
    #[inline]
    pub(super) fn try_take(&mut self) -> Option<Control> {
        if self.cell.request.load(Ordering::Relaxed) == NONE {
            return None;
        }
        match self.cell.request.swap(NONE, Ordering::Acquire) {
            DRAIN => Some(Control::Stop { drain: true }),
            NOW => Some(Control::Stop { drain: false }),
            _ => None,
        }
    }

    /// Waits for a request: registers the task's waker, then looks once more, so
    /// a request sent in between is not missed.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Control> {
        if let Some(c) = self.try_take() {
            return Poll::Ready(c);
        }
        self.cell.waker.register(cx.waker());
        match self.try_take() {
            Some(c) => Poll::Ready(c),
            None => Poll::Pending,
        }
    }

    /// The server has ended for good: raises the flag and wakes every waiter (once).
    pub(super) fn raise_ended(&self) {
        self.cell.ended.store(true, Ordering::Release);
        self.cell.notify.notify_waiters();
    }
}

impl Drop for ControlRx {
    fn drop(&mut self) {
        self.cell.gone.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker_ref;
    use std::future::poll_fn;

    #[test]
    fn a_request_is_taken_once_and_then_nothing_is_asked() {
        let (tx, mut rx) = channel();
        assert!(rx.try_take().is_none());
        assert!(tx.send(Control::Stop { drain: true }));
        assert_eq!(rx.try_take(), Some(Control::Stop { drain: true }));
        assert!(rx.try_take().is_none());
    }

    #[test]
    fn the_first_request_waiting_is_the_one_taken() {
        let (tx, mut rx) = channel();
        assert!(tx.send(Control::Stop { drain: true }));
        assert!(tx.send(Control::Stop { drain: false }));
        assert_eq!(rx.try_take(), Some(Control::Stop { drain: true }));
        assert!(rx.try_take().is_none());
        // A request after the first was taken is seen on the next look.
        assert!(tx.send(Control::Stop { drain: false }));
        assert_eq!(rx.try_take(), Some(Control::Stop { drain: false }));
    }

    #[test]
    fn a_waiting_server_is_woken_by_a_request() {
        let (tx, mut rx) = channel();
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(rx.poll_recv(&mut cx).is_pending());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = rt.block_on(async move {
            let waiter = tokio::spawn(async move { poll_fn(|cx| rx.poll_recv(cx)).await });
            tokio::task::yield_now().await;
            tx.send(Control::Stop { drain: false });
            waiter.await.unwrap()
        });
        assert_eq!(got, Control::Stop { drain: false });
    }

    #[test]
    fn sending_to_a_gone_server_says_so() {
        let (tx, rx) = channel();
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert!(!tx.send(Control::Stop { drain: true }));
    }

    #[tokio::test]
    async fn a_waiter_before_the_end_is_woken_and_one_after_returns_at_once() {
        let (tx, rx) = channel();
        assert!(!tx.is_ended());
        let t = tx.clone();
        let waiter = tokio::spawn(async move { t.ended().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        rx.raise_ended();
        waiter.await.unwrap();
        assert!(tx.is_ended());
        tx.ended().await;
    }

    #[tokio::test]
    async fn a_dropped_waiter_leaves_the_others_waiting() {
        let (tx, rx) = channel();
        let first = tx.ended();
        drop(first);
        let t = tx.clone();
        let second = tokio::spawn(async move { t.ended().await });
        tokio::task::yield_now().await;
        rx.raise_ended();
        second.await.unwrap();
    }
}
