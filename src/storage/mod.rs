//! Storage backends implementing the to-do domain's port ([`Storage`]): SQLite
//! (the default), the book's one file per list, memory, and a fault-injecting wrapper.

mod fault;
mod files;
mod memory;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use fault::{FaultConfig, FaultHandle, FaultyStorage};
pub use files::FileStorage;
pub use memory::MemoryStorage;
pub use sqlite::SqliteStorage;

pub use crate::todo::port::{Change, ListWrite, Storage, StorageError};
use crate::todo::{ListName, TodoList};

/// Format version written with every stored list.
pub const FORMAT: u32 = 1;

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
