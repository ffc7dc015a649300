//! SQLite storage, the default (bundled SQLite, WAL, `synchronous = FULL` for every
//! transaction someone waits for): entries as rows, so a write stores its change;
//! one writer thread group-commits every batch queued by any database worker in one
//! transaction (one sync). Its commit window ([`CommitWindow`]) grows while nobody
//! waits for durability, so batches acknowledged `applied` go out in fewer, larger
//! transactions, committed without a sync of their own (`synchronous = NORMAL`; the
//! next synced commit covers them), and closes at once when a batch with durable
//! waiters arrives.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::NaiveDate;
use fastbloom::AtomicBloomFilter;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{decode, Change, ListWrite, Storage, StorageError};
use crate::domain::database::{COMMIT_WINDOW_SECONDS, TRANSACTIONS, TRANSACTION_WRITES};
use crate::domain::port::{BatchResults, OnCommit, Queued, QueuedWrites};
use crate::domain::{Entry, IdempotencyKey, ListName, Receipt, TodoList};

/// The database file inside the data dir.
pub const DB_FILE: &str = "sluicegate.sqlite3";

/// `lists.format` of a list whose entries are rows of `entries` (its `body` holds
/// the [`Header`]). Format 1 (`super::FORMAT`) rows hold the whole list as JSON in
/// `body`, as earlier versions wrote them; they are read as they are and turned
/// into rows at their next write.
const ROWS_FORMAT: u32 = 2;

/// Most batches the writer folds into one transaction.
const MAX_BATCHES_PER_COMMIT: usize = 256;

/// Most list writes the writer folds into one transaction (a batch is never split).
const MAX_WRITES_PER_COMMIT: usize = 4096;

/// WAL pages after which a commit of the writer copies the WAL back into the
/// database file (SQLite's `wal_autocheckpoint`; its default is 1,000). A hot page
/// rewritten by many commits is copied once per checkpoint, so a wider interval
/// copies (and syncs into the database file) fewer pages per commit: 4,000 pages
/// (16 MiB of WAL at 4 KiB pages) stays within two of the WAL index's hash blocks
/// (4,096 frames each) that a read searches. Durability is the WAL's own sync at
/// each commit (`synchronous = FULL`), which this leaves alone.
const WAL_CHECKPOINT_PAGES: u32 = 4000;

/// Most lists the writer remembers as stored in rows (about 64 bytes each)
/// before it forgets them all and reads formats again.
const IN_ROWS_CAPACITY: usize = 1 << 16;

/// Bits of the filter of stored list names (1 MiB): about 1 % false positives at
/// a million lists, after which loads of new lists are skipped less often.
const NAME_FILTER_BITS: usize = 1 << 23;

/// The `body` of a format-2 list row.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    next_id: u64,
}

type Results = Vec<Result<(), StorageError>>;

/// Where a batch's outcomes go: the caller awaiting them, and (for a queued batch
/// with durable waiters) what answers those waiters right after the commit.
struct Done {
    results: oneshot::Sender<BatchResults>,
    on_commit: Option<OnCommit>,
    /// Someone waits for this batch: it closes the commit window.
    urgent: bool,
}

/// Work for the writer thread and where its results go.
enum Job {
    /// A batch of list writes, folded with other batches into one transaction.
    Writes { writes: Vec<ListWrite>, done: Done },
    /// Delete one list (its row and its entries) in a transaction of its own,
    /// after every batch queued before it; answers whether it was stored.
    Delete {
        name: ListName,
        done: oneshot::Sender<Result<bool, StorageError>>,
    },
    /// Delete every receipt applied before `before_ms`; answers how many.
    Purge {
        before_ms: i64,
        done: oneshot::Sender<Result<u64, StorageError>>,
    },
}

