//! Errors of the mailbox: small enums that hand the refused message back,
//! so the sender decides what to do with it.

use std::fmt;

/// Why [`Sender::send`](super::Sender::send) or
/// [`Sender::send_timeout`](super::Sender::send_timeout) did not enqueue a message.
/// Each variant hands the message back.
#[derive(PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum SendError<T> {
    /// The policy refused the message (a full `drop_newest` or `codel` mailbox).
    Rejected(T),
    /// The sender waited for space (`block`, `coalesce`) longer than its timeout.
    Timeout(T),
    /// The receiver was dropped or closed.
    Closed(T),
}

impl<T> SendError<T> {
    /// The message that was not enqueued.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Rejected(m) | SendError::Timeout(m) | SendError::Closed(m) => m,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Rejected(_) => f.write_str("Rejected(..)"),
            SendError::Timeout(_) => f.write_str("Timeout(..)"),
            SendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Rejected(_) => "mailbox full: message rejected",
            SendError::Timeout(_) => "timed out waiting for mailbox space",
            SendError::Closed(_) => "mailbox closed",
        })
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Why [`Sender::try_send`](super::Sender::try_send) did not enqueue a message.
/// Each variant hands the message back.
#[derive(PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum TrySendError<T> {
    /// The mailbox is full and its policy refuses, or would have made the sender wait.
    Full(T),
    /// The receiver was dropped or closed.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The message that was not enqueued.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(m) | TrySendError::Closed(m) => m,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "mailbox full",
            TrySendError::Closed(_) => "mailbox closed",
        })
    }
}

impl<T> std::error::Error for TrySendError<T> {}

/// Why [`Receiver::try_recv`](super::Receiver::try_recv) returned no message.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum TryRecvError {
    /// Nothing is queued right now.
    Empty,
    /// Nothing is queued and nothing will be: every sender is gone or the mailbox is closed.
    Disconnected,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "mailbox empty",
            TryRecvError::Disconnected => "mailbox empty and disconnected",
        })
    }
}

impl std::error::Error for TryRecvError {}

/// Why [`Sender::reserve`](super::Sender::reserve) (or `try_reserve`,
/// `reserve_timeout`, `reserve_owned`) gave no permit. No message exists yet, so
/// nothing is handed back and nothing is counted.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum ReserveError {
    /// No room, and the policy refuses rather than waits (`drop_newest`, `codel`),
    /// or `try_reserve` where it would wait (`block`, `coalesce`).
    Full,
    /// The wait for room (`block`, `coalesce`) ran past its timeout.
    Timeout,
    /// The receiver was dropped or closed.
    Closed,
}

impl fmt::Display for ReserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReserveError::Full => "mailbox full: no room to reserve",
            ReserveError::Timeout => "timed out waiting for mailbox room to reserve",
            ReserveError::Closed => "mailbox closed",
        })
    }
}

impl std::error::Error for ReserveError {}
