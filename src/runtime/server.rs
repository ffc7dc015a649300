//! Servers: the [`Server`] trait (init / handle_call / handle_cast / terminate),
//! their handles, and the task that runs one, restarting it under its [`Restart`] kind.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::error::{BoxError, CallError, CastError, StartError};
use super::metrics as m;
use super::supervisor::{Intensity, Restart, SupervisorEvent, SupervisorLink};
use crate::mailbox::{
    Builder, Eviction, InvalidPolicy, Meta, Monitor, Policy, Receiver, SendError, Sender, Stats,
    TrySendError,
};

/// A server: its state is the implementing value. Calls wait for a reply; casts do not.
///
/// `init` runs before the first message and again after every restart (so state
/// reloads from storage); its error reaches whoever started the server.
#[async_trait]
pub trait Server: Send + Sized + 'static {
    /// Requests that expect a reply.
    type Call: Send + 'static;
    /// The reply to a call.
    type Reply: Send + 'static;
    /// Fire-and-forget messages.
    type Cast: Send + 'static;

    /// Prepares the state; an error stops the start and is reported to the starter.
    async fn init(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Handles one call. Answer through `reply`, now or later (it may be moved into
    /// another task, e.g. to answer once a write is durable).
    async fn handle_call(&mut self, request: Self::Call, reply: ReplyTo<Self::Reply>);

    /// Handles one cast.
    async fn handle_cast(&mut self, _message: Self::Cast) {}

    /// Most messages the runtime takes from the mailbox at once (one lock, with
    /// `recv_many`). Above 1, what is taken goes to [`handle_batch`](Self::handle_batch)
    /// in one piece. A stop request is seen after the batch in hand.
    const MAX_BATCH: usize = 1;

    /// Handles the messages taken from the mailbox together (at most
    /// [`MAX_BATCH`](Self::MAX_BATCH), in mailbox order, calls whose caller gave up
    /// already left out), e.g. to commit many writes as one. An implementation may
    /// reorder messages that do not depend on each other. The default handles them
    /// one by one, in order.
    async fn handle_batch(&mut self, batch: Vec<Envelope<Self>>) {
        for env in batch {
            match env {
                Envelope::Call(req, reply) => self.handle_call(req, reply).await,
                Envelope::Cast(msg) => self.handle_cast(msg).await,
            }
        }
    }

    /// Runs once when this instance ends, whatever the reason (not after a panic).
    async fn terminate(&mut self, _reason: &ExitReason) {}

    /// Under the `coalesce` policy, a keyed message replaced a queued one: let the
    /// newer one take over what the older carried. The default fails a replaced
    /// call with [`CallError::Dropped`].
    fn coalesce(old: Envelope<Self>, _new: &mut Envelope<Self>) {
        if let Envelope::Call(_, reply) = old {
            reply.fail(CallError::Dropped);
        }
    }

    /// A queued cast left the mailbox undelivered (dropped, shed, expired). Runs in
    /// the sender's context. Default: drop it.
    fn evicted_cast(_message: Self::Cast, _why: Eviction) {}
}

/// A message in a server's mailbox.
pub enum Envelope<S: Server> {
    /// A call and where its reply goes.
    Call(S::Call, ReplyTo<S::Reply>),
    /// A cast.
    Cast(S::Cast),
}

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
    fn disarm(mut self) {
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

/// Why a server instance ended.
#[derive(Clone, Debug, PartialEq, Eq)]
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

enum Control {
    /// Stop after the message in hand; `drain` processes what is queued first.
    Stop { drain: bool },
}

/// Called when a server has been idle for its idle timeout; returns whether it may
/// stop (the registry marks it stopping under its lock, so no new caller finds it).
pub type IdleHook = Arc<dyn Fn() -> bool + Send + Sync>;
/// Called once when a server ends for good.
pub type ExitHook = Box<dyn FnOnce(&ExitReason) + Send>;

/// How to start a server: role, mailbox policy, restart kind and a factory for its
/// state (called again on every restart).
pub struct Spec<S: Server> {
    /// Metric label and log name of the server's kind (e.g. `todo_server`).
    pub role: &'static str,
    /// Instance name for logs (e.g. the list name); never a metric label.
    pub name: String,
    /// The mailbox policy.
    pub policy: Policy,
    /// When to restart.
    pub restart: Restart,
    /// Restart limits.
    pub intensity: Intensity,
    /// Stop after this long without a message (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Asked before an idle stop.
    pub on_idle: Option<IdleHook>,
    /// Told when the server ends for good.
    pub on_exit: Option<ExitHook>,
    /// Builds a fresh state.
    pub factory: Box<dyn Fn() -> S + Send + Sync>,
    pub(crate) link: Option<SupervisorLink>,
}

impl<S: Server> Spec<S> {
    /// A temporary (never restarted) server with default limits and no idle stop.
    pub fn new(
        role: &'static str,
        policy: Policy,
        factory: impl Fn() -> S + Send + Sync + 'static,
    ) -> Self {
        Spec {
            role,
            name: role.to_string(),
            policy,
            restart: Restart::Temporary,
            intensity: Intensity::default(),
            idle_timeout: None,
            on_idle: None,
            on_exit: None,
            factory: Box::new(factory),
            link: None,
        }
    }

    /// Sets the instance name used in logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the restart kind.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets the restart limits.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// Stops the server after this long without a message.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A cheap, cloneable handle to a running server.
pub struct ServerRef<S: Server> {
    tx: Sender<Envelope<S>>,
    control: mpsc::UnboundedSender<Control>,
    done: watch::Receiver<bool>,
    role: &'static str,
    id: u64,
}

impl<S: Server> Clone for ServerRef<S> {
    fn clone(&self) -> Self {
        ServerRef {
            tx: self.tx.clone(),
            control: self.control.clone(),
            done: self.done.clone(),
            role: self.role,
            id: self.id,
        }
    }
}

impl<S: Server> fmt::Debug for ServerRef<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerRef")
            .field("role", &self.role)
            .field("id", &self.id)
            .finish()
    }
}

impl<S: Server> ServerRef<S> {
    /// Sends a call and waits at most `timeout` in all (mailbox space included).
    /// The call's deadline is its timeout: if the caller gives up, the server skips it.
    pub async fn call(&self, request: S::Call, timeout: Duration) -> Result<S::Reply, CallError> {
        self.call_with(request, timeout, None).await
    }

    /// [`call`](Self::call) with a coalescing key.
    pub async fn call_with(
        &self,
        request: S::Call,
        timeout: Duration,
        key: Option<crate::mailbox::Key>,
    ) -> Result<S::Reply, CallError> {
        self.call_returning(request, timeout, key)
            .await
            .map_err(|(e, _)| e)
    }

    /// The call itself; hands the request back when the mailbox was closed (so a
    /// registry can retry on the server that replaced an idle one).
    pub(crate) async fn call_returning(
        &self,
        request: S::Call,
        timeout: Duration,
        key: Option<crate::mailbox::Key>,
    ) -> Result<S::Reply, (CallError, Option<S::Call>)> {
        let started = Instant::now();
        let deadline = started + timeout;
        let (reply, rx) = ReplyTo::pair();
        let meta = Meta {
            key,
            deadline: Some(deadline),
        };
        let result = match self
            .tx
            .send_timeout_with(Envelope::Call(request, reply), meta, timeout)
            .await
        {
            Err(e) => {
                let (err, env) = match e {
                    SendError::Rejected(env) => (CallError::Rejected, env),
                    SendError::Timeout(env) => (CallError::Timeout, env),
                    SendError::Closed(env) => (CallError::Stopped, env),
                };
                let request = match env {
                    Envelope::Call(req, reply) => {
                        // Nobody listens on this reply handle any more.
                        reply.disarm();
                        Some(req)
                    }
                    Envelope::Cast(_) => None,
                };
                Err((err, request))
            }
            Ok(()) => match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(r)) => r.map_err(|e| (e, None)),
                Ok(Err(_)) => Err((CallError::Stopped, None)),
                Err(_) => Err((CallError::Timeout, None)),
            },
        };
        m::call_done(
            self.role,
            started.elapsed(),
            result.as_ref().err().map(|(e, _)| *e),
        );
        result
    }

    /// Sends a cast; waits only under the `block` and `coalesce` policies.
    pub async fn cast(&self, message: S::Cast) -> Result<(), CastError> {
        self.cast_with(message, Meta::default()).await
    }

    /// [`cast`](Self::cast) with a coalescing key and/or deadline.
    pub async fn cast_with(&self, message: S::Cast, meta: Meta) -> Result<(), CastError> {
        let r = self
            .tx
            .send_with(Envelope::Cast(message), meta)
            .await
            .map_err(|e| match e {
                SendError::Rejected(_) => CastError::Rejected,
                SendError::Timeout(_) => CastError::Timeout,
                SendError::Closed(_) => CastError::Stopped,
            });
        if let Err(e) = r {
            m::cast_failed(self.role, e);
        }
        r
    }

    /// Sends a cast without ever waiting.
    pub fn try_cast(&self, message: S::Cast, meta: Meta) -> Result<(), CastError> {
        let r = self
            .tx
            .try_send_with(Envelope::Cast(message), meta)
            .map_err(|e| match e {
                TrySendError::Full(_) => CastError::Rejected,
                TrySendError::Closed(_) => CastError::Stopped,
            });
        if let Err(e) = r {
            m::cast_failed(self.role, e);
        }
        r
    }

    /// Forwards a ready-made envelope (for routers), waiting like `send` under the
    /// policy; a refused call is answered with the matching error.
    pub async fn forward(&self, envelope: Envelope<S>, meta: Meta) -> Result<(), CastError> {
        match self.tx.send_with(envelope, meta).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let (env, err, call_err) = match e {
                    SendError::Rejected(env) => (env, CastError::Rejected, CallError::Rejected),
                    SendError::Timeout(env) => (env, CastError::Timeout, CallError::Timeout),
                    SendError::Closed(env) => (env, CastError::Stopped, CallError::Stopped),
                };
                if let Envelope::Call(_, reply) = env {
                    reply.fail(call_err);
                }
                Err(err)
            }
        }
    }

    /// Asks the server to stop after the message in hand. With `drain`, it first
    /// refuses new messages and processes everything already queued (graceful);
    /// without, queued calls are answered [`CallError::Stopped`]. Control messages
    /// bypass the mailbox, so a full mailbox can still be stopped. Waits until the
    /// server has ended.
    pub async fn stop(&self, drain: bool) {
        let _ = self.control.send(Control::Stop { drain });
        self.stopped().await;
    }

    /// Waits until the server has ended for good.
    pub async fn stopped(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Whether the server has ended for good.
    pub fn is_stopped(&self) -> bool {
        *self.done.borrow() || self.control.is_closed()
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
    pub fn set_policy(&self, policy: Policy) -> Result<(), InvalidPolicy> {
        self.tx.monitor().set_policy(policy)
    }

    /// A process-unique id of this server (stable across restarts).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The role name.
    pub fn role(&self) -> &'static str {
        self.role
    }
}