/// How long the writer waits for more batches before it commits what it holds
/// when none of it has a waiter: doubled after each commit nobody waited for (from
/// [`CommitWindow::FIRST`] up to [`CommitWindow::MAX`]), closed (zero) by a batch
/// with durable waiters, which is then committed at once with whatever is held.
/// Applied writes held in the window are what a `kill -9` loses on top of what
/// was queued anyway (`applied` promises no more); a durable write never waits in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitWindow(Duration);

impl CommitWindow {
    /// The window after the first commit nobody waited for.
    pub const FIRST: Duration = Duration::from_micros(250);
    /// The widest window.
    pub const MAX: Duration = Duration::from_millis(4);

    /// Closed: commit what is there.
    pub fn closed() -> Self {
        CommitWindow(Duration::ZERO)
    }

    /// How long to wait for more batches now.
    pub fn wait(self) -> Duration {
        self.0
    }

    /// The window after a commit: wider if nobody waited for it, closed if someone did.
    pub fn after_commit(self, someone_waited: bool) -> Self {
        if someone_waited {
            Self::closed()
        } else {
            CommitWindow((self.0 * 2).clamp(Self::FIRST, Self::MAX))
        }
    }
}

/// Lists in `data_dir/sluicegate.sqlite3`.
pub struct SqliteStorage {
    /// Batches to the writer thread (which owns the write connection).
    writer: Mutex<mpsc::Sender<Job>>,
    /// The read connection (WAL: readers do not wait for the writer).
    reader: Arc<Mutex<Connection>>,
    /// Every list name stored (at open, and each one the writer has written since):
    /// a name not in it was never stored, so its load is skipped.
    names: Arc<AtomicBloomFilter>,
    /// What the writer did, for [`SqliteStorage::writer_stats`].
    stats: Arc<Stats>,
}

/// The writer's counts, shared with the storage handle.
#[derive(Default)]
struct Stats {
    transactions: AtomicU64,
    batches: AtomicU64,
    window_nanos: AtomicU64,
}

/// What the SQLite writer thread has done so far ([`SqliteStorage::writer_stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed or tried.
    pub transactions: u64,
    /// Batches of writes received (each answered once).
    pub batches: u64,
    /// The commit window now.
    pub window: Duration,
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

/// The filter of the list names `conn`'s database holds.
fn stored_names(conn: &Connection) -> Result<AtomicBloomFilter, StorageError> {
    let names = AtomicBloomFilter::with_num_bits(NAME_FILTER_BITS).expected_items(1_000_000);
    let mut stmt = conn
        .prepare("SELECT name FROM lists")
        .map_err(|e| sql(None, e))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| sql(None, e))?;
    for name in rows {
        names.insert(&name.map_err(|e| sql(None, e))?);
    }
    Ok(names)
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
                 done INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (list, id)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS receipts (
                 list TEXT NOT NULL, key TEXT NOT NULL, request TEXT NOT NULL,
                 entry TEXT NOT NULL, at_ms INTEGER NOT NULL,
                 PRIMARY KEY (list, key)) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS receipts_at ON receipts (at_ms);",
        )
        .map_err(|e| sql(None, e))?;
        add_done_column(&conn)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)
            .map_err(|e| sql(None, e))?;
        super::import_files(data_dir, &mut conn)?;
        let names = Arc::new(stored_names(&conn)?);
        let reader = connect(data_dir)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let stats = Arc::new(Stats::default());
        let writer = Writer {
            conn,
            stats: stats.clone(),
            names: names.clone(),
            broken: HashSet::new(),
            window: CommitWindow::closed(),
            sync_full: true,
            in_rows: HashSet::new(),
        };
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StorageError::io(None, e))?;
        Ok(SqliteStorage {
            writer: Mutex::new(tx),
            reader: Arc::new(Mutex::new(reader)),
            names,
            stats,
        })
    }

    /// What the writer thread has done so far: transactions, batches, its window.
    pub fn writer_stats(&self) -> WriterStats {
        WriterStats {
            transactions: self.stats.transactions.load(Ordering::Relaxed),
            batches: self.stats.batches.load(Ordering::Relaxed),
            window: Duration::from_nanos(self.stats.window_nanos.load(Ordering::Relaxed)),
        }
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

    /// Hands a job to the writer thread; `false` if it stopped.
    fn send(&self, job: Job) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .is_ok()
    }
}

