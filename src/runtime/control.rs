//! The control channel around a server's mailbox (stop requests), with a flag that
//! lets a busy receive loop see "nothing asked" with one atomic load instead of a
//! `try_recv` on the channel per message.
//!
//! A request is sent first and the flag raised after it (`Release`); the loop takes
//! the flag down (`Acquire` swap) before it looks, and raises it again after taking a
//! request, so a second request sent meanwhile is looked at on the next turn. A
//! request whose flag the loop has not seen yet is still found when the loop runs
//! out of work, where it waits on the channel itself; the channel's end (every handle
//! gone) is only seen there, which is when it matters (the mailbox ends with its
//! handles too).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

/// Asks a running server's task to stop; sent around the mailbox.
pub(super) enum Control {
    /// Stop after the message in hand; `drain` processes what is queued first.
    Stop { drain: bool },
}

/// The handles' side: cheap to clone.
#[derive(Clone)]
pub(super) struct ControlTx {
    tx: mpsc::UnboundedSender<Control>,
    pending: Arc<AtomicBool>,
}

/// The server task's side.
pub(super) struct ControlRx {
    rx: mpsc::UnboundedReceiver<Control>,
    pending: Arc<AtomicBool>,
}

/// A connected pair.
pub(super) fn channel() -> (ControlTx, ControlRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pending = Arc::new(AtomicBool::new(false));
    (
        ControlTx {
            tx,
            pending: pending.clone(),
        },
        ControlRx { rx, pending },
    )
}

impl ControlTx {
    /// Sends a request; `false` when the server task is gone.
    pub(super) fn send(&self, c: Control) -> bool {
        let sent = self.tx.send(c).is_ok();
        self.pending.store(true, Ordering::Release);
        sent
    }

    /// Whether the server task has dropped its side.
    pub(super) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl ControlRx {
    /// A request sent since the last look, without touching the channel when the flag
    /// says none was.
    #[inline]
    pub(super) fn try_take(&mut self) -> Option<Control> {
        if !self.pending.load(Ordering::Relaxed) || !self.pending.swap(false, Ordering::Acquire) {
            return None;
        }
        let c = self.rx.try_recv().ok()?;
        // Others may be queued behind it: look again next turn.
        self.pending.store(true, Ordering::Relaxed);
        Some(c)
    }

    /// Waits on the channel itself: a request, or `None` once every handle is gone.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Control>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(c: Option<Control>) -> Option<bool> {
        c.map(|Control::Stop { drain }| drain)
    }

    #[test]
    fn every_request_is_taken_in_order_and_then_the_flag_is_down() {
        let (tx, mut rx) = channel();
        assert!(drain(rx.try_take()).is_none());
        assert!(tx.send(Control::Stop { drain: true }));
        assert!(tx.send(Control::Stop { drain: false }));
        assert_eq!(drain(rx.try_take()), Some(true));
        assert_eq!(drain(rx.try_take()), Some(false));
        assert!(drain(rx.try_take()).is_none());
        assert!(!rx.pending.load(Ordering::Relaxed));
    }

    #[test]
    fn a_request_sent_between_two_looks_is_seen_on_the_next() {
        let (tx, mut rx) = channel();
        assert!(tx.send(Control::Stop { drain: true }));
        assert_eq!(drain(rx.try_take()), Some(true));
        assert!(tx.send(Control::Stop { drain: false }));
        assert_eq!(drain(rx.try_take()), Some(false));
        assert!(drain(rx.try_take()).is_none());
    }

    #[test]
    fn sending_to_a_gone_server_says_so() {
        let (tx, rx) = channel();
        drop(rx);
        assert!(tx.is_closed());
        assert!(!tx.send(Control::Stop { drain: true }));
    }
}
