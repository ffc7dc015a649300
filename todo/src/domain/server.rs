//! The list server: one per list name, it loads its list in `init`, answers reads
//! from memory, applies writes in order and hands each new version to the database.
//! A write with an idempotency key is applied once: its receipt is recorded in the
//! list, in the same change as its effect, and a repeat gets the first result.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use futures::future::Either;
use std::sync::atomic::{AtomicU64, Ordering};

use super::database::{Database, DurableWaiter, LoadError, Store, StoreError, Version};
use super::port::Change;
use super::published::{Published, Publisher};
use super::receipt::{fingerprint, now_ms, IdempotencyKey, Receipt};
use super::{AckMode, Entry, EntryQuery, EntryUpdate, ListName, Page, TodoError, TodoList};
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

/// A write and, when the client sent one, its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedWrite {
    /// The write.
    pub write: Write,
    /// Its key: a repeat with the same key is answered from the first's receipt.
    pub key: Option<IdempotencyKey>,
}

impl From<Write> for KeyedWrite {
    fn from(write: Write) -> Self {
        KeyedWrite { write, key: None }
    }
}

/// A write's result: the entry written (for a delete: the entry removed), and
/// whether it is the recorded result of an earlier request with the same key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The entry.
    pub entry: Entry,
    /// `true`: nothing was written now; this is the first request's result.
    pub replayed: bool,
}

/// Requests a list server answers, each with where its answer goes.
///
/// A write and a query are boxed (as a cast's write is): a list server's mailbox
/// keeps the slot of its first message once allocated, and its largest message
/// sets every slot's size (112 bytes with them inline, 64 boxed).
#[derive(Debug)]
pub enum ListCall {
    /// Apply a write, answering after `ack` (`applied` or `durable`) with the
    /// entry written (for a delete: the entry removed). A repeat of a keyed write
    /// is answered after the same ack with the first result.
    Write(
        Box<KeyedWrite>,
        AckMode,
        ReplyTo<Result<Written, ListError>>,
    ),
    /// The entries a query asks for, in id order; `None` when the list does not
    /// exist ([`TodoList::exists`]).
    Entries(Box<EntryQuery>, ReplyTo<Option<Page>>),
    /// How many entries the list holds; `None` when it does not exist.
    Count(ReplyTo<Option<usize>>),
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
    /// The key came with another request before (its fingerprint differs).
    KeyReused(IdempotencyKey),
}

/// A list server's `init` could not load its list: the error it starts with,
/// which reaches callers inside [`sluicegate::runtime::StartError::Init`] (find it
/// with [`InitError::downcast_ref`](sluicegate::runtime::InitError::downcast_ref)).
#[derive(Clone, Debug)]
pub struct NotLoaded {
    /// Which list.
    pub list: ListName,
    /// Why: the backend failed or holds damaged data, or the database did not answer.
    pub cause: LoadError,
}

impl std::fmt::Display for NotLoaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cause {
            // The storage error names the list already.
            LoadError::Storage(e) => e.fmt(f),
            LoadError::Call(e) => write!(
                f,
                "list \"{}\" could not be loaded: the database did not answer ({e})",
                self.list
            ),
        }
    }
}

impl std::error::Error for NotLoaded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            LoadError::Storage(e) => Some(e.as_ref()),
            LoadError::Call(e) => Some(e),
        }
    }
}

/// What every list server of a system works with, built once and shared: each
/// server holds it through one pointer (a live list server's task carries its
/// state, and a `Database` inline is about a hundred bytes).
pub struct ListContext {
    /// Where versions of the lists go.
    pub db: Database,
    /// Bound on the load in `init` and the final store in `terminate`.
    pub load_timeout: Duration,
    /// How long receipts of keyed writes are kept.
    pub window: Duration,
}

/// The server of one list.
pub struct ListServer {
    /// Which list this server owns.
    name: ListName,
    /// The list, loaded in `init`; reads are answered from here.
    list: TodoList,
    /// The database and the settings every list server shares.
    context: Arc<ListContext>,
    /// Whether a write was applied since `init`: then `terminate` stores the list
    /// once more and waits for it, so a store the database dropped, shed or failed
    /// is not lost at an idle stop or a graceful shutdown.
    dirty: bool,
    /// This instance's unique number: its stores' versions are `(epoch, seq)`.
    epoch: u64,
    /// Stores handed out so far (0: the list as loaded).
    seq: u64,
    /// Entries touched since the last store was handed out; `None` when none was
    /// (boxed and made by the first write after a store: an idle list server
    /// carries a pointer, not two empty maps).
    change: Option<Box<Change>>,
    /// Where readers load the list from without a message (see [`Published`]).
    publisher: Option<Publisher>,
}

