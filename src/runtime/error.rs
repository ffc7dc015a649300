//! Typed errors of the runtime: why a call, a cast or a start did not succeed, and
//! the one place a mailbox's refusal or eviction becomes a call's or cast's error.

use std::fmt;

use crate::mailbox::{Eviction, InvalidPolicy, SendError, TrySendError};

/// Why a [`call`](super::ServerRef::call) got no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallError {
    /// No reply within the call's timeout (waiting for mailbox space included).
    Timeout,
    /// The server's mailbox refused the call (full under `drop_newest` or `codel`).
    Rejected,
    /// The call was accepted, then evicted (`drop_oldest`), shed (CoDel) or
    /// replaced (`coalesce`) before the server ran it.
    Dropped,
    /// Its deadline (the caller's timeout) passed while queued: the server never ran it.
    Expired,
    /// The server stopped, or crashed while the call was queued, before running it.
    Stopped,
    /// The handler running this call panicked.
    Panicked,
    /// The handler dropped the reply handle without answering.
    NoReply,
}

impl CallError {
    /// A short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            CallError::Timeout => "timeout",
            CallError::Rejected => "rejected",
            CallError::Dropped => "dropped",
            CallError::Expired => "expired",
            CallError::Stopped => "stopped",
            CallError::Panicked => "panicked",
            CallError::NoReply => "no_reply",
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallError::Timeout => "call timed out",
            CallError::Rejected => "server mailbox full: call rejected",
            CallError::Dropped => "call dropped from the server's mailbox before it ran",
            CallError::Expired => "call expired in the server's mailbox before it ran",
            CallError::Stopped => "server stopped before running the call",
            CallError::Panicked => "server panicked while handling the call",
            CallError::NoReply => "server handled the call without replying",
        })
    }
}

impl std::error::Error for CallError {}

impl<T> From<&SendError<T>> for CallError {
    /// The mailbox refused the call: full (`Rejected`), no space in time
    /// (`Timeout`) or closed, the server gone (`Stopped`).
    fn from(e: &SendError<T>) -> Self {
        match e {
            SendError::Rejected(_) => CallError::Rejected,
            SendError::Timeout(_) => CallError::Timeout,
            SendError::Closed(_) => CallError::Stopped,
        }
    }
}

impl From<Eviction> for CallError {
    /// A queued call left the mailbox unrun: its deadline passed (`Expired`), it
    /// was refused on arrival (`Rejected`), it was still queued or waiting when the
    /// mailbox went away (`Stopped`), or it was dropped, shed or replaced.
    fn from(why: Eviction) -> Self {
        match why {
            Eviction::Expired => CallError::Expired,
            Eviction::Rejected => CallError::Rejected,
            Eviction::Discarded | Eviction::Closed => CallError::Stopped,
            _ => CallError::Dropped,
        }
    }
}

/// Why a [`cast`](super::ServerRef::cast) was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CastError {
    /// The server's mailbox refused it.
    Rejected,
    /// Waited for mailbox space (`block`) past the send timeout.
    Timeout,
    /// The server is stopped.
    Stopped,
}

impl CastError {
    /// A short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            CastError::Rejected => "rejected",
            CastError::Timeout => "timeout",
            CastError::Stopped => "stopped",
        }
    }
}

impl fmt::Display for CastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CastError::Rejected => "server mailbox full: cast rejected",
            CastError::Timeout => "timed out waiting for space in the server's mailbox",
            CastError::Stopped => "server stopped",
        })
    }
}

impl std::error::Error for CastError {}

impl<T> From<&SendError<T>> for CastError {
    /// The mailbox refused the cast.
    fn from(e: &SendError<T>) -> Self {
        match e {
            SendError::Rejected(_) => CastError::Rejected,
            SendError::Timeout(_) => CastError::Timeout,
            SendError::Closed(_) => CastError::Stopped,
        }
    }
}

impl<T> From<&TrySendError<T>> for CastError {
    /// The mailbox refused a cast that may not wait.
    fn from(e: &TrySendError<T>) -> Self {
        match e {
            TrySendError::Full(_) => CastError::Rejected,
            TrySendError::Closed(_) => CastError::Stopped,
        }
    }
}

/// Why a server could not be started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// `init` returned an error (kept as this error's source) or panicked.
    #[error("server failed to start: {0}")]
    Init(#[source] InitError),
    /// The registry already runs its maximum number of live servers.
    #[error("too many live servers (the cap is {cap})")]
    TooManyServers {
        /// The configured cap.
        cap: usize,
    },
    /// The mailbox policy is invalid (the cause is the error's source).
    #[error("invalid mailbox policy: {0}")]
    InvalidPolicy(#[source] InvalidPolicy),
    /// The runtime is shutting down.
    #[error("shutting down")]
    ShuttingDown,
}

/// Error type `init` may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a server's `init` failed: the error it returned, kept whole so a caller can
/// [`downcast_ref`](InitError::downcast_ref) it to its own type, or the message of
/// its panic. Cheap to clone (the error is shared).
///
/// # Examples
///
/// ```
/// use sluicegate::mailbox::Policy;
/// use sluicegate::runtime::{start, BoxError, ReplyTo, Server, Spec, StartError};
///
/// #[derive(Debug)]
/// struct NoDatabase;
///
/// impl std::fmt::Display for NoDatabase {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("the database is unreachable")
///     }
/// }
///
/// impl std::error::Error for NoDatabase {}
///
/// struct Repo;
///
/// impl Server for Repo {
///     type Call = ReplyTo<()>;
///     type Cast = ();
///
///     async fn init(&mut self) -> Result<(), BoxError> {
///         Err(Box::new(NoDatabase))
///     }
///
///     async fn handle_call(&mut self, reply: ReplyTo<()>) {
///         reply.send(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let Err(StartError::Init(e)) = start(Spec::new("repo", Policy::Unbounded, || Repo)).await
/// else {
///     panic!("init fails");
/// };
/// assert!(e.downcast_ref::<NoDatabase>().is_some());
/// assert!(!e.is_panic());
/// assert_eq!(e.to_string(), "the database is unreachable");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct InitError(InitCause);

#[derive(Clone, Debug)]
enum InitCause {
    Returned(std::sync::Arc<dyn std::error::Error + Send + Sync>),
    Panicked(String),
    Other(String),
}

impl InitError {
    /// `init` returned `error`.
    pub fn returned(error: BoxError) -> Self {
        InitError(InitCause::Returned(error.into()))
    }

    /// `init` panicked with `message`.
    pub fn panicked(message: impl Into<String>) -> Self {
        InitError(InitCause::Panicked(message.into()))
    }

    /// The server could not run `init` at all (its task ended, or the task starting
    /// it panicked); `what` says which.
    pub fn other(what: impl Into<String>) -> Self {
        InitError(InitCause::Other(what.into()))
    }

    /// The error `init` returned, as `E` when it is one.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match &self.0 {
            InitCause::Returned(e) => e.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// Whether `init` panicked (a bug), rather than returning an error.
    pub fn is_panic(&self) -> bool {
        matches!(self.0, InitCause::Panicked(_))
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            InitCause::Returned(e) => e.fmt(f),
            InitCause::Panicked(m) => write!(f, "init panicked: {m}"),
            InitCause::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for InitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            InitCause::Returned(e) => e.source(),
            _ => None,
        }
    }
}

/// Two init errors are equal when they read the same (the error types inside
/// need not be comparable).
impl PartialEq for InitError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for InitError {}
