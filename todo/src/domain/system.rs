//! `TodoSystem`: the whole chapter 7 system started from its [`Settings`] and a
//! storage backend: list servers started on first use through a registry, a
//! database pool, and graceful shutdown. (Starting it from a config file, with the
//! configured backend opened, is [`crate::start`]'s job, a layer above.)
//! (Slightly over 500 lines: one public method per operation of the API, each with
//! its retry and error mapping.)

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::NaiveDate;

use super::database::{Database, LoadError, StoreError};
use super::port::{Storage, StorageError};
use super::published::{Published, Snapshot};
use super::receipt::IdempotencyKey;
use super::server::{
    KeyedWrite, ListCall, ListContext, ListError, ListServer, NotLoaded, Write, ROLE,
};
use super::settings::{AckMode, Policies, Settings};
use super::{
    validate_title, Entry, EntryQuery, EntryUpdate, JsonPage, ListName, Page, TodoError, TodoList,
};
use sluicegate::mailbox::Policy;
use sluicegate::runtime::{
    CallError, Registry, RegistryCallError, RegistryConfig, ReplyTo, Restart, Spec, StartError,
    Supervisor,
};

/// Why a to-do request failed. Each variant says, through
/// [`TodoSystemError::effect`], whether the request certainly had no effect or
/// may have had one; the HTTP status follows from the variant alone (never from
/// the message). Causes are kept: [`std::error::Error::source`] gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TodoSystemError {
    /// Bad input (title, date): 400.
    Invalid(TodoError),
    /// No entry with this id: 404.
    NotFound(u64),
    /// No list with this name: 404.
    ListNotFound(ListName),
    /// A mailbox refused, dropped, shed or expired the request before its server
    /// ran it: not applied, 503.
    Overloaded(CallError),
    /// No answer within the call timeout: the request may have been applied, 504.
    Timeout,
    /// The system is shutting down: not applied, 503.
    ShuttingDown,
    /// The list server stopped before it ran the request: not applied, 503.
    Stopped,
    /// The idempotency key came with another request before: 422.
    KeyReused(IdempotencyKey),
    /// The list server could not start (its list could not be loaded, too many
    /// live lists): not applied; 500 when the stored list is damaged, else 503.
    NotStarted(StartError),
    /// The list could not be deleted from storage: 503 when it certainly was not,
    /// 504 when the backend failed or did not answer (it may be gone).
    NotDeleted(StoreError),
    /// Applied in memory but not confirmed durable: 504 (a later store may still
    /// write it), or 503 when fenced (a newer owner holds the list; this write is
    /// never stored).
    NotDurable(StoreError),
    /// The list server panicked or dropped the request while handling it (a bug):
    /// it may have been applied, 500.
    Crashed,
}

/// What a failed request did, as far as the server knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Certainly not applied, and never will be: safe to send again.
    NotApplied,
    /// May have been applied (or may still be): repeat it with the same
    /// `Idempotency-Key` to learn its result without applying it twice.
    Unknown,
}

impl Effect {
    /// `not_applied` or `unknown` (the JSON `outcome` of an error answer).
    pub fn label(self) -> &'static str {
        match self {
            Effect::NotApplied => "not_applied",
            Effect::Unknown => "unknown",
        }
    }
}

impl TodoSystemError {
    /// Whether the failed request certainly had no effect.
    pub fn effect(&self) -> Effect {
        match self {
            TodoSystemError::Timeout | TodoSystemError::Crashed => Effect::Unknown,
            TodoSystemError::NotDurable(e) | TodoSystemError::NotDeleted(e) => {
                match e {
                    StoreError::Fenced(_) | StoreError::Rejected | StoreError::Stopped => {
                        Effect::NotApplied
                    }
                    // A delete call dropped from the worker's mailbox never ran; a
                    // dropped store leaves the write in memory, stored later.
                    StoreError::Dropped if matches!(self, TodoSystemError::NotDeleted(_)) => {
                        Effect::NotApplied
                    }
                    _ => Effect::Unknown,
                }
            }
            _ => Effect::NotApplied,
        }
    }

