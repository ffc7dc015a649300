//! A keyed worker pool: N supervised workers, a key always served by the same one
//! (a stable hash of the key mod N), reached through a router server or directly.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::error::{CallError, CastError, StartError};
use super::handle::call_meta;
use super::reply::fail_call;
use super::supervisor::{Restart, Supervisor};
use super::{Envelope, ReplyTo, Server, ServerRef, Spec};
use crate::mailbox::{Eviction, Meta, Policy};

/// How requests reach a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Routing {
    /// Every request passes through the pool's own router server and mailbox (the
    /// book's first database): one queue in front of all workers.
    Routed,
    /// The caller asks once for the key's worker and talks to it directly.
    Direct,
}

/// FNV-1a, 64 bit: a hash that stays the same across runs, builds and platforms,
/// so a key maps to the same worker index every time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The worker index of a key among `n` workers.
pub(crate) fn worker_index<K: Hash + ?Sized>(key: &K, n: usize) -> usize {
    let mut h = StableHasher::default();
    key.hash(&mut h);
    (h.finish() % n.max(1) as u64) as usize
}

/// A request on its way through a [`Router`] to one worker (opaque: the pool builds it).
pub struct Routed<S: Server> {
    worker: usize,
    envelope: Envelope<S>,
    meta: Meta,
}

/// The router server of a [`Routing::Routed`] pool: forwards each request to its
/// worker, waiting as the worker's mailbox policy says.
pub struct Router<S: Server> {
    workers: Arc<Vec<ServerRef<S>>>,
}

impl<S: Server> Server for Router<S> {
    /// A router takes no calls of its own: requests reach it as casts.
    type Call = std::convert::Infallible;
    type Cast = Routed<S>;

    async fn handle_call(&mut self, request: std::convert::Infallible) {
        match request {}
    }

    async fn handle_cast(&mut self, routed: Routed<S>) {
        if let Some(worker) = self.workers.get(routed.worker) {
            // A refused call is answered by `forward`; a refused cast is counted
            // by the worker's mailbox.
            let _ = worker.forward(routed.envelope, routed.meta).await;
        }
    }

    fn coalesce(old: Envelope<Self>, new: &mut Envelope<Self>) {
        if let (Envelope::Cast(old), Envelope::Cast(new)) = (old, new) {
            S::coalesce(old.envelope, &mut new.envelope);
        }
    }

    fn evicted_cast(routed: Routed<S>, why: Eviction) {
        match routed.envelope {
            Envelope::Call(call) => fail_call(call, CallError::from(why)),
            Envelope::Cast(msg) => S::evicted_cast(msg, why),
        }
    }
}

/// Settings of a pool.
pub struct PoolSpec {
    /// Role of the workers (metric label), e.g. `database_worker`.
    pub worker_role: &'static str,
    /// Role of the router, e.g. `database`.
    pub router_role: &'static str,
    /// Number of workers (at least 1).
    pub workers: usize,
    /// Routed or direct.
    pub routing: Routing,
    /// Mailbox policy of each worker.
    pub worker_policy: Policy,
    /// Mailbox policy of the router (used only when routed).
    pub router_policy: Policy,
}

