//! Storage backends implementing the to-do domain's port ([`Storage`]): SQLite
//! (the default), PostgreSQL, the book's one file per list, memory, and a
//! fault-injecting wrapper.

mod fault;
mod files;
mod memory;
mod postgres;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use fault::{FaultConfig, FaultHandle, FaultyStorage};
pub use files::FileStorage;
pub use memory::MemoryStorage;
pub use postgres::{PostgresOptions, PostgresStorage};
pub use sqlite::{CommitWindow, SqliteStorage, WriterStats};

pub use crate::domain::format::FORMAT;
pub(crate) use crate::domain::format::{decode, encode};
pub use crate::domain::port::{Change, ListWrite, Storage, StorageError};

/// The backends a config can choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// One crash-safe JSON file per list.
    Files,
    /// One SQLite database (WAL, synchronous = FULL), entries as rows; the default.
    Sqlite,
    /// In memory only; lost at exit.
    Memory,
    /// A PostgreSQL database at `storage.url`, entries as rows; opened with
    /// [`open_postgres`] (it needs the URL and is async).
    Postgres,
}

/// Key in SQLite's `meta` table set once a data dir's `files` lists are imported.
const FILES_IMPORTED: &str = "files_imported";

/// Imports, once, the lists a `files` backend left in `data_dir/lists/` into the
/// SQLite database open on `conn`, in one transaction. A list SQLite already holds
/// is kept as it is (it was written later, through SQLite). The files stay where
/// they are (nothing is deleted), so `backend = "files"` still reads them. A file
/// that cannot be read back stops the import with an error naming it, and the
/// import runs again at the next open: nothing stored is skipped silently.
/// Returns how many lists were imported.
pub fn import_files(
    data_dir: &Path,
    conn: &mut rusqlite::Connection,
) -> Result<usize, StorageError> {
    let sql = |e: rusqlite::Error| StorageError::Sqlite {
        list: None,
        detail: e.to_string(),
    };
    let done: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [FILES_IMPORTED],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(sql(e)),
        })?;
    if done.is_some() {
        return Ok(0);
    }
    let Some(lists) = files::read_all(data_dir)? else {
        return Ok(0);
    };
    let mut fresh = Vec::new();
    for (name, list) in lists {
        if !sqlite::has_list(conn, &name)? {
            fresh.push((name, list));
        }
    }
    sqlite::store_whole(conn, &fresh)?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
        rusqlite::params![FILES_IMPORTED, format!("{} lists", fresh.len())],
    )
    .map_err(sql)?;
    if !fresh.is_empty() {
        tracing::info!(
            lists = fresh.len(),
            dir = %data_dir.display(),
            "imported the lists of the files backend into sqlite"
        );
    }
    Ok(fresh.len())
}

/// Opens a backend in `data_dir` (created if missing).
pub fn open(kind: BackendKind, data_dir: &Path) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(match kind {
        BackendKind::Files => Arc::new(FileStorage::open(data_dir)?),
        BackendKind::Sqlite => Arc::new(SqliteStorage::open(data_dir)?),
        BackendKind::Memory => Arc::new(MemoryStorage::new()),
        BackendKind::Postgres => {
            return Err(StorageError::Io {
                list: None,
                source: std::io::Error::other(
                    "backend \"postgres\" has no data dir to open: it needs storage.url \
                     (open it with storage::open_postgres)",
                ),
            })
        }
    })
}

/// Opens the PostgreSQL backend at `url` in the schema `sluicegate` for a system
/// whose calls time out after `call_timeout` and which runs `workers` database
/// workers: every operation is bounded by half the call timeout, so a database
/// that does not answer fails the store or load with a storage error before the
/// caller's own timeout.
pub async fn open_postgres(
    url: &str,
    call_timeout: std::time::Duration,
    workers: usize,
) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(open_postgres_store(url, call_timeout, workers).await?)
}

/// [`open_postgres`], keeping the concrete type (a cluster node also uses it as its
/// [`crate::cluster::ClusterStore`]).
pub async fn open_postgres_store(
    url: &str,
    call_timeout: std::time::Duration,
    workers: usize,
) -> Result<Arc<PostgresStorage>, StorageError> {
    let defaults = PostgresOptions::default();
    let timeout = (call_timeout / 2).max(std::time::Duration::from_millis(100));
    let options = PostgresOptions {
        timeout,
        connect_timeout: defaults.connect_timeout.min(timeout),
        max_connections: (workers + 4).max(defaults.max_connections),
        ..defaults
    };
    Ok(Arc::new(PostgresStorage::open(url, options).await?))
}