    /// A short label of the error's kind, for metrics, logs and tables
    /// (`invalid`, `not_found`, `rejected`, `timeout`, `not_durable`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            TodoSystemError::Invalid(_) => "invalid",
            TodoSystemError::NotFound(_) | TodoSystemError::ListNotFound(_) => "not_found",
            TodoSystemError::Overloaded(c) => c.label(),
            TodoSystemError::Timeout => "timeout",
            TodoSystemError::ShuttingDown => "shutting_down",
            TodoSystemError::Stopped => "stopped",
            TodoSystemError::NotStarted(_) => "unavailable",
            TodoSystemError::NotDeleted(_) => "not_deleted",
            TodoSystemError::NotDurable(_) => "not_durable",
            TodoSystemError::Crashed => "crashed",
            TodoSystemError::KeyReused(_) => "key_reused",
        }
    }

    /// The storage error that stopped the list from starting, when that was the cause.
    pub fn load_error(&self) -> Option<&StorageError> {
        match self {
            TodoSystemError::NotStarted(StartError::Init(e)) => {
                match &e.downcast_ref::<NotLoaded>()?.cause {
                    LoadError::Storage(s) => Some(s.as_ref()),
                    LoadError::Call(_) => None,
                }
            }
            _ => None,
        }
    }

    /// Whether the cause is stored data that cannot be read back (retrying cannot
    /// fix it).
    pub fn is_damaged_data(&self) -> bool {
        matches!(self.load_error(), Some(StorageError::Corrupt { .. }))
    }

    /// Whether a cluster's fence refused the request: the list has another owner.
    pub fn is_fenced(&self) -> bool {
        match self {
            TodoSystemError::NotDurable(StoreError::Fenced(_))
            | TodoSystemError::NotDeleted(StoreError::Fenced(_)) => true,
            _ => self.load_error().is_some_and(StorageError::is_fenced),
        }
    }
}

impl std::fmt::Display for TodoSystemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TodoSystemError::Invalid(e) => e.fmt(f),
            TodoSystemError::NotFound(id) => write!(f, "no entry with id {id}"),
            TodoSystemError::ListNotFound(name) => write!(f, "no list named \"{name}\""),
            TodoSystemError::Overloaded(e) => write!(f, "overloaded, not applied: {e}"),
            TodoSystemError::Timeout => f.write_str("timed out; the request may have been applied"),
            TodoSystemError::ShuttingDown => f.write_str("the to-do system is shutting down"),
            TodoSystemError::Stopped => {
                f.write_str("the list server stopped before it ran the request")
            }
            TodoSystemError::NotStarted(StartError::Init(e)) => {
                write!(f, "list unavailable: {e}")
            }
            TodoSystemError::NotStarted(e) => write!(f, "list unavailable: {e}"),
            TodoSystemError::NotDeleted(e) => write!(f, "the list could not be deleted: {e}"),
            TodoSystemError::NotDurable(e @ StoreError::Fenced(_)) => {
                write!(f, "the write is not stored and never will be here: {e}")
            }
            TodoSystemError::NotDurable(e) => write!(
                f,
                "the write was applied in memory but is not confirmed durable ({e}); it may be lost on a crash"
            ),
            TodoSystemError::Crashed => f.write_str("the list server crashed handling this request"),
            TodoSystemError::KeyReused(key) => write!(
                f,
                "Idempotency-Key \"{key}\" was used with a different request on this list; \
                 a key names one request (use a new key for a new request)"
            ),
        }
    }
}