/// The writer thread's state: the write connection, the filter of stored names,
/// the lists whose last write failed, and the commit window.
struct Writer {
    conn: Connection,
    stats: Arc<Stats>,
    names: Arc<AtomicBloomFilter>,
    /// Lists whose latest write failed: the backend does not hold the version a
    /// later queued change builds on, so their next write is written whole.
    broken: HashSet<ListName>,
    window: CommitWindow,
    /// Lists a committed transaction of this writer left in rows (format 2): a
    /// change of one is written without first reading its format. Only filled
    /// after a commit succeeded (a rolled-back one changes no format), emptied of
    /// a list when it is deleted, and cleared whole at [`IN_ROWS_CAPACITY`].
    in_rows: HashSet<ListName>,
    /// Whether the connection syncs the WAL at each commit (`synchronous = FULL`,
    /// as opened) or not (`NORMAL`, for transactions nobody waits for).
    sync_full: bool,
}

/// Batches the writer holds for one transaction.
struct Held {
    jobs: Vec<(Vec<ListWrite>, Done)>,
    writes: usize,
    urgent: bool,
}

impl Held {
    fn new(writes: Vec<ListWrite>, done: Done) -> Self {
        let mut held = Held {
            jobs: Vec::new(),
            writes: 0,
            urgent: false,
        };
        held.push(writes, done);
        held
    }

    fn push(&mut self, writes: Vec<ListWrite>, done: Done) {
        self.writes += writes.len();
        self.urgent |= done.urgent;
        self.jobs.push((writes, done));
    }

    fn full(&self) -> bool {
        self.jobs.len() >= MAX_BATCHES_PER_COMMIT || self.writes >= MAX_WRITES_PER_COMMIT
    }
}

impl Writer {
    /// Takes every batch waiting (and, while nobody waits for any of them, those
    /// arriving within the commit window), up to the next delete or purge and up to
    /// [`MAX_BATCHES_PER_COMMIT`] / [`MAX_WRITES_PER_COMMIT`], commits them in one
    /// transaction and answers each. If that transaction fails, each list is tried
    /// in a transaction of its own, so one bad list fails alone. Jobs are done in
    /// the order they were queued.
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        let mut next = None;
        loop {
            let first = match next.take() {
                Some(job) => job,
                None => match rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            let mut held = match first {
                Job::Delete { name, done } => {
                    self.in_rows.remove(&name);
                    let deleted = self
                        .sync(true)
                        .map_err(|e| sql(Some(&name), e))
                        .and_then(|()| delete_list(&mut self.conn, &name));
                    let _ = done.send(deleted);
                    continue;
                }
                Job::Purge { before_ms, done } => {
                    let purged = self
                        .sync(true)
                        .and_then(|()| {
                            self.conn
                                .prepare_cached("DELETE FROM receipts WHERE at_ms < ?1")
                                .and_then(|mut s| s.execute(params![before_ms]))
                        })
                        .map(|n| n as u64)
                        .map_err(|e| sql(None, e));
                    let _ = done.send(purged);
                    continue;
                }
                Job::Writes { writes, done } => Held::new(writes, done),
            };
            let deadline = Instant::now() + self.window.wait();
            while !held.full() {
                let job = if held.urgent {
                    rx.try_recv().ok()
                } else {
                    let left = deadline.saturating_duration_since(Instant::now());
                    rx.recv_timeout(left).ok()
                };
                match job {
                    Some(Job::Writes { writes, done }) => held.push(writes, done),
                    Some(other) => {
                        next = Some(other);
                        break;
                    }
                    None => break,
                }
            }
            self.window = self.window.after_commit(held.urgent);
            let window = self.window.wait();
            metrics::gauge!(COMMIT_WINDOW_SECONDS).set(window.as_secs_f64());
            let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
            self.stats.window_nanos.store(nanos, Ordering::Relaxed);
            self.commit_held(held);
        }
    }

