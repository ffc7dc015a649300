//! The list server: one per list name, it loads its list in `init`, answers reads
//! from memory, applies writes in order and hands each new version to the database.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use std::sync::atomic::{AtomicU64, Ordering};

use super::database::{Database, DurableWaiter, LoadError, Store, StoreError, Version};
use super::port::Change;
use super::published::{Published, Publisher};
use super::{AckMode, Entry, EntryUpdate, ListName, TodoError, TodoList};
use sluicegate::runtime::{BoxError, ReplyTo, Server};

/// Role of list servers (metric label).
pub const ROLE: &str = "todo_server";

/// A write to one list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Add an entry (the id is assigned by the list).
    Add {
        /// The entry's date.
        date: NaiveDate,
        /// The entry's title.
        title: String,
    },
    /// Change an entry's date and/or title.
    Update {
        /// Which entry.
        id: u64,
        /// What changes.
        update: EntryUpdate,
    },
    /// Delete an entry.
    Delete {
        /// Which entry.
        id: u64,
    },
}

/// Requests a list server answers, each with where its answer goes.
#[derive(Debug)]
pub enum ListCall {
    /// Apply a write, answering after `ack` (`applied` or `durable`) with the
    /// entry written (for a delete: the entry removed).
    Write(Write, AckMode, ReplyTo<Result<Entry, ListError>>),
    /// Entries of one date, or all, in id order.
    Entries(Option<NaiveDate>, ReplyTo<Vec<Entry>>),
    /// Delete the whole list from storage (durably) and forget it in memory;
    /// answered with whether there was a list (stored or written in memory).
    DeleteList(ReplyTo<Result<bool, ListError>>),
    /// Fault injection for tests and experiments: the handler panics.
    #[cfg(feature = "fault-injection")]
    Panic(ReplyTo<()>),
}

/// Why a list request failed inside its server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListError {
    /// Bad input or unknown id.
    Todo(TodoError),
    /// Applied in memory, but not made durable.
    NotDurable(StoreError),
    /// The list could not be deleted from storage (it is unchanged there).
    NotDeleted(StoreError),
}

/// The server of one list.
pub struct ListServer {
    /// Which list this server owns.
    name: ListName,
    /// The list, loaded in `init`; reads are answered from here.
    list: TodoList,
    /// Where versions of the list go.
    db: Database,
    /// Bound on the load in `init` and the final store in `terminate`.
    load_timeout: Duration,
    /// Whether a write was applied since `init`: then `terminate` stores the list
    /// once more and waits for it, so a store the database dropped, shed or failed
    /// is not lost at an idle stop or a graceful shutdown.
    dirty: bool,
    /// This instance's unique number: its stores' versions are `(epoch, seq)`.
    epoch: u64,
    /// Stores handed out so far (0: the list as loaded).
    seq: u64,
    /// Entries touched since the last store was handed out.
    change: Change,
    /// Where readers load the list from without a message (see [`Published`]).
    publisher: Option<Publisher>,
}

/// Source of list server epochs (unique within the process).
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

impl ListServer {
    /// A server for `name`, loading from `db` in `init`.
    pub fn new(name: ListName, db: Database, load_timeout: Duration) -> Self {
        ListServer {
            name,
            list: TodoList::new(),
            db,
            load_timeout,
            dirty: false,
            epoch: NEXT_EPOCH.fetch_add(1, Ordering::Relaxed),
            seq: 0,
            change: Change::default(),
            publisher: None,
        }
    }

    /// Publishes the list to `published` after loading it and after every applied
    /// write, before the write is answered, so readers can skip the mailbox.
    #[must_use]
    pub fn publishing_to(mut self, published: &Arc<Published>) -> Self {
        let publisher = Publisher::new(published.clone(), self.name.clone(), self.epoch);
        self.publisher = Some(publisher);
        self
    }

    /// Makes the list as it is now what readers load (before any answer about it).
    fn publish(&mut self) {
        if let Some(p) = &mut self.publisher {
            p.publish(&self.list);
        }
    }

    fn apply(&mut self, write: Write) -> Result<Entry, TodoError> {
        let applied = match write {
            Write::Add { date, title } => self.list.add_entry(date, &title),
            Write::Update { id, update } => self.list.update_entry(id, update),
            Write::Delete { id } => self.list.delete_entry(id),
        };
        // A refused write changes nothing: no store for it.
        if let Ok(entry) = &applied {
            self.dirty = true;
            self.change.touch(&self.list, entry.id);
            self.publish();
        }
        applied
    }

    /// The next store: an O(1) snapshot of the list and the entries touched since
    /// the previous store. A store that never reaches the backend (refused, dropped)
    /// breaks the chain of versions, so the next one is written whole.
    fn store(&mut self, waiters: Vec<DurableWaiter>) -> Store {
        let base = Version {
            epoch: self.epoch,
            seq: self.seq,
        };
        self.seq += 1;
        Store {
            name: self.name.clone(),
            list: self.list.clone(),
            base: Some(base),
            version: Version {
                epoch: self.epoch,
                seq: self.seq,
            },
            change: std::mem::take(&mut self.change),
            waiters,
        }
    }

