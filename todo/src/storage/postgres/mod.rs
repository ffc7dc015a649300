//! PostgreSQL storage (`storage.backend = "postgres"`, `storage.url`): entries as
//! rows, a store writes its change, and a batch of any number of lists commits in
//! one transaction on a pooled connection (`tokio-postgres` + `deadpool-postgres`).
//! Its SQL text and row mapping are in `sql.rs`, the classification of its failures
//! in `fail.rs`, the cluster's tables and statements in `cluster.rs`.
//!
//! # Schema
//!
//! Created at open, idempotently, under an advisory lock (so nodes opening the same
//! database at once do not race), in the PostgreSQL schema `sluicegate` (another
//! name with [`PostgresOptions::schema`]):
//!
//! ```sql
//! CREATE TABLE sluicegate.meta    (key text PRIMARY KEY, value text NOT NULL);  -- ('schema', '1')
//! CREATE TABLE sluicegate.lists   (name text PRIMARY KEY, next_id bigint NOT NULL);
//! CREATE TABLE sluicegate.entries (list text NOT NULL REFERENCES sluicegate.lists ON DELETE CASCADE,
//!                                  id bigint NOT NULL, date date NOT NULL, title text NOT NULL,
//!                                  done boolean NOT NULL DEFAULT false, PRIMARY KEY (list, id));
//! CREATE TABLE sluicegate.receipts (list text NOT NULL REFERENCES sluicegate.lists ON DELETE CASCADE,
//!                                  key text NOT NULL, request text NOT NULL, entry text NOT NULL,
//!                                  at_ms bigint NOT NULL, PRIMARY KEY (list, key));
//! ```
//!
//! One `lists` row per list holds its id counter; `receipts` holds the receipts of
//! keyed writes (see `crate::domain::receipt`), written in the same transaction as
//! the entries they describe and read with them in one snapshot. A cluster node's stores are fenced:
//! the transaction first share-locks each list's row in `fences` where it still
//! equals the store's epoch, and a list whose fence moved fails before anything is
//! written (the cluster's tables and statements are in the `cluster` submodule,
//! `src/storage/postgres/cluster.rs`). A batch is a handful of statements whatever its size
//! (rows go as arrays through `unnest`), inside one transaction: all its lists are
//! committed, or none. If that transaction fails on a database error, each list is
//! tried in a transaction of its own, so one bad list fails alone; a connection
//! failure or a timeout fails every list of the batch.
//!
//! A database that is down or unreachable at open does not stop the open: the
//! schema is created at the first operation that reaches it, and until then every
//! operation fails with [`StorageError::Postgres`] within
//! [`PostgresOptions::timeout`] (a connection attempt within `connect_timeout`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tokio_postgres::NoTls;

use super::{ListWrite, Storage, StorageError};
use crate::domain::{Entry, ListName, TodoList};

type Results = Vec<Result<(), StorageError>>;
type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

mod cluster;
mod fail;
mod sql;

use fail::{error, Fail, Failure};
use sql::{db_id, EntryColumns, ReceiptColumns, Sql};

/// Settings of the PostgreSQL backend besides its URL.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// The PostgreSQL schema (namespace) holding the tables: lower-case ASCII
    /// letters, digits and `_`, starting with a letter.
    pub schema: String,
    /// Most connections in the pool.
    pub max_connections: usize,
    /// Bound on one operation (waiting for a connection, connecting, the queries
    /// and the commit): past it the operation fails and its connection is dropped.
    pub timeout: Duration,
    /// Bound on establishing one connection, used when the URL sets no
    /// `connect_timeout` of its own.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: "sluicegate".into(),
            max_connections: 16,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// Lists in a PostgreSQL database.
pub struct PostgresStorage {
    pool: Pool,
    sql: Sql,
    options: PostgresOptions,
    /// Set once the schema exists (created at the first operation that reaches the database).
    schema_ready: OnceCell<()>,
    /// Set once this process has checked the cluster's shard count and lease rows.
    cluster_ready: std::sync::OnceLock<()>,
}

