//! The database: a keyed pool of worker servers (a list always goes to the same
//! worker) that load and store whole lists through a storage backend.

use std::collections::HashMap;
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
    /// The newest version of each list whose store failed. Loads are answered
    /// from here, and it is stored again on later activity and at stop, so a list
    /// server that idles out or crashes while storage fails loses no applied write
    /// (as long as the process lives).
    unsaved: HashMap<ListName, TodoList>,
    /// When the unsaved lists were last tried again.
    last_retry: Option<tokio::time::Instant>,
}

/// Least time between two retries of unsaved lists.
const RETRY_EVERY: Duration = Duration::from_secs(1);

impl DbWorker {
    fn new(storage: Arc<dyn Storage>) -> Self {
        DbWorker {
            storage,
            unsaved: HashMap::new(),
            last_retry: None,
        }
    }

    fn mark_unsaved(&mut self, name: ListName, list: TodoList) {
        if self.unsaved.insert(name, list).is_none() {
            metrics::gauge!(UNSAVED_LISTS).increment(1.0);
        }
    }

    fn mark_saved(&mut self, name: &ListName) {
        if self.unsaved.remove(name).is_some() {
            metrics::gauge!(UNSAVED_LISTS).decrement(1.0);
        }
    }

    /// Stores again every unsaved list (at most once per [`RETRY_EVERY`] unless `now`).
    async fn retry_unsaved(&mut self, now: bool) {
        if self.unsaved.is_empty()
            || (!now && self.last_retry.is_some_and(|t| t.elapsed() < RETRY_EVERY))
        {
            return;
        }
        self.last_retry = Some(tokio::time::Instant::now());
        let names: Vec<ListName> = self.unsaved.keys().cloned().collect();
        for name in names {
            let Some(list) = self.unsaved.get(&name) else {
                continue;
            };
            match self.storage.store(&name, list).await {
                Ok(()) => {
                    self.mark_saved(&name);
                    tracing::info!(list = %name, "unsaved list stored");
                }
                Err(e) => tracing::warn!(list = %name, error = %e, "unsaved list still not stored"),
            }
        }
    }
}

#[async_trait]
impl Server for DbWorker {
    type Call = DbCall;
    type Reply = Result<Option<TodoList>, Arc<StorageError>>;
    type Cast = Store;

    async fn handle_call(&mut self, request: DbCall, reply: ReplyTo<Self::Reply>) {
        match request {
            DbCall::Load(name) => {
                self.retry_unsaved(false).await;
                // A version that could not be stored is newer than the stored one.
                if let Some(list) = self.unsaved.get(&name) {
                    return reply.send(Ok(Some(list.clone())));
                }
                reply.send(self.storage.load(&name).await.map_err(Arc::new))
            }
        }
    }

    async fn handle_cast(&mut self, store: Store) {
        let result = self.storage.store(&store.name, &store.list).await;
        let answer = match result {
            Ok(()) => {
                self.mark_saved(&store.name);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(list = %store.name, error = %e, "store failed");
                metrics::counter!(STORE_ERRORS).increment(1);
                self.mark_unsaved(store.name.clone(), store.list);
                Err(StoreError::Storage(e.to_string()))
            }
        };
        metrics::counter!(STORES).increment(1);
        for w in store.waiters {
            let _ = w.send(answer.clone());
        }
        self.retry_unsaved(false).await;
    }

    async fn terminate(&mut self, _reason: &crate::runtime::ExitReason) {
        self.retry_unsaved(true).await;
        for name in self.unsaved.keys() {
            tracing::error!(list = %name, "list could not be stored before stopping; its latest writes are lost");
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
/// Lists held in the database workers' memory because their store failed
/// (0 when storage is healthy).
pub const UNSAVED_LISTS: &str = "sluicegate_db_unsaved_lists";

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
            move |_| DbWorker::new(s.clone()),
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
