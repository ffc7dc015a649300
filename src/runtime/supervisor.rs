//! Supervision: restart kinds and limits as in OTP (one-for-one), the restart
//! window that enforces the limits, and a supervisor that starts children under
//! them and reports restarts and escalations upward.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::behaviour::{ExitReason, Server};
use super::error::StartError;
use super::handle::ServerRef;
use super::server::start;
use super::spec::Spec;

/// When a child is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Restart {
    /// Always restarted after it ends abnormally; only a requested stop or idle
    /// stop ends it (the child kinds differ only for servers that stop themselves).
    Permanent,
    /// Restarted only after an abnormal exit (panic, failed init).
    #[default]
    Transient,
    /// Never restarted.
    Temporary,
}

/// Restart intensity: more than `max_restarts` within `period` and the supervisor
/// gives up on the child and reports upward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed within `period`.
    pub max_restarts: u32,
    /// The sliding window.
    pub period: Duration,
}

impl Default for Intensity {
    /// OTP's default: 3 restarts in 5 seconds.
    fn default() -> Self {
        Intensity {
            max_restarts: 3,
            period: Duration::from_secs(5),
        }
    }
}

/// One child's recent restarts: the sliding window its [`Intensity`] limits.
/// The task running the child asks it before every restart.
#[derive(Debug)]
pub(crate) struct RestartWindow {
    intensity: Intensity,
    /// Times of the restarts within the last `intensity.period`, oldest first;
    /// allocated at the first restart (every live server carries a window, and
    /// most never restart).
    #[allow(clippy::box_collection)] // one pointer, where a `Vec` is three
    restarts: Option<Box<Vec<Instant>>>,
}

impl RestartWindow {
    /// A window with no restarts yet.
    pub(crate) fn new(intensity: Intensity) -> Self {
        RestartWindow {
            intensity,
            restarts: None,
        }
    }

    /// The limits this window applies.
    pub(crate) fn intensity(&self) -> Intensity {
        self.intensity
    }

    /// Records a restart at `now` and returns `true`, or returns `false` (and
    /// records nothing) when `max_restarts` restarts already happened within the
    /// last `period`: the supervisor gives up on the child.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        let period = self.intensity.period;
        let restarts = self.restarts.get_or_insert_with(Box::default);
        restarts.retain(|t| now.duration_since(*t) < period);
        if restarts.len() >= self.intensity.max_restarts as usize {
            return false;
        }
        restarts.push(now);
        true
    }
}

/// What a supervisor reports upward.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SupervisorEvent {
    /// A child ended abnormally and was restarted.
    Restarted {
        /// The child's role.
        role: &'static str,
        /// The child's instance name.
        name: String,
        /// Why it ended.
        reason: ExitReason,
    },
    /// A child exceeded its restart intensity and was stopped for good.
    Escalated {
        /// The child's role.
        role: &'static str,
        /// The child's instance name.
        name: String,
        /// Its last exit reason.
        reason: ExitReason,
    },
}

/// The link from a child back to its supervisor.
#[derive(Clone, Debug)]
pub(crate) struct SupervisorLink {
    events: broadcast::Sender<SupervisorEvent>,
}

impl SupervisorLink {
    pub(crate) fn report(&self, event: SupervisorEvent) {
        // No subscriber is fine: logs and metrics already carry the event.
        let _ = self.events.send(event);
    }
}