impl PostgresStorage {
    /// Opens the database at `url` (`postgres://user@host:port/db` or
    /// `host=/run/postgresql port=5432 user=me dbname=todo`) and creates the schema.
    /// A bad URL or options fail here; a database that cannot be reached is logged
    /// and the schema is created at the first operation that reaches it.
    pub async fn open(url: &str, options: PostgresOptions) -> Result<Self, StorageError> {
        let storage = Self::connect_lazily(url, options)?;
        if let Err(e) = storage
            .ready(Instant::now() + storage.options.timeout)
            .await
        {
            tracing::warn!(error = %e.source(), "postgres is not reachable at open; retrying at each operation");
        }
        Ok(storage)
    }

    /// Builds the pool without connecting.
    fn connect_lazily(url: &str, options: PostgresOptions) -> Result<Self, StorageError> {
        let bad = |what: String| StorageError::Postgres {
            list: None,
            source: Arc::new(Failure(what)),
        };
        let s = &options.schema;
        let valid = s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && s.len() <= 63;
        if !valid {
            return Err(bad(format!(
                "schema name \"{s}\" must be lower-case ASCII letters, digits and _, starting with a letter"
            )));
        }
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| bad(format!("bad connection URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        // A transaction is never idle longer than an operation may take: past that,
        // PostgreSQL ends it and frees its row locks. Without this, a node frozen
        // (SIGSTOP, a VM pause) in the middle of a commit would hold its lists' rows,
        // and the activation of the node taking its shards over would wait on them
        // for as long as the freeze lasts.
        let idle = options.timeout.as_millis().max(100);
        let server_options = format!(
            "{} -c idle_in_transaction_session_timeout={idle}",
            config.get_options().unwrap_or_default()
        );
        config.options(server_options.trim());
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(|e| bad(format!("connection pool: {e}")))?;
        Ok(PostgresStorage {
            pool,
            sql: Sql::new(s),
            options,
            schema_ready: OnceCell::new(),
            cluster_ready: std::sync::OnceLock::new(),
        })
    }

    /// The PostgreSQL schema holding this backend's tables.
    pub fn schema(&self) -> &str {
        &self.options.schema
    }

    /// Drops the schema with every list in it (experiments use a schema per run).
    pub async fn drop_schema(&self) -> Result<(), StorageError> {
        let deadline = Instant::now() + self.options.timeout;
        let fail = |f: Fail| error(None, &f);
        let client = self.get(deadline).await.map_err(fail)?;
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.options.schema);
        match tokio::time::timeout_at(deadline, client.batch_execute(&sql)).await {
            Ok(r) => r.map_err(|e| fail(Fail::from(e))),
            Err(_) => {
                drop(Object::take(client));
                Err(fail(self.timed_out()))
            }
        }
    }

    /// The list in the rows of the `load` and `load_receipts` queries (none: never stored).
    fn list_from_rows(
        &self,
        name: &ListName,
        (rows, receipts): &(Vec<tokio_postgres::Row>, Vec<tokio_postgres::Row>),
    ) -> Result<Option<TodoList>, StorageError> {
        let corrupt = |detail: String| StorageError::Corrupt {
            list: name.clone(),
            detail,
        };
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let next_id: i64 = first.try_get(0).map_err(|e| corrupt(e.to_string()))?;
        let next_id = u64::try_from(next_id)
            .map_err(|_| corrupt(format!("next_id {next_id} is negative")))?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(e) = EntryColumns::from_row(row, 1).map_err(corrupt)? {
                entries.push(e);
            }
        }
        let receipts = receipts
            .iter()
            .map(ReceiptColumns::from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt)?;
        TodoList::from_parts(next_id, entries)
            .map(|l| Some(l.with_receipts(receipts)))
            .map_err(corrupt)
    }

    /// A pooled connection, once the schema exists.
    async fn client(&self, deadline: Instant) -> Result<Object, Fail> {
        self.ready(deadline).await?;
        self.get(deadline).await
    }

