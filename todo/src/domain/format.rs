//! The list's stored format: the JSON document (format version, name, list) the
//! `files` and `sqlite` backends write and read back, with damage reported as
//! [`StorageError::Corrupt`]. The domain owns it, so every backend agrees on it.

use serde::{Deserialize, Serialize};

use super::port::StorageError;
use super::{ListName, TodoList};

/// Format version written with every stored list.
pub const FORMAT: u32 = 1;

/// The JSON document stored for a list (files and sqlite).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Document {
    pub(crate) format: u32,
    pub(crate) name: ListName,
    pub(crate) list: TodoList,
}

/// The stored document of `list` named `name`.
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

/// Reads back a document [`encode`] wrote for `name`; anything else is
/// [`StorageError::Corrupt`].
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