    /// Sets whether the next transactions sync the WAL at commit: `FULL` for any
    /// that someone waits for (a durable write, a delete, a purge, a caller's
    /// store), `NORMAL` for batches nobody waits for (acked `applied` or `none`).
    /// A `NORMAL` commit is as atomic and survives the process's death (its WAL
    /// frames are written), but not a power loss until the next `FULL` commit or
    /// checkpoint syncs the WAL, which covers every frame before it: `applied`
    /// never promised more, and a durable write's own commit syncs it.
    fn sync(&mut self, full: bool) -> rusqlite::Result<()> {
        if self.sync_full != full {
            let mode = if full { "FULL" } else { "NORMAL" };
            self.conn.pragma_update(None, "synchronous", mode)?;
            self.sync_full = full;
        }
        Ok(())
    }

    /// Counts `n` transactions.
    fn counted(&self, n: u64) {
        metrics::counter!(TRANSACTIONS).increment(n);
        self.stats.transactions.fetch_add(n, Ordering::Relaxed);
    }

    /// Commits the held batches and answers each: durable waiters first, then the
    /// callers awaiting the outcomes.
    fn commit_held(&mut self, held: Held) {
        let all: Vec<&ListWrite> = held.jobs.iter().flat_map(|(w, _)| w.iter()).collect();
        for w in &all {
            self.names.insert(w.name.as_str());
        }
        if let Err(e) = self.sync(held.urgent) {
            // Not written: a later queued change of these lists is written whole.
            self.broken.extend(all.iter().map(|w| w.name.clone()));
            let detail = format!("cannot set the commit's sync mode: {e}");
            let results = all.iter().map(|w| {
                Err(StorageError::Sqlite {
                    list: Some(w.name.clone()),
                    detail: detail.clone(),
                })
            });
            let results = results.collect();
            return self.answer_held(held.jobs, results);
        }
        let together = commit(&mut self.conn, &all, &self.broken, &self.in_rows);
        self.counted(1);
        metrics::histogram!(TRANSACTION_WRITES).record(all.len() as f64);
        let results: Results = match together {
            Ok(()) => all.iter().map(|_| Ok(())).collect(),
            Err(_) => all
                .iter()
                .map(|w| {
                    let one = std::slice::from_ref(w);
                    let r = commit(&mut self.conn, one, &self.broken, &self.in_rows);
                    self.counted(1);
                    // A later queued write of this list is written whole now.
                    if r.is_err() {
                        self.broken.insert(w.name.clone());
                    } else {
                        self.broken.remove(&w.name);
                    }
                    r
                })
                .collect(),
        };
        if self.in_rows.len() + all.len() > IN_ROWS_CAPACITY {
            self.in_rows.clear();
        }
        for (w, r) in all.iter().zip(&results) {
            if r.is_ok() {
                self.broken.remove(&w.name);
                // Every list written is in rows now (a change or a whole write).
                if !self.in_rows.contains(&w.name) {
                    self.in_rows.insert(w.name.clone());
                }
            }
        }
        self.answer_held(held.jobs, results);
    }

    /// Answers each held batch with its writes' results (in order): durable
    /// waiters first, then the caller awaiting the outcomes.
    fn answer_held(&self, jobs: Vec<(Vec<ListWrite>, Done)>, results: Results) {
        let mut results = results.into_iter().map(|r| r.map_err(Arc::new));
        let batches = jobs.len() as u64;
        self.stats.batches.fetch_add(batches, Ordering::Relaxed);
        for (writes, done) in jobs {
            let mine: BatchResults = results.by_ref().take(writes.len()).collect();
            if let Some(on_commit) = done.on_commit {
                on_commit(&mine);
            }
            let _ = done.results.send(mine);
        }
    }
}

