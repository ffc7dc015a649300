//! [`Spec`]: how to start a server (role, mailbox policy, restart kind and limits,
//! idle stop, hooks, and the factory that builds its state on every (re)start).

use std::sync::Arc;
use std::time::Duration;

use super::behaviour::{ExitReason, Server};
use super::handle::CallShare;
use super::supervisor::{Intensity, Restart, SupervisorLink};
use crate::mailbox::Policy;

/// What is told of a server's idle stop and its end: a group's (a registry's)
/// hooks, the spec's exit hook ([`Spec::on_exit`]), or both ([`Then`]) in one
/// value, so a server holds one pointer for them and nothing when it has none.
pub(crate) trait Hooks: Send {
    /// The server has been idle for its idle timeout; returns whether it may stop
    /// (a registry marks it stopping under its lock, so no new caller finds it).
    fn idle(&self) -> bool;
    /// The server has ended for good; called once.
    fn exited(&mut self, reason: &ExitReason);
}

/// A server's hooks, if it has any.
pub(crate) type BoxHooks = Box<dyn Hooks>;

/// The spec's exit hook: never holds up an idle stop.
struct OnExit<F>(Option<F>);

impl<F: FnOnce(&ExitReason) + Send> Hooks for OnExit<F> {
    fn idle(&self) -> bool {
        true
    }

    fn exited(&mut self, reason: &ExitReason) {
        if let Some(hook) = self.0.take() {
            hook(reason);
        }
    }
}

/// A group's hooks, then the spec's own: the group is told of the end first.
pub(crate) struct Then<G>(pub(crate) G, pub(crate) BoxHooks);

impl<G: Hooks> Hooks for Then<G> {
    fn idle(&self) -> bool {
        // The group's last: when it says yes it has marked the server stopping.
        self.1.idle() && self.0.idle()
    }

    fn exited(&mut self, reason: &ExitReason) {
        self.0.exited(reason);
        self.1.exited(reason);
    }
}

/// How to start a server: role, mailbox policy, restart kind and a factory for its
/// state (called again on every restart). Built with [`Spec::new`] and its
/// builder methods, then passed to [`start`](super::start),
/// [`Supervisor::start`](super::Supervisor::start) or a [`Registry`](super::Registry).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluicegate::mailbox::Policy;
/// use sluicegate::runtime::{Intensity, Restart, Server, Spec};
///
/// struct Worker;
/// impl Server for Worker {
///     type Call = std::convert::Infallible;
///     type Cast = String;
///     async fn handle_call(&mut self, call: Self::Call) {
///         match call {}
///     }
/// }
///
/// let spec = Spec::new("worker", Policy::DropOldest { capacity: 128 }, || Worker)
///     .name("worker-1")
///     .restart(Restart::Permanent)
///     .intensity(Intensity { max_restarts: 3, period: Duration::from_secs(5) })
///     .idle_timeout(Duration::from_secs(60))
///     .on_exit(|reason| eprintln!("worker-1 ended: {reason:?}"));
/// ```
pub struct Spec<S: Server> {
    /// Metric label and log name of the server's kind (e.g. `todo_server`).
    pub(crate) role: &'static str,
    /// Instance name for logs (e.g. the list name); never a metric label. `None`:
    /// the role itself, with no allocation.
    pub(crate) name: Option<Arc<str>>,
    /// The mailbox policy.
    pub(crate) policy: Policy,
    /// When to restart.
    pub(crate) restart: Restart,
    /// Restart limits.
    pub(crate) intensity: Intensity,
    /// Stop after this long without a message (`None`: never).
    pub(crate) idle_timeout: Option<Duration>,
    /// Asked before an idle stop, told of the end: the spec's exit hook, and a
    /// registry's hooks ahead of it.
    pub(crate) hooks: Option<BoxHooks>,
    /// Builds a fresh state.
    pub(crate) factory: Box<dyn Fn() -> S + Send + Sync>,
    pub(crate) link: Option<SupervisorLink>,
    /// Call metrics and timer shared with other servers (a registry's); `None`:
    /// the server gets its own.
    pub(crate) calls: Option<CallShare>,
    /// The server's id, given by its group (a registry's entry is known by it);
    /// `None`: a fresh one.
    pub(crate) id: Option<u64>,
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
            name: None,
            policy,
            restart: Restart::Temporary,
            intensity: Intensity::default(),
            idle_timeout: None,
            hooks: None,
            factory: Box::new(factory),
            link: None,
            calls: None,
            id: None,
        }
    }

    /// Sets the instance name used in logs. An `Arc<str>` the caller holds
    /// anyway (e.g. a registry's key) is shared, not copied.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
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

    /// Runs `hook` once when the server ends for good (after its last restart),
    /// with the reason it ended. A server started by a [`Registry`](super::Registry)
    /// runs it too, after the registry has removed the server's entry.
    pub fn on_exit(mut self, hook: impl FnOnce(&ExitReason) + Send + 'static) -> Self {
        self.hooks = Some(Box::new(OnExit(Some(hook))));
        self
    }
}
