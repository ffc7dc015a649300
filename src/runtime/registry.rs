//! A registry of servers by name: get-or-start with exactly one server per name,
//! starts that never block lookups of other names, idle stop, and a cap on live servers.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};

use super::error::{CallError, CastError, StartError};
use super::handle::{call_meta, next_server_id, CallShare};
use super::metrics as m;
use super::spec::{Hooks, Then};
use super::supervisor::Supervisor;
use super::{ExitReason, ReplyTo, Server, ServerRef, Spec};
use crate::mailbox::Meta;

/// Registry settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// A server with no message for this long stops; the next lookup starts it again.
    pub idle_timeout: Option<Duration>,
    /// At most this many servers live (or starting) at once; `None`: no cap.
    pub max_live: Option<usize>,
}

type StartFuture<S> = Shared<BoxFuture<'static, Result<ServerRef<S>, StartError>>>;

/// A name's server. Each entry is known by its server's id (given before the
/// start), so a late hook never touches a newer entry; a started server's id is
/// its handle's, not a copy (the map holds one entry per live server).
enum Entry<S: Server> {
    /// `init` is running in its own task; lookups of this name wait on it.
    Starting {
        id: u64,
        result: StartFuture<S>,
    },
    Live {
        server: ServerRef<S>,
    },
    /// Idle stop under way; lookups wait for it to end, then start a fresh server.
    Stopping {
        server: ServerRef<S>,
    },
}

impl<S: Server> Entry<S> {
    fn id(&self) -> u64 {
        match self {
            Entry::Starting { id, .. } => *id,
            Entry::Live { server } | Entry::Stopping { server } => server.id(),
        }
    }
}

type MakeSpec<K, S> = Box<dyn Fn(&K) -> Spec<S> + Send + Sync>;

struct Inner<K, S: Server> {
    /// Every name with a server starting, live or stopping. Held only briefly:
    /// never across a start, a stop or a call.
    entries: Mutex<HashMap<K, Entry<S>>>,
    /// Builds the spec of a name's server.
    make: MakeSpec<K, S>,
    /// Supervises every server of the registry.
    supervisor: Supervisor,
    config: RegistryConfig,
    /// The role, for the live-servers gauge.
    role: &'static str,
    /// Call metrics and the call timer of every server of the registry, made at the
    /// first start (on the runtime that runs the servers): no server carries a
    /// metric registration or a timer task of its own.
    calls: OnceLock<CallShare>,
}

