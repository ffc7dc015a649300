//! SQLite storage, the default (bundled SQLite, WAL, `synchronous = FULL`): entries
//! as rows, so a write stores its change; one writer thread group-commits every
//! batch queued by any database worker in one transaction (one sync).

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{decode, Change, ListWrite, Storage, StorageError};
use crate::todo::{Entry, ListName, TodoList};

/// The database file inside the data dir.
pub const DB_FILE: &str = "sluicegate.sqlite3";

/// `lists.format` of a list whose entries are rows of `entries` (its `body` holds
/// the [`Header`]). Format 1 (`super::FORMAT`) rows hold the whole list as JSON in
/// `body`, as earlier versions wrote them; they are read as they are and turned
/// into rows at their next write.
const ROWS_FORMAT: u32 = 2;

/// Most batches the writer folds into one transaction.
const MAX_BATCHES_PER_COMMIT: usize = 64;

/// The `body` of a format-2 list row.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    next_id: u64,
}

type Results = Vec<Result<(), StorageError>>;

/// A batch for the writer thread and where its results go.
struct Job {
    writes: Vec<ListWrite>,
    done: oneshot::Sender<Results>,
}

/// Lists in `data_dir/sluicegate.sqlite3`.
pub struct SqliteStorage {
    /// Batches to the writer thread (which owns the write connection).
    writer: Mutex<mpsc::Sender<Job>>,
    /// The read connection (WAL: readers do not wait for the writer).
    reader: Arc<Mutex<Connection>>,
}

fn sql(list: Option<&ListName>, e: rusqlite::Error) -> StorageError {
    StorageError::Sqlite {
        list: list.cloned(),
        detail: e.to_string(),
    }
}

fn connect(data_dir: &Path) -> Result<Connection, StorageError> {
    let conn = Connection::open(data_dir.join(DB_FILE)).map_err(|e| sql(None, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| sql(None, e))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| sql(None, e))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| sql(None, e))?;
    Ok(conn)
}

