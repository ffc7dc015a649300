//! [`ReplyTo`]: where a call's reply goes. A one-shot handle the server answers
//! through, now or later; dropped unanswered, it answers the caller with an error.

use std::fmt;

use tokio::sync::oneshot;

use super::error::CallError;

/// Where a call's reply goes. Dropping it unanswered answers the caller with
/// [`CallError::NoReply`] (or [`CallError::Panicked`] while a panic unwinds).
pub struct ReplyTo<R> {
    tx: Option<oneshot::Sender<Result<R, CallError>>>,
}

impl<R> ReplyTo<R> {
    /// A reply handle and the receiver its caller waits on; for code that builds
    /// envelopes itself (e.g. a router forwarding calls).
    pub fn pair() -> (Self, oneshot::Receiver<Result<R, CallError>>) {
        let (tx, rx) = oneshot::channel();
        (ReplyTo { tx: Some(tx) }, rx)
    }

    /// Answers the call.
    pub fn send(mut self, reply: R) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(reply));
        }
    }

    /// Fails the call with an error.
    pub fn fail(mut self, error: CallError) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(error));
        }
    }

    /// Drops the handle without answering (its caller is known to be gone).
    pub(super) fn disarm(mut self) {
        self.tx = None;
    }

    /// Whether the caller has given up (timed out or dropped its future).
    pub fn is_abandoned(&self) -> bool {
        self.tx.as_ref().is_none_or(|tx| tx.is_closed())
    }
}

impl<R> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let err = if std::thread::panicking() {
                CallError::Panicked
            } else {
                CallError::NoReply
            };
            let _ = tx.send(Err(err));
        }
    }
}

impl<R> fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyTo").finish_non_exhaustive()
    }
}
