//! The storage the harness runs on: the backend a policy file names, optionally
//! slowed down ([`FaultyStorage`] latency), and counted ([`Counting`]) so the
//! harness can tell when the database is idle. Both wrappers forward every method
//! of the port, so a backend's one-transaction writes stay one transaction.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::Config;
use crate::domain::port::{Queued, QueuedWrites};
use crate::domain::{ListName, TodoList};
use crate::start::{backend_kind, open_storage};
use crate::storage::{
    BackendKind, FaultConfig, FaultyStorage, ListWrite, PostgresOptions, PostgresStorage, Storage,
    StorageError,
};

/// The PostgreSQL schema of the run whose data dir is `dir`: each run starts on
/// empty tables in the database at `storage.url`, and a run's child process
/// (`crash`) finds the same schema from the same dir.
fn run_schema(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    format!("sluicegate_run_{:016x}", h.finish())
}

async fn open_run_postgres(config: &Config, dir: &Path) -> Result<PostgresStorage, StorageError> {
    let url = config.storage.url.as_deref().unwrap_or_default();
    let options = PostgresOptions {
        schema: run_schema(dir),
        timeout: config.system.call_timeout,
        ..PostgresOptions::default()
    };
    PostgresStorage::open(url, options).await
}

/// Opens the backend `config` names for the run in `dir` (PostgreSQL: in the
/// run's own schema, see [`discard_backend`]).
pub(super) async fn open_backend(
    config: &Config,
    dir: &Path,
) -> Result<Arc<dyn Storage>, StorageError> {
    match backend_kind(config) {
        BackendKind::Postgres => Ok(Arc::new(open_run_postgres(config, dir).await?)),
        _ => open_storage(config, dir).await,
    }
}