impl std::error::Error for TodoSystemError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TodoSystemError::Invalid(e) => Some(e),
            TodoSystemError::Overloaded(e) => Some(e),
            TodoSystemError::NotStarted(e) => Some(e),
            TodoSystemError::NotDeleted(e) | TodoSystemError::NotDurable(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RegistryCallError> for TodoSystemError {
    fn from(e: RegistryCallError) -> Self {
        match e {
            RegistryCallError::Start(StartError::ShuttingDown) => TodoSystemError::ShuttingDown,
            RegistryCallError::Start(e) => TodoSystemError::NotStarted(e),
            RegistryCallError::Call(CallError::Timeout) => TodoSystemError::Timeout,
            // A cast that found no space in time was never queued (sends are
            // cancel safe): not applied.
            RegistryCallError::Cast(sluicegate::runtime::CastError::Timeout) => {
                TodoSystemError::Overloaded(CallError::Timeout)
            }
            RegistryCallError::Call(CallError::Panicked | CallError::NoReply) => {
                TodoSystemError::Crashed
            }
            RegistryCallError::Call(CallError::Stopped)
            | RegistryCallError::Cast(sluicegate::runtime::CastError::Stopped) => {
                TodoSystemError::Stopped
            }
            RegistryCallError::Call(e) => TodoSystemError::Overloaded(e),
            RegistryCallError::Cast(_) => TodoSystemError::Overloaded(CallError::Rejected),
            // A kind of failure this version does not know: say the least.
            _ => TodoSystemError::Crashed,
        }
    }
}

impl From<ListError> for TodoSystemError {
    fn from(e: ListError) -> Self {
        match e {
            ListError::Todo(TodoError::NotFound(id)) => TodoSystemError::NotFound(id),
            ListError::Todo(e) => TodoSystemError::Invalid(e),
            ListError::NotDurable(e) => TodoSystemError::NotDurable(e),
            ListError::NotDeleted(e) => TodoSystemError::NotDeleted(e),
            ListError::KeyReused(k) => TodoSystemError::KeyReused(k),
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
    /// A repeat of a keyed write already applied: nothing was written now; the
    /// first request's result (applied, and durable under ack `durable`).
    Replayed(Entry),
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
        let (call_timeout, window) = (settings.call_timeout, settings.idempotency_window);
        let published = Arc::new(Published::default());
        let live2 = live.clone();
        // What every list server is built with, shared: each server's factory holds
        // this and its name, and each server one pointer to the context, not copies
        // of the database handle and settings.
        let context = Arc::new(ListContext {
            db: db.clone(),
            load_timeout: call_timeout,
            window,
        });
        let common = Arc::new((context, published.clone()));
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
                let (common, name2) = (common.clone(), name.clone());
                Spec::new(ROLE, policy, move || {
                    let (context, published) = &*common;
                    ListServer::new(name2.clone(), context.clone()).publishing_to(published)
                })
                .name(name.clone())
                .restart(Restart::Transient)
            },
        );
        let system = TodoSystem {
            inner: Arc::new(Inner {
                registry,
                db,
                published,
                supervisor,
                call_timeout,
                live,
                closed: tokio::sync::RwLock::new(false),
            }),
        };
        tokio::spawn(purge_receipts(Arc::downgrade(&system.inner), window));
        Ok(system)
    }

    /// Admits a request unless shutdown began; hold the guard while it runs.
    async fn admit(&self) -> Result<tokio::sync::RwLockReadGuard<'_, bool>, TodoSystemError> {
        let guard = self.inner.closed.read().await;
        if *guard {
            return Err(TodoSystemError::ShuttingDown);
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

    /// Applies a write, with its idempotency key if any, answering after `ack`
    /// (default: the configured one). A repeat of a keyed write the list applied
    /// within the window is [`WriteOutcome::Replayed`] and writes nothing; the key
    /// with another request is [`TodoSystemError::KeyReused`].
    ///
    /// # Errors
    ///
    /// Why it was not done, or that its outcome is unknown:
    /// [`TodoSystemError::effect`] says which.
    pub async fn write(
        &self,
        list: &ListName,
        write: KeyedWrite,
        ack: Option<AckMode>,
    ) -> Result<WriteOutcome, TodoSystemError> {
        match &write.write {
            Write::Add { title, .. } => validate_title(title).map_err(TodoSystemError::Invalid)?,
            Write::Update { update, .. } => {
                if let Some(title) = &update.title {
                    validate_title(title).map_err(TodoSystemError::Invalid)?;
                }
            }
            Write::Delete { .. } => {}
        }
        let ack = ack.unwrap_or_else(|| self.default_ack());
        if ack == AckMode::None {
            let _admitted = self.admit().await?;
            // A cast that found its server stopping (an idle stop, a delete of the
            // list) was not queued: it goes to the fresh server, as a call does.
            let cast = async {
                let mut tries = 0;
                loop {
                    tries += 1;
                    match self
                        .inner
                        .registry
                        .cast(list, Box::new(write.clone()))
                        .await
                    {
                        Err(RegistryCallError::Cast(sluicegate::runtime::CastError::Stopped))
                            if tries < CALL_TRIES =>
                        {
                            tokio::task::yield_now().await;
                        }
                        other => return other,
                    }
                }
            };
            tokio::time::timeout(self.inner.call_timeout, cast)
                .await
                // The send was cancelled before it queued the write: not applied.
                .map_err(|_| TodoSystemError::Overloaded(CallError::Timeout))??;
            return Ok(WriteOutcome::Accepted);
        }
        let written = self
            .call(list, |r| ListCall::Write(Box::new(write.clone()), ack, r))
            .await??;
        Ok(if written.replayed {
            WriteOutcome::Replayed(written.entry)
        } else {
            WriteOutcome::Done(written.entry)
        })
    }

    /// Adds an entry; the answer comes after `ack` (default: the configured one).
    pub async fn add_entry(
        &self,
        list: &ListName,
        date: NaiveDate,
        title: &str,
        ack: Option<AckMode>,
    ) -> Result<WriteOutcome, TodoSystemError> {
        let write = Write::Add {
            date,
            title: title.to_string(),
        };
        self.write(list, write.into(), ack).await
    }

    /// Changes an entry's date and/or title.
    pub async fn update_entry(
        &self,
        list: &ListName,
        id: u64,
        update: EntryUpdate,
        ack: Option<AckMode>,
    ) -> Result<WriteOutcome, TodoSystemError> {
        self.write(list, Write::Update { id, update }.into(), ack)
            .await
    }

    /// Deletes an entry.
    pub async fn delete_entry(
        &self,
        list: &ListName,
        id: u64,
        ack: Option<AckMode>,
    ) -> Result<WriteOutcome, TodoSystemError> {
        self.write(list, Write::Delete { id }.into(), ack).await
    }

    /// Entries of `date` (or all) in id order; a list that does not exist is empty
    /// (the book's semantics; [`TodoSystem::list_entries`] tells the two apart).
    pub async fn entries(
        &self,
        list: &ListName,
        date: Option<NaiveDate>,
    ) -> Result<Vec<Entry>, TodoSystemError> {
        Ok(self.list_entries(list, date).await?.unwrap_or_default())
    }

    /// Entries of `date` (or all) in id order, or `None` when the list does not
    /// exist: no entry was ever added to it since it was created or deleted
    /// ([`super::TodoList::exists`]).
    ///
    /// # Errors
    ///
    /// Why the list could not be read (overload, timeout, storage).
    pub async fn list_entries(
        &self,
        list: &ListName,
        date: Option<NaiveDate>,
    ) -> Result<Option<Vec<Entry>>, TodoSystemError> {
        let query = EntryQuery {
            date,
            ..EntryQuery::all()
        };
        Ok(self.query(list, query).await?.map(|p| p.entries))
    }

    /// The page of entries `query` asks for, or `None` when the list does not exist.
    ///
    /// A live list is read from the state its server published (no message, no
    /// wait in its mailbox), which includes every write acknowledged before this
    /// call began; a list with no live server is loaded by a server started for it.
    ///
    /// # Errors
    ///
    /// Why the list could not be read (overload, timeout, storage).
    pub async fn query(
        &self,
        list: &ListName,
        query: EntryQuery,
    ) -> Result<Option<Page>, TodoSystemError> {
        self.read(
            list,
            |published| published.page(&query),
            |r| ListCall::Entries(Box::new(query.clone()), r),
        )
        .await
    }

    /// [`TodoSystem::query`] answered as JSON: the same page, read the same way.
    /// From a published list, a query of its first entries without a filter
    /// (`GET /lists/{list}/entries`) gets the version's JSON serialized once and
    /// shared by every read until the next write ([`Snapshot::entries_json`]).
    ///
    /// # Errors
    ///
    /// Why the list could not be read (overload, timeout, storage).
    pub async fn query_json(
        &self,
        list: &ListName,
        query: EntryQuery,
    ) -> Result<Option<JsonPage>, TodoSystemError> {
        let read = self
            .read_either(
                list,
                |published| published.page_json(&query),
                |r| ListCall::Entries(Box::new(query.clone()), r),
            )
            .await?;
        Ok(read.unwrap_or_else(|page| page.map(JsonPage::from)))
    }

    /// A read: from the list its live server published (no message), or else
    /// asked of its server, which a read of a list with none starts: the
    /// published read's answer as `Ok`, the server's as `Err`.
    async fn read_either<P, R>(
        &self,
        list: &ListName,
        from_published: impl FnOnce(&Snapshot) -> P,
        request: impl Fn(ReplyTo<R>) -> ListCall,
    ) -> Result<Result<P, R>, TodoSystemError> {
        {
            let _admitted = self.admit().await?;
            if let Some(published) = self.inner.published.load(list) {
                return Ok(Ok(from_published(&published)));
            }
        }
        self.call(list, request).await.map(Err)
    }

    /// [`TodoSystem::read_either`] where the published read and the server answer alike.
    async fn read<R>(
        &self,
        list: &ListName,
        from_published: impl FnOnce(&TodoList) -> R,
        request: impl Fn(ReplyTo<R>) -> ListCall,
    ) -> Result<R, TodoSystemError> {
        let read = self
            .read_either(list, |s| from_published(s.list()), request)
            .await?;
        Ok(read.unwrap_or_else(|r| r))
    }

    /// How many entries the list holds, or `None` when it does not exist; read like
    /// [`TodoSystem::query`] (from the published list when its server is live),
    /// without copying an entry.
    ///
    /// # Errors
    ///
    /// Why the list could not be read (overload, timeout, storage).
    pub async fn entry_count(&self, list: &ListName) -> Result<Option<usize>, TodoSystemError> {
        self.read(
            list,
            |published| published.exists().then(|| published.len()),
            ListCall::Count,
        )
        .await
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

    /// Graceful shutdown: new requests are refused (`ShuttingDown`), requests in
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

/// Receipts of keyed writes deleted from storage after their window.
pub const RECEIPTS_PURGED: &str = "sluicegate_todo_receipts_purged_total";

/// Deletes expired receipts from storage every `window / 24` (1 s to 1 h), until
/// the system shuts down or is dropped. List servers expire the receipts they hold
/// at their next keyed write; this reaches the lists nobody writes any more.
async fn purge_receipts(system: std::sync::Weak<Inner>, window: Duration) {
    let every = (window / 24).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = system.upgrade() else {
            return;
        };
        if *inner.closed.read().await {
            return;
        }
        let before = super::receipt::now_ms().saturating_sub(window_ms);
        match inner.db.storage().purge_receipts(before).await {
            Ok(n) => metrics::counter!(RECEIPTS_PURGED).increment(n),
            Err(e) => tracing::warn!(error = %e, "expired receipts could not be purged"),
        }
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