/// Deletes a list's row and entries in one transaction; whether it was stored.
fn delete_list(conn: &mut Connection, name: &ListName) -> Result<bool, StorageError> {
    let err = |e| sql(Some(name), e);
    let tx = conn.transaction().map_err(err)?;
    tx.execute(
        "DELETE FROM entries WHERE list = ?1",
        params![name.as_str()],
    )
    .map_err(err)?;
    tx.execute(
        "DELETE FROM receipts WHERE list = ?1",
        params![name.as_str()],
    )
    .map_err(err)?;
    let rows = tx
        .execute("DELETE FROM lists WHERE name = ?1", params![name.as_str()])
        .map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(rows > 0)
}

/// Writes `writes` in one transaction; a list in `broken` is written whole, a
/// change of one in `in_rows` without reading its format first.
fn commit(
    conn: &mut Connection,
    writes: &[&ListWrite],
    broken: &HashSet<ListName>,
    in_rows: &HashSet<ListName>,
) -> Result<(), StorageError> {
    let first = writes.first().map(|w| w.name.clone());
    let tx = conn.transaction().map_err(|e| sql(first.as_ref(), e))?;
    for w in writes {
        let change = w.change.as_ref().filter(|_| !broken.contains(&w.name));
        let known = change.is_some() && in_rows.contains(&w.name);
        write_list(&tx, w, change, known).map_err(|e| sql(Some(&w.name), e))?;
    }
    tx.commit().map_err(|e| sql(first.as_ref(), e))
}

/// Migration: a database written before entries had a done flag gets the column,
/// every existing entry not done.
fn add_done_column(conn: &Connection) -> Result<(), StorageError> {
    let has_done = conn
        .prepare("SELECT 1 FROM pragma_table_info('entries') WHERE name = 'done'")
        .and_then(|mut s| s.exists([]))
        .map_err(|e| sql(None, e))?;
    if !has_done {
        conn.execute(
            "ALTER TABLE entries ADD COLUMN done INTEGER NOT NULL DEFAULT 0",
            [],
        )
        .map_err(|e| sql(None, e))?;
        tracing::info!("sqlite: added the done column to the entries table");
    }
    Ok(())
}

/// The one mapping between an [`Entry`] and its row of `entries`: the statement
/// that writes a row (insert or replace), ...
const UPSERT_ENTRY: &str = "INSERT INTO entries (list, id, date, title, done) VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT(list, id) DO UPDATE SET date = excluded.date, title = excluded.title, done = excluded.done";

/// ... the columns a read selects, in the order [`entry_of_row`] takes them, ...
const ENTRY_COLUMNS: &str = "id, date, title, done";

/// ... an entry's values for [`UPSERT_ENTRY`] ...
fn upsert_entry(
    stmt: &mut rusqlite::CachedStatement<'_>,
    list: &str,
    e: &Entry,
) -> rusqlite::Result<usize> {
    let mut buf = [0u8; 10];
    let date = date_text(e.date, &mut buf);
    stmt.execute(params![list, e.id as i64, &*date, e.title, e.done])
}

