//! [`Spec`]: how to start a server (role, mailbox policy, restart kind and limits,
//! idle stop, hooks, and the factory that builds its state on every (re)start).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use super::behaviour::{ExitReason, Server};
use super::handle::CallShare;
use super::supervisor::{Intensity, Restart, SupervisorLink};
use crate::mailbox::Policy;

/// What a group of servers (a registry) is told of one of its servers: one value
/// per server, so its name and the way back to the group are held once.
pub(crate) trait GroupHooks: Send + Sync {
    /// The server has been idle for its idle timeout; returns whether it may stop
    /// (the registry marks it stopping under its lock, so no new caller finds it).
    fn idle(&self) -> bool;
    /// The server has ended for good (before the spec's own exit hook runs).
    fn exited(&self, reason: &ExitReason);
}
/// A group's hooks of one server.
pub(crate) type Hooks = Arc<dyn GroupHooks>;
/// Called once when a server ends for good.
pub(crate) type ExitHook = Box<dyn FnOnce(&ExitReason) + Send>;

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
    /// Instance name for logs (e.g. the list name); never a metric label. The role
    /// itself unless set, with no allocation.
    pub(crate) name: Cow<'static, str>,
    /// The mailbox policy.
    pub(crate) policy: Policy,
    /// When to restart.
    pub(crate) restart: Restart,
    /// Restart limits.
    pub(crate) intensity: Intensity,
    /// Stop after this long without a message (`None`: never).
    pub(crate) idle_timeout: Option<Duration>,
    /// The group's hooks: asked before an idle stop, told of the end.
    pub(crate) hooks: Option<Hooks>,
    /// Told when the server ends for good.
    pub(crate) on_exit: Option<ExitHook>,
    /// Builds a fresh state.
    pub(crate) factory: Box<dyn Fn() -> S + Send + Sync>,
    pub(crate) link: Option<SupervisorLink>,
    /// Call metrics and timer shared with other servers (a registry's); `None`:
    /// the server gets its own.
    pub(crate) calls: Option<CallShare>,
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
            name: Cow::Borrowed(role),
            policy,
            restart: Restart::Temporary,
            intensity: Intensity::default(),
            idle_timeout: None,
            hooks: None,
            on_exit: None,
            factory: Box::new(factory),
            link: None,
            calls: None,
        }
    }

    /// Sets the instance name used in logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Cow::Owned(name.into());
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
        self.on_exit = Some(Box::new(hook));
        self
    }
}
