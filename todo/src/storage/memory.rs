//! In-memory storage: for experiments that isolate queueing from the disk.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Storage, StorageError};
use crate::domain::{ListName, TodoList};

/// Lists in a map; nothing survives the process.
#[derive(Default)]
pub struct MemoryStorage {
    lists: Mutex<HashMap<ListName, TodoList>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError> {
        Ok(self
            .lists
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned())
    }

    async fn store(&self, name: &ListName, list: &TodoList) -> Result<(), StorageError> {
        self.lists
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), list.clone());
        Ok(())
    }

    async fn delete_list(&self, name: &ListName) -> Result<bool, StorageError> {
        Ok(self
            .lists
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .is_some())
    }

    async fn list_names(&self) -> Result<Vec<ListName>, StorageError> {
        let mut names: Vec<ListName> = self
            .lists
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        Ok(names)
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
