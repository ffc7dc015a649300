//! Starting a server and the task that runs it: [`start`] builds the mailbox and
//! runs `init`; the task runs instance after instance of the state on the same
//! mailbox (the receive loop, `run_instance`), restarting it under its [`Restart`]
//! kind within its supervisor's restart window.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use std::future::Ready;

use futures_util::future::{CatchUnwind, Either};
use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use super::behaviour::{Envelope, ExitReason, Server};
use super::control::{self, Control, ControlRx};
use super::error::{CallError, InitError, StartError};
use super::handle::{next_server_id, CallShare, ServerRef};
use super::metrics as m;
use super::reply::fail_call;
use super::spec::{BoxHooks, Spec};
use super::supervisor::{Restart, RestartWindow, SupervisorEvent, SupervisorLink};
use crate::mailbox::{Builder, Receiver};

/// Starts a server: builds its mailbox, runs `init`, and returns its handle once
/// `init` succeeded. Not supervised: a [`Restart`] kind other than `Temporary`
/// restarts the server within the spec's own intensity.
///
/// # Errors
///
/// [`StartError::Init`] with `init`'s error (or its panic), and
/// [`StartError::InvalidPolicy`] when the spec's policy is out of range.
///
/// # Cancel safety
///
/// Dropped before its first poll, it starts nothing. The first poll spawns the
/// server's task; dropping the future while `init` runs drops the only handle, so
/// the server ends once `init` is done, as a server does once every handle to it
/// is gone.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluicegate::mailbox::Policy;
/// use sluicegate::runtime::{start, ReplyTo, Server, Spec};
///
/// struct Echo;
/// impl Server for Echo {
///     type Call = (String, ReplyTo<String>);
///     type Cast = ();
///     async fn handle_call(&mut self, (text, reply): Self::Call) {
///         reply.send(text)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let echo = start(Spec::new("echo", Policy::DropNewest { capacity: 16 }, || Echo))
///     .await
///     .unwrap();
/// let answer = echo.call(|r| ("hi".to_string(), r), Duration::from_secs(1)).await;
/// assert_eq!(answer.as_deref(), Ok("hi"));
/// # }
/// ```
pub async fn start<S: Server>(mut spec: Spec<S>) -> Result<ServerRef<S>, StartError> {
    // No lock-free ring: every call carries a deadline, which takes the locked core
    // (and would move the ring into it at each call), and an idle server must not
    // hold a ring's slots.
    let (tx, rx) = Builder::new(spec.policy.clone())
        .role(spec.role)
        .lock_free(false)
        .on_evict(|env: Envelope<S>, why| match env {
            Envelope::Call(call) => fail_call(call, CallError::from(why)),
            Envelope::Cast(msg) => S::evicted_cast(msg, why),
        })
        .on_coalesce(S::coalesce)
        .build()
        .map_err(StartError::InvalidPolicy)?;
    let (control_tx, control_rx) = control::channel();
    let (started_tx, started_rx) = oneshot::channel();
    let calls = spec
        .calls
        .take()
        .unwrap_or_else(|| CallShare::new(spec.role));
    let id = spec.id.unwrap_or_else(next_server_id);
    let handle = ServerRef::new(tx, control_tx, calls, id);
    tokio::spawn(supervise(spec, rx, control_rx, started_tx));
    match started_rx.await {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StartError::Init(InitError::other(
            "server task ended during init",
        ))),
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

/// Runs a handler under the panic guard: a panic while it builds its future (a
/// hand-written `fn`) or while the future runs is caught. Not an `async fn`: that
/// would keep the closure, and the message it holds, beside the handler's own
/// future for the whole call; this future is the handler's and a tag.
fn guarded<F: Future>(
    handler: impl FnOnce() -> F,
) -> Either<CatchUnwind<AssertUnwindSafe<F>>, Ready<std::thread::Result<F::Output>>> {
    match std::panic::catch_unwind(AssertUnwindSafe(handler)) {
        Ok(fut) => Either::Left(AssertUnwindSafe(fut).catch_unwind()),
        Err(p) => Either::Right(std::future::ready(Err(p))),
    }
}

async fn run_init<S: Server>(state: &mut S) -> Result<(), InitError> {
    match guarded(|| state.init()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(InitError::returned(e)),
        Err(p) => Err(InitError::panicked(panic_message(&*p))),
    }
}

/// What a server's task keeps for its whole life: the spec without what only the
/// start needed (the policy, the call share), the restart window, and the
/// mailbox's receiving side. One value, so the task's future holds each of these
/// once (an `async fn`'s arguments are kept beside the locals they move into).
struct Task<S: Server> {
    role: &'static str,
    /// Instance name for logs; `None`: the role.
    name: Option<Arc<str>>,
    idle_timeout: Option<Duration>,
    /// Asked before an idle stop, told of the end.
    hooks: Option<BoxHooks>,
    rx: Receiver<Envelope<S>>,
    /// Stop requests in, the server's end out.
    control: ControlRx,
    /// What only an instance's end and a restart use.
    cold: Box<Cold<S>>,
}

/// What a server's task uses only when an instance ends: boxed, so every live
/// server's task carries one pointer for it. A task is allocated in 128-byte
/// steps (see [`task_size`]): what is here (64 bytes) takes a list server's and
/// a stateless server's task a step down, 128 bytes.
struct Cold<S: Server> {
    restart: Restart,
    /// The recent restarts, within the spec's intensity.
    window: RestartWindow,
    factory: Box<dyn Fn() -> S + Send + Sync>,
    link: Option<SupervisorLink>,
}

/// The future of one server's task (see [`run_task`]).
fn supervise<S: Server>(
    spec: Spec<S>,
    rx: Receiver<Envelope<S>>,
    control: ControlRx,
    started: oneshot::Sender<Result<(), StartError>>,
) -> impl Future<Output = ()> + Send {
    let Spec {
        role,
        name,
        policy: _,
        restart,
        intensity,
        idle_timeout,
        hooks,
        factory,
        link,
        calls: _,
        id: _,
    } = spec;
    let task = Task {
        role,
        name,
        idle_timeout,
        hooks,
        rx,
        control,
        cold: Box::new(Cold {
            restart,
            window: RestartWindow::new(intensity),
            factory,
            link,
        }),
    };
    run_task(task, started)
}

/// The bytes the task of a server of type `S` holds inline, its state included:
/// what every live server of the type carries beside its mailbox and what its
/// state allocates. Tokio allocates a task in steps of 128 bytes (a task's
/// header and bookkeeping, about 100 bytes, plus this), so a server type's memory
/// tests check this against the step its servers are in.
///
/// # Examples
///
/// ```
/// use sluicegate::runtime::{task_size, ReplyTo, Server};
///
/// struct Ping;
/// impl Server for Ping {
///     type Call = ReplyTo<()>;
///     type Cast = ();
///     async fn handle_call(&mut self, reply: ReplyTo<()>) {
///         reply.send(())
///     }
/// }
///
/// assert!(task_size::<Ping>() < 512);
/// ```
pub fn task_size<S: Server>() -> usize {
    fn output_size<A, B, C, D, F>(_: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }
    output_size(supervise::<S> as fn(_, _, _, _) -> _)
}

/// Runs one server across restarts: the mailbox outlives each instance, so handles
/// stay valid and queued messages are accounted for across a crash.
///
/// The start (building the state, `init`, telling the starter) runs boxed, once:
/// the idle task carries neither its future nor the starter's channel. Then only
/// the receive loop's future lives inline: `terminate` and the decision to restart
/// run once per instance, so their futures are boxed too.
fn run_task<S: Server>(
    task: Task<S>,
    started: oneshot::Sender<Result<(), StartError>>,
) -> impl Future<Output = ()> + Send {
    Box::pin(begin(task, started)).then(|begun| match begun {
        Some((task, state)) => Either::Left(serve(task, state)),
        None => Either::Right(std::future::ready(())),
    })
}

/// Builds the first state and runs its `init`, then tells the starter: the task
/// and the state to serve with, or `None` (the task has finished) when `init`
/// failed.
async fn begin<S: Server>(
    task: Task<S>,
    started: oneshot::Sender<Result<(), StartError>>,
) -> Option<(Task<S>, S)> {
    let mut state = (task.cold.factory)();
    if let Err(e) = run_init(&mut state).await {
        let _ = started.send(Err(StartError::Init(e.clone())));
        task.finish(&ExitReason::InitFailed(e.to_string()));
        return None;
    }
    let _ = started.send(Ok(()));
    Some((task, state))
}

/// Runs instance after instance of the state until the server ends for good. An
/// `async` block rather than an `async fn`: a block uses what it captured in
/// place, a function would move its arguments into locals and carry both.
#[allow(clippy::manual_async_fn)] // the point: see above
fn serve<S: Server>(mut task: Task<S>, mut state: S) -> impl Future<Output = ()> + Send {
    async move {
        loop {
            let reason = run_instance(&mut state, &mut task).await;
            if let Some(end) = Box::pin(task.after_instance(&mut state, reason)).await {
                task.finish(&end);
                return;
            }
        }
    }
}

impl<S: Server> Task<S> {
    /// After an instance ended with `reason`: terminates it, and restarts it while
    /// its restart kind and window admit it (a restart whose `init` fails counts as
    /// the next exit). `None` once a new instance runs; the final reason otherwise.
    async fn after_instance(
        &mut self,
        state: &mut S,
        mut reason: ExitReason,
    ) -> Option<ExitReason> {
        if !matches!(reason, ExitReason::Panicked(_)) {
            state.terminate(&reason).await;
        }
        loop {
            if !self.restarts(&reason) {
                return Some(reason);
            }
            *state = (self.cold.factory)();
            match run_init(state).await {
                Ok(()) => return None,
                Err(e) => reason = ExitReason::InitFailed(e.to_string()),
            }
        }
    }

    /// The server has ended for good: answers what is queued, lets the mailbox go,
    /// raises `done` and runs the exit hook.
    fn finish(self, reason: &ExitReason) {
        let Task {
            role,
            mut rx,
            control,
            hooks,
            ..
        } = self;
        rx.close();
        finish_queued(&mut rx, role);
        drop(rx);
        control.raise_ended();
        if let Some(mut hooks) = hooks {
            hooks.exited(reason);
        }
    }
}

impl<S: Server> Task<S> {
    /// The instance name for logs.
    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.role)
    }

    /// After an instance ended with `reason`: logs an abnormal end and answers what
    /// is queued, then says whether to restart it (its restart kind wants it and the
    /// window admits it), reporting the restart or the give-up.
    fn restarts(&mut self, reason: &ExitReason) -> bool {
        let role = self.role;
        if reason.is_abnormal() {
            tracing::warn!(role, name = self.name(), ?reason, "server ended abnormally");
            // Nothing queued may hang: calls get an error, casts are counted.
            finish_queued(&mut self.rx, role);
        }
        let wants_restart = match self.cold.restart {
            Restart::Permanent | Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        };
        if !wants_restart {
            return false;
        }
        let admitted = self.cold.window.admit(Instant::now());
        if !admitted {
            let intensity = self.cold.window.intensity();
            tracing::error!(role, name = self.name(), max_restarts = intensity.max_restarts,
                period = ?intensity.period, "restart intensity exceeded: giving up");
            m::escalated(role);
        } else {
            m::restarted(role);
        }
        if let Some(link) = &self.cold.link {
            let (name, reason) = (self.name().to_string(), reason.clone());
            link.report(if admitted {
                SupervisorEvent::Restarted { role, name, reason }
            } else {
                SupervisorEvent::Escalated { role, name, reason }
            });
        }
        admitted
    }
}

