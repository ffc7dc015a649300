//! What a server is, in OTP's terms its behaviour: the [`Server`] trait its state
//! implements (init / handle_call / handle_cast / handle_batch / terminate), the
//! [`Envelope`] its mailbox carries, and the [`ExitReason`] an instance ends with.

use std::future::Future;

use futures_util::future::Either;

use super::error::{BoxError, CallError};
use super::reply::fail_call;
use crate::mailbox::Eviction;

/// A server: its state is the implementing value. Calls wait for a reply; casts do not.
///
/// Each call request carries its own [`ReplyTo<T>`](super::ReplyTo) (put one in
/// every variant of `Call`), so each request has its own reply type and the
/// compiler checks what a caller gets back: `server.call(|r| Request::Get(k, r),
/// timeout)` returns the `T` of `Get`'s `ReplyTo<T>`.
///
/// `init` runs before the first message and again after every restart (so state
/// reloads from storage); its error reaches whoever started the server.
///
/// The handlers return futures that must be `Send` (the server runs in a spawned
/// task); implement them with `async fn`, no macro needed, and the runtime polls
/// them in place (no boxed future per message). A panic anywhere in a handler,
/// including code a hand-written `fn` runs before returning its future, is caught
/// and ends the instance as [`ExitReason::Panicked`]:
///
/// ```
/// use sluicegate::runtime::{ReplyTo, Server};
///
/// struct Counter(u64);
///
/// /// The counter's calls: each says what it answers.
/// enum Call {
///     Get(ReplyTo<u64>),
///     Reset(ReplyTo<()>),
/// }
///
/// impl Server for Counter {
///     type Call = Call;
///     type Cast = u64;
///
///     async fn handle_call(&mut self, call: Call) {
///         match call {
///             Call::Get(reply) => reply.send(self.0),
///             Call::Reset(reply) => {
///                 self.0 = 0;
///                 reply.send(())
///             }
///         }
///     }
///
///     async fn handle_cast(&mut self, n: u64) {
///         self.0 += n;
///     }
/// }
/// ```
pub trait Server: Send + Sized + 'static {
    /// Requests that expect a reply, each carrying its [`ReplyTo`](super::ReplyTo).
    /// A request dropped without an answer answers its caller with an error.
    type Call: Send + 'static;
    /// Fire-and-forget messages.
    type Cast: Send + 'static;

    /// Prepares the state; an error stops the start and is reported to the starter.
    fn init(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }

    /// Handles one call. Answer through the request's `ReplyTo`, now or later (it
    /// may be moved elsewhere, e.g. to answer once a write is durable).
    fn handle_call(&mut self, request: Self::Call) -> impl Future<Output = ()> + Send;

    /// Handles one cast.
    fn handle_cast(&mut self, message: Self::Cast) -> impl Future<Output = ()> + Send {
        // Dropped when polled, inside the runtime's panic guard, as an `async fn` would.
        async move { drop(message) }
    }

    /// Most messages the runtime takes from the mailbox at once (one lock, with
    /// `recv_many`). Above 1, what is taken goes to [`handle_batch`](Self::handle_batch)
    /// in one piece. A stop request is seen after the batch in hand.
    const MAX_BATCH: usize = 1;

    /// Handles the messages taken from the mailbox together (at most
    /// [`MAX_BATCH`](Self::MAX_BATCH), in mailbox order, calls whose caller gave up
    /// already left out when their deadline passed), e.g. to commit many writes as one. An implementation may
    /// reorder messages that do not depend on each other. The default handles them
    /// one by one, in order.
    fn handle_batch(&mut self, batch: Vec<Envelope<Self>>) -> impl Future<Output = ()> + Send {
        // Not a `for` loop: it would keep each message's `Option` in this future
        // beside the handler's future, which holds the message already. Here the
        // message moves whole into a plain function, in a statement that ends
        // before the await. The iterator is made here, not in the `async` block,
        // which would keep the `Vec` it was made from beside it.
        let mut batch = batch.into_iter();
        async move {
            loop {
                let handling = match batch.next() {
                    Some(env) => dispatch(self, env),
                    None => break,
                };
                handling.await;
            }
        }
    }

    /// Runs once when this instance ends, whatever the reason (not after a panic).
    fn terminate(&mut self, reason: &ExitReason) -> impl Future<Output = ()> + Send {
        let _ = reason;
        async {}
    }

    /// Under the `coalesce` policy, a keyed message replaced a queued one: let the
    /// newer one take over what the older carried. The default fails a replaced
    /// call with [`CallError::Dropped`].
    fn coalesce(old: Envelope<Self>, _new: &mut Envelope<Self>) {
        fail_call(old, CallError::Dropped);
    }

    /// A queued cast left the mailbox undelivered (dropped, shed, expired). Runs in
    /// the sender's context. Default: drop it.
    fn evicted_cast(_message: Self::Cast, _why: Eviction) {}
}

/// A message in a server's mailbox.
pub enum Envelope<S: Server> {
    /// A call (its reply handle inside).
    Call(S::Call),
    /// A cast.
    Cast(S::Cast),
}

/// Why a server instance ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitReason {
    /// Asked to stop, or every handle was dropped.
    Normal,
    /// Stopped after `idle_timeout` without traffic.
    Idle,
    /// A handler panicked (the panic message).
    Panicked(String),
    /// `init` failed on a restart (its message).
    InitFailed(String),
}

impl ExitReason {
    /// Whether the exit is abnormal (transient children restart only then).
    pub fn is_abnormal(&self) -> bool {
        matches!(self, ExitReason::Panicked(_) | ExitReason::InitFailed(_))
    }
}

/// The handler's future for one message of a batch.
fn dispatch<S: Server>(server: &mut S, env: Envelope<S>) -> impl Future<Output = ()> + Send + '_ {
    match env {
        Envelope::Call(req) => Either::Left(server.handle_call(req)),
        Envelope::Cast(msg) => Either::Right(server.handle_cast(msg)),
    }
}