    async fn get(&self, deadline: Instant) -> Result<Object, Fail> {
        match tokio::time::timeout_at(deadline, self.pool.get()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(Fail::Down(Arc::new(e))),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> Fail {
        Fail::Down(Arc::new(Failure(format!(
            "no answer from PostgreSQL within {}",
            humantime::format_duration(self.options.timeout)
        ))))
    }

    /// Creates the schema unless done already (concurrent callers wait for one try).
    async fn ready(&self, deadline: Instant) -> Result<(), Fail> {
        self.schema_ready
            .get_or_try_init(|| async {
                let mut client = self.get(deadline).await?;
                let create = async {
                    let tx = client.transaction().await?;
                    // One creator at a time across processes: CREATE ... IF NOT EXISTS
                    // alone can still collide on the catalog.
                    tx.execute("SELECT pg_advisory_xact_lock(7262916245)", &[])
                        .await?;
                    tx.batch_execute(&self.sql.create).await?;
                    tx.commit().await
                };
                match tokio::time::timeout_at(deadline, create).await {
                    Ok(r) => r.map_err(Fail::from),
                    Err(_) => {
                        drop(Object::take(client));
                        Err(self.timed_out())
                    }
                }
            })
            .await
            .map(|_| ())
    }

    /// The list's rows and its receipts' rows, read in one snapshot.
    async fn load_rows(
        &self,
        name: &ListName,
    ) -> Result<(Vec<tokio_postgres::Row>, Vec<tokio_postgres::Row>), Fail> {
        let deadline = Instant::now() + self.options.timeout;
        let mut client = self.client(deadline).await?;
        let sql = &self.sql;
        let op = async {
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let stmt = tx.prepare_cached(&sql.load).await?;
            let rows = tx.query(&stmt, &[&name.as_str()]).await?;
            let receipts = if rows.is_empty() {
                Vec::new()
            } else {
                let stmt = tx.prepare_cached(&sql.load_receipts).await?;
                tx.query(&stmt, &[&name.as_str()]).await?
            };
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>((rows, receipts))
        };
        let r = tokio::time::timeout_at(deadline, op).await;
        match r {
            Ok(r) => r.map_err(Fail::from),
            Err(_) => {
                drop(Object::take(client));
                Err(self.timed_out())
            }
        }
    }

    /// Commits `writes` in one transaction. With `fences` (one epoch per write),
    /// each list's row is written only where its fence still equals the write's
    /// epoch, and a row the commit creates has its fence checked under a share
    /// lock in `fences` (see `cluster.rs`): a list whose fence moved fails the whole
    /// attempt with [`Fail::Fenced`] (rolled back, nothing written), and a
    /// concurrent activation waits for this commit (so it loads what it wrote).
    async fn commit(
        &self,
        writes: &[&ListWrite],
        fences: Option<&[i64]>,
        deadline: Instant,
    ) -> Result<(), Fail> {
        let mut client = self.client(deadline).await?;
        let sql = &self.sql;
        let op = async {
            let tx = client.transaction().await?;
            let epochs: Option<std::collections::HashMap<&str, i64>> = fences.map(|f| {
                writes
                    .iter()
                    .zip(f)
                    .map(|(w, e)| (w.name.as_str(), *e))
                    .collect()
            });
            for round in rounds(writes) {
                write_round(&tx, sql, &round, epochs.as_ref()).await?;
            }
            tx.commit().await.map_err(Fail::from)
        };
        let r = tokio::time::timeout_at(deadline, op).await;
        match r {
            Ok(r) => r,
            Err(_) => {
                drop(Object::take(client));
                Err(self.timed_out())
            }
        }
    }

    /// Group commit of `writes` (fenced when `fences` is given): one transaction;
    /// when PostgreSQL refuses it, each list alone; when fences refuse some lists,
    /// the others again without them.
    async fn store_batch_with(&self, writes: &[ListWrite], fences: Option<&[i64]>) -> Results {
        if writes.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<Option<Result<(), StorageError>>> = writes.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..writes.len()).collect();
        while !pending.is_empty() {
            let refs: Vec<&ListWrite> = pending.iter().map(|&i| &writes[i]).collect();
            let epochs: Option<Vec<i64>> = fences.map(|f| pending.iter().map(|&i| f[i]).collect());
            let deadline = Instant::now() + self.options.timeout;
            match self.commit(&refs, epochs.as_deref(), deadline).await {
                Ok(()) => {
                    for &i in &pending {
                        out[i] = Some(Ok(()));
                    }
                    pending.clear();
                }
                Err(f @ Fail::Fenced(_)) => {
                    let Fail::Fenced(refused) = &f else {
                        unreachable!()
                    };
                    let refused: std::collections::HashSet<&str> =
                        refused.iter().map(|(n, _)| n.as_str()).collect();
                    pending.retain(|&i| {
                        let fenced = refused.contains(writes[i].name.as_str());
                        if fenced {
                            out[i] = Some(Err(error(Some(&writes[i].name), &f)));
                        }
                        !fenced
                    });
                }
                Err(Fail::Db(_)) if pending.len() > 1 => {
                    // One list's data was refused: the transaction rolled back whole;
                    // each list on its own, so the others are still stored.
                    for &i in &pending {
                        let w = &writes[i];
                        let deadline = Instant::now() + self.options.timeout;
                        let epoch = fences.map(|f| [f[i]]);
                        out[i] = Some(
                            self.commit(&[w], epoch.as_ref().map(|e| &e[..]), deadline)
                                .await
                                .map_err(|f| error(Some(&w.name), &f)),
                        );
                    }
                    pending.clear();
                }
                Err(f) => {
                    for &i in &pending {
                        out[i] = Some(Err(error(Some(&writes[i].name), &f)));
                    }
                    pending.clear();
                }
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(error(
                        None,
                        &Fail::Down(Arc::new(Failure("no result".into()))),
                    ))
                })
            })
            .collect()
    }
}