/// A one-for-one supervisor: each child is restarted on its own, under its own
/// [`Restart`] kind and the supervisor's [`Intensity`]. A restart builds a fresh
/// state with the spec's factory and runs `init` again behind the same mailbox, so
/// the child's handles stay valid. Restarts and give-ups are logged, counted in
/// the metrics and sent to every [`subscribe`](Self::subscribe)r. Cheap to clone:
/// clones report to the same subscribers.
///
/// # Examples
///
/// A child that panics is restarted with a fresh state; once it exceeds the
/// intensity, the supervisor gives up and it ends:
///
/// ```
/// use std::time::Duration;
/// use sluicegate::mailbox::Policy;
/// use sluicegate::runtime::{
///     CallError, ExitReason, Intensity, ReplyTo, Restart, Server, Spec, Supervisor,
///     SupervisorEvent,
/// };
///
/// enum Call {
///     Get(ReplyTo<u64>),
///     Crash(ReplyTo<u64>),
/// }
///
/// struct Flaky(u64);
///
/// impl Server for Flaky {
///     type Call = Call;
///     type Cast = u64;
///
///     async fn handle_call(&mut self, call: Call) {
///         match call {
///             Call::Get(reply) => reply.send(self.0),
///             Call::Crash(_reply) => panic!("a bug"),
///         }
///     }
///
///     async fn handle_cast(&mut self, n: u64) {
///         self.0 += n;
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // One restart within 5 s; the next abnormal exit in that window is one too many.
/// let supervisor = Supervisor::new(Intensity { max_restarts: 1, period: Duration::from_secs(5) });
/// let mut events = supervisor.subscribe();
/// let spec = Spec::new("flaky", Policy::Unbounded, || Flaky(0)).restart(Restart::Transient);
/// let flaky = supervisor.start(spec).await.unwrap();
/// let t = Duration::from_secs(1);
///
/// flaky.cast(7).await.unwrap();
/// assert_eq!(flaky.call(Call::Crash, t).await, Err(CallError::Panicked));
/// let restarted = events.recv().await.unwrap();
/// assert!(matches!(
///     restarted,
///     SupervisorEvent::Restarted { role: "flaky", reason: ExitReason::Panicked(_), .. }
/// ));
/// assert_eq!(flaky.call(Call::Get, t).await, Ok(0)); // same handle, fresh state
///
/// assert_eq!(flaky.call(Call::Crash, t).await, Err(CallError::Panicked));
/// let gave_up = events.recv().await.unwrap();
/// assert!(matches!(gave_up, SupervisorEvent::Escalated { role: "flaky", .. }));
/// flaky.stopped().await;
/// assert_eq!(flaky.call(Call::Get, t).await, Err(CallError::Stopped));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Supervisor {
    intensity: Intensity,
    events: broadcast::Sender<SupervisorEvent>,
}

impl Supervisor {
    /// A supervisor with the given restart limits.
    pub fn new(intensity: Intensity) -> Self {
        let (events, _) = broadcast::channel(1024);
        Supervisor { intensity, events }
    }

    /// Receives restarts and escalations from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SupervisorEvent> {
        self.events.subscribe()
    }

    /// The supervisor's restart limits.
    pub fn intensity(&self) -> Intensity {
        self.intensity
    }

    /// Starts a child under this supervisor (its intensity replaces the spec's);
    /// its restarts and a give-up go to every [`subscribe`](Self::subscribe)r.
    ///
    /// # Errors
    ///
    /// As [`start`](super::start).
    ///
    /// # Cancel safety
    ///
    /// As [`start`](super::start).
    pub async fn start<S: Server>(&self, mut spec: Spec<S>) -> Result<ServerRef<S>, StartError> {
        spec.intensity = self.intensity;
        spec.link = Some(SupervisorLink {
            events: self.events.clone(),
        });
        start(spec).await
    }
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new(Intensity::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_window_admits_max_restarts_per_period() {
        let mut window = RestartWindow::new(Intensity {
            max_restarts: 2,
            period: Duration::from_secs(5),
        });
        let t0 = Instant::now();
        assert!(window.admit(t0));
        assert!(window.admit(t0 + Duration::from_secs(1)));
        assert!(
            !window.admit(t0 + Duration::from_secs(2)),
            "a third within 5 s"
        );
        // The first restart leaves the window 5 s after it happened.
        assert!(window.admit(t0 + Duration::from_secs(5)));
        assert!(!window.admit(t0 + Duration::from_secs(5)));
    }
}
