//! The storage port of the to-do domain: what the database workers need from a
//! durable store (`Storage`), in the domain's own types. `crate::storage` implements it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::receipt::{IdempotencyKey, Receipt};
use super::{Entry, ListName, TodoList};

/// What changed in a list since the version a store builds on: each touched
/// entry as it is now (`Some`), or `None` where it was deleted, and likewise each
/// receipt of a keyed write recorded (`Some`) or expired (`None`). A backend
/// writes both in one transaction, so a write and its receipt are stored together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Touched entries by id.
    pub entries: BTreeMap<u64, Option<Entry>>,
    /// Touched receipts by key.
    pub receipts: BTreeMap<IdempotencyKey, Option<Receipt>>,
}

impl Change {
    /// Records the entry `id` as it is in `list` now (gone: deleted).
    pub fn touch(&mut self, list: &TodoList, id: u64) {
        self.entries.insert(id, list.get(id).cloned());
    }

    /// Records the receipt of `key` as it is in `list` now (gone: expired).
    pub fn touch_receipt(&mut self, list: &TodoList, key: &IdempotencyKey) {
        self.receipts
            .insert(key.clone(), list.receipt(key).cloned());
    }

    /// Folds a later change on top of this one (the later value of an entry or a
    /// receipt wins).
    pub fn then(&mut self, later: Change) {
        self.entries.extend(later.entries);
        self.receipts.extend(later.receipts);
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.receipts.is_empty()
    }
}

/// One list to write in a batch: its new version, and optionally how it differs
/// from the version the backend holds, so a backend that stores entries as rows
/// writes only those (one that stores whole lists ignores it).
#[derive(Clone, Debug)]
pub struct ListWrite {
    /// Which list.
    pub name: ListName,
    /// The whole list after the write (an O(1) snapshot).
    pub list: TodoList,
    /// The change relative to what the backend holds now; `None`: unknown, write it whole.
    pub change: Option<Change>,
}

impl ListWrite {
    /// A write of the whole list (no change known).
    pub fn whole(name: &ListName, list: &TodoList) -> Self {
        ListWrite {
            name: name.clone(),
            list: list.clone(),
            change: None,
        }
    }
}

/// Each write's outcome in a batch, in order, shared (one backend error goes to
/// every caller waiting on that write and to the database worker).
pub type BatchResults = Vec<Result<(), Arc<StorageError>>>;

/// Run by a queueing backend with a batch's outcomes as soon as it committed (or
/// failed), on the backend's own writer: it answers the callers that wait for
/// durability without a hop back through the database worker.
pub type OnCommit = Box<dyn FnOnce(&BatchResults) + Send>;

/// A batch of writes for [`Storage::queue_batch`].
pub struct QueuedWrites {
    /// The writes, one per list.
    pub writes: Vec<ListWrite>,
    /// Callers wait for this batch to be durable: run once it committed. `None`:
    /// nobody waits, so the backend may hold the batch in its commit window to
    /// commit it with later ones.
    pub on_commit: Option<OnCommit>,
}

/// Where a queued batch's outcomes arrive (once, after `on_commit` ran).
pub type Queued = oneshot::Receiver<BatchResults>;

/// Where lists live: the port the to-do domain's database workers write through.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Loads one list; `Ok(None)` when it was never stored.
    async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError>;
    /// Stores one list durably: `Ok` means it is on stable storage.
    async fn store(&self, name: &ListName, list: &TodoList) -> Result<(), StorageError>;
    /// Stores several lists; backends that can do it in one transaction do.
    /// The default stores them one by one and stops at the first error.
    async fn store_many(&self, lists: &[(ListName, TodoList)]) -> Result<(), StorageError> {
        for (name, list) in lists {
            self.store(name, list).await?;
        }
        Ok(())
    }
    /// Group commit: makes every write of the batch durable, one result per write
    /// in order (`Ok`: that list is on stable storage). Backends that can commit
    /// many lists with one sync do; the default stores them one by one.
    async fn store_batch(&self, writes: &[ListWrite]) -> Vec<Result<(), StorageError>> {
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            out.push(self.store(&w.name, &w.list).await);
        }
        out
    }
    /// Queues a batch behind every batch queued before and returns at once, without
    /// waiting for the commit: writes are committed in the order they were queued,
    /// and a write whose change builds on an earlier queued write of the same list
    /// that failed is written whole, so a database worker may queue a list's next
    /// store before the previous one settled. `Err` hands the batch back untouched
    /// when the backend does not queue (the default); the caller then stores it with
    /// [`Storage::store_batch`].
    ///
    /// # Errors
    ///
    /// The batch itself, when this backend does not queue.
    fn queue_batch(&self, batch: QueuedWrites) -> Result<Queued, QueuedWrites> {
        Err(batch)
    }
    /// Whether `name` is certainly not stored (it was never written), so loading it
    /// may be skipped: answers `true` only from what the backend knows for sure in
    /// memory; `false` when unsure (the default).
    fn surely_absent(&self, name: &ListName) -> bool {
        let _ = name;
        false
    }
    /// Deletes a list durably: `Ok(true)` once it is gone from stable storage,
    /// `Ok(false)` when none was stored under this name.
    async fn delete_list(&self, name: &ListName) -> Result<bool, StorageError>;
    /// Every stored list's name.
    async fn list_names(&self) -> Result<Vec<ListName>, StorageError>;
    /// Deletes the receipts of keyed writes applied before `before_ms`
    /// (milliseconds since the Unix epoch) from every list; returns how many.
    /// The default deletes none: a backend that stores receipts inside each list's
    /// document (files, memory) drops expired ones when the list is next written,
    /// as the list server expires them then. A wrapper forwards to what it wraps.
    async fn purge_receipts(&self, before_ms: i64) -> Result<u64, StorageError> {
        let _ = before_ms;
        Ok(0)
    }
    /// Short backend name for logs ("files", "sqlite", "postgres", "memory").
    fn kind(&self) -> &'static str;
}

