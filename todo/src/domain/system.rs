//! `TodoSystem`: the whole chapter 7 system started from its [`Settings`] and a
//! storage backend: list servers started on first use through a registry, a
//! database pool, and graceful shutdown. (Starting it from a config file, with the
//! configured backend opened, is [`crate::start`]'s job, a layer above.)
//! (Slightly over 500 lines: one public method per operation of the API, each with
//! its retry and error mapping.)

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::NaiveDate;

use super::database::{Database, StoreError};
use super::port::{Storage, StorageError};
use super::published::Published;
use super::server::{ListCall, ListError, ListServer, Write, ROLE};
use super::settings::{AckMode, Policies, Settings};
use super::{validate_title, Entry, EntryUpdate, ListName, TodoError};
use sluicegate::mailbox::Policy;
use sluicegate::runtime::{
    CallError, Registry, RegistryCallError, RegistryConfig, ReplyTo, Restart, Spec, StartError,
    Supervisor,
};

/// Why a to-do request failed. Each variant maps to one HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TodoSystemError {
    /// Bad input (title, date): 400.
    Invalid(TodoError),
    /// No entry with this id: 404.
    NotFound(u64),
    /// No list with this name (to delete): 404.
    ListNotFound(ListName),
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
            TodoSystemError::ListNotFound(name) => write!(f, "no list named \"{name}\""),
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
            RegistryCallError::Cast(sluicegate::runtime::CastError::Stopped) => {
                TodoSystemError::Unavailable("list server stopped".into())
            }
            RegistryCallError::Cast(sluicegate::runtime::CastError::Timeout) => {
                TodoSystemError::Timeout
            }
            RegistryCallError::Cast(_) => TodoSystemError::Overloaded(CallError::Rejected),
            // A kind of failure this version does not know: the request was not done.
            _ => TodoSystemError::Unavailable(e.to_string()),
        }
    }
}

