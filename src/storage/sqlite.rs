//! SQLite storage (bundled SQLite, WAL, synchronous=FULL): one row per list, and
//! several lists in one transaction with `store_many`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{decode, encode, Storage, StorageError};
use crate::todo::{ListName, TodoList};

/// Lists in `data_dir/sluicegate.sqlite3`.
pub struct SqliteStorage {
    /// One connection; SQLite serializes writers anyway.
    conn: Arc<Mutex<Connection>>,
}

fn sql(list: Option<&ListName>, e: rusqlite::Error) -> StorageError {
    StorageError::Sqlite {
        list: list.cloned(),
        detail: e.to_string(),
    }
}

impl SqliteStorage {
    /// Opens (creating) the database file.
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StorageError::io(None, e))?;
        let conn =
            Connection::open(data_dir.join("sluicegate.sqlite3")).map_err(|e| sql(None, e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| sql(None, e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| sql(None, e))?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS lists (name TEXT PRIMARY KEY, format INTEGER NOT NULL, body BLOB NOT NULL)",
            [],
        )
        .map_err(|e| sql(None, e))?;
        Ok(SqliteStorage {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut c)
        })
        .await
        .unwrap_or_else(|e| {
            Err(StorageError::Sqlite {
                list: None,
                detail: format!("storage task failed: {e}"),
            })
        })
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError> {
        let name = name.clone();
        self.with_conn(move |c| {
            let body: Option<Vec<u8>> = c
                .query_row(
                    "SELECT body FROM lists WHERE name = ?1",
                    params![name.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| sql(Some(&name), e))?;
            body.map(|b| decode(&name, &b)).transpose()
        })
        .await
    }

    async fn store(&self, name: &ListName, list: &TodoList) -> Result<(), StorageError> {
        self.store_many(&[(name.clone(), list.clone())]).await
    }

    async fn store_many(&self, lists: &[(ListName, TodoList)]) -> Result<(), StorageError> {
        let rows: Vec<(ListName, Vec<u8>)> = lists
            .iter()
            .map(|(n, l)| (n.clone(), encode(n, l)))
            .collect();
        self.with_conn(move |c| {
            let first = rows.first().map(|(n, _)| n.clone());
            let tx = c.transaction().map_err(|e| sql(first.as_ref(), e))?;
            for (name, body) in &rows {
                tx.execute(
                    "INSERT INTO lists (name, format, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT(name) DO UPDATE SET format = excluded.format, body = excluded.body",
                    params![name.as_str(), super::FORMAT, body],
                )
                .map_err(|e| sql(Some(name), e))?;
            }
            tx.commit().map_err(|e| sql(first.as_ref(), e))
        })
        .await
    }

    async fn list_names(&self) -> Result<Vec<ListName>, StorageError> {
        self.with_conn(|c| {
            let mut stmt = c
                .prepare("SELECT name FROM lists ORDER BY name")
                .map_err(|e| sql(None, e))?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| sql(None, e))?
                .filter_map(|r| r.ok())
                .filter_map(|n| ListName::new(n).ok())
                .collect();
            Ok(names)
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}