/// Answers every queued call with `Stopped` and counts queued casts as crashed.
fn finish_queued<S: Server>(rx: &mut Receiver<Envelope<S>>, role: &'static str) {
    let mut casts = 0u64;
    for env in rx.discard_queued() {
        match env {
            Envelope::Call(call) => fail_call(call, CallError::Stopped),
            Envelope::Cast(_) => casts += 1,
        }
    }
    if casts > 0 {
        m::casts_crashed(role, casts);
    }
}

/// What ended one wait of the receive loop.
enum Woken<S: Server> {
    /// `n` messages were taken into the batch buffer (0: the mailbox has ended);
    /// only when `S::MAX_BATCH` > 1.
    Received(usize),
    /// One message, or `None` once the mailbox has ended (`S::MAX_BATCH` = 1).
    One(Option<Envelope<S>>),
    /// A control request.
    Control(Control),
    /// The idle timeout passed with nothing received.
    Idle,
}

/// What the receive loop keeps across its waits.
struct Loop<S: Server> {
    /// Messages taken from the mailbox in one go when `S::MAX_BATCH` > 1 (allocated
    /// by the first batch); a server taking one at a time has no buffer at all.
    buf: Vec<Envelope<S>>,
    /// The timer of the idle timeout (`Task::idle_timeout`), armed only when a
    /// wait begins.
    idle: Option<Pin<Box<Sleep>>>,
    /// Asked to stop after what is queued: the mailbox is closed, control ignored.
    draining: bool,
    /// The drain is an idle stop.
    idle_stop: bool,
    /// Set once the current wait has armed the idle timer.
    armed: bool,
}