/// Starts a server: builds its mailbox, runs `init`, and returns its handle once
/// `init` succeeded, or `init`'s error.
pub async fn start<S: Server>(spec: Spec<S>) -> Result<ServerRef<S>, StartError> {
    let (tx, rx) = Builder::new(spec.policy.clone())
        .role(spec.role)
        .on_evict(|env: Envelope<S>, why| match env {
            Envelope::Call(_, reply) => reply.fail(match why {
                Eviction::Expired => CallError::Expired,
                Eviction::Rejected => CallError::Rejected,
                _ => CallError::Dropped,
            }),
            Envelope::Cast(msg) => S::evicted_cast(msg, why),
        })
        .on_coalesce(S::coalesce)
        .build()
        .map_err(|e| StartError::InvalidPolicy(e.to_string()))?;
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = watch::channel(false);
    let (started_tx, started_rx) = oneshot::channel();
    let role = spec.role;
    let handle = ServerRef {
        tx,
        control: control_tx,
        done: done_rx,
        role,
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
    };
    tokio::spawn(supervise(spec, rx, control_rx, done_tx, started_tx));
    match started_rx.await {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StartError::Init("server task ended during init".into())),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

async fn run_init<S: Server>(state: &mut S) -> Result<(), String> {
    match AssertUnwindSafe(state.init()).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(format!("init panicked: {}", panic_message(&*p))),
    }
}