/// Servers by name, started on first use: one server per name at a time, each
/// built by the registry's spec function and supervised by its
/// [`Supervisor`]. With [`RegistryConfig::idle_timeout`], a server that gets no
/// message for that long stops, and the next message to its name starts a fresh
/// one. Cheap to clone: clones share the servers.
///
/// # Examples
///
/// One counter per name, each started by the first message to its name and
/// stopped after a minute without messages:
///
/// ```
/// use std::time::Duration;
/// use sluicegate::mailbox::Policy;
/// use sluicegate::runtime::{Registry, RegistryConfig, ReplyTo, Server, Spec, Supervisor};
///
/// struct Counter(u64);
///
/// impl Server for Counter {
///     type Call = ReplyTo<u64>; // read the count
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
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let config = RegistryConfig {
///     idle_timeout: Some(Duration::from_secs(60)),
///     max_live: Some(10_000),
/// };
/// let counters = Registry::new("counter", Supervisor::default(), config, |name: &String| {
///     Spec::new("counter", Policy::DropNewest { capacity: 64 }, || Counter(0))
///         .name(name.as_str())
/// });
/// let (alice, bob) = ("alice".to_string(), "bob".to_string());
/// let t = Duration::from_secs(1);
/// counters.cast(&alice, 2).await.unwrap();
/// counters.cast(&alice, 3).await.unwrap();
/// assert_eq!(counters.call(&alice, |reply| reply, t).await, Ok(5));
/// assert_eq!(counters.call(&bob, |reply| reply, t).await, Ok(0));
/// assert_eq!(counters.len(), 2);
///
/// // A minute without messages: both stop; the next call starts a fresh server.
/// tokio::time::sleep(Duration::from_secs(61)).await;
/// assert!(counters.is_empty());
/// assert_eq!(counters.call(&alice, |reply| reply, t).await, Ok(0));
/// # }
/// ```
pub struct Registry<K, S: Server> {
    inner: Arc<Inner<K, S>>,
}

impl<K, S: Server> Clone for Registry<K, S> {
    fn clone(&self) -> Self {
        Registry {
            inner: self.inner.clone(),
        }
    }
}

/// What a registry is told of one of its servers (its idle stop, its end): the
/// way back to the registry, the name and the entry's id, held once per server.
struct ServerHooks<K, S: Server> {
    inner: Weak<Inner<K, S>>,
    name: K,
    /// The entry's id, so a late hook never touches a newer entry.
    id: u64,
}

impl<K, S> Hooks for ServerHooks<K, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    S: Server,
{
    fn idle(&self) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return true;
        };
        let (name, id) = (&self.name, self.id);
        let mut entries = inner.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.remove(name) {
            Some(Entry::Live { server }) if server.id() == id => {
                if server.stats().depth == 0 {
                    entries.insert(name.clone(), Entry::Stopping { server });
                    true
                } else {
                    entries.insert(name.clone(), Entry::Live { server });
                    false
                }
            }
            Some(other) => {
                entries.insert(name.clone(), other);
                false
            }
            None => true,
        }
    }

    fn exited(&mut self, _reason: &ExitReason) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let mut entries = inner.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.get(&self.name).map(Entry::id) == Some(self.id) {
            if let Some(Entry::Live { .. } | Entry::Stopping { .. }) = entries.remove(&self.name) {
                m::live_servers(inner.role, -1.0);
            }
        }
    }
}

enum Next<S: Server> {
    Wait(StartFuture<S>),
    WaitStopped(ServerRef<S>),
}