impl<S: Server> Loop<S> {
    /// One poll of a wait: the mailbox first, then (unless draining) the control
    /// cell and the idle timer.
    fn poll_wait(&mut self, task: &mut Task<S>, cx: &mut Context<'_>) -> Poll<Woken<S>> {
        if S::MAX_BATCH > 1 {
            let max = S::MAX_BATCH;
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(max.min(1024));
            }
            if let Poll::Ready(n) = task.rx.poll_recv_many(cx, &mut self.buf, max) {
                return Poll::Ready(Woken::Received(n));
            }
        } else if let Poll::Ready(one) = task.rx.poll_recv(cx) {
            return Poll::Ready(Woken::One(one));
        }
        if self.draining {
            return Poll::Pending;
        }
        if let Poll::Ready(c) = task.control.poll_recv(cx) {
            return Poll::Ready(Woken::Control(c));
        }
        if let (Some(timer), Some(d)) = (self.idle.as_mut(), task.idle_timeout) {
            if !std::mem::replace(&mut self.armed, true) {
                timer.as_mut().reset(Instant::now() + d);
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Woken::Idle);
            }
        }
        Poll::Pending
    }
}

/// Runs one instance until it stops, idles out or panics.
///
/// The loop polls the mailbox first and looks at the control cell's flag (one
/// atomic load, see `control.rs`) before each batch, so a busy server pays for
/// neither a control-channel look-up, a waker nor a timer per message; only when the
/// mailbox has nothing does it register with the control cell and arm the idle
/// timer. The timer is one `Sleep` for the
/// whole instance, pushed back to `now + idle_timeout` each time the loop starts to
/// wait: a later deadline only updates the entry (no timer-wheel insert or removal),
/// and the timeout still counts from the moment the server ran out of work.
///
/// An `async` block, not an `async fn`, for the reason `serve` gives.
#[allow(clippy::manual_async_fn)] // see above
fn run_instance<'a, S: Server>(
    state: &'a mut S,
    task: &'a mut Task<S>,
) -> impl Future<Output = ExitReason> + Send + 'a {
    async move {
        // One struct for what the loop keeps across waits, so the wait's future
        // borrows it and the task with two pointers.
        let mut lp = Loop {
            buf: Vec::new(),
            idle: task
                .idle_timeout
                .map(|_| Box::pin(tokio::time::sleep(Duration::ZERO))),
            draining: false,
            idle_stop: false,
            armed: false,
        };
        loop {
            let control = if lp.draining {
                None
            } else {
                task.control.try_take()
            };
            let woken = match control {
                Some(c) => Woken::Control(c),
                None => {
                    lp.armed = false;
                    std::future::poll_fn(|cx| lp.poll_wait(task, cx)).await
                }
            };
            // `woken` and `work` are moved whole, never taken apart here: a value
            // taken apart in an `async` body keeps its place in the task across the
            // handler's await, and each would add a message's size to every live
            // server.
            let work = match lp.after_wait(woken, task) {
                Step::Handle(work) => work,
                Step::Continue => continue,
                Step::Exit(reason) => return reason,
            };
            if let Err(p) = handle(state, work).await {
                // Calls of a batch get an error as the batch is dropped.
                return ExitReason::Panicked(panic_message(&*p));
            }
        }
    }
}