/// `date` as `YYYY-MM-DD`, as its `Display` writes it, into `buf` for the years
/// 0 to 9999 (every date the service accepts) without a formatter or allocation.
fn date_text(date: NaiveDate, buf: &mut [u8; 10]) -> std::borrow::Cow<'_, str> {
    use chrono::Datelike;
    let Ok(year) = u32::try_from(date.year()) else {
        return date.to_string().into();
    };
    if year > 9999 {
        return date.to_string().into();
    }
    let digits = |out: &mut [u8], mut n: u32| {
        for b in out.iter_mut().rev() {
            *b = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    digits(&mut buf[0..4], year);
    buf[4] = b'-';
    digits(&mut buf[5..7], date.month());
    buf[7] = b'-';
    digits(&mut buf[8..10], date.day());
    // Only ASCII digits and dashes were written.
    std::str::from_utf8(buf).map_or_else(|_| date.to_string().into(), Into::into)
}

/// ... and an entry from the columns of [`ENTRY_COLUMNS`] (the error says what is damaged).
fn entry_of_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Entry, String>> {
    let (id, date, title, done): (i64, String, String, bool) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
    let Ok(date) = NaiveDate::parse_from_str(&date, "%Y-%m-%d") else {
        return Ok(Err(format!(
            "entry {id}: date \"{date}\" is not YYYY-MM-DD"
        )));
    };
    let Ok(id) = u64::try_from(id) else {
        return Ok(Err(format!("entry id {id} is negative")));
    };
    Ok(Ok(Entry {
        id,
        date,
        title,
        done,
    }))
}

fn header(list: &TodoList) -> Vec<u8> {
    serde_json::to_vec(&Header {
        next_id: list.next_id(),
    })
    .unwrap_or_default()
}

/// Writes one list: its `change` when the stored list is in rows already, else
/// whole. A change that deletes no entry leaves the list's header row alone: every
/// id handed out since the header was written is still an entry, so the next id is
/// the largest entry id + 1, which a load takes when it is above the header's (one
/// page fewer to write per add). Every statement is cached on the connection
/// (`prepare_cached`), so a write parses no SQL. `in_rows`: the list is known to
/// be stored in rows, so its format is not read.
fn write_list(
    tx: &Transaction<'_>,
    w: &ListWrite,
    change: Option<&Change>,
    in_rows: bool,
) -> rusqlite::Result<()> {
    let name = w.name.as_str();
    if let Some(change) = change {
        let stored_format: Option<u32> = if in_rows {
            Some(ROWS_FORMAT)
        } else {
            tx.prepare_cached("SELECT format FROM lists WHERE name = ?1")?
                .query_row(params![name], |r| r.get(0))
                .optional()?
        };
        if stored_format == Some(ROWS_FORMAT) {
            if change.entries.values().any(Option::is_none) {
                tx.prepare_cached("UPDATE lists SET body = ?2 WHERE name = ?1")?
                    .execute(params![name, header(&w.list)])?;
            }
            return write_change(tx, name, change);
        }
    }
    tx.prepare_cached("DELETE FROM entries WHERE list = ?1")?
        .execute(params![name])?;
    let mut upsert = tx.prepare_cached(UPSERT_ENTRY)?;
    for e in w.list.all_entries() {
        upsert_entry(&mut upsert, name, &e)?;
    }
    tx.prepare_cached("DELETE FROM receipts WHERE list = ?1")?
        .execute(params![name])?;
    let mut upsert = tx.prepare_cached(UPSERT_RECEIPT)?;
    for (key, r) in w.list.receipts() {
        upsert_receipt(&mut upsert, name, key, r)?;
    }
    tx.prepare_cached(
        "INSERT INTO lists (name, format, body) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET format = excluded.format, body = excluded.body",
    )?
    .execute(params![name, ROWS_FORMAT, header(&w.list)])?;
    Ok(())
}

fn write_change(tx: &Transaction<'_>, name: &str, change: &Change) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(UPSERT_ENTRY)?;
    let mut delete = tx.prepare_cached("DELETE FROM entries WHERE list = ?1 AND id = ?2")?;
    for (id, entry) in &change.entries {
        match entry {
            Some(e) => upsert_entry(&mut upsert, name, e)?,
            None => delete.execute(params![name, *id as i64])?,
        };
    }
    if change.receipts.is_empty() {
        return Ok(());
    }
    let mut upsert = tx.prepare_cached(UPSERT_RECEIPT)?;
    let mut delete = tx.prepare_cached("DELETE FROM receipts WHERE list = ?1 AND key = ?2")?;
    for (key, receipt) in &change.receipts {
        match receipt {
            Some(r) => upsert_receipt(&mut upsert, name, key, r)?,
            None => delete.execute(params![name, key.as_str()])?,
        };
    }
    Ok(())
}

/// The statement that writes a receipt's row (insert or replace) ...
const UPSERT_RECEIPT: &str = "INSERT INTO receipts (list, key, request, entry, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT(list, key) DO UPDATE SET request = excluded.request, entry = excluded.entry, at_ms = excluded.at_ms";

/// ... a receipt's values for it (the entry as its JSON text) ...
fn upsert_receipt(
    stmt: &mut rusqlite::CachedStatement<'_>,
    list: &str,
    key: &IdempotencyKey,
    r: &Receipt,
) -> rusqlite::Result<usize> {
    let entry = serde_json::to_string(&r.entry).unwrap_or_default();
    stmt.execute(params![list, key.as_str(), r.request, entry, r.at_ms])
}

/// ... and the receipts of a list read back (the error says what is damaged).
fn load_receipts(
    conn: &Connection,
    name: &ListName,
) -> rusqlite::Result<Result<Vec<(IdempotencyKey, Receipt)>, String>> {
    let mut stmt =
        conn.prepare_cached("SELECT key, request, entry, at_ms FROM receipts WHERE list = ?1")?;
    let rows = stmt.query_map(params![name.as_str()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (key, request, entry, at_ms) = row?;
        let key = match IdempotencyKey::new(key) {
            Ok(k) => k,
            Err(e) => return Ok(Err(format!("receipt key: {e}"))),
        };
        let entry = match serde_json::from_str(&entry) {
            Ok(e) => e,
            Err(e) => return Ok(Err(format!("receipt {key}: {e}"))),
        };
        out.push((
            key,
            Receipt {
                request,
                entry,
                at_ms,
            },
        ));
    }
    Ok(Ok(out))
}

/// Reads one list (either format) and its receipts with `conn`, in one read
/// transaction (one snapshot).
fn load_list(conn: &Connection, name: &ListName) -> Result<Option<TodoList>, StorageError> {
    // An absent list costs one indexed read and no transaction.
    if !has_list(conn, name)? {
        return Ok(None);
    }
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| sql(Some(name), e))?;
    let list = load_list_in(&tx, name)?;
    tx.finish().map_err(|e| sql(Some(name), e))?;
    Ok(list)
}

fn load_list_in(conn: &Connection, name: &ListName) -> Result<Option<TodoList>, StorageError> {
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
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE list = ?1 ORDER BY id"
        ))
        .map_err(|e| sql(Some(name), e))?;
    let rows = stmt
        .query_map(params![name.as_str()], entry_of_row)
        .map_err(|e| sql(Some(name), e))?;
    let mut entries = Vec::new();
    for row in rows {
        entries.push(row.map_err(|e| corrupt(e.to_string()))?.map_err(corrupt)?);
    }
    let receipts = load_receipts(conn, name)
        .map_err(|e| sql(Some(name), e))?
        .map_err(corrupt)?;
    // Adds after the header was written leave it behind (see `write_list`).
    let next_id = entries
        .last()
        .map_or(header.next_id, |e: &Entry| header.next_id.max(e.id + 1));
    TodoList::from_parts(next_id, entries)
        .map(|l| Some(l.with_receipts(receipts)))
        .map_err(corrupt)
}