/// Runs one server across restarts: the mailbox outlives each instance, so handles
/// stay valid and queued messages are accounted for across a crash.
async fn supervise<S: Server>(
    spec: Spec<S>,
    mut rx: Receiver<Envelope<S>>,
    mut control: mpsc::UnboundedReceiver<Control>,
    done: watch::Sender<bool>,
    started: oneshot::Sender<Result<(), StartError>>,
) {
    let Spec {
        role,
        name,
        restart,
        intensity,
        idle_timeout,
        on_idle,
        on_exit,
        factory,
        link,
        ..
    } = spec;
    let mut state = factory();
    if let Err(e) = run_init(&mut state).await {
        let _ = started.send(Err(StartError::Init(e.clone())));
        rx.close();
        finish_queued(&mut rx, role);
        drop(rx);
        let _ = done.send(true);
        if let Some(hook) = on_exit {
            hook(&ExitReason::InitFailed(e));
        }
        return;
    }
    let _ = started.send(Ok(()));
    // Restart times within the intensity period.
    let mut restarts: Vec<Instant> = Vec::new();
    // Set when a restart's `init` failed: that counts as the next exit.
    let mut failed_init: Option<ExitReason> = None;
    let final_reason = loop {
        let reason = match failed_init.take() {
            Some(r) => r,
            None => {
                let r = run_instance(
                    &mut state,
                    &mut rx,
                    &mut control,
                    role,
                    idle_timeout,
                    on_idle.as_ref(),
                )
                .await;
                if !matches!(r, ExitReason::Panicked(_)) {
                    state.terminate(&r).await;
                }
                r
            }
        };
        if reason.is_abnormal() {
            tracing::warn!(role, name = %name, ?reason, "server ended abnormally");
            // Nothing queued may hang: calls get an error, casts are counted.
            finish_queued(&mut rx, role);
        }
        let wants_restart = match restart {
            Restart::Permanent | Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        };
        if !wants_restart {
            break reason;
        }
        let now = Instant::now();
        restarts.retain(|t| now.duration_since(*t) < intensity.period);
        if restarts.len() >= intensity.max_restarts as usize {
            tracing::error!(role, name = %name, max_restarts = intensity.max_restarts,
                period = ?intensity.period, "restart intensity exceeded: giving up");
            m::escalated(role);
            if let Some(link) = &link {
                link.report(SupervisorEvent::Escalated {
                    role,
                    name: name.clone(),
                    reason: reason.clone(),
                });
            }
            break reason;
        }
        restarts.push(now);
        m::restarted(role);
        if let Some(link) = &link {
            link.report(SupervisorEvent::Restarted {
                role,
                name: name.clone(),
                reason: reason.clone(),
            });
        }
        state = factory();
        if let Err(e) = run_init(&mut state).await {
            failed_init = Some(ExitReason::InitFailed(e));
        }
    };
    rx.close();
    finish_queued(&mut rx, role);
    drop(rx);
    let _ = done.send(true);
    if let Some(hook) = on_exit {
        hook(&final_reason);
    }
}