/// Why storage failed; the message names the list where there is one.
#[derive(Debug)]
pub enum StorageError {
    /// An I/O error.
    Io {
        /// The list concerned, if any.
        list: Option<ListName>,
        /// The OS error.
        source: std::io::Error,
    },
    /// The stored list cannot be read back (damaged, wrong format, wrong name).
    Corrupt {
        /// The list concerned.
        list: ListName,
        /// What is wrong.
        detail: String,
    },
    /// The disk is full.
    OutOfSpace {
        /// The list that could not be written.
        list: ListName,
    },
    /// A fault injected by a fault-injecting backend.
    Injected {
        /// The list concerned.
        list: ListName,
        /// Which fault.
        what: String,
    },
    /// An SQLite error.
    Sqlite {
        /// The list concerned, if any.
        list: Option<ListName>,
        /// SQLite's message.
        detail: String,
    },
    /// A PostgreSQL error: the database refused a statement, cannot be reached,
    /// or did not answer in time.
    Postgres {
        /// The list concerned, if any.
        list: Option<ListName>,
        /// The driver's, the pool's or the timeout's error.
        source: std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The store refused the write because the list is no longer this process's
    /// to write: another owner has taken it over (a cluster's fence), or this node
    /// does not hold the list's shard. Trying again here cannot succeed; the request
    /// must go to the list's current owner.
    Fenced {
        /// The list concerned.
        list: ListName,
        /// Who holds it now, or why this process may not write it.
        detail: String,
    },
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::Io {
                list: Some(l),
                source,
            } => write!(f, "storage I/O error for list \"{l}\": {source}"),
            StorageError::Io { list: None, source } => write!(f, "storage I/O error: {source}"),
            StorageError::Corrupt { list, detail } => {
                write!(f, "stored list \"{list}\" is damaged: {detail}")
            }
            StorageError::OutOfSpace { list } => {
                write!(
                    f,
                    "no space left on the storage device to write list \"{list}\""
                )
            }
            StorageError::Injected { list, what } => {
                write!(f, "injected storage fault for list \"{list}\": {what}")
            }
            StorageError::Sqlite {
                list: Some(l),
                detail,
            } => write!(f, "sqlite error for list \"{l}\": {detail}"),
            StorageError::Sqlite { list: None, detail } => write!(f, "sqlite error: {detail}"),
            StorageError::Postgres {
                list: Some(l),
                source,
            } => write!(
                f,
                "postgres storage error for list \"{l}\": {}",
                with_causes(source.as_ref())
            ),
            StorageError::Postgres { list: None, source } => {
                write!(
                    f,
                    "postgres storage error: {}",
                    with_causes(source.as_ref())
                )
            }
            StorageError::Fenced { list, detail } => write!(
                f,
                "fenced: list \"{list}\" is not this node's to write ({detail}); retry, the request will reach its owner"
            ),
        }
    }
}

/// An error's message followed by its causes' (drivers and HTTP clients often keep
/// the telling part, such as "Connection refused", in a cause), each cause whose text
/// is not already there joined by `: `. The crate's one such helper: storage errors,
/// the cluster's forward and the load generator use it.
pub(crate) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            StorageError::Postgres { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl StorageError {
    /// Whether trying again may succeed (I/O hiccups, full disk, injected faults),
    /// as opposed to damaged data.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            StorageError::Corrupt { .. } | StorageError::Fenced { .. }
        )
    }

    /// Whether the write was refused because another owner holds the list
    /// ([`StorageError::Fenced`]).
    pub fn is_fenced(&self) -> bool {
        matches!(self, StorageError::Fenced { .. })
    }

    /// An I/O error for `list`, told apart as [`StorageError::OutOfSpace`] when the
    /// device is full.
    pub fn io(list: Option<&ListName>, source: std::io::Error) -> Self {
        match (list, source.raw_os_error()) {
            // ENOSPC / EDQUOT
            (Some(l), Some(28 | 122)) => StorageError::OutOfSpace { list: l.clone() },
            _ => StorageError::Io {
                list: list.cloned(),
                source,
            },
        }
    }
}
