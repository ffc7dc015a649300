//! The database: a keyed pool of worker servers (a list always goes to the same
//! worker) that load and store whole lists through a storage backend.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::{ListName, TodoList};
use crate::mailbox::{Eviction, Key, Meta, Policy};
use crate::runtime::{
    CallError, CastError, Envelope, KeyedPool, PoolSpec, ReplyTo, Routing, Server, StartError,
    Supervisor,
};
use crate::storage::{Storage, StorageError};

/// Role of the database workers (metric label).
pub const WORKER_ROLE: &str = "database_worker";
/// Role of the database router (metric label).
pub const ROUTER_ROLE: &str = "database";

/// Why a store did not become durable; cheap to clone to every waiter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The backend failed (its message names the list).
    Storage(String),
    /// The store was dropped, shed or expired from the worker's mailbox.
    Dropped,
    /// The worker's mailbox refused it.
    Rejected,
    /// The database is stopped.
    Stopped,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Storage(e) => write!(f, "storage failed: {e}"),
            StoreError::Dropped => f.write_str("store dropped by an overloaded database worker"),
            StoreError::Rejected => f.write_str("database worker mailbox full: store rejected"),
            StoreError::Stopped => f.write_str("database stopped"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Answered once a store is durable (or failed).
pub type DurableWaiter = oneshot::Sender<Result<(), StoreError>>;

/// A database request that expects an answer.
pub enum DbCall {
    /// Load one list.
    Load(ListName),
}

/// A write of a whole list. Under `coalesce` a queued store of the same list is
/// replaced by a newer one, whose waiters then include the replaced one's.
pub struct Store {
    /// Which list.
    pub name: ListName,
    /// The whole list as it is after the write.
    pub list: TodoList,
    /// Callers waiting for durability (ack `durable`).
    pub waiters: Vec<DurableWaiter>,
}

/// One database worker.
pub struct DbWorker {
    storage: Arc<dyn Storage>,
}

#[async_trait]
impl Server for DbWorker {
    type Call = DbCall;
    type Reply = Result<Option<TodoList>, Arc<StorageError>>;
    type Cast = Store;

    async fn handle_call(&mut self, request: DbCall, reply: ReplyTo<Self::Reply>) {
        match request {
            DbCall::Load(name) => reply.send(self.storage.load(&name).await.map_err(Arc::new)),
        }
    }

    async fn handle_cast(&mut self, store: Store) {
        let result = self.storage.store(&store.name, &store.list).await;
        let answer = match result {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(list = %store.name, error = %e, "store failed");
                metrics::counter!(STORE_ERRORS).increment(1);
                Err(StoreError::Storage(e.to_string()))
            }
        };
        metrics::counter!(STORES).increment(1);
        for w in store.waiters {
            let _ = w.send(answer.clone());
        }
    }

    fn coalesce(old: Envelope<Self>, new: &mut Envelope<Self>) {
        match (old, new) {
            (Envelope::Cast(old), Envelope::Cast(new)) => new.waiters.extend(old.waiters),
            (Envelope::Call(_, reply), _) => reply.fail(CallError::Dropped),
            (Envelope::Cast(old), Envelope::Call(..)) => fail_waiters(old, StoreError::Dropped),
        }
    }

    fn evicted_cast(store: Store, _why: Eviction) {
        fail_waiters(store, StoreError::Dropped);
    }
}

fn fail_waiters(store: Store, err: StoreError) {
    for w in store.waiters {
        let _ = w.send(Err(err.clone()));
    }
}

/// Stores completed (ok or not).
pub const STORES: &str = "sluicegate_db_stores_total";
/// Stores that failed in the backend.
pub const STORE_ERRORS: &str = "sluicegate_db_store_errors_total";

/// The database: a keyed pool of [`DbWorker`]s in front of one storage backend.
#[derive(Clone)]
pub struct Database {
    pool: KeyedPool<DbWorker>,
    storage: Arc<dyn Storage>,
}

impl Database {
    /// Starts `workers` workers under `supervisor`, routed or direct.
    pub async fn start(
        storage: Arc<dyn Storage>,
        workers: usize,
        routing: Routing,
        worker_policy: Policy,
        router_policy: Policy,
        supervisor: &Supervisor,
    ) -> Result<Self, StartError> {
        let s = storage.clone();
        let pool = KeyedPool::start(
            PoolSpec {
                worker_role: WORKER_ROLE,
                router_role: ROUTER_ROLE,
                workers,
                routing,
                worker_policy,
                router_policy,
            },
            supervisor,
            move |_| DbWorker { storage: s.clone() },
        )
        .await?;
        Ok(Database { pool, storage })
    }

    /// Loads a list (behind any store of it already queued on its worker).
    pub async fn load(
        &self,
        name: &ListName,
        timeout: Duration,
    ) -> Result<Option<TodoList>, LoadError> {
        match self
            .pool
            .call(name, DbCall::Load(name.clone()), timeout, None)
            .await
        {
            Ok(Ok(list)) => Ok(list),
            Ok(Err(e)) => Err(LoadError::Storage(e)),
            Err(e) => Err(LoadError::Call(e)),
        }
    }

    /// Queues a store of a whole list on its worker, keyed by the list name so a
    /// `coalesce` mailbox keeps only the newest version. Waits only if the worker's
    /// policy makes senders wait.
    pub async fn store(&self, store: Store) -> Result<(), StoreError> {
        let key = Key::from(store.name.as_str());
        let name = store.name.clone();
        self.pool
            .cast(&name, store, Meta::keyed(key))
            .await
            .map_err(|e| match e {
                CastError::Rejected | CastError::Timeout => StoreError::Rejected,
                CastError::Stopped => StoreError::Stopped,
            })
    }

    /// The pool (for stats, policy changes and benchmarks).
    pub fn pool(&self) -> &KeyedPool<DbWorker> {
        &self.pool
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Stops the router and workers, first writing everything queued.
    pub async fn stop(&self) {
        self.pool.stop(true).await;
    }
}

/// Why a list could not be loaded.
#[derive(Clone, Debug)]
pub enum LoadError {
    /// The backend failed or the stored list is damaged.
    Storage(Arc<StorageError>),
    /// The database did not answer.
    Call(CallError),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Storage(e) => e.fmt(f),
            LoadError::Call(e) => write!(f, "database did not answer the load: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}
