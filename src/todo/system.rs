//! `TodoSystem`: the whole chapter 7 system started from one config: list servers
//! started on first use through a registry, a database pool, and graceful shutdown.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::NaiveDate;

use super::database::{Database, StoreError};
use super::server::{ListCall, ListError, ListReply, ListServer, Write, ROLE};
use super::{validate_title, Entry, EntryUpdate, ListName, TodoError};
use crate::config::{AckMode, Config, MailboxConfig};
use crate::mailbox::Policy;
use crate::runtime::{
    CallError, Registry, RegistryCallError, RegistryConfig, Restart, Routing, Spec, StartError,
    Supervisor,
};
use crate::storage::{self, Storage};

/// Why a to-do request failed. Each variant maps to one HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TodoSystemError {
    /// Bad input (title, date): 400.
    Invalid(TodoError),
    /// No entry with this id: 404.
    NotFound(u64),
    /// A mailbox refused, dropped, shed or expired the request: 503.
    Overloaded(CallError),
    /// No answer within the call timeout: 504.
    Timeout,
    /// The list could not be started (storage failure, damaged data, too many
    /// live lists) or the system is stopping: 503.
    Unavailable(String),
    /// Applied in memory but not stored: 503.
    NotDurable(StoreError),
    /// The list server panicked while handling this request (a bug): 500.
    Crashed,
}

impl std::fmt::Display for TodoSystemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TodoSystemError::Invalid(e) => e.fmt(f),
            TodoSystemError::NotFound(id) => write!(f, "no entry with id {id}"),
            TodoSystemError::Overloaded(e) => write!(f, "overloaded: {e}"),
            TodoSystemError::Timeout => f.write_str("timed out"),
            TodoSystemError::Unavailable(e) => write!(f, "list unavailable: {e}"),
            TodoSystemError::NotDurable(e) => write!(
                f,
                "the write was applied in memory but is not durable ({e}); it may be lost on restart"
            ),
            TodoSystemError::Crashed => f.write_str("the list server crashed handling this request"),
        }
    }
}

impl std::error::Error for TodoSystemError {}

impl From<RegistryCallError> for TodoSystemError {
    fn from(e: RegistryCallError) -> Self {
        match e {
            RegistryCallError::Start(StartError::ShuttingDown) => {
                TodoSystemError::Unavailable("shutting down".into())
            }
            RegistryCallError::Start(e) => TodoSystemError::Unavailable(e.to_string()),
            RegistryCallError::Call(CallError::Timeout) => TodoSystemError::Timeout,
            RegistryCallError::Call(CallError::Panicked) => TodoSystemError::Crashed,
            RegistryCallError::Call(CallError::Stopped) => {
                TodoSystemError::Unavailable("list server stopped".into())
            }
            RegistryCallError::Call(e) => TodoSystemError::Overloaded(e),
            RegistryCallError::Cast(crate::runtime::CastError::Stopped) => {
                TodoSystemError::Unavailable("list server stopped".into())
            }
            RegistryCallError::Cast(crate::runtime::CastError::Timeout) => TodoSystemError::Timeout,
            RegistryCallError::Cast(crate::runtime::CastError::Rejected) => {
                TodoSystemError::Overloaded(CallError::Rejected)
            }
        }
    }
}

impl From<ListError> for TodoSystemError {
    fn from(e: ListError) -> Self {
        match e {
            ListError::Todo(TodoError::NotFound(id)) => TodoSystemError::NotFound(id),
            ListError::Todo(e) => TodoSystemError::Invalid(e),
            ListError::NotDurable(e) => TodoSystemError::NotDurable(e),
        }
    }
}

/// The result of a write: done (with its acknowledgement) or merely accepted (ack `none`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Ack `none`: queued to the list server; nothing says it will be applied.
    Accepted,
    /// Applied (and durable, under ack `durable`): the entry written or deleted.
    Done(Entry),
}

/// How many times a call its server never handled is sent (see `TodoSystem::call`).
const CALL_TRIES: u32 = 3;

/// Settings that may change while running (policy reload).
struct Live {
    /// Policies per role; new list servers read theirs here.
    mailbox: MailboxConfig,
}