/// The lists' rows of a fenced commit, written only where their fence still equals
/// the write's epoch; a row that was not written (its fence moved: a newer owner
/// activated it) fails the commit, and a row the commit created has its fence
/// checked in `fences` ([`check_fences`]).
async fn upsert_fenced(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &Sql,
    names: &[&str],
    next_ids: &[i64],
    epochs: &std::collections::HashMap<&str, i64>,
) -> Result<(), Fail> {
    let fences: Vec<i64> = names
        .iter()
        .map(|n| epochs.get(n).copied().unwrap_or(-1))
        .collect();
    let stmt = tx.prepare_cached(&sql.upsert_lists_fenced).await?;
    let rows = tx.query(&stmt, &[&names, &next_ids, &fences]).await?;
    let mut written = std::collections::HashSet::with_capacity(rows.len());
    let (mut created, mut created_epochs) = (Vec::new(), Vec::new());
    for row in &rows {
        let name: String = row.get(0);
        let inserted: bool = row.get(1);
        if inserted {
            created_epochs.push(epochs.get(name.as_str()).copied().unwrap_or(-1));
            created.push(name.clone());
        }
        written.insert(name);
    }
    let refused: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !written.contains(*n))
        .collect();
    if !refused.is_empty() {
        return Err(fenced(tx, sql, refused).await?);
    }
    if created.is_empty() {
        return Ok(());
    }
    check_fences(
        tx,
        sql,
        created.iter().map(String::as_str).collect(),
        created_epochs,
    )
    .await
}

/// The fence check of the lists a fenced commit creates: share-locks each list's
/// fence row where it equals the epoch its write carries; any list without such a
/// row is refused.
async fn check_fences(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &Sql,
    names: Vec<&str>,
    epochs: Vec<i64>,
) -> Result<(), Fail> {
    let stmt = tx.prepare_cached(&sql.check_fences).await?;
    let passed: std::collections::HashSet<String> = tx
        .query(&stmt, &[&names, &epochs])
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    if passed.len() == names.len() {
        return Ok(());
    }
    let refused: Vec<&str> = names.into_iter().filter(|n| !passed.contains(*n)).collect();
    Err(fenced(tx, sql, refused).await?)
}

