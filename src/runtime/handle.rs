//! [`ServerRef`]: the cheap, cloneable handle to a running server. Calls wait for
//! their reply within one timeout; casts wait only as the mailbox policy says;
//! `try_cast` never waits; `stop` goes around the mailbox, so a full one can be stopped.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::behaviour::{Envelope, Server};
use super::call_timer::{CallTimer, ReplyWait};
use super::control::{Control, ControlTx};
use super::error::{CallError, CastError};
use super::metrics as m;
use super::reply::{fail_call, ReplyRx, ReplyTo};
use crate::mailbox::{InvalidPolicy, Meta, Monitor, Policy, Sender, Stats};

/// The next server's id.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh server id, unique in the process.
pub(crate) fn next_server_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A call's `meta` with its deadline set, and that deadline: the earlier of the
/// caller's own (`meta.deadline`) and `now + timeout`. Every call path (a server,
/// a pool's router, a registry's retries) bounds its wait and the mailbox's expiry
/// of the call with it.
pub(crate) fn call_meta(meta: Meta, now: Instant, timeout: Duration) -> (Meta, Instant) {
    let (meta, deadline, _) = call_meta_wait(meta, now, timeout);
    (meta, deadline)
}

/// [`call_meta`], and how long from `now` the deadline is: `timeout` itself unless
/// the caller's own deadline is earlier, so the common call does no clock
/// subtraction.
fn call_meta_wait(meta: Meta, now: Instant, timeout: Duration) -> (Meta, Instant, Duration) {
    let by_timeout = now + timeout;
    let (deadline, wait) = match meta.deadline {
        Some(d) if d < by_timeout => (d, d.saturating_duration_since(now)),
        _ => (by_timeout, timeout),
    };
    let meta = Meta {
        deadline: Some(deadline),
        ..meta
    };
    (meta, deadline, wait)
}

/// What the calls to a group of servers of one role share: their metric series and
/// the timer of their waiting callers. A server started alone has its own; the
/// servers a [`Registry`](super::Registry) starts share one, so a live server
/// carries neither a metric registration nor a timer task of its own.
///
/// One pointer: every handle carries it, and the registry holds a handle per
/// live server.
#[derive(Clone)]
pub(crate) struct CallShare(Arc<Calls>);

/// What a [`CallShare`] points to.
struct Calls {
    /// Call latency and result series, registered once; they name the role.
    metrics: m::CallMetrics,
    /// The one timer of every call waiting on these servers' replies.
    timer: Arc<CallTimer>,
}

impl CallShare {
    /// Series for `role`, and a timer whose task will run on the current runtime.
    pub(crate) fn new(role: &'static str) -> Self {
        CallShare(Arc::new(Calls {
            metrics: m::CallMetrics::new(role),
            timer: Arc::new(CallTimer::on_current_runtime()),
        }))
    }

    /// The role whose call series these are (and whose servers these handles are).
    pub(crate) fn role(&self) -> &'static str {
        self.0.metrics.role()
    }

    /// The call latency and result series.
    fn metrics(&self) -> &m::CallMetrics {
        &self.0.metrics
    }

    /// The timer of the calls waiting on these servers' replies.
    fn timer(&self) -> &Arc<CallTimer> {
        &self.0.timer
    }
}

/// A cheap, cloneable handle to a running server, returned by
/// [`start`](super::start), [`Supervisor::start`](super::Supervisor::start), a
/// [`Registry`](super::Registry) or a [`KeyedPool`](super::KeyedPool). Every clone
/// reaches the same mailbox, across restarts; a server also ends once every handle
/// to it is gone.
///
/// # Examples
///
/// Casts only queue; a call waits for its reply, and sees every message queued
/// before it:
///
/// ```
/// use std::time::Duration;
/// use sluicegate::mailbox::Policy;
/// use sluicegate::runtime::{start, CallError, ReplyTo, Server, Spec};
///
/// struct Tally(u64);
///
/// impl Server for Tally {
///     type Call = ReplyTo<u64>; // the one call: read the total
///     type Cast = u64; // add
///
///     async fn handle_call(&mut self, reply: ReplyTo<u64>) {
///         reply.send(self.0)
///     }
///
///     async fn handle_cast(&mut self, n: u64) {
///         self.0 += n;
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let policy = Policy::DropNewest { capacity: 64 };
/// let tally = start(Spec::new("tally", policy, || Tally(0))).await.unwrap();
/// let t = Duration::from_secs(1);
/// let other = tally.clone();
/// other.cast(2).await.unwrap();
/// tally.try_cast(3).unwrap(); // never waits: refused at once when full
/// assert_eq!(tally.call(|reply| reply, t).await, Ok(5));
/// assert_eq!(tally.stats().delivered, 3);
///
/// // Graceful: what is queued is handled first; then every handle sees the end.
/// tally.stop(true).await;
/// assert!(other.is_stopped());
/// assert_eq!(other.call(|reply| reply, t).await, Err(CallError::Stopped));
/// # }
/// ```
pub struct ServerRef<S: Server> {
    tx: Sender<Envelope<S>>,
    /// Stop requests in, the server's end out.
    control: ControlTx,
    id: u64,
    /// Call metrics and timer, shared with the server's group if it has one; they
    /// name the server's role.
    calls: CallShare,
}