struct Inner {
    /// One list server per name, started on first use, stopped when idle.
    registry: Registry<ListName, ListServer>,
    /// The worker pool in front of storage.
    db: Database,
    /// Supervises list servers and database workers.
    supervisor: Supervisor,
    /// Ack used when a request names none.
    default_ack: AckMode,
    /// Timeout of every call, end to end.
    call_timeout: Duration,
    /// Reloadable settings.
    live: Arc<RwLock<Live>>,
    /// `true` once shutdown began. Every request holds a read guard while it
    /// runs, so shutdown (taking the write guard) waits for requests in flight
    /// and no request reaches a list server after it: none can start a server
    /// that shutdown would miss or have a write acknowledged that is never stored.
    closed: tokio::sync::RwLock<bool>,
}

/// The to-do system: cheap to clone, one per process.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use sluicegate::config::Config;
/// use sluicegate::todo::{ListName, TodoSystem};
/// let system = TodoSystem::start(&Config::builtin(), std::path::Path::new("./data")).await?;
/// let list = ListName::new("groceries")?;
/// let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
/// system.add_entry(&list, date, "Dentist", None).await?;
/// let entries = system.entries(&list, Some(date)).await?;
/// assert_eq!(entries[0].title, "Dentist");
/// system.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TodoSystem {
    inner: Arc<Inner>,
}

impl TodoSystem {
    /// Starts the system from config, opening the configured backend in `data_dir`.
    pub async fn start(config: &Config, data_dir: &Path) -> Result<Self, StartSystemError> {
        let backend = match config.storage.backend {
            crate::config::StorageBackend::Files => storage::BackendKind::Files,
            crate::config::StorageBackend::Sqlite => storage::BackendKind::Sqlite,
            crate::config::StorageBackend::Memory => storage::BackendKind::Memory,
            crate::config::StorageBackend::Postgres => {
                let url = config.storage.url.as_deref().unwrap_or_default();
                let storage = storage::open_postgres(
                    url,
                    config.system.call_timeout,
                    config.database.workers,
                )
                .await
                .map_err(|e| StartSystemError(e.to_string()))?;
                return Self::start_with_storage(config, storage).await;
            }
        };
        let storage =
            storage::open(backend, data_dir).map_err(|e| StartSystemError(e.to_string()))?;
        Self::start_with_storage(config, storage).await
    }

    /// Starts the system on a ready storage backend (e.g. a fault-injecting one).
    pub async fn start_with_storage(
        config: &Config,
        storage: Arc<dyn Storage>,
    ) -> Result<Self, StartSystemError> {
        crate::mailbox::metrics::describe();
        crate::runtime::metrics::describe();
        super::database::describe();
        let supervisor = Supervisor::default();
        let routing = match config.database.routing {
            crate::config::Routing::Routed => Routing::Routed,
            crate::config::Routing::Direct => Routing::Direct,
        };
        let db = Database::start(
            storage,
            config.database.workers,
            routing,
            config.mailbox.database_worker.clone(),
            config.mailbox.database.clone(),
            &supervisor,
        )
        .await
        .map_err(|e| StartSystemError(e.to_string()))?;
        let live = Arc::new(RwLock::new(Live {
            mailbox: config.mailbox.clone(),
        }));
        let call_timeout = config.system.call_timeout;
        let (db2, live2) = (db.clone(), live.clone());
        let registry = Registry::new(
            ROLE,
            supervisor.clone(),
            RegistryConfig {
                idle_timeout: Some(config.system.idle_timeout),
                max_live: config.system.max_live_servers,
            },
            move |name: &ListName| {
                let policy = live2
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .mailbox
                    .todo_server
                    .clone();
                let (db, name2) = (db2.clone(), name.clone());
                Spec::new(ROLE, policy, move || {
                    ListServer::new(name2.clone(), db.clone(), call_timeout)
                })
                .name(name.as_str())
                .restart(Restart::Transient)
            },
        );
        Ok(TodoSystem {
            inner: Arc::new(Inner {
                registry,
                db,
                supervisor,
                default_ack: config.system.default_ack,
                call_timeout,
                live,
                closed: tokio::sync::RwLock::new(false),
            }),
        })
    }