/// The refusal of a fenced commit: each refused list with the epoch its fence row
/// holds now (`None`: no row).
async fn fenced(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &Sql,
    refused: Vec<&str>,
) -> Result<Fail, Fail> {
    let stmt = tx.prepare_cached(&sql.fences_of).await?;
    let current: std::collections::HashMap<String, i64> = tx
        .query(&stmt, &[&refused])
        .await?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    Ok(Fail::Fenced(
        refused
            .into_iter()
            .map(|n| (n.to_string(), current.get(n).copied()))
            .collect(),
    ))
}

/// Splits a batch into rounds in which each list appears at most once, in order
/// (a statement may touch a row only once); the usual batch is one round.
fn rounds<'a>(writes: &[&'a ListWrite]) -> Vec<Vec<&'a ListWrite>> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut out: Vec<Vec<&ListWrite>> = Vec::new();
    for w in writes {
        let n = seen.entry(w.name.as_str()).or_insert(0);
        if out.len() <= *n {
            out.push(Vec::new());
        }
        out[*n].push(w);
        *n += 1;
    }
    out
}

/// Writes one round (each list at most once): the lists' rows first, then their
/// entries, whole or as their change.
async fn write_round(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &Sql,
    round: &[&ListWrite],
    epochs: Option<&std::collections::HashMap<&str, i64>>,
) -> Result<(), Fail> {
    let bad = |e: String| Fail::Db(Arc::new(Failure(e)));
    // A change is applied only onto a list that is stored; otherwise it is written whole.
    let with_change: Vec<&str> = round
        .iter()
        .filter(|w| w.change.is_some())
        .map(|w| w.name.as_str())
        .collect();
    let existing: std::collections::HashSet<String> = if with_change.is_empty() {
        Default::default()
    } else {
        let stmt = tx.prepare_cached(&sql.existing).await?;
        tx.query(&stmt, &[&with_change])
            .await?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    };

    let mut names = Vec::with_capacity(round.len());
    let mut next_ids = Vec::with_capacity(round.len());
    let mut whole = Vec::new();
    let mut gone_list = Vec::new();
    let mut gone_id = Vec::new();
    // Entries to write are borrowed from these snapshots.
    let mut snapshots: Vec<(&str, Vec<Entry>)> = Vec::new();
    let mut changed: Vec<(&str, &Entry)> = Vec::new();
    let mut receipts = ReceiptColumns::default();
    let (mut gone_receipt_list, mut gone_receipt_key) = (Vec::new(), Vec::new());
    for w in round {
        let name = w.name.as_str();
        names.push(name);
        next_ids.push(db_id(w.list.next_id()).map_err(bad)?);
        match &w.change {
            Some(change) if existing.contains(name) => {
                for (id, entry) in &change.entries {
                    match entry {
                        Some(e) => changed.push((name, e)),
                        None => {
                            gone_list.push(name);
                            gone_id.push(db_id(*id).map_err(bad)?);
                        }
                    }
                }
                for (key, receipt) in &change.receipts {
                    match receipt {
                        Some(r) => receipts.push(name, key, r),
                        None => {
                            gone_receipt_list.push(name);
                            gone_receipt_key.push(key.as_str());
                        }
                    }
                }
            }
            _ => {
                whole.push(name);
                snapshots.push((name, w.list.all_entries()));
                for (key, r) in w.list.receipts() {
                    receipts.push(name, key, r);
                }
            }
        }
    }
    let mut rows = EntryColumns::default();
    for (name, e) in changed {
        rows.push(name, e).map_err(bad)?;
    }
    for (name, entries) in &snapshots {
        for e in entries {
            rows.push(name, e).map_err(bad)?;
        }
    }

    match epochs {
        None => {
            let stmt = tx.prepare_cached(&sql.upsert_lists).await?;
            tx.execute(&stmt, &[&names, &next_ids]).await?;
        }
        Some(epochs) => upsert_fenced(tx, sql, &names, &next_ids, epochs).await?,
    }
    if !whole.is_empty() {
        let stmt = tx.prepare_cached(&sql.delete_all_entries).await?;
        tx.execute(&stmt, &[&whole]).await?;
        let stmt = tx.prepare_cached(&sql.delete_all_receipts).await?;
        tx.execute(&stmt, &[&whole]).await?;
    }
    if !gone_receipt_list.is_empty() {
        let stmt = tx.prepare_cached(&sql.delete_receipts).await?;
        tx.execute(&stmt, &[&gone_receipt_list, &gone_receipt_key])
            .await?;
    }
    if !receipts.is_empty() {
        let stmt = tx.prepare_cached(&sql.upsert_receipts).await?;
        tx.execute(&stmt, &receipts.params()).await?;
    }
    if !gone_list.is_empty() {
        let stmt = tx.prepare_cached(&sql.delete_entries).await?;
        tx.execute(&stmt, &[&gone_list, &gone_id]).await?;
    }
    if !rows.is_empty() {
        let stmt = tx.prepare_cached(&sql.upsert_entries).await?;
        tx.execute(&stmt, &rows.params()).await?;
    }
    Ok(())
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError> {
        let rows = self
            .load_rows(name)
            .await
            .map_err(|f| error(Some(name), &f))?;
        self.list_from_rows(name, &rows)
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
        let refs: Vec<&ListWrite> = writes.iter().collect();
        let deadline = Instant::now() + self.options.timeout;
        self.commit(&refs, None, deadline)
            .await
            .map_err(|f| error(lists.first().map(|(n, _)| n), &f))
    }

    async fn store_batch(&self, writes: &[ListWrite]) -> Results {
        self.store_batch_with(writes, None).await
    }

    async fn delete_list(&self, name: &ListName) -> Result<bool, StorageError> {
        let deadline = Instant::now() + self.options.timeout;
        let fail = |f: Fail| error(Some(name), &f);
        let client = self.client(deadline).await.map_err(fail)?;
        let sql = &self.sql.delete_list;
        // One statement, committed on its own: the entries go with the list row
        // (ON DELETE CASCADE), and it is durable when PostgreSQL answers.
        let op = async {
            let stmt = client.prepare_cached(sql).await?;
            client.execute(&stmt, &[&name.as_str()]).await
        };
        match tokio::time::timeout_at(deadline, op).await {
            Ok(r) => Ok(r.map_err(|e| fail(Fail::from(e)))? > 0),
            Err(_) => {
                drop(Object::take(client));
                Err(fail(self.timed_out()))
            }
        }
    }

    async fn purge_receipts(&self, before_ms: i64) -> Result<u64, StorageError> {
        let deadline = Instant::now() + self.options.timeout;
        let fail = |f: Fail| error(None, &f);
        let client = self.client(deadline).await.map_err(fail)?;
        let sql = &self.sql.purge_receipts;
        let op = async {
            let stmt = client.prepare_cached(sql).await?;
            client.execute(&stmt, &[&before_ms]).await
        };
        match tokio::time::timeout_at(deadline, op).await {
            Ok(r) => r.map_err(|e| fail(Fail::from(e))),
            Err(_) => {
                drop(Object::take(client));
                Err(fail(self.timed_out()))
            }
        }
    }

    async fn list_names(&self) -> Result<Vec<ListName>, StorageError> {
        let deadline = Instant::now() + self.options.timeout;
        let fail = |f: Fail| error(None, &f);
        let client = self.client(deadline).await.map_err(fail)?;
        let sql = &self.sql.names;
        let op = async {
            let stmt = client.prepare_cached(sql).await?;
            client.query(&stmt, &[]).await
        };
        let rows = match tokio::time::timeout_at(deadline, op).await {
            Ok(r) => r.map_err(|e| fail(Fail::from(e)))?,
            Err(_) => {
                drop(Object::take(client));
                return Err(fail(self.timed_out()));
            }
        };
        let mut names: Vec<ListName> = rows
            .iter()
            .filter_map(|r| r.try_get::<_, String>(0).ok())
            .filter_map(|n| ListName::new(n).ok())
            .collect();
        // Byte order, whatever the database's collation.
        names.sort();
        Ok(names)
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}