    /// Hands the new version to the database without waiting for it to be durable.
    async fn persist(&mut self) {
        let store = self.store(Vec::new());
        if let Err(e) = self.db.store(store).await {
            tracing::warn!(list = %self.name, error = %e, "store not queued");
            metrics::counter!(STORES_NOT_QUEUED).increment(1);
        }
    }
}

/// Pause before a list server asks again for a final store the database dropped.
const FINAL_STORE_RETRY: Duration = Duration::from_millis(20);

/// Stores a list server could not hand to the database (the write stays in memory
/// and goes out with the list's next store).
pub const STORES_NOT_QUEUED: &str = "sluicegate_todo_stores_not_queued_total";

impl Server for ListServer {
    type Call = ListCall;
    type Cast = Write;

    async fn init(&mut self) -> Result<(), BoxError> {
        match self
            .db
            .load(&self.name, self.epoch, self.load_timeout)
            .await
        {
            Ok(list) => {
                self.list = list.unwrap_or_default();
                self.publish();
                Ok(())
            }
            Err(LoadError::Storage(e)) => Err(format!("list \"{}\": {e}", self.name).into()),
            Err(e) => Err(format!("list \"{}\" could not be loaded: {e}", self.name).into()),
        }
    }

    async fn handle_call(&mut self, request: ListCall) {
        match request {
            ListCall::Entries(date, reply) => {
                let entries = match date {
                    Some(d) => self.list.entries(d),
                    None => self.list.all_entries(),
                };
                reply.send(entries);
            }
            ListCall::Write(write, ack, reply) => {
                let entry = match self.apply(write) {
                    Ok(e) => e,
                    Err(e) => return reply.send(Err(ListError::Todo(e))),
                };
                match ack {
                    AckMode::None | AckMode::Applied => {
                        reply.send(Ok(entry));
                        self.persist().await;
                    }
                    AckMode::Durable => {
                        // Answered by the database worker once the store (or a newer
                        // one that replaced it) is durable, without holding up this
                        // list's next messages and with no task per write.
                        let waiter = DurableWaiter::new(move |outcome| {
                            reply.send(outcome.map(|()| entry).map_err(ListError::NotDurable))
                        });
                        let store = self.store(vec![waiter]);
                        // A store the database refused drops its waiter, which then
                        // answers `NotDurable(Dropped)`; the error says more.
                        if let Err(e) = self.db.store(store).await {
                            tracing::debug!(list = %self.name, error = %e, "durable store not queued");
                        }
                    }
                }
            }
            ListCall::DeleteList(reply) => {
                // Every store handed out before is queued ahead of the delete on the
                // list's worker, so none of them can bring the list back.
                let written = self.list.next_id() > 1 || self.dirty;
                match self.db.delete(&self.name, self.load_timeout).await {
                    Ok(stored) => {
                        self.list = TodoList::new();
                        self.dirty = false;
                        self.change = Change::default();
                        self.publish();
                        reply.send(Ok(stored || written));
                    }
                    Err(e) => reply.send(Err(ListError::NotDeleted(e))),
                }
            }
            #[cfg(feature = "fault-injection")]
            ListCall::Panic(_reply) => panic!("injected panic in list server \"{}\"", self.name),
        }
    }

    async fn terminate(&mut self, _reason: &sluicegate::runtime::ExitReason) {
        if !self.dirty {
            return;
        }
        // This store is the last copy of the applied writes: an overloaded database
        // that drops, sheds or refuses it is asked again until `load_timeout`.
        let deadline = tokio::time::Instant::now() + self.load_timeout;
        loop {
            let (waiter, rx) = DurableWaiter::channel();
            let store = self.store(vec![waiter]);
            let stored = match self.db.store(store).await {
                Ok(()) => tokio::time::timeout_at(deadline, rx).await,
                Err(e) => Ok(Ok(Err(e))),
            };
            match stored {
                Ok(Ok(Ok(()))) => return,
                Ok(Ok(Err(StoreError::Dropped | StoreError::Rejected)))
                    if tokio::time::Instant::now() + FINAL_STORE_RETRY < deadline =>
                {
                    tokio::time::sleep(FINAL_STORE_RETRY).await;
                }
                Ok(Ok(Err(e))) => {
                    return tracing::error!(list = %self.name, error = %e, "final store failed")
                }
                Ok(Err(_)) => return tracing::error!(list = %self.name, "final store dropped"),
                Err(_) => return tracing::error!(list = %self.name, "final store timed out"),
            }
        }
    }

    async fn handle_cast(&mut self, write: Write) {
        match self.apply(write) {
            Ok(_) => self.persist().await,
            Err(e) => tracing::debug!(list = %self.name, error = %e, "cast write refused"),
        }
    }
}