/// Whole-list writes for lists imported from another backend (used by the import).
pub(super) fn store_whole(
    conn: &mut Connection,
    lists: &[(ListName, TodoList)],
) -> Result<(), StorageError> {
    let writes: Vec<ListWrite> = lists
        .iter()
        .map(|(name, list)| ListWrite::whole(name, list))
        .collect();
    let refs: Vec<&ListWrite> = writes.iter().collect();
    commit(conn, &refs, &HashSet::new(), &HashSet::new())
}

/// Whether `name` is stored in `conn`'s database.
pub(super) fn has_list(conn: &Connection, name: &ListName) -> Result<bool, StorageError> {
    conn.prepare_cached("SELECT 1 FROM lists WHERE name = ?1")
        .and_then(|mut s| s.query_row(params![name.as_str()], |_| Ok(())).optional())
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
            .map(|(name, list)| ListWrite::whole(name, list))
            .collect();
        self.store_batch(&writes)
            .await
            .into_iter()
            .find(|r| r.is_err())
            .unwrap_or(Ok(()))
    }

    /// Queued like [`Storage::queue_batch`] with the caller waiting (it closes the
    /// commit window), answered once committed.
    async fn store_batch(&self, writes: &[ListWrite]) -> Results {
        if writes.is_empty() {
            return Vec::new();
        }
        let (results, answer) = oneshot::channel();
        let done = Done {
            results,
            on_commit: None,
            urgent: true,
        };
        let stopped = |w: &ListWrite| {
            Err(StorageError::Sqlite {
                list: Some(w.name.clone()),
                detail: "the sqlite writer thread stopped".into(),
            })
        };
        if !self.send(Job::Writes {
            writes: writes.to_vec(),
            done,
        }) {
            return writes.iter().map(stopped).collect();
        }
        match answer.await {
            Ok(results) => results
                .into_iter()
                .zip(writes)
                .map(|(r, w)| {
                    r.map_err(|e| {
                        Arc::try_unwrap(e).unwrap_or_else(|e| StorageError::Sqlite {
                            list: Some(w.name.clone()),
                            detail: e.to_string(),
                        })
                    })
                })
                .collect(),
            Err(_) => writes.iter().map(stopped).collect(),
        }
    }

    /// Queued to the writer thread behind every batch before it; a batch without
    /// `on_commit` may wait in the commit window. A writer that stopped drops the
    /// outcome's sender, which the receiver sees as closed.
    fn queue_batch(&self, batch: QueuedWrites) -> Result<Queued, QueuedWrites> {
        let (results, answer) = oneshot::channel();
        let urgent = batch.on_commit.is_some();
        let done = Done {
            results,
            on_commit: batch.on_commit,
            urgent,
        };
        self.send(Job::Writes {
            writes: batch.writes,
            done,
        });
        Ok(answer)
    }

    /// From the filter of stored names (no false negatives).
    fn surely_absent(&self, name: &ListName) -> bool {
        !self.names.contains(name.as_str())
    }

    /// Queued behind every batch already handed to the writer thread, committed
    /// (`synchronous = FULL`) before it is answered.
    async fn delete_list(&self, name: &ListName) -> Result<bool, StorageError> {
        let (done, answer) = oneshot::channel();
        let stopped = || StorageError::Sqlite {
            list: Some(name.clone()),
            detail: "the sqlite writer thread stopped".into(),
        };
        if !self.send(Job::Delete {
            name: name.clone(),
            done,
        }) {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Queued to the writer thread like a delete.
    async fn purge_receipts(&self, before_ms: i64) -> Result<u64, StorageError> {
        let (done, answer) = oneshot::channel();
        let stopped = || StorageError::Sqlite {
            list: None,
            detail: "the sqlite writer thread stopped".into(),
        };
        if !self.send(Job::Purge { before_ms, done }) {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dates_text_is_what_display_writes() {
        let mut day = NaiveDate::from_ymd_opt(-3, 1, 1).unwrap();
        let mut checked = 0;
        while day < NaiveDate::from_ymd_opt(10_002, 1, 1).unwrap() {
            let mut buf = [0u8; 10];
            assert_eq!(date_text(day, &mut buf), day.to_string());
            day += chrono::Duration::days(97);
            checked += 1;
        }
        assert!(checked > 37_000);
        let mut buf = [0u8; 10];
        let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        assert_eq!(date_text(last, &mut buf), "9999-12-31");
    }
}
