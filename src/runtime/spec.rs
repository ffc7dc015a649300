//! [`Spec`]: how to start a server (role, mailbox policy, restart kind and limits,
//! idle stop, hooks, and the factory that builds its state on every (re)start).

use std::sync::Arc;
use std::time::Duration;

use super::behaviour::{ExitReason, Server};
use super::handle::CallShare;
use super::supervisor::{Intensity, Restart, SupervisorLink};
use crate::mailbox::Policy;

/// Called when a server has been idle for its idle timeout; returns whether it may
/// stop (the registry marks it stopping under its lock, so no new caller finds it).
pub(crate) type IdleHook = Arc<dyn Fn() -> bool + Send + Sync>;
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
    /// Instance name for logs (e.g. the list name); never a metric label.
    pub(crate) name: String,
    /// The mailbox policy.
    pub(crate) policy: Policy,
    /// When to restart.
    pub(crate) restart: Restart,
    /// Restart limits.
    pub(crate) intensity: Intensity,
    /// Stop after this long without a message (`None`: never).
    pub(crate) idle_timeout: Option<Duration>,
    /// Asked before an idle stop.
    pub(crate) on_idle: Option<IdleHook>,
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
            name: role.to_string(),
            policy,
            restart: Restart::Temporary,
            intensity: Intensity::default(),
            idle_timeout: None,
            on_idle: None,
            on_exit: None,
            factory: Box::new(factory),
            link: None,
            calls: None,
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

    /// Runs `hook` once when the server ends for good (after its last restart),
    /// with the reason it ended.
    pub fn on_exit(mut self, hook: impl FnOnce(&ExitReason) + Send + 'static) -> Self {
        self.on_exit = Some(Box::new(hook));
        self
    }
}