impl<S: Server> Clone for ServerRef<S> {
    fn clone(&self) -> Self {
        ServerRef {
            tx: self.tx.clone(),
            control: self.control.clone(),
            id: self.id,
            calls: self.calls.clone(),
        }
    }
}

impl<S: Server> fmt::Debug for ServerRef<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerRef")
            .field("role", &self.role())
            .field("id", &self.id)
            .finish()
    }
}

impl<S: Server> ServerRef<S> {
    /// The handle of a server just built by [`start`](super::start), with its id
    /// (from [`next_server_id`]).
    pub(super) fn new(
        tx: Sender<Envelope<S>>,
        control: ControlTx,
        calls: CallShare,
        id: u64,
    ) -> Self {
        ServerRef {
            tx,
            control,
            id,
            calls,
        }
    }

    /// Sends a call and waits for its reply, at most `timeout` in all (waiting for
    /// mailbox space included). `request` builds the request around its reply
    /// handle, usually an enum variant: `server.call(|r| Request::Get(key, r), t)`
    /// (or just `Request::Get` for a variant holding only the handle).
    ///
    /// The call's deadline is its timeout: a call still queued when its caller
    /// gives up is skipped by the server ([`CallError::Expired`] in its metrics).
    ///
    /// # Errors
    ///
    /// [`CallError`] says why no reply came: the mailbox refused or dropped the
    /// call, the timeout passed, the server stopped or panicked, or the handler
    /// dropped the reply handle.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes withdraws the caller: a call not yet
    /// in the mailbox is never sent; one already queued or running is still
    /// handled, and its reply is dropped.
    ///
    /// # Examples
    ///
    /// Each request names its reply type; the caller waits at most its timeout,
    /// whatever the handler does:
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluicegate::mailbox::Policy;
    /// use sluicegate::runtime::{start, CallError, ReplyTo, Server, Spec};
    ///
    /// enum Request {
    ///     Len(String, ReplyTo<usize>),
    ///     Sleep(Duration, ReplyTo<()>),
    /// }
    ///
    /// struct Worker;
    ///
    /// impl Server for Worker {
    ///     type Call = Request;
    ///     type Cast = ();
    ///
    ///     async fn handle_call(&mut self, request: Request) {
    ///         match request {
    ///             Request::Len(text, reply) => reply.send(text.len()),
    ///             Request::Sleep(d, reply) => {
    ///                 tokio::time::sleep(d).await;
    ///                 reply.send(())
    ///             }
    ///         }
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let worker = start(Spec::new("worker", Policy::Unbounded, || Worker)).await.unwrap();
    /// let len = worker.call(|r| Request::Len("hello".into(), r), Duration::from_secs(1));
    /// assert_eq!(len.await, Ok(5));
    /// let nap = |r| Request::Sleep(Duration::from_secs(60), r);
    /// let late = worker.call(nap, Duration::from_millis(100)).await;
    /// assert_eq!(late, Err(CallError::Timeout));
    /// # }
    /// ```
    pub async fn call<R>(
        &self,
        request: impl FnOnce(ReplyTo<R>) -> S::Call,
        timeout: Duration,
    ) -> Result<R, CallError> {
        self.call_with(request, timeout, Meta::default()).await
    }

    /// [`call`](Self::call) with a coalescing key and/or an earlier deadline
    /// (`meta.deadline`; the call's deadline is the earlier of it and the timeout).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Self::call).
    pub async fn call_with<R>(
        &self,
        request: impl FnOnce(ReplyTo<R>) -> S::Call,
        timeout: Duration,
        meta: Meta,
    ) -> Result<R, CallError> {
        let (reply, rx) = ReplyTo::pair();
        self.call_returning(request(reply), rx, timeout, meta)
            .await
            .map_err(|(e, _)| e)
    }

    /// The call itself, its request already built around the reply handle whose
    /// receiver is `rx`; hands both back when the mailbox was closed (so a registry
    /// can retry on the server that replaced an idle one).
    #[allow(clippy::type_complexity)]
    pub(crate) async fn call_returning<R>(
        &self,
        request: S::Call,
        rx: ReplyRx<R>,
        timeout: Duration,
        meta: Meta,
    ) -> Result<R, (CallError, Option<(S::Call, ReplyRx<R>)>)> {
        let started = Instant::now();
        let (meta, deadline, wait) = call_meta_wait(meta, started, timeout);
        let result = match self
            .tx
            .send_timeout_with(Envelope::Call(request), meta, wait)
            .await
        {
            Err(e) => {
                let err = CallError::from(&e);
                let back = match e.into_inner() {
                    Envelope::Call(req) => Some((req, rx)),
                    Envelope::Cast(_) => None,
                };
                Err((err, back))
            }
            // Timed by the server's shared call timer, not a timer entry per call.
            Ok(()) => match ReplyWait::new(rx, deadline, self.calls.timer()).await {
                Some(Ok(r)) => r.map_err(|e| (e, None)),
                Some(Err(_)) => Err((CallError::Stopped, None)),
                None => Err((CallError::Timeout, None)),
            },
        };
        self.calls
            .metrics()
            .done(started, result.as_ref().err().map(|(e, _)| *e));
        result
    }