impl From<ListError> for TodoSystemError {
    fn from(e: ListError) -> Self {
        match e {
            ListError::Todo(TodoError::NotFound(id)) => TodoSystemError::NotFound(id),
            ListError::Todo(e) => TodoSystemError::Invalid(e),
            ListError::NotDurable(e) => TodoSystemError::NotDurable(e),
            ListError::NotDeleted(e) => {
                TodoSystemError::Unavailable(format!("the list could not be deleted: {e}"))
            }
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

/// Settings that may change while running (SIGHUP reload).
struct Live {
    /// Policies per role; new list servers read theirs here.
    policies: Policies,
    /// Ack used when a request names none.
    default_ack: AckMode,
}

struct Inner {
    /// One list server per name, started on first use, stopped when idle.
    registry: Registry<ListName, ListServer>,
    /// The worker pool in front of storage.
    db: Database,
    /// The latest applied state of every live list, which reads load directly.
    published: Arc<Published>,
    /// Supervises list servers and database workers.
    supervisor: Supervisor,
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
/// use sluicegate_todo::config::Config;
/// use sluicegate_todo::domain::{ListName, TodoSystem};
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
    /// Starts the system with `settings` (or a config, which converts into them)
    /// on a ready storage backend (e.g. a fault-injecting one). To open the
    /// backend a config names, see `TodoSystem::start` in [`crate::start`].
    pub async fn start_with_storage(
        settings: impl Into<Settings>,
        storage: Arc<dyn Storage>,
    ) -> Result<Self, StartSystemError> {
        let settings: Settings = settings.into();
        sluicegate::mailbox::metrics::describe();
        sluicegate::runtime::metrics::describe();
        super::database::describe();
        let supervisor = Supervisor::default();
        let db = Database::start(
            storage,
            settings.database_workers,
            settings.routing,
            settings.policies.database_worker.clone(),
            settings.policies.database.clone(),
            &supervisor,
        )
        .await
        .map_err(StartSystemError::Database)?;
        let live = Arc::new(RwLock::new(Live {
            policies: settings.policies.clone(),
            default_ack: settings.default_ack,
        }));
        let call_timeout = settings.call_timeout;
        let published = Arc::new(Published::default());
        let (db2, live2, published2) = (db.clone(), live.clone(), published.clone());
        let registry = Registry::new(
            ROLE,
            supervisor.clone(),
            RegistryConfig {
                idle_timeout: Some(settings.idle_timeout),
                max_live: settings.max_live_servers,
            },
            move |name: &ListName| {
                let policy = live2
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .policies
                    .todo_server
                    .clone();
                let (db, name2, published) = (db2.clone(), name.clone(), published2.clone());
                Spec::new(ROLE, policy, move || {
                    ListServer::new(name2.clone(), db.clone(), call_timeout)
                        .publishing_to(&published)
                })
                .name(name.as_str())
                .restart(Restart::Transient)
            },
        );
        Ok(TodoSystem {
            inner: Arc::new(Inner {
                registry,
                db,
                published,
                supervisor,
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
    ///
    /// `request` builds the request around its reply handle, once per try.
    async fn call<R>(
        &self,
        list: &ListName,
        request: impl Fn(ReplyTo<R>) -> ListCall,
    ) -> Result<R, TodoSystemError> {
        let _admitted = self.admit().await?;
        let deadline = tokio::time::Instant::now() + self.inner.call_timeout;
        let mut tries = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tries += 1;
            match self.inner.registry.call(list, &request, left).await {
                Err(RegistryCallError::Call(CallError::Stopped))
                    if tries < CALL_TRIES && !left.is_zero() =>
                {
                    tokio::task::yield_now().await;
                }
                other => return Ok(other?),
            }
        }
    }

    async fn write(
        &self,
        list: &ListName,
        write: Write,
        ack: Option<AckMode>,
    ) -> Result<WriteOutcome, TodoSystemError> {
        let ack = ack.unwrap_or_else(|| self.default_ack());
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
        let entry = self
            .call(list, |r| ListCall::Write(write.clone(), ack, r))
            .await??;
        Ok(WriteOutcome::Done(entry))
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
    ///
    /// A live list is read from the state its server published (no message, no
    /// wait in its mailbox), which includes every write acknowledged before this
    /// call began; a list with no live server is loaded by a server started for it.
    pub async fn entries(
        &self,
        list: &ListName,
        date: Option<NaiveDate>,
    ) -> Result<Vec<Entry>, TodoSystemError> {
        {
            let _admitted = self.admit().await?;
            if let Some(published) = self.inner.published.load(list) {
                return Ok(match date {
                    Some(d) => published.entries(d),
                    None => published.all_entries(),
                });
            }
        }
        self.call(list, |r| ListCall::Entries(date, r)).await
    }

    /// How many lists are read without a message: live servers that have
    /// published their loaded list.
    pub fn published_lists(&self) -> usize {
        self.inner.published.len()
    }

    /// Deletes a whole list: gone from storage (durably: the backend has synced the
    /// delete) when this returns `Ok`, and its list server stopped, so the name's
    /// next request starts a fresh, empty list with ids from 1. A list never
    /// written is [`TodoSystemError::ListNotFound`].
    pub async fn delete_list(&self, list: &ListName) -> Result<(), TodoSystemError> {
        let reply = self.call(list, ListCall::DeleteList).await;
        // Stopped either way (for an unknown list, the server the call started),
        // after handling anything queued behind the delete on the fresh list.
        self.inner.registry.stop(list, true).await;
        if reply?? {
            Ok(())
        } else {
            Err(TodoSystemError::ListNotFound(list.clone()))
        }
    }

    /// Fault injection for tests and experiments: makes the list's server panic
    /// (cargo feature `fault-injection`).
    ///
    /// # Errors
    ///
    /// Why the panic request did not reach the list server (overload, shutdown).
    #[cfg(feature = "fault-injection")]
    pub async fn inject_panic(&self, list: &ListName) -> Result<(), TodoSystemError> {
        match self.call(list, ListCall::Panic).await {
            Err(TodoSystemError::Crashed) => Ok(()),
            Err(e) => Err(e),
            // The handler panics before it could answer.
            Ok(()) => Ok(()),
        }
    }

    /// The ack used when a request names none (changes on reload).
    pub fn default_ack(&self) -> AckMode {
        self.inner
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .default_ack
    }

    /// The mailbox policies in force (changes on reload).
    pub fn policies(&self) -> Policies {
        self.inner
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .policies
            .clone()
    }

    /// Applies what can change while running: the mailbox policies (see
    /// [`TodoSystem::reload_policies`]) and the default ack. The rest (storage,
    /// workers, routing, timeouts, the live-server cap) is fixed at start.
    pub fn reload(
        &self,
        policies: impl Into<Policies>,
        default_ack: AckMode,
    ) -> Result<(), sluicegate::mailbox::InvalidPolicy> {
        self.reload_policies(policies)?;
        self.inner
            .live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .default_ack = default_ack;
        Ok(())
    }

    /// Applies new mailbox policies (or a config's `[mailbox]` section, which
    /// converts into them) to every live mailbox, and to servers started from now
    /// on, without losing an accepted message. Invalid policies change nothing.
    pub fn reload_policies(
        &self,
        policies: impl Into<Policies>,
    ) -> Result<(), sluicegate::mailbox::InvalidPolicy> {
        let policies: Policies = policies.into();
        policies.validate()?;
        self.inner
            .live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .policies = policies.clone();
        for name in self.inner.registry.live_names() {
            if let Some(server) = self.inner.registry.get(&name) {
                server.set_policy(policies.todo_server.clone())?;
            }
        }
        for w in self.inner.db.pool().workers() {
            w.set_policy(policies.database_worker.clone())?;
        }
        if let Some(r) = self.inner.db.pool().router() {
            r.set_policy(policies.database.clone())?;
        }
        Ok(())
    }

    /// Switches the database's mailboxes from a policy that may lose a store
    /// (see [`Policy::never_drops`]) to `unbounded`, keeping everything queued. Used
    /// at shutdown, when memory is bounded by the number of live lists and losing a
    /// store would lose writes.
    fn make_database_lossless(&self) {
        fn lossless<S: sluicegate::runtime::Server>(server: &sluicegate::runtime::ServerRef<S>) {
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
    pub fn add(&mut self, s: &sluicegate::mailbox::Stats) {
        self.mailboxes += 1;
        self.sent += s.sent;
        for o in sluicegate::mailbox::Outcome::ALL {
            *self.outcomes.entry(o.label().to_string()).or_default() += s.get(o);
        }
        self.depth += s.depth;
        self.peak_depth = self.peak_depth.max(s.peak_depth);
    }
}

/// The system could not start: its storage could not be opened, or its database
/// pool could not be started (e.g. a bad policy). The cause is the error's
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum StartSystemError {
    /// The storage backend could not be opened.
    #[error("could not start the to-do system: {0}")]
    Storage(#[source] StorageError),
    /// The database pool could not be started.
    #[error("could not start the to-do system: {0}")]
    Database(#[source] StartError),
}