/// The change the next store carries (`change`), made by the first write after a
/// store.
fn changed(change: &mut Option<Box<Change>>) -> &mut Change {
    change.get_or_insert_with(Box::default)
}

/// Source of list server epochs (unique within the process).
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

impl ListServer {
    /// A server for `name`, loading from `context.db` in `init`.
    pub fn new(name: ListName, context: Arc<ListContext>) -> Self {
        ListServer {
            name,
            list: TodoList::new(),
            context,
            dirty: false,
            epoch: NEXT_EPOCH.fetch_add(1, Ordering::Relaxed),
            seq: 0,
            change: None,
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

    /// Applies a keyed write once: a repeat of its key (within the window) is
    /// answered from the receipt, the key with another request is refused, and a
    /// new key's receipt is recorded in the same change as the write's effect.
    fn apply_keyed(&mut self, request: KeyedWrite) -> Result<Written, ListError> {
        let Some(key) = request.key else {
            return self
                .apply(request.write)
                .map(|entry| Written {
                    entry,
                    replayed: false,
                })
                .map_err(ListError::Todo);
        };
        let now = now_ms();
        let window = i64::try_from(self.context.window.as_millis()).unwrap_or(i64::MAX);
        for gone in self.list.expire_receipts(now.saturating_sub(window)) {
            changed(&mut self.change).touch_receipt(&self.list, &gone);
            self.dirty = true;
        }
        let fingerprint = fingerprint(&request.write);
        if let Some(receipt) = self.list.receipt(&key) {
            return if receipt.request == fingerprint {
                Ok(Written {
                    entry: receipt.entry.clone(),
                    replayed: true,
                })
            } else {
                Err(ListError::KeyReused(key))
            };
        }
        let entry = self.apply(request.write).map_err(ListError::Todo)?;
        self.list.record_receipt(
            key.clone(),
            Receipt {
                request: fingerprint,
                entry: entry.clone(),
                at_ms: now,
            },
        );
        changed(&mut self.change).touch_receipt(&self.list, &key);
        Ok(Written {
            entry,
            replayed: false,
        })
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
            changed(&mut self.change).touch(&self.list, entry.id);
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
            change: self.change.take().map_or_else(Change::default, |c| *c),
            waiters,
        }
    }

    /// Hands the new version to the database without waiting for it to be durable.
    async fn persist(&mut self) {
        let store = self.store(Vec::new());
        if let Err(e) = self.context.db.store(store).await {
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
    /// Boxed, as a call's write (see [`ListCall`]).
    type Cast = Box<KeyedWrite>;

    async fn init(&mut self) -> Result<(), BoxError> {
        match self
            .context
            .db
            .load(&self.name, self.epoch, self.context.load_timeout)
            .await
        {
            Ok(list) => {
                self.list = list.unwrap_or_default();
                self.publish();
                Ok(())
            }
            Err(cause) => Err(Box::new(NotLoaded {
                list: self.name.clone(),
                cause,
            })),
        }
    }

    /// A read is answered here, before the returned future is polled (a ready
    /// future); a write or a delete returns its work boxed. Not an `async fn`: the
    /// task of every live list server holds its largest handler future, and one
    /// that kept the request beside the boxed work measured 200 bytes; this one is
    /// a pointer and a tag (a write allocates anyway).
    fn handle_call(&mut self, request: ListCall) -> impl Future<Output = ()> + Send {
        match self.answer_read(request) {
            Ok(()) => Either::Left(std::future::ready(())),
            Err(change) => Either::Right(Box::pin(self.handle_change(change))),
        }
    }

    async fn terminate(&mut self, reason: &sluicegate::runtime::ExitReason) {
        self.store_before_exit(reason).await;
    }

    /// Boxed for the same reason as a write call.
    fn handle_cast(&mut self, write: Box<KeyedWrite>) -> impl Future<Output = ()> + Send {
        Box::pin(self.cast_write(*write))
    }
}

impl ListServer {
    /// Answers a read at once (no await); hands any other request back.
    fn answer_read(&self, request: ListCall) -> Result<(), ListCall> {
        match request {
            ListCall::Entries(query, reply) => reply.send(self.list.page(&query)),
            ListCall::Count(reply) => reply.send(self.list.exists().then(|| self.list.len())),
            other => return Err(other),
        }
        Ok(())
    }

    /// A call that changes the list (a write, a delete); a read is answered as
    /// [`ListServer::answer_read`] does.
    async fn handle_change(&mut self, request: ListCall) {
        match request {
            ListCall::Write(write, ack, reply) => {
                let entry = match self.apply_keyed(*write) {
                    Ok(e) => e,
                    Err(e) => return reply.send(Err(e)),
                };
                match ack {
                    // A replay under `applied` changed nothing: nothing to store.
                    AckMode::None | AckMode::Applied if entry.replayed => reply.send(Ok(entry)),
                    AckMode::None | AckMode::Applied => {
                        reply.send(Ok(entry));
                        self.persist().await;
                    }
                    AckMode::Durable => {
                        // Answered by the database worker once the store (or a newer
                        // one that replaced it) is durable, without holding up this
                        // list's next messages and with no task per write. A replay
                        // stores the list as it is: durable then, the first request's
                        // write and receipt (stored earlier or with it) are too.
                        let waiter = DurableWaiter::new(move |outcome| {
                            reply.send(outcome.map(|()| entry).map_err(ListError::NotDurable))
                        });
                        let store = self.store(vec![waiter]);
                        // A store the database refused drops its waiter, which then
                        // answers `NotDurable(Dropped)`; the error says more.
                        if let Err(e) = self.context.db.store(store).await {
                            tracing::debug!(list = %self.name, error = %e, "durable store not queued");
                        }
                    }
                }
            }
            ListCall::DeleteList(reply) => {
                // Every store handed out before is queued ahead of the delete on the
                // list's worker, so none of them can bring the list back.
                let written = self.list.next_id() > 1 || self.dirty;
                match self
                    .context
                    .db
                    .delete(&self.name, self.context.load_timeout)
                    .await
                {
                    Ok(stored) => {
                        self.list = TodoList::new();
                        self.dirty = false;
                        self.change = None;
                        self.publish();
                        reply.send(Ok(stored || written));
                    }
                    Err(e) => reply.send(Err(ListError::NotDeleted(e))),
                }
            }
            #[cfg(feature = "fault-injection")]
            ListCall::Panic(_reply) => panic!("injected panic in list server \"{}\"", self.name),
            read => {
                let _ = self.answer_read(read);
            }
        }
    }

    /// The last store at the end of an instance (see `dirty`).
    async fn store_before_exit(&mut self, _reason: &sluicegate::runtime::ExitReason) {
        if !self.dirty {
            return;
        }
        // This store is the last copy of the applied writes: an overloaded database
        // that drops, sheds or refuses it is asked again until `load_timeout`.
        let deadline = tokio::time::Instant::now() + self.context.load_timeout;
        loop {
            let (waiter, rx) = DurableWaiter::channel();
            let store = self.store(vec![waiter]);
            let stored = match self.context.db.store(store).await {
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

    /// A write sent as a cast (ack `none`).
    async fn cast_write(&mut self, write: KeyedWrite) {
        match self.apply_keyed(write) {
            Ok(w) if w.replayed => {}
            Ok(_) => self.persist().await,
            Err(e) => tracing::debug!(list = %self.name, error = ?e, "cast write refused"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every live list server is one tokio task, allocated in steps of 128 bytes:
    /// a header and bookkeeping (104 bytes with tokio 1.x) and this future, which
    /// holds the server's state. At 584 bytes the task took 768; at most 408 it
    /// takes 512 (384 now; issue #25: an idle list server in at most 2 KiB). A
    /// field added to `ListServer` or to the runtime's task that crosses the step
    /// costs every live list 128 bytes, and fails here.
    #[test]
    fn a_list_servers_task_stays_within_its_128_byte_step() {
        let size = sluicegate::runtime::task_size::<ListServer>();
        assert!(
            size <= 408,
            "a list server's task future is {size} bytes (state {} B)",
            std::mem::size_of::<ListServer>()
        );
    }
}