/// N supervised workers; a key always goes to the same one (a stable hash of the
/// key, the same across runs), so the state of a key lives in one worker.
/// [`Routing`] says whether requests pass through one router server or go
/// straight to the key's worker. Cheap to clone.
///
/// # Examples
///
/// Three workers counting words; every message for one word reaches the same
/// worker, so each count lives in one place, without a lock:
///
/// ```
/// use std::collections::HashMap;
/// use std::time::Duration;
/// use sluicegate::mailbox::Policy;
/// use sluicegate::runtime::{KeyedPool, PoolSpec, ReplyTo, Routing, Server, Supervisor};
///
/// /// The counts of the words this worker serves.
/// struct Counts(HashMap<String, u64>);
///
/// enum Call {
///     Count(String, ReplyTo<u64>),
/// }
///
/// impl Server for Counts {
///     type Call = Call;
///     type Cast = String; // one more of this word
///
///     async fn handle_call(&mut self, call: Call) {
///         match call {
///             Call::Count(word, reply) => reply.send(self.0.get(&word).copied().unwrap_or(0)),
///         }
///     }
///
///     async fn handle_cast(&mut self, word: String) {
///         *self.0.entry(word).or_default() += 1;
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let spec = PoolSpec {
///     worker_role: "word_counter",
///     router_role: "word_router",
///     workers: 3,
///     routing: Routing::Direct,
///     worker_policy: Policy::Block { capacity: 256, send_timeout: None },
///     router_policy: Policy::Unbounded, // used only by Routing::Routed
/// };
/// let make = |_index: usize| Counts(HashMap::new());
/// let pool = KeyedPool::start(spec, &Supervisor::default(), make).await.unwrap();
/// for word in ["to", "be", "or", "not", "to", "be"] {
///     pool.cast(word, word.to_string()).await.unwrap();
/// }
/// let t = Duration::from_secs(1);
/// assert_eq!(pool.call("to", |r| Call::Count("to".into(), r), t).await, Ok(2));
/// // "Give me a worker": the one serving a key holds its count.
/// let worker = pool.worker_for("be");
/// assert_eq!(worker.call(|r| Call::Count("be".into(), r), t).await, Ok(2));
/// pool.stop(true).await;
/// # }
/// ```
pub struct KeyedPool<S: Server> {
    workers: Arc<Vec<ServerRef<S>>>,
    router: Option<ServerRef<Router<S>>>,
    routing: Routing,
}

impl<S: Server> Clone for KeyedPool<S> {
    fn clone(&self) -> Self {
        KeyedPool {
            workers: self.workers.clone(),
            router: self.router.clone(),
            routing: self.routing,
        }
    }
}

impl<S: Server> KeyedPool<S> {
    /// Starts the workers (permanent children of `supervisor`, built by
    /// `make(index)`) and, when routed, the router.
    ///
    /// # Errors
    ///
    /// The first worker's or the router's [`StartError`], as
    /// [`Supervisor::start`] gives it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future part-way (or an error part-way) drops the handles of
    /// the servers already started, which then end as a server does once every
    /// handle to it is gone.
    pub async fn start(
        spec: PoolSpec,
        supervisor: &Supervisor,
        make: impl Fn(usize) -> S + Send + Sync + Clone + 'static,
    ) -> Result<Self, StartError> {
        let n = spec.workers.max(1);
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let make = make.clone();
            let worker_spec = Spec::new(spec.worker_role, spec.worker_policy.clone(), move || {
                make(i)
            })
            .name(format!("{}-{i}", spec.worker_role))
            .restart(Restart::Permanent);
            workers.push(supervisor.start(worker_spec).await?);
        }
        let workers = Arc::new(workers);
        let router = match spec.routing {
            Routing::Direct => None,
            Routing::Routed => {
                let w = workers.clone();
                let router_spec =
                    Spec::new(spec.router_role, spec.router_policy.clone(), move || {
                        Router { workers: w.clone() }
                    })
                    .restart(Restart::Permanent);
                Some(supervisor.start(router_spec).await?)
            }
        };
        Ok(KeyedPool {
            workers,
            router,
            routing: spec.routing,
        })
    }

    /// The routing mode.
    pub fn routing(&self) -> Routing {
        self.routing
    }

    /// "Give me a worker": the server that serves `key`.
    pub fn worker_for<K: Hash + ?Sized>(&self, key: &K) -> &ServerRef<S> {
        &self.workers[worker_index(key, self.workers.len())]
    }

    /// Every worker, in index order.
    pub fn workers(&self) -> &[ServerRef<S>] {
        &self.workers
    }

    /// The router, when routed.
    pub fn router(&self) -> Option<&ServerRef<Router<S>>> {
        self.router.as_ref()
    }

    /// Calls the worker of `key`, through the router when routed; `request` builds
    /// the request around its reply handle, as in [`ServerRef::call`].
    ///
    /// # Errors
    ///
    /// As [`ServerRef::call`]; routed, the router's mailbox may refuse it too.
    ///
    /// # Cancel safety
    ///
    /// As [`ServerRef::call`].
    pub async fn call<K: Hash + ?Sized, R>(
        &self,
        key: &K,
        request: impl FnOnce(ReplyTo<R>) -> S::Call,
        timeout: Duration,
    ) -> Result<R, CallError> {
        self.call_with(key, request, timeout, Meta::default()).await
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
    pub async fn call_with<K: Hash + ?Sized, R>(
        &self,
        key: &K,
        request: impl FnOnce(ReplyTo<R>) -> S::Call,
        timeout: Duration,
        meta: Meta,
    ) -> Result<R, CallError> {
        let worker = worker_index(key, self.workers.len());
        let Some(router) = &self.router else {
            return self.workers[worker].call_with(request, timeout, meta).await;
        };
        // Routed: timed and counted as a call of the worker's role, as a direct one is.
        let started = Instant::now();
        let (meta, deadline) = call_meta(meta, started, timeout);
        let (reply, rx) = ReplyTo::pair();
        let routed = Routed {
            worker,
            envelope: Envelope::Call(request(reply)),
            meta: meta.clone(),
        };
        let sent = tokio::time::timeout_at(deadline, router.cast_with(routed, meta)).await;
        let result = match sent {
            Err(_) => Err(CallError::Timeout),
            Ok(Err(CastError::Rejected)) => Err(CallError::Rejected),
            Ok(Err(CastError::Timeout)) => Err(CallError::Timeout),
            Ok(Err(_)) => Err(CallError::Stopped),
            Ok(Ok(())) => match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(CallError::Stopped),
                Err(_) => Err(CallError::Timeout),
            },
        };
        self.workers[worker].record_call(started, result.as_ref().err().copied());
        result
    }

    /// Casts to the worker of `key`, through the router when routed.
    ///
    /// # Errors
    ///
    /// As [`ServerRef::cast`].
    ///
    /// # Cancel safety
    ///
    /// As [`ServerRef::cast`].
    pub async fn cast<K: Hash + ?Sized>(&self, key: &K, message: S::Cast) -> Result<(), CastError> {
        self.cast_with(key, message, Meta::default()).await
    }

    /// [`cast`](Self::cast) with a coalescing key and/or deadline.
    ///
    /// # Errors
    ///
    /// As [`ServerRef::cast`].
    ///
    /// # Cancel safety
    ///
    /// As [`ServerRef::cast`].
    pub async fn cast_with<K: Hash + ?Sized>(
        &self,
        key: &K,
        message: S::Cast,
        meta: Meta,
    ) -> Result<(), CastError> {
        let worker = worker_index(key, self.workers.len());
        match &self.router {
            None => self.workers[worker].cast_with(message, meta).await,
            Some(router) => {
                let routed = Routed {
                    worker,
                    envelope: Envelope::Cast(message),
                    meta: meta.clone(),
                };
                router.cast_with(routed, meta).await
            }
        }
    }

    /// Stops the router (draining it first) and then every worker.
    ///
    /// # Cancel safety
    ///
    /// Each server's stop is sent when the future first reaches it (the router's
    /// first, then every worker's at once): dropping the future part-way leaves
    /// the servers not yet asked running, and those asked stopping.
    pub async fn stop(&self, drain: bool) {
        if let Some(router) = &self.router {
            router.stop(drain).await;
        }
        futures_util::future::join_all(self.workers.iter().map(|w| w.stop(drain))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::worker_index;

    #[test]
    fn worker_index_is_stable_fnv1a_of_the_key() {
        // Known answers computed outside Rust (FNV-1a 64 over the str's Hash bytes:
        // UTF-8 then 0xff): a change to the hash would move lists between workers.
        assert_eq!(worker_index("groceries", 3), 1);
        assert_eq!(worker_index("chores", 3), 2);
        assert_eq!(worker_index("work", 3), 1);
        assert_eq!(worker_index("groceries", 7), 6);
        assert_eq!(worker_index("chores", 7), 0);
        assert_eq!(worker_index("work", 7), 4);
    }
}
