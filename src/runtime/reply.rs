//! [`ReplyTo`]: where a call's reply goes. Each request of a server carries its own
//! `ReplyTo<T>`, so the compiler checks what a caller gets back (ractor's reply
//! port in each variant): the caller names the variant with a closure,
//! `server.call(|reply| Request::Get(key, reply), timeout)`, and gets a `T`.
//!
//! A `ReplyTo` is a one-shot handle (one allocation: tokio's oneshot channel) that
//! the server answers through, now or later, from any task. Dropped unanswered it
//! answers the caller with an error: [`CallError::Panicked`] while a panic unwinds,
//! the reason the runtime gives when it discards a queued call (a mailbox eviction,
//! a server stopping or crashing with calls queued), and [`CallError::NoReply`]
//! otherwise. The runtime gives that reason through a thread-local set only for the
//! `drop` it wraps ([`fail_call`]), so a request type needs no method for it.

use std::cell::Cell;
use std::fmt;

use tokio::sync::oneshot;

use super::error::CallError;

/// What the caller of a call waits on.
pub(crate) type ReplyRx<R> = oneshot::Receiver<Result<R, CallError>>;

thread_local! {
    /// The error a `ReplyTo` dropped unanswered sends, while the runtime discards a
    /// call (set and restored by [`fail_call`]).
    static DROP_REASON: Cell<Option<CallError>> = const { Cell::new(None) };
}

/// Drops `value` (a request, an envelope, anything holding [`ReplyTo`]s) so that
/// every `ReplyTo` inside it answers its caller with `reason`: what the runtime
/// does with a call it discards, and what a server's own
/// [`Server::coalesce`](super::Server::coalesce) does with a call it replaces.
///
/// # Examples
///
/// ```
/// use sluicegate::runtime::{fail_call, CallError, ReplyTo};
///
/// enum Request {
///     Get(ReplyTo<u64>),
/// }
///
/// fn replaced(old: Request) {
///     // Its caller gets `Err(CallError::Dropped)`.
///     fail_call(old, CallError::Dropped);
/// }
/// ```
pub fn fail_call<T>(value: T, reason: CallError) {
    /// Restores the previous reason even if a destructor panics.
    struct Restore(Option<CallError>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DROP_REASON.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(DROP_REASON.with(|r| r.replace(Some(reason))));
    drop(value);
}

/// Where a call's reply goes: put one in each request variant that expects an
/// answer, and answer through it with [`send`](Self::send).
///
/// Dropping it unanswered answers the caller with an error (see the module docs),
/// so no caller waits past its timeout for a reply that cannot come.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluicegate::mailbox::Policy;
/// use sluicegate::runtime::{start, ReplyTo, Server, Spec};
///
/// enum Request {
///     Get(ReplyTo<u64>),
///     Double(u64, ReplyTo<u64>),
/// }
///
/// struct Calc;
///
/// impl Server for Calc {
///     type Call = Request;
///     type Cast = ();
///
///     async fn handle_call(&mut self, request: Request) {
///         match request {
///             Request::Get(reply) => reply.send(42),
///             Request::Double(n, reply) => reply.send(2 * n),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let calc = start(Spec::new("calc", Policy::Unbounded, || Calc)).await.unwrap();
/// let t = Duration::from_secs(1);
/// assert_eq!(calc.call(Request::Get, t).await, Ok(42));
/// assert_eq!(calc.call(|r| Request::Double(21, r), t).await, Ok(42));
/// # }
/// ```
pub struct ReplyTo<R> {
    tx: Option<oneshot::Sender<Result<R, CallError>>>,
}

impl<R> ReplyTo<R> {
    /// A reply handle and the receiver its caller waits on.
    pub(crate) fn pair() -> (Self, ReplyRx<R>) {
        let (tx, rx) = oneshot::channel();
        (ReplyTo { tx: Some(tx) }, rx)
    }

    /// Answers the call. Never waits; if the caller has given up, the reply is
    /// dropped.
    pub fn send(mut self, reply: R) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(reply));
        }
    }

    /// Fails the call with a runtime error instead of answering it (for an error
    /// of your own, make it part of the reply type: `ReplyTo<Result<T, E>>`).
    pub fn fail(mut self, error: CallError) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(error));
        }
    }

    /// Whether the caller has given up (timed out or dropped its future): a
    /// handler may skip work nobody waits for.
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
                DROP_REASON.with(Cell::get).unwrap_or(CallError::NoReply)
            };
            let _ = tx.send(Err(err));
        }
    }
}

impl<R> fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyTo")
            .field("abandoned", &self.is_abandoned())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_unanswered_it_fails_the_call_with_no_reply() {
        let (reply, mut rx) = ReplyTo::<u8>::pair();
        drop(reply);
        assert_eq!(rx.try_recv().unwrap(), Err(CallError::NoReply));
    }

    #[test]
    fn dropped_by_the_runtime_it_fails_with_the_reason_given_then_forgets_it() {
        let (a, mut rx_a) = ReplyTo::<u8>::pair();
        let (b, mut rx_b) = ReplyTo::<u8>::pair();
        fail_call((a, vec![b]), CallError::Stopped);
        assert_eq!(rx_a.try_recv().unwrap(), Err(CallError::Stopped));
        assert_eq!(rx_b.try_recv().unwrap(), Err(CallError::Stopped));
        let (c, mut rx_c) = ReplyTo::<u8>::pair();
        drop(c);
        assert_eq!(rx_c.try_recv().unwrap(), Err(CallError::NoReply));
    }

    #[test]
    fn answered_it_sends_once() {
        let (reply, mut rx) = ReplyTo::pair();
        assert!(!reply.is_abandoned());
        reply.send(7u8);
        assert_eq!(rx.try_recv().unwrap(), Ok(7));
    }
}