    /// Records a call to this server made another way (through a pool's router)
    /// in its call metrics.
    pub(crate) fn record_call(&self, started: Instant, err: Option<CallError>) {
        self.calls.metrics().done(started, err);
    }

    /// Sends a cast; waits for mailbox space only under the `block` and `coalesce`
    /// policies (and at most a `block` policy's `send_timeout`).
    ///
    /// # Errors
    ///
    /// [`CastError`] when the mailbox refused the cast (full, no space in time) or
    /// the server has stopped. An accepted cast may still be dropped later by the
    /// policy (`drop_oldest`, CoDel); the mailbox's [`Stats`] count it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future never loses or duplicates an accepted cast.
    /// One accepted before the drop stays queued; one still waiting for space
    /// (`block`, `coalesce`) is dropped with the future, uncounted.
    pub async fn cast(&self, message: S::Cast) -> Result<(), CastError> {
        self.cast_with(message, Meta::default()).await
    }

    /// [`cast`](Self::cast) with a coalescing key and/or deadline.
    ///
    /// # Errors
    ///
    /// As [`cast`](Self::cast).
    ///
    /// # Cancel safety
    ///
    /// As [`cast`](Self::cast).
    pub async fn cast_with(&self, message: S::Cast, meta: Meta) -> Result<(), CastError> {
        let r = self
            .tx
            .send_with(Envelope::Cast(message), meta)
            .await
            .map_err(|e| CastError::from(&e));
        if let Err(e) = r {
            m::cast_failed(self.role(), e);
        }
        r
    }

    /// Sends a cast without ever waiting.
    ///
    /// # Errors
    ///
    /// [`CastError::Rejected`] when a `block` or `coalesce` mailbox has no space
    /// now, and as [`cast`](Self::cast) otherwise.
    pub fn try_cast(&self, message: S::Cast) -> Result<(), CastError> {
        self.try_cast_with(message, Meta::default())
    }

    /// [`try_cast`](Self::try_cast) with a coalescing key and/or deadline.
    ///
    /// # Errors
    ///
    /// As [`try_cast`](Self::try_cast).
    pub fn try_cast_with(&self, message: S::Cast, meta: Meta) -> Result<(), CastError> {
        let r = self
            .tx
            .try_send_with(Envelope::Cast(message), meta)
            .map_err(|e| CastError::from(&e));
        if let Err(e) = r {
            m::cast_failed(self.role(), e);
        }
        r
    }

    /// Forwards a ready-made envelope (for routers), waiting like `send` under the
    /// policy; a refused call is answered with the matching error.
    pub(crate) async fn forward(&self, envelope: Envelope<S>, meta: Meta) -> Result<(), CastError> {
        match self.tx.send_with(envelope, meta).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let (err, call_err) = (CastError::from(&e), CallError::from(&e));
                fail_call(e.into_inner(), call_err);
                Err(err)
            }
        }
    }

    /// Asks the server to stop after the message in hand. With `drain`, it first
    /// refuses new messages and processes everything already queued (graceful);
    /// without, queued calls are answered [`CallError::Stopped`]. Control messages
    /// bypass the mailbox, so a full mailbox can still be stopped. Waits until the
    /// server has ended.
    ///
    /// # Cancel safety
    ///
    /// The stop request goes out at the first poll; dropping the future after that
    /// cancels only the wait for the end, not the stop. Dropped before its first
    /// poll, it asks nothing.
    pub async fn stop(&self, drain: bool) {
        let _ = self.control.send(Control::Stop { drain });
        self.stopped().await;
    }

    /// Waits until the server has ended for good.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn stopped(&self) {
        self.control.ended().await;
    }

    /// Whether the server has ended for good.
    pub fn is_stopped(&self) -> bool {
        self.control.is_ended() || self.control.is_closed()
    }

    /// The mailbox's accounting.
    pub fn stats(&self) -> Stats {
        self.tx.stats()
    }

    /// A handle to watch the mailbox and change its policy.
    pub fn monitor(&self) -> Monitor<Envelope<S>> {
        self.tx.monitor()
    }

    /// Switches the mailbox policy live (see [`Monitor::set_policy`]).
    ///
    /// # Errors
    ///
    /// [`InvalidPolicy`] naming the parameter out of range; the policy in force stays.
    pub fn set_policy(&self, policy: Policy) -> Result<(), InvalidPolicy> {
        self.tx.monitor().set_policy(policy)
    }

    /// A process-unique id of this server (stable across restarts).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The role name.
    pub fn role(&self) -> &'static str {
        self.calls.role()
    }
}
