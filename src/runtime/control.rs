//! The stop requests of a server, sent around its mailbox: one small cell (an
//! atomic request word and a waker, about 48 bytes with the `Arc`) shared by the
//! handles and the server task, so a busy receive loop sees "nothing asked" with
//! one atomic load, and an idle server holds no channel (a tokio unbounded channel
//! here cost about 600 bytes per server).
//!
//! Only the first request of an instance counts, as the loop acts on it at once: a
//! drain stops looking at requests (it ends when the queue is empty), and a stop
//! without drain ends the instance. So the cell keeps the first request not yet
//! taken, and later ones while it waits are dropped. A request is stored first and
//! the waker woken after it; the loop registers its waker before it looks again,
//! so a request is never missed. Every handle being gone is seen through the
//! mailbox instead (it ends with its senders, which the handles hold).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

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
}