    /// Admits a request unless shutdown began; hold the guard while it runs.
    async fn admit(&self) -> Result<tokio::sync::RwLockReadGuard<'_, bool>, TodoSystemError> {
        let guard = self.inner.closed.read().await;
        if *guard {
            return Err(TodoSystemError::Unavailable(
                "the to-do system is shut down".into(),
            ));
        }
        Ok(guard)
    }

    /// Calls the list's server. A call its server never handled (it was queued
    /// when the server crashed or was given up, and answered `Stopped`) is sent
    /// again, to the restarted or a fresh server, within the same call timeout:
    /// requests queued behind a crashing one do not fail with it.
    async fn call(&self, list: &ListName, call: ListCall) -> Result<ListReply, TodoSystemError> {
        let _admitted = self.admit().await?;
        let deadline = tokio::time::Instant::now() + self.inner.call_timeout;
        let mut tries = 0;
        let reply = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tries += 1;
            match self.inner.registry.call(list, call.clone(), left).await {
                Err(RegistryCallError::Call(CallError::Stopped))
                    if tries < CALL_TRIES && !left.is_zero() =>
                {
                    tokio::task::yield_now().await;
                }
                other => break other?,
            }
        };
        Ok(reply?)
    }

    async fn write(
        &self,
        list: &ListName,
        write: Write,
        ack: Option<AckMode>,
    ) -> Result<WriteOutcome, TodoSystemError> {
        let ack = ack.unwrap_or(self.inner.default_ack);
        if ack == AckMode::None {
            let _admitted = self.admit().await?;
            let cast = tokio::time::timeout(
                self.inner.call_timeout,
                self.inner.registry.cast(list, write),
            )
            .await
            .map_err(|_| TodoSystemError::Timeout)?;
            cast?;
            return Ok(WriteOutcome::Accepted);
        }
        match self.call(list, ListCall::Write(write, ack)).await? {
            ListReply::Entry(e) => Ok(WriteOutcome::Done(e)),
            ListReply::Entries(_) => unreachable!("a write is answered with its entry"),
        }
    }

    /// Adds an entry; the answer comes after `ack` (default: the configured one).
    pub async fn add_entry(
        &self,
        list: &ListName,
        date: NaiveDate,
        title: &str,
        ack: Option<AckMode>,
    ) -> Result<WriteOutcome, TodoSystemError> {
        validate_title(title).map_err(TodoSystemError::Invalid)?;
        let write = Write::Add {
            date,
            title: title.to_string(),
        };
        self.write(list, write, ack).await
    }

    /// Changes an entry's date and/or title.
    pub async fn update_entry(
        &self,
        list: &ListName,
        id: u64,
        update: EntryUpdate,
        ack: Option<AckMode>,
    ) -> Result<WriteOutcome, TodoSystemError> {
        if let Some(title) = &update.title {
            validate_title(title).map_err(TodoSystemError::Invalid)?;
        }
        self.write(list, Write::Update { id, update }, ack).await
    }

    /// Deletes an entry.
    pub async fn delete_entry(
        &self,
        list: &ListName,
        id: u64,
        ack: Option<AckMode>,
    ) -> Result<WriteOutcome, TodoSystemError> {
        self.write(list, Write::Delete { id }, ack).await
    }

    /// Entries of `date` (or all) in id order; an unknown list is empty.
    pub async fn entries(
        &self,
        list: &ListName,
        date: Option<NaiveDate>,
    ) -> Result<Vec<Entry>, TodoSystemError> {
        match self.call(list, ListCall::Entries(date)).await? {
            ListReply::Entries(e) => Ok(e),
            ListReply::Entry(_) => unreachable!("a read is answered with entries"),
        }
    }

    /// Fault injection for tests and experiments: makes the list's server panic.
    pub async fn inject_panic(&self, list: &ListName) -> Result<(), TodoSystemError> {
        match self.call(list, ListCall::Panic).await {
            Err(TodoSystemError::Crashed) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => unreachable!("the panic request never returns"),
        }
    }

    /// Applies new mailbox policies to every live mailbox (and to servers started
    /// from now on) without losing an accepted message.
    pub fn reload_policies(
        &self,
        mailbox: &MailboxConfig,
    ) -> Result<(), crate::mailbox::InvalidPolicy> {
        for p in [
            &mailbox.todo_server,
            &mailbox.database,
            &mailbox.database_worker,
        ] {
            p.validate()?;
        }
        self.inner
            .live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .mailbox = mailbox.clone();
        for name in self.inner.registry.live_names() {
            if let Some(server) = self.inner.registry.get(&name) {
                server.set_policy(mailbox.todo_server.clone())?;
            }
        }
        for w in self.inner.db.pool().workers() {
            w.set_policy(mailbox.database_worker.clone())?;
        }
        if let Some(r) = self.inner.db.pool().router() {
            r.set_policy(mailbox.database.clone())?;
        }
        Ok(())
    }

    /// Switches the database's mailboxes from a policy that may lose a store
    /// (see [`Policy::never_drops`]) to `unbounded`, keeping everything queued. Used
    /// at shutdown, when memory is bounded by the number of live lists and losing a
    /// store would lose writes.
    fn make_database_lossless(&self) {
        fn lossless<S: crate::runtime::Server>(server: &crate::runtime::ServerRef<S>) {
            if !server.stats().policy.never_drops() {
                if let Err(e) = server.set_policy(Policy::Unbounded) {
                    tracing::error!(error = %e, "could not make the database lossless for shutdown");
                }
            }
        }
        let pool = self.inner.db.pool();
        pool.workers().iter().for_each(lossless);
        if let Some(router) = pool.router() {
            lossless(router);
        }
    }

    /// Number of live list servers.
    pub fn live_lists(&self) -> usize {
        self.inner.registry.len()
    }

    /// The database (stats of its workers, the backend).
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// The list registry (for stats and experiments).
    pub fn registry(&self) -> &Registry<ListName, ListServer> {
        &self.inner.registry
    }

    /// Mailbox accounting summed per role over every live mailbox of the role
    /// (list servers, database workers, the router when routed).
    pub fn mailbox_stats(&self) -> Vec<RoleStats> {
        let mut lists = RoleStats::new(ROLE);
        for name in self.inner.registry.live_names() {
            if let Some(server) = self.inner.registry.get(&name) {
                lists.add(&server.stats());
            }
        }
        let mut workers = RoleStats::new(super::database::WORKER_ROLE);
        for w in self.inner.db.pool().workers() {
            workers.add(&w.stats());
        }
        let mut out = vec![lists, workers];
        if let Some(r) = self.inner.db.pool().router() {
            let mut router = RoleStats::new(super::database::ROUTER_ROLE);
            router.add(&r.stats());
            out.push(router);
        }
        out
    }

    /// Supervisor events (restarts, escalations).
    pub fn supervisor(&self) -> &Supervisor {
        &self.inner.supervisor
    }

    /// Graceful shutdown: new requests are refused (`Unavailable`), requests in
    /// flight finish (each within the call timeout), every list server stops
    /// taking messages and handles what it has queued (writes already
    /// acknowledged `applied` included), then the database writes every queued
    /// store and stops.
    pub async fn shutdown(&self) {
        *self.inner.closed.write().await = true;
        // Every store from here on (the list servers' final ones) may be the last
        // copy of applied writes: the database must not drop, shed or refuse it.
        self.make_database_lossless();
        self.inner.registry.stop_all(true).await;
        self.inner.db.stop().await;
    }
}