/// What the receive loop does after a wait.
enum Step<S: Server> {
    /// Hand this to the server.
    Handle(Work<S>),
    /// Wait again.
    Continue,
    /// The instance ends.
    Exit(ExitReason),
}

/// Messages for the server's handlers.
enum Work<S: Server> {
    /// One message (`S::MAX_BATCH` = 1).
    One(Envelope<S>),
    /// A batch (`S::MAX_BATCH` > 1).
    Batch(Vec<Envelope<S>>),
}

impl<S: Server> Loop<S> {
    /// Decides what a wait's outcome asks for: acts on control requests and the idle
    /// timeout, and takes a batch out of the buffer. Not `async`: see `run_instance`.
    fn after_wait(&mut self, woken: Woken<S>, task: &mut Task<S>) -> Step<S> {
        let rx = &mut task.rx;
        match woken {
            Woken::Received(0) | Woken::One(None) => Step::Exit(if self.idle_stop {
                ExitReason::Idle
            } else {
                ExitReason::Normal
            }),
            Woken::Received(_) => {
                // A batch goes to the handler by value; the buffer starts afresh with
                // the same capacity (one allocation per batch, as before).
                let fresh = Vec::with_capacity(self.buf.capacity());
                Step::Handle(Work::Batch(std::mem::replace(&mut self.buf, fresh)))
            }
            Woken::One(Some(env)) => Step::Handle(Work::One(env)),
            Woken::Control(Control::Stop { drain: true }) => {
                // Asked to drain: refuse new messages, handle what is queued, then
                // end. (Every handle gone ends the mailbox, seen above.)
                self.draining = true;
                rx.close();
                Step::Continue
            }
            Woken::Control(Control::Stop { drain: false }) => {
                rx.close();
                finish_queued(rx, task.role);
                Step::Exit(ExitReason::Normal)
            }
            Woken::Idle => {
                if task.hooks.as_ref().is_none_or(|hooks| hooks.idle()) {
                    // Anything that slipped in before the close is still handled.
                    self.draining = true;
                    self.idle_stop = true;
                    rx.close();
                }
                Step::Continue
            }
        }
    }
}