/// Drops what the run in `dir` left in PostgreSQL (nothing to do for local
/// backends, whose data dir is a temporary directory).
pub(super) async fn discard_backend(config: &Config, dir: &Path) {
    if backend_kind(config) != BackendKind::Postgres {
        return;
    }
    match open_run_postgres(config, dir).await {
        Ok(pg) => {
            if let Err(e) = pg.drop_schema().await {
                tracing::warn!(error = %e, "could not drop the run's postgres schema");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not drop the run's postgres schema"),
    }
}

/// The backend `config` names, opened in `dir`, each store delayed by about
/// `latency` (with half of it as jitter) when it is above zero.
pub(super) async fn open_with_latency(
    config: &Config,
    dir: &Path,
    latency: Duration,
) -> Result<Arc<dyn Storage>, StorageError> {
    let inner = open_backend(config, dir).await?;
    if latency.is_zero() {
        return Ok(inner);
    }
    let (faulty, _handle) = FaultyStorage::new(
        Shared(inner),
        FaultConfig {
            latency,
            jitter: latency / 2,
            ..FaultConfig::default()
        },
        7,
    );
    Ok(Arc::new(faulty))
}

/// Lets an `Arc<dyn Storage>` be wrapped by [`FaultyStorage`]: every method of
/// the port is forwarded, so the backend's own `store_many` and `store_batch`
/// (one transaction, one sync) are the ones that run.
struct Shared(Arc<dyn Storage>);

#[async_trait]
impl Storage for Shared {
    async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError> {
        self.0.load(name).await
    }
    async fn store(&self, name: &ListName, list: &TodoList) -> Result<(), StorageError> {
        self.0.store(name, list).await
    }
    async fn store_many(&self, lists: &[(ListName, TodoList)]) -> Result<(), StorageError> {
        self.0.store_many(lists).await
    }
    async fn store_batch(&self, writes: &[ListWrite]) -> Vec<Result<(), StorageError>> {
        self.0.store_batch(writes).await
    }
    async fn delete_list(&self, name: &ListName) -> Result<bool, StorageError> {
        self.0.delete_list(name).await
    }
    async fn list_names(&self) -> Result<Vec<ListName>, StorageError> {
        self.0.list_names().await
    }
    async fn purge_receipts(&self, before_ms: i64) -> Result<u64, StorageError> {
        self.0.purge_receipts(before_ms).await
    }
    fn queue_batch(&self, batch: QueuedWrites) -> Result<Queued, QueuedWrites> {
        self.0.queue_batch(batch)
    }
    fn surely_absent(&self, name: &ListName) -> bool {
        self.0.surely_absent(name)
    }
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
}

/// Counts writes handed to a backend and finished, so the harness can tell when
/// the database is idle without reloading lists while it works.
pub(super) struct Counting {
    inner: Arc<dyn Storage>,
    started: AtomicU64,
    finished: Arc<AtomicU64>,
}

impl Counting {
    pub(super) fn wrap(inner: Arc<dyn Storage>) -> Arc<Self> {
        Arc::new(Counting {
            inner,
            started: AtomicU64::new(0),
            finished: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Writes handed to the backend and not finished yet.
    pub(super) fn in_flight(&self) -> u64 {
        let finished = self.finished.load(Ordering::SeqCst);
        self.started.load(Ordering::SeqCst).saturating_sub(finished)
    }
}

#[async_trait]
impl Storage for Counting {
    async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError> {
        self.inner.load(name).await
    }
    async fn store(&self, name: &ListName, list: &TodoList) -> Result<(), StorageError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let r = self.inner.store(name, list).await;
        self.finished.fetch_add(1, Ordering::SeqCst);
        r
    }
    async fn store_many(&self, lists: &[(ListName, TodoList)]) -> Result<(), StorageError> {
        let n = lists.len() as u64;
        self.started.fetch_add(n, Ordering::SeqCst);
        let r = self.inner.store_many(lists).await;
        self.finished.fetch_add(n, Ordering::SeqCst);
        r
    }
    async fn store_batch(&self, writes: &[ListWrite]) -> Vec<Result<(), StorageError>> {
        let n = writes.len() as u64;
        self.started.fetch_add(n, Ordering::SeqCst);
        let r = self.inner.store_batch(writes).await;
        self.finished.fetch_add(n, Ordering::SeqCst);
        r
    }
    async fn delete_list(&self, name: &ListName) -> Result<bool, StorageError> {
        self.inner.delete_list(name).await
    }
    async fn list_names(&self) -> Result<Vec<ListName>, StorageError> {
        self.inner.list_names().await
    }
    async fn purge_receipts(&self, before_ms: i64) -> Result<u64, StorageError> {
        self.inner.purge_receipts(before_ms).await
    }
    /// Counted finished when the outcome arrives (relayed by a task per batch).
    fn queue_batch(&self, batch: QueuedWrites) -> Result<Queued, QueuedWrites> {
        let n = batch.writes.len() as u64;
        self.started.fetch_add(n, Ordering::SeqCst);
        match self.inner.queue_batch(batch) {
            Ok(outcome) => {
                let (tx, relayed) = tokio::sync::oneshot::channel();
                let finished = self.finished.clone();
                tokio::spawn(async move {
                    let results = outcome.await;
                    finished.fetch_add(n, Ordering::SeqCst);
                    if let Ok(results) = results {
                        let _ = tx.send(results);
                    }
                });
                Ok(relayed)
            }
            Err(batch) => {
                self.started.fetch_sub(n, Ordering::SeqCst);
                Err(batch)
            }
        }
    }
    fn surely_absent(&self, name: &ListName) -> bool {
        self.inner.surely_absent(name)
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::storage::MemoryStorage;

    /// A backend that records which method of the port was called.
    #[derive(Default)]
    struct Calls {
        inner: MemoryStorage,
        seen: Mutex<Vec<&'static str>>,
    }

    impl Calls {
        fn saw(&self, what: &'static str) {
            self.seen.lock().unwrap().push(what);
        }
    }

    #[async_trait]
    impl Storage for Calls {
        async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError> {
            self.saw("load");
            self.inner.load(name).await
        }
        async fn store(&self, name: &ListName, list: &TodoList) -> Result<(), StorageError> {
            self.saw("store");
            self.inner.store(name, list).await
        }
        async fn store_many(&self, lists: &[(ListName, TodoList)]) -> Result<(), StorageError> {
            self.saw("store_many");
            self.inner.store_many(lists).await
        }
        async fn store_batch(&self, writes: &[ListWrite]) -> Vec<Result<(), StorageError>> {
            self.saw("store_batch");
            self.inner.store_batch(writes).await
        }
        async fn delete_list(&self, name: &ListName) -> Result<bool, StorageError> {
            self.saw("delete_list");
            self.inner.delete_list(name).await
        }
        async fn list_names(&self) -> Result<Vec<ListName>, StorageError> {
            self.saw("list_names");
            self.inner.list_names().await
        }
        fn queue_batch(&self, batch: QueuedWrites) -> Result<Queued, QueuedWrites> {
            self.saw("queue_batch");
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = tx.send(batch.writes.iter().map(|_| Ok(())).collect());
            Ok(rx)
        }
        fn surely_absent(&self, _name: &ListName) -> bool {
            self.saw("surely_absent");
            false
        }
        fn kind(&self) -> &'static str {
            "calls"
        }
    }

    /// Each method of the port once, through `storage`.
    async fn every_method(storage: &dyn Storage) {
        let name = ListName::new("l").unwrap();
        let list = TodoList::default();
        storage.store(&name, &list).await.unwrap();
        storage
            .store_many(&[(name.clone(), list.clone())])
            .await
            .unwrap();
        let write = ListWrite {
            name: name.clone(),
            list,
            change: None,
        };
        assert!(storage.store_batch(std::slice::from_ref(&write)).await[0].is_ok());
        let queued = storage.queue_batch(QueuedWrites {
            writes: vec![write],
            on_commit: None,
        });
        assert!(queued.ok().unwrap().await.unwrap()[0].is_ok());
        assert!(!storage.surely_absent(&name));
        storage.load(&name).await.unwrap();
        storage.list_names().await.unwrap();
        storage.delete_list(&name).await.unwrap();
        assert_eq!(storage.kind(), "calls");
    }

    const EVERY_METHOD: [&str; 8] = [
        "store",
        "store_many",
        "store_batch",
        "queue_batch",
        "surely_absent",
        "load",
        "list_names",
        "delete_list",
    ];

    #[tokio::test]
    async fn the_adapters_forward_every_method_to_the_backend_s_own() {
        let calls = Arc::new(Calls::default());
        every_method(&Shared(calls.clone())).await;
        assert_eq!(*calls.seen.lock().unwrap(), EVERY_METHOD);

        let calls = Arc::new(Calls::default());
        let counting = Counting::wrap(calls.clone());
        every_method(counting.as_ref()).await;
        assert_eq!(*calls.seen.lock().unwrap(), EVERY_METHOD);
        assert_eq!(counting.in_flight(), 0);
        assert_eq!(
            counting.started.load(Ordering::SeqCst),
            4,
            "four lists stored"
        );
    }
}