/// Answers every queued call with `Stopped` and counts queued casts as crashed.
fn finish_queued<S: Server>(rx: &mut Receiver<Envelope<S>>, role: &'static str) {
    let mut casts = 0u64;
    for env in rx.discard_queued() {
        match env {
            Envelope::Call(_, reply) => reply.fail(CallError::Stopped),
            Envelope::Cast(_) => casts += 1,
        }
    }
    if casts > 0 {
        m::casts_crashed(role, casts);
    }
}

/// Runs one instance until it stops, idles out or panics.
async fn run_instance<S: Server>(
    state: &mut S,
    rx: &mut Receiver<Envelope<S>>,
    control: &mut mpsc::UnboundedReceiver<Control>,
    role: &'static str,
    idle_timeout: Option<Duration>,
    on_idle: Option<&IdleHook>,
) -> ExitReason {
    let mut draining = false;
    let mut idle_stop = false;
    // Messages taken from the mailbox in one go (one, unless `S::MAX_BATCH` > 1).
    let mut buf: Vec<Envelope<S>> = Vec::with_capacity(S::MAX_BATCH.clamp(1, 1024));
    loop {
        let idle = async {
            match idle_timeout {
                Some(d) if !draining => tokio::time::sleep(d).await,
                _ => std::future::pending().await,
            }
        };
        let received = tokio::select! {
            biased;
            c = control.recv(), if !draining => match c {
                Some(Control::Stop { drain: true }) | None => {
                    // Asked to drain, or every handle is gone: refuse new messages,
                    // handle what is queued, then end.
                    draining = true;
                    rx.close();
                    continue;
                }
                Some(Control::Stop { drain: false }) => {
                    rx.close();
                    finish_queued(rx, role);
                    return ExitReason::Normal;
                }
            },
            n = rx.recv_many(&mut buf, S::MAX_BATCH.max(1)) => n,
            () = idle => {
                if on_idle.is_none_or(|hook| hook()) {
                    // Anything that slipped in before the close is still handled.
                    draining = true;
                    idle_stop = true;
                    rx.close();
                }
                continue;
            }
        };
        if received == 0 {
            return if idle_stop {
                ExitReason::Idle
            } else {
                ExitReason::Normal
            };
        }
        if S::MAX_BATCH > 1 {
            let mut batch = Vec::with_capacity(buf.len());
            for env in buf.drain(..) {
                match env {
                    Envelope::Call(_, reply) if reply.is_abandoned() => m::call_abandoned(role),
                    env => batch.push(env),
                }
            }
            let outcome = AssertUnwindSafe(state.handle_batch(batch))
                .catch_unwind()
                .await;
            if let Err(p) = outcome {
                // Calls of the batch get an error as the batch is dropped.
                return ExitReason::Panicked(panic_message(&*p));
            }
            continue;
        }
        for env in buf.drain(..) {
            let outcome = match env {
                Envelope::Call(req, reply) => {
                    if reply.is_abandoned() {
                        m::call_abandoned(role);
                        continue;
                    }
                    AssertUnwindSafe(state.handle_call(req, reply))
                        .catch_unwind()
                        .await
                }
                Envelope::Cast(msg) => {
                    AssertUnwindSafe(state.handle_cast(msg))
                        .catch_unwind()
                        .await
                }
            };
            if let Err(p) = outcome {
                return ExitReason::Panicked(panic_message(&*p));
            }
        }
    }
}