/// The handler's future for `work`, under the panic guard. A plain function, so the
/// message moves from `work` into the handler's future without a copy left behind
/// in the task.
fn handle<S: Server>(
    state: &mut S,
    work: Work<S>,
) -> impl Future<Output = std::thread::Result<()>> + Send + '_ {
    match work {
        Work::One(Envelope::Call(req)) => {
            Either::Left(Either::Left(guarded(|| state.handle_call(req))))
        }
        Work::One(Envelope::Cast(msg)) => {
            Either::Left(Either::Right(guarded(|| state.handle_cast(msg))))
        }
        Work::Batch(batch) => Either::Right(guarded(|| state.handle_batch(batch))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ReplyTo;

    struct Bare;
    impl Server for Bare {
        type Call = ReplyTo<()>;
        type Cast = ();
        async fn handle_call(&mut self, reply: ReplyTo<()>) {
            reply.send(())
        }
    }

    /// Every live server is one task holding this future: it was 1,240 bytes for a
    /// stateless server before `init` and `terminate` were boxed, the spec used in
    /// place and the panic guard made a plain function, then 1,008 bytes; 504 since
    /// the task keeps a `Task` (no policy, no call share, no copies of the spec's
    /// fields) in an `async` block, boxes the restart path and keeps the receive
    /// loop's state in one struct (issue #25, an actor in at most 2 KiB when idle);
    /// 448 since no message is taken apart in the loop's own frame; 272 since the
    /// start runs boxed before the loop (no starter's channel kept), the loop's
    /// future takes its arguments in place, the hooks and the exit hook are one
    /// pointer, the stop requests and the end one cell, and what only a restart
    /// uses is boxed. Tokio adds 104 bytes and allocates in 128-byte steps: at
    /// most 280 keeps a stateless server's task in 384 bytes (512 at 448).
    #[test]
    fn the_task_of_a_stateless_server_carries_a_small_future() {
        let size = task_size::<Bare>();
        assert!(size <= 280, "the server task's future is {size} bytes");
    }

    /// A server whose messages are large: every byte of a message kept in the task
    /// beside the handler's future is paid by every live server.
    struct Large;
    impl Server for Large {
        type Call = ReplyTo<()>;
        type Cast = [u64; 64];
        async fn handle_call(&mut self, reply: ReplyTo<()>) {
            reply.send(())
        }
        async fn handle_cast(&mut self, message: [u64; 64]) {
            std::hint::black_box(message);
        }
    }

    /// The loop moves each message whole into the handler's future, never taking
    /// it apart in its own frame: with the envelope, the wait's outcome and the
    /// batch path each keeping a copy, the task carried a message four times over
    /// (1,000 bytes more for this one); it now adds less than its size (the
    /// handler's future holds it where the stateless server's holds its reply).
    #[test]
    fn a_message_takes_its_size_once_in_the_task() {
        let bare = task_size::<Bare>();
        let large = task_size::<Large>();
        let message = std::mem::size_of::<[u64; 64]>();
        assert!(
            large <= bare + message,
            "a {message}-byte message grows the task from {bare} to {large} bytes"
        );
    }
}