/// Accounting of every mailbox of one role, summed (peak depth: the largest).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoleStats {
    /// The role.
    pub role: String,
    /// Mailboxes summed.
    pub mailboxes: usize,
    /// Messages sent.
    pub sent: u64,
    /// Messages by outcome label.
    pub outcomes: std::collections::BTreeMap<String, u64>,
    /// Messages queued now, summed.
    pub depth: usize,
    /// The largest peak depth of one mailbox.
    pub peak_depth: usize,
}

impl RoleStats {
    fn new(role: &str) -> Self {
        RoleStats {
            role: role.to_string(),
            ..Default::default()
        }
    }

    /// Adds one mailbox's snapshot.
    pub fn add(&mut self, s: &crate::mailbox::Stats) {
        self.mailboxes += 1;
        self.sent += s.sent;
        for o in crate::mailbox::Outcome::ALL {
            *self.outcomes.entry(o.label().to_string()).or_default() += s.get(o);
        }
        self.depth += s.depth;
        self.peak_depth = self.peak_depth.max(s.peak_depth);
    }
}

/// The system could not start (storage could not be opened, bad policy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartSystemError(pub String);

impl std::fmt::Display for StartSystemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not start the to-do system: {}", self.0)
    }
}

impl std::error::Error for StartSystemError {}
