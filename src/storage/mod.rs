//! Storage backends for whole lists, behind one trait: crash-safe files (the
//! default), SQLite, memory, and a fault-injecting wrapper for tests and experiments.

mod fault;
mod files;
mod memory;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use fault::{FaultConfig, FaultHandle, FaultyStorage};
pub use files::FileStorage;
pub use memory::MemoryStorage;
pub use sqlite::SqliteStorage;

use crate::todo::{ListName, TodoList};

/// Format version written with every stored list.
pub const FORMAT: u32 = 1;

/// Where lists live.
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
    /// Every stored list's name.
    async fn list_names(&self) -> Result<Vec<ListName>, StorageError>;
    /// Short backend name for logs ("files", "sqlite", "memory").
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
    /// A fault injected by [`FaultyStorage`].
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
        }
    }
}

impl std::error::Error for StorageError {}

impl StorageError {
    /// Whether trying again may succeed (I/O hiccups, full disk, injected faults),
    /// as opposed to damaged data.
    pub fn is_transient(&self) -> bool {
        !matches!(self, StorageError::Corrupt { .. })
    }

    pub(crate) fn io(list: Option<&ListName>, source: std::io::Error) -> Self {
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

/// The backends a config can choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// One crash-safe JSON file per list.
    Files,
    /// One SQLite database (WAL), one row per list.
    Sqlite,
    /// In memory only; lost at exit.
    Memory,
}

/// Opens a backend in `data_dir` (created if missing).
pub fn open(kind: BackendKind, data_dir: &Path) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(match kind {
        BackendKind::Files => Arc::new(FileStorage::open(data_dir)?),
        BackendKind::Sqlite => Arc::new(SqliteStorage::open(data_dir)?),
        BackendKind::Memory => Arc::new(MemoryStorage::new()),
    })
}

/// The JSON document stored for a list (files and sqlite).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Document {
    pub(crate) format: u32,
    pub(crate) name: ListName,
    pub(crate) list: TodoList,
}

pub(crate) fn encode(name: &ListName, list: &TodoList) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a> {
        format: u32,
        name: &'a ListName,
        list: &'a TodoList,
    }
    serde_json::to_vec(&Out {
        format: FORMAT,
        name,
        list,
    })
    .unwrap_or_default()
}

pub(crate) fn decode(name: &ListName, bytes: &[u8]) -> Result<TodoList, StorageError> {
    let corrupt = |detail: String| StorageError::Corrupt {
        list: name.clone(),
        detail,
    };
    let doc: Document = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if doc.format != FORMAT {
        return Err(corrupt(format!(
            "format {} is not supported (this build reads format {FORMAT})",
            doc.format
        )));
    }
    if &doc.name != name {
        return Err(corrupt(format!("the file holds list \"{}\"", doc.name)));
    }
    Ok(doc.list)
}