impl SqliteStorage {
    /// Opens (creating) the database file and starts its writer thread. A data dir
    /// holding a `lists/` directory of the `files` backend has those lists imported
    /// once (see [`super::import_files`]).
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StorageError::io(None, e))?;
        let mut conn = connect(data_dir)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS lists (name TEXT PRIMARY KEY, format INTEGER NOT NULL, body BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS entries (
                 list TEXT NOT NULL, id INTEGER NOT NULL, date TEXT NOT NULL, title TEXT NOT NULL,
                 PRIMARY KEY (list, id)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .map_err(|e| sql(None, e))?;
        super::import_files(data_dir, &mut conn)?;
        let reader = connect(data_dir)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StorageError::io(None, e))?;
        Ok(SqliteStorage {
            writer: Mutex::new(tx),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let conn = self.reader.clone();
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

/// The writer thread: takes every batch waiting (up to [`MAX_BATCHES_PER_COMMIT`]),
/// commits them in one transaction and answers each. If that transaction fails,
/// each list is tried in a transaction of its own, so one bad list fails alone.
fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCHES_PER_COMMIT {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let all: Vec<&ListWrite> = jobs.iter().flat_map(|j| j.writes.iter()).collect();
        let together = commit(&mut conn, &all);
        let mut results: Results = match together {
            Ok(()) => all.iter().map(|_| Ok(())).collect(),
            Err(_) => all
                .iter()
                .map(|w| commit(&mut conn, std::slice::from_ref(w)))
                .collect(),
        };
        for job in jobs.into_iter().rev() {
            let mine = results.split_off(results.len() - job.writes.len());
            let _ = job.done.send(mine);
        }
    }
}

fn commit(conn: &mut Connection, writes: &[&ListWrite]) -> Result<(), StorageError> {
    let first = writes.first().map(|w| w.name.clone());
    let tx = conn.transaction().map_err(|e| sql(first.as_ref(), e))?;
    for w in writes {
        write_list(&tx, w).map_err(|e| sql(Some(&w.name), e))?;
    }
    tx.commit().map_err(|e| sql(first.as_ref(), e))
}

fn header(list: &TodoList) -> Vec<u8> {
    serde_json::to_vec(&Header {
        next_id: list.next_id(),
    })
    .unwrap_or_default()
}

/// Writes one list: its change when the stored list is in rows already, else whole.
fn write_list(tx: &Transaction<'_>, w: &ListWrite) -> rusqlite::Result<()> {
    let name = w.name.as_str();
    let stored_format: Option<u32> = tx
        .prepare_cached("SELECT format FROM lists WHERE name = ?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()?;
    let change = match (&w.change, stored_format) {
        (Some(c), Some(ROWS_FORMAT)) => Some(c),
        _ => None,
    };
    match change {
        Some(change) => write_change(tx, name, change)?,
        None => {
            tx.prepare_cached("DELETE FROM entries WHERE list = ?1")?
                .execute(params![name])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO entries (list, id, date, title) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for e in w.list.all_entries() {
                insert.execute(params![name, e.id as i64, e.date.to_string(), e.title])?;
            }
        }
    }
    tx.prepare_cached(
        "INSERT INTO lists (name, format, body) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET format = excluded.format, body = excluded.body",
    )?
    .execute(params![name, ROWS_FORMAT, header(&w.list)])?;
    Ok(())
}

fn write_change(tx: &Transaction<'_>, name: &str, change: &Change) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO entries (list, id, date, title) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(list, id) DO UPDATE SET date = excluded.date, title = excluded.title",
    )?;
    let mut delete = tx.prepare_cached("DELETE FROM entries WHERE list = ?1 AND id = ?2")?;
    for (id, entry) in &change.entries {
        match entry {
            Some(e) => upsert.execute(params![name, *id as i64, e.date.to_string(), e.title])?,
            None => delete.execute(params![name, *id as i64])?,
        };
    }
    Ok(())
}

/// Reads one list (either format) with `conn`.
fn load_list(conn: &Connection, name: &ListName) -> Result<Option<TodoList>, StorageError> {
    let corrupt = |detail: String| StorageError::Corrupt {
        list: name.clone(),
        detail,
    };
    let row: Option<(u32, Vec<u8>)> = conn
        .prepare_cached("SELECT format, body FROM lists WHERE name = ?1")
        .and_then(|mut s| {
            s.query_row(params![name.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(|e| sql(Some(name), e))?;
    let Some((format, body)) = row else {
        return Ok(None);
    };
    if format != ROWS_FORMAT {
        return decode(name, &body).map(Some);
    }
    let header: Header =
        serde_json::from_slice(&body).map_err(|e| corrupt(format!("list header: {e}")))?;
    let mut stmt = conn
        .prepare_cached("SELECT id, date, title FROM entries WHERE list = ?1 ORDER BY id")
        .map_err(|e| sql(Some(name), e))?;
    let rows = stmt
        .query_map(params![name.as_str()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(|e| sql(Some(name), e))?;
    let mut entries = Vec::new();
    for row in rows {
        let (id, date, title) = row.map_err(|e| corrupt(e.to_string()))?;
        let date = NaiveDate::parse_from_str(&date, "%Y-%m-%d")
            .map_err(|_| corrupt(format!("entry {id}: date \"{date}\" is not YYYY-MM-DD")))?;
        let id = u64::try_from(id).map_err(|_| corrupt(format!("entry id {id} is negative")))?;
        entries.push(Entry { id, date, title });
    }
    TodoList::from_parts(header.next_id, entries)
        .map(Some)
        .map_err(corrupt)
}

/// Whole-list writes for lists imported from another backend (used by the import).
pub(super) fn store_whole(
    conn: &mut Connection,
    lists: &[(ListName, TodoList)],
) -> Result<(), StorageError> {
    let writes: Vec<ListWrite> = lists
        .iter()
        .map(|(name, list)| ListWrite {
            name: name.clone(),
            list: list.clone(),
            change: None,
        })
        .collect();
    let refs: Vec<&ListWrite> = writes.iter().collect();
    commit(conn, &refs)
}

/// Whether `name` is stored in `conn`'s database.
pub(super) fn has_list(conn: &Connection, name: &ListName) -> Result<bool, StorageError> {
    conn.query_row(
        "SELECT 1 FROM lists WHERE name = ?1",
        params![name.as_str()],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
    .map_err(|e| sql(Some(name), e))
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError> {
        let name = name.clone();
        self.read(move |c| load_list(c, &name)).await
    }

    async fn store(&self, name: &ListName, list: &TodoList) -> Result<(), StorageError> {
        self.store_many(&[(name.clone(), list.clone())]).await
    }

    /// One transaction: all lists are stored, or the first error is returned.
    async fn store_many(&self, lists: &[(ListName, TodoList)]) -> Result<(), StorageError> {
        let writes: Vec<ListWrite> = lists
            .iter()
            .map(|(name, list)| ListWrite {
                name: name.clone(),
                list: list.clone(),
                change: None,
            })
            .collect();
        self.store_batch(&writes)
            .await
            .into_iter()
            .find(|r| r.is_err())
            .unwrap_or(Ok(()))
    }

    async fn store_batch(&self, writes: &[ListWrite]) -> Results {
        if writes.is_empty() {
            return Vec::new();
        }
        let (done, answer) = oneshot::channel();
        let job = Job {
            writes: writes.to_vec(),
            done,
        };
        let sent = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job);
        let stopped = |w: &ListWrite| {
            Err(StorageError::Sqlite {
                list: Some(w.name.clone()),
                detail: "the sqlite writer thread stopped".into(),
            })
        };
        if sent.is_err() {
            return writes.iter().map(stopped).collect();
        }
        match answer.await {
            Ok(results) => results,
            Err(_) => writes.iter().map(stopped).collect(),
        }
    }

    async fn list_names(&self) -> Result<Vec<ListName>, StorageError> {
        self.read(|c| {
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
