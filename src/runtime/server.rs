//! Starting a server and the task that runs it: [`start`] builds the mailbox and
//! runs `init`; the task runs instance after instance of the state on the same
//! mailbox (the receive loop, `run_instance`), restarting it under its [`Restart`]
//! kind within its supervisor's restart window.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::behaviour::{Envelope, ExitReason, Server};
use super::control::{self, Control, ControlRx};
use super::error::{CallError, InitError, StartError};
use super::handle::ServerRef;
use super::metrics as m;
use super::reply::fail_call;
use super::spec::{IdleHook, Spec};
use super::supervisor::{Restart, RestartWindow, SupervisorEvent};
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
pub async fn start<S: Server>(spec: Spec<S>) -> Result<ServerRef<S>, StartError> {
    let (tx, rx) = Builder::new(spec.policy.clone())
        .role(spec.role)
        .on_evict(|env: Envelope<S>, why| match env {
            Envelope::Call(call) => fail_call(call, CallError::from(why)),
            Envelope::Cast(msg) => S::evicted_cast(msg, why),
        })
        .on_coalesce(S::coalesce)
        .build()
        .map_err(StartError::InvalidPolicy)?;
    let (control_tx, control_rx) = control::channel();
    let (done_tx, done_rx) = watch::channel(false);
    let (started_tx, started_rx) = oneshot::channel();
    let handle = ServerRef::new(tx, control_tx, done_rx, spec.role);
    tokio::spawn(supervise(spec, rx, control_rx, done_tx, started_tx));
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

/// Runs a handler under the panic guard. The handler is called inside the guarded
/// future, not before it, so a panic before it returns its future is caught too.
async fn guarded<F: Future>(handler: impl FnOnce() -> F) -> std::thread::Result<F::Output> {
    AssertUnwindSafe(async move { handler().await })
        .catch_unwind()
        .await
}

async fn run_init<S: Server>(state: &mut S) -> Result<(), InitError> {
    match guarded(|| state.init()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(InitError::returned(e)),
        Err(p) => Err(InitError::panicked(panic_message(&*p))),
    }
}

/// Runs one server across restarts: the mailbox outlives each instance, so handles
/// stay valid and queued messages are accounted for across a crash.
async fn supervise<S: Server>(
    spec: Spec<S>,
    mut rx: Receiver<Envelope<S>>,
    mut control: ControlRx,
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
            hook(&ExitReason::InitFailed(e.to_string()));
        }
        return;
    }
    let _ = started.send(Ok(()));
    // Restarts within the intensity period.
    let mut window = RestartWindow::new(intensity);
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
        if !window.admit(Instant::now()) {
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
            failed_init = Some(ExitReason::InitFailed(e.to_string()));
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
            Envelope::Call(call) => fail_call(call, CallError::Stopped),
            Envelope::Cast(_) => casts += 1,
        }
    }
    if casts > 0 {
        m::casts_crashed(role, casts);
    }
}

/// What ended one wait of the receive loop.
enum Woken {
    /// `n` messages were taken into the buffer (0: the mailbox has ended).
    Received(usize),
    /// A control request, or `None` when every handle is gone.
    Control(Option<Control>),
    /// The idle timeout passed with nothing received.
    Idle,
}

/// Runs one instance until it stops, idles out or panics.
///
/// The loop polls the mailbox first and looks at the control channel's flag (one
/// atomic load, see `control.rs`) before each batch, so a busy server pays for
/// neither a control-channel look-up, a waker nor a timer per message; only when the
/// mailbox has nothing does it register with the control channel and arm the idle
/// timer. The timer is one `Sleep` for the
/// whole instance, pushed back to `now + idle_timeout` each time the loop starts to
/// wait: a later deadline only updates the entry (no timer-wheel insert or removal),
/// and the timeout still counts from the moment the server ran out of work.
async fn run_instance<S: Server>(
    state: &mut S,
    rx: &mut Receiver<Envelope<S>>,
    control: &mut ControlRx,
    role: &'static str,
    idle_timeout: Option<Duration>,
    on_idle: Option<&IdleHook>,
) -> ExitReason {
    let mut draining = false;
    let mut idle_stop = false;
    // Messages taken from the mailbox in one go (one, unless `S::MAX_BATCH` > 1).
    let mut buf: Vec<Envelope<S>> = Vec::with_capacity(S::MAX_BATCH.clamp(1, 1024));
    let max = S::MAX_BATCH.max(1);
    // The idle timeout and its one timer, armed only when a wait begins.
    let mut idle = idle_timeout.map(|d| (d, Box::pin(tokio::time::sleep(Duration::ZERO))));
    loop {
        let woken = if draining {
            None
        } else {
            control.try_take().map(|c| Woken::Control(Some(c)))
        };
        let woken = match woken {
            Some(w) => w,
            None => {
                // Set once this wait has armed the idle timer.
                let mut armed = false;
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(n) = rx.poll_recv_many(cx, &mut buf, max) {
                        return Poll::Ready(Woken::Received(n));
                    }
                    if draining {
                        return Poll::Pending;
                    }
                    if let Poll::Ready(c) = control.poll_recv(cx) {
                        return Poll::Ready(Woken::Control(c));
                    }
                    if let Some((d, timer)) = idle.as_mut() {
                        if !std::mem::replace(&mut armed, true) {
                            timer.as_mut().reset(Instant::now() + *d);
                        }
                        if timer.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Woken::Idle);
                        }
                    }
                    Poll::Pending
                })
                .await
            }
        };
        let received = match woken {
            Woken::Received(n) => n,
            Woken::Control(Some(Control::Stop { drain: true }) | None) => {
                // Asked to drain, or every handle is gone: refuse new messages,
                // handle what is queued, then end.
                draining = true;
                rx.close();
                continue;
            }
            Woken::Control(Some(Control::Stop { drain: false })) => {
                rx.close();
                finish_queued(rx, role);
                return ExitReason::Normal;
            }
            Woken::Idle => {
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
            // The batch goes to the handler by value; the buffer starts afresh with
            // the same capacity (one allocation per batch, as before).
            let fresh = Vec::with_capacity(buf.capacity());
            let batch = std::mem::replace(&mut buf, fresh);
            let outcome = guarded(|| state.handle_batch(batch)).await;
            if let Err(p) = outcome {
                // Calls of the batch get an error as the batch is dropped.
                return ExitReason::Panicked(panic_message(&*p));
            }
            continue;
        }
        for env in buf.drain(..) {
            let outcome = match env {
                Envelope::Call(req) => guarded(|| state.handle_call(req)).await,
                Envelope::Cast(msg) => guarded(|| state.handle_cast(msg)).await,
            };
            if let Err(p) = outcome {
                return ExitReason::Panicked(panic_message(&*p));
            }
        }
    }
}