impl<K, S> Registry<K, S>
where
    K: Hash + Eq + Clone + Send + Sync + std::fmt::Display + 'static,
    S: Server,
{
    /// A registry whose servers are built by `make` and run under `supervisor`.
    pub fn new(
        role: &'static str,
        supervisor: Supervisor,
        config: RegistryConfig,
        make: impl Fn(&K) -> Spec<S> + Send + Sync + 'static,
    ) -> Self {
        Registry {
            inner: Arc::new(Inner {
                entries: Mutex::new(HashMap::new()),
                make: Box::new(make),
                supervisor,
                config,
                role,
                calls: OnceLock::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry<S>>> {
        self.inner.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The name's server, started (and `init` run) if it is not live. Concurrent
    /// first lookups of one name share one start; other names are never blocked by it.
    ///
    /// # Errors
    ///
    /// [`StartError`]: the server's `init` failed (every caller waiting on that start
    /// gets the error), the spec's policy is invalid, or the live-server cap is
    /// reached.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the start runs in its own task, so a caller that gives up leaves
    /// it to finish for the next one.
    pub async fn get_or_start(&self, name: &K) -> Result<ServerRef<S>, StartError> {
        loop {
            let next = {
                let mut entries = self.lock();
                match entries.get(name) {
                    Some(Entry::Live { server }) => return Ok(server.clone()),
                    Some(Entry::Starting { result, .. }) => Next::Wait(result.clone()),
                    Some(Entry::Stopping { server }) => Next::WaitStopped(server.clone()),
                    None => {
                        if let Some(cap) = self.inner.config.max_live {
                            if entries.len() >= cap {
                                return Err(StartError::TooManyServers { cap });
                            }
                        }
                        let result = self.spawn_start(name.clone());
                        let id = result.0;
                        entries.insert(
                            name.clone(),
                            Entry::Starting {
                                id,
                                result: result.1.clone(),
                            },
                        );
                        Next::Wait(result.1)
                    }
                }
            };
            match next {
                Next::Wait(result) => return result.await,
                Next::WaitStopped(server) => server.stopped().await,
            }
        }
    }

    /// Starts a name's server in its own task, so that a slow `init` blocks only
    /// the callers of that name.
    fn spawn_start(&self, name: K) -> (u64, StartFuture<S>) {
        let id = next_server_id();
        let mut spec = (self.inner.make)(&name);
        spec.id = Some(id);
        spec.idle_timeout = self.inner.config.idle_timeout;
        let server_role = spec.role;
        let share = self.inner.calls.get_or_init(|| CallShare::new(server_role));
        // A server of another role than the first keeps series of its own, so
        // every call is counted under its server's role.
        if share.role() == server_role {
            spec.calls = Some(share.clone());
        }
        let weak: Weak<Inner<K, S>> = Arc::downgrade(&self.inner);
        let group = ServerHooks {
            inner: weak.clone(),
            name: name.clone(),
            id,
        };
        // The spec's own exit hook runs after the registry's.
        spec.hooks = Some(match spec.hooks.take() {
            None => Box::new(group),
            Some(own) => Box::new(Then(group, own)),
        });
        let supervisor = self.inner.supervisor.clone();
        let role = self.inner.role;
        let task = tokio::spawn(async move {
            let result = supervisor.start(spec).await;
            if let Some(inner) = weak.upgrade() {
                let mut entries = inner.entries.lock().unwrap_or_else(|e| e.into_inner());
                if entries.get(&name).map(Entry::id) == Some(id) {
                    match &result {
                        Ok(server) if !server.is_stopped() => {
                            entries.insert(
                                name.clone(),
                                Entry::Live {
                                    server: server.clone(),
                                },
                            );
                            m::live_servers(role, 1.0);
                            m::server_started(role);
                        }
                        _ => {
                            entries.remove(&name);
                        }
                    }
                }
            }
            result
        });
        let fut = async move {
            task.await.unwrap_or_else(|_| {
                Err(StartError::Init(super::error::InitError::other(
                    "the task starting the server panicked",
                )))
            })
        }
        .boxed()
        .shared();
        (id, fut)
    }

    /// Stops the name's live server (after it handles what is queued, when `drain`)
    /// and takes it out of the registry before returning, so the name's next lookup
    /// starts a fresh server. From the moment it is called, a call or cast to the
    /// name waits for the stop and goes to the fresh server (a message sent before
    /// is handled by the old one when `drain`). `false` when no server of that name
    /// was live.
    ///
    /// The server's own exit hook would remove it too, but it runs after `stop`
    /// returns; removing it here, by id, makes the order certain. The hook then finds
    /// another id (or nothing) and leaves the entry alone.
    ///
    /// # Cancel safety
    ///
    /// The first poll marks the name stopping and asks the server to stop; dropping
    /// the future after that leaves the stop to finish on its own, and the server's
    /// exit hook takes the name out of the registry when it ends.
    pub async fn stop(&self, name: &K, drain: bool) -> bool {
        // Marked stopping at once: a call or cast from now on waits for this server
        // to stop and then goes to a successor, instead of reaching a closed mailbox.
        let live = {
            let mut entries = self.lock();
            match entries.remove(name) {
                Some(Entry::Live { server }) => {
                    let id = server.id();
                    let stopping = Entry::Stopping {
                        server: server.clone(),
                    };
                    entries.insert(name.clone(), stopping);
                    Some((id, server))
                }
                Some(other) => {
                    entries.insert(name.clone(), other);
                    None
                }
                None => None,
            }
        };
        let Some((id, server)) = live else {
            return false;
        };
        server.stop(drain).await;
        let mut entries = self.lock();
        if entries.get(name).map(Entry::id) == Some(id) {
            if let Some(Entry::Live { .. } | Entry::Stopping { .. }) = entries.remove(name) {
                m::live_servers(self.inner.role, -1.0);
            }
        }
        true
    }

    /// The name's server if it is live now; never starts one.
    pub fn get(&self, name: &K) -> Option<ServerRef<S>> {
        match self.lock().get(name) {
            Some(Entry::Live { server }) => Some(server.clone()),
            _ => None,
        }
    }

    /// Calls the name's server, starting it if needed; `request` builds the request
    /// around its reply handle, as in [`ServerRef::call`]. The timeout covers the
    /// start too. If the server was just stopping for idleness, the call goes to
    /// its successor.
    ///
    /// # Errors
    ///
    /// [`RegistryCallError::Start`] when the server could not be started (as
    /// [`get_or_start`](Self::get_or_start)), and
    /// [`RegistryCallError::Call`] as [`ServerRef::call`].
    ///
    /// # Cancel safety
    ///
    /// As [`ServerRef::call`]; a start under way goes on for the next caller.
    pub async fn call<R>(
        &self,
        name: &K,
        request: impl FnOnce(ReplyTo<R>) -> S::Call,
        timeout: Duration,
    ) -> Result<R, RegistryCallError> {
        self.call_with(name, request, timeout, Meta::default())
            .await
    }

    /// [`call`](Self::call) with a coalescing key and/or an earlier deadline.
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
        name: &K,
        request: impl FnOnce(ReplyTo<R>) -> S::Call,
        timeout: Duration,
        meta: Meta,
    ) -> Result<R, RegistryCallError> {
        let (meta, deadline) = call_meta(meta, tokio::time::Instant::now(), timeout);
        let (reply, rx) = ReplyTo::pair();
        let mut pending = (request(reply), rx);
        loop {
            let server = tokio::time::timeout_at(deadline, self.get_or_start(name))
                .await
                .map_err(|_| RegistryCallError::Call(CallError::Timeout))?
                .map_err(RegistryCallError::Start)?;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match server
                .call_returning(pending.0, pending.1, left, meta.clone())
                .await
            {
                Ok(r) => return Ok(r),
                Err((CallError::Stopped, Some(back))) => {
                    // The server closed (idle stop or given up): let its exit hook run.
                    pending = back;
                    tokio::task::yield_now().await;
                }
                Err((e, _)) => return Err(RegistryCallError::Call(e)),
            }
        }
    }

    /// Casts to the name's server, starting it if needed.
    ///
    /// # Errors
    ///
    /// [`RegistryCallError::Start`] as for [`call`](Self::call), and
    /// [`RegistryCallError::Cast`] as [`ServerRef::cast`].
    ///
    /// # Cancel safety
    ///
    /// As [`ServerRef::cast`].
    pub async fn cast(&self, name: &K, message: S::Cast) -> Result<(), RegistryCallError> {
        self.cast_with(name, message, Meta::default()).await
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
    pub async fn cast_with(
        &self,
        name: &K,
        message: S::Cast,
        meta: Meta,
    ) -> Result<(), RegistryCallError> {
        let server = self
            .get_or_start(name)
            .await
            .map_err(RegistryCallError::Start)?;
        server
            .cast_with(message, meta)
            .await
            .map_err(RegistryCallError::Cast)
    }

    /// Names with a live server.
    pub fn live_names(&self) -> Vec<K> {
        self.lock()
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Live { .. }))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Number of servers starting, live or stopping.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no server is starting, live or stopping.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops every server; with `drain`, each first handles what is queued.
    ///
    /// # Cancel safety
    ///
    /// The servers live when it is first polled are asked to stop together; dropping
    /// the future afterwards cancels only the wait for them to end.
    pub async fn stop_all(&self, drain: bool) {
        let servers: Vec<ServerRef<S>> = self
            .lock()
            .values()
            .filter_map(|e| match e {
                Entry::Live { server } | Entry::Stopping { server } => Some(server.clone()),
                Entry::Starting { .. } => None,
            })
            .collect();
        futures_util::future::join_all(servers.iter().map(|s| s.stop(drain))).await;
    }
}

/// Why a registry call failed: the server could not start, or the call itself failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryCallError {
    /// The server could not be started.
    Start(StartError),
    /// The call failed.
    Call(CallError),
    /// The cast was not accepted.
    Cast(CastError),
}

impl std::fmt::Display for RegistryCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryCallError::Start(e) => e.fmt(f),
            RegistryCallError::Call(e) => e.fmt(f),
            RegistryCallError::Cast(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RegistryCallError {}
