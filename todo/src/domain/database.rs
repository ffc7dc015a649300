//! The database: a keyed pool of worker servers (a list always goes to the same
//! worker) that load lists and group-commit what is queued through the storage port,
//! handing batches to a queueing backend without waiting for them (at most
//! [`MAX_IN_FLIGHT`] out) and settling their outcomes in order. (About 800 lines: the
//! worker, its batch fold, its batches out and the pool front are one protocol; its
//! metrics are in `db_metrics.rs`. Splitting the batches out into a file of their
//! own is the next cut.)

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use fastbloom::AtomicBloomFilter;
use tokio::sync::oneshot;

use super::port::{
    BatchResults, Change, ListWrite, OnCommit, Queued, QueuedWrites, Storage, StorageError,
};
use super::{ListName, TodoList};
use sluicegate::mailbox::{Eviction, Key, Meta, Policy};
use sluicegate::runtime::{
    fail_call, CallError, CastError, Envelope, KeyedPool, PoolSpec, ReplyTo, Routing, Server,
    StartError, Supervisor,
};

pub use super::db_metrics::{
    describe, COMMIT_SECONDS, COMMIT_WINDOW_SECONDS, COMMIT_WRITES, STORES, STORE_ERRORS,
    TRANSACTIONS, TRANSACTION_WRITES, UNSAVED_LISTS,
};

/// Role of the database workers (metric label).
pub const WORKER_ROLE: &str = "database_worker";
/// Role of the database router (metric label).
pub const ROUTER_ROLE: &str = "database";

/// Why a store did not become durable; cheap to clone to every waiter. A backend's
/// error is kept whole (shared), so its kind and cause reach the edge.
#[derive(Clone, Debug)]
pub enum StoreError {
    /// The backend failed (its error names the list).
    Storage(Arc<StorageError>),
    /// The store was dropped, shed or expired from the worker's mailbox.
    Dropped,
    /// The worker's mailbox refused it.
    Rejected,
    /// The database is stopped.
    Stopped,
    /// The backend refused the write: the list has a newer owner (a cluster's
    /// fence, [`StorageError::Fenced`]). Never written, and not kept for a retry
    /// here; the caller retries at the owner.
    Fenced(Arc<StorageError>),
    /// The database did not answer within this time: the operation may still happen.
    Unanswered(Duration),
}

impl StoreError {
    /// A backend's error: [`StoreError::Fenced`] for a fence, else [`StoreError::Storage`].
    pub fn from_storage(e: Arc<StorageError>) -> Self {
        if e.is_fenced() {
            StoreError::Fenced(e)
        } else {
            StoreError::Storage(e)
        }
    }

    /// Whether the operation certainly did not reach stable storage and never will
    /// from this request: refused or dropped before the backend saw it, fenced, or
    /// the database stopped. `false` when the backend failed or did not answer: a
    /// backend's failed commit may still have been applied, and a store kept
    /// unsaved is tried again.
    pub fn certainly_not_stored(&self) -> bool {
        matches!(
            self,
            StoreError::Fenced(_) | StoreError::Rejected | StoreError::Stopped
        )
    }

    fn label(&self) -> &'static str {
        match self {
            StoreError::Storage(_) => "storage",
            StoreError::Dropped => "dropped",
            StoreError::Rejected => "rejected",
            StoreError::Stopped => "stopped",
            StoreError::Fenced(_) => "fenced",
            StoreError::Unanswered(_) => "unanswered",
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Storage(e) => write!(f, "storage failed: {e}"),
            StoreError::Dropped => f.write_str("store dropped by an overloaded database worker"),
            StoreError::Rejected => f.write_str("database worker mailbox full: store rejected"),
            StoreError::Stopped => f.write_str("database stopped"),
            StoreError::Fenced(e) => e.fmt(f),
            StoreError::Unanswered(t) => write!(f, "the database did not answer within {t:?}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Storage(e) | StoreError::Fenced(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// Two store errors are equal when they are of one kind and read the same (a
/// backend's error need not be comparable).
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        self.label() == other.label() && self.to_string() == other.to_string()
    }
}

impl Eq for StoreError {}

/// Told once a store is durable (or failed): a list server answers its durable
/// writes' callers from here, in the database worker's task, with no task of its
/// own per write. Dropped untold (the store was discarded unwritten), it is told
/// [`StoreError::Dropped`].
pub struct DurableWaiter(Option<Then>);

/// What a [`DurableWaiter`] runs with the store's outcome.
type Then = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

impl DurableWaiter {
    /// A waiter that runs `then` with the store's outcome.
    pub fn new(then: impl FnOnce(Result<(), StoreError>) + Send + 'static) -> Self {
        DurableWaiter(Some(Box::new(then)))
    }

    /// A waiter and the receiver its outcome arrives on.
    pub fn channel() -> (Self, oneshot::Receiver<Result<(), StoreError>>) {
        let (tx, rx) = oneshot::channel();
        (
            DurableWaiter::new(move |outcome| {
                let _ = tx.send(outcome);
            }),
            rx,
        )
    }

    /// Tells the waiter the store's outcome.
    pub fn finish(mut self, outcome: Result<(), StoreError>) {
        if let Some(then) = self.0.take() {
            then(outcome);
        }
    }
}

impl Drop for DurableWaiter {
    fn drop(&mut self) {
        if let Some(then) = self.0.take() {
            then(Err(StoreError::Dropped));
        }
    }
}

impl std::fmt::Debug for DurableWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DurableWaiter")
    }
}

/// What a storage failure answers a database call with (cheap to clone to callers).
pub type DbResult<T> = Result<T, Arc<StorageError>>;

/// A database request that expects an answer, with where the answer goes.
pub enum DbCall {
    /// Load one list for the list server of incarnation `epoch` (see [`Version`]):
    /// the list as stored (`None`: never stored).
    Load(ListName, u64, ReplyTo<DbResult<Option<TodoList>>>),
    /// Delete one list from storage (after every store of it queued before):
    /// `true` if it was stored (or held unsaved).
    Delete(ListName, ReplyTo<DbResult<bool>>),
}

impl DbCall {
    /// The list the request is about.
    pub fn list(&self) -> &ListName {
        match self {
            DbCall::Load(name, ..) | DbCall::Delete(name, _) => name,
        }
    }
}

/// A version of a list as one list server incarnation numbers them: `epoch` is
/// unique per list server instance in the process, `seq` counts its stores (0: as loaded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// The list server instance.
    pub epoch: u64,
    /// Its store count.
    pub seq: u64,
}

/// A write of a list: its new version (an O(1) snapshot) and the change since the
/// version `base`. Under `coalesce` a queued store of the same list is replaced by
/// a newer one, which then carries the replaced one's change and waiters too.
pub struct Store {
    /// Which list.
    pub name: ListName,
    /// The whole list as it is after the write.
    pub list: TodoList,
    /// The version this store's `change` builds on (`None`: unknown).
    pub base: Option<Version>,
    /// The version of `list`.
    pub version: Version,
    /// What changed since `base`.
    pub change: Change,
    /// Callers waiting for durability (ack `durable`).
    pub waiters: Vec<DurableWaiter>,
}

impl Store {
    /// Folds a newer store of the same list into this one: the newer list wins, the
    /// changes compose when the newer one builds on this one (else the base is
    /// unknown and the list is written whole), and the waiters add up.
    pub fn absorb(&mut self, newer: Store) {
        if newer.base == Some(self.version) {
            self.change.then(newer.change);
        } else {
            self.base = None;
            self.change = Change::default();
        }
        self.list = newer.list;
        self.version = newer.version;
        self.waiters.extend(newer.waiters);
    }
}

/// One database worker.
pub struct DbWorker {
    storage: Arc<dyn Storage>,
    /// The newest version of each list whose store failed. Loads are answered
    /// from here, and it is stored again on later activity and at stop, so a list
    /// server that idles out or crashes while storage fails loses no applied write
    /// (as long as the process lives).
    unsaved: HashMap<ListName, TodoList>,
    /// When the unsaved lists were last tried again.
    last_retry: Option<tokio::time::Instant>,
    /// The version the backend holds of each list this worker loaded or stored,
    /// so a store building on it writes only its change.
    known: HashMap<ListName, Version>,
    /// Batches handed to a queueing backend, oldest first, not settled yet.
    in_flight: VecDeque<Pending>,
}

/// Most batches a worker has out with a queueing backend before it waits for the
/// oldest: enough to keep the backend's commit window fed, few enough that a slow
/// disk backs up into this worker's mailbox.
pub const MAX_IN_FLIGHT: usize = 4;

/// Most stores a worker commits in one batch.
pub const MAX_BATCH: usize = 512;

/// Least time between two retries of unsaved lists.
const RETRY_EVERY: Duration = Duration::from_secs(1);

impl DbWorker {
    fn new(storage: Arc<dyn Storage>) -> Self {
        DbWorker {
            storage,
            unsaved: HashMap::new(),
            last_retry: None,
            known: HashMap::new(),
            in_flight: VecDeque::new(),
        }
    }

    fn mark_unsaved(&mut self, name: ListName, list: TodoList) {
        if self.unsaved.insert(name, list).is_none() {
            metrics::gauge!(UNSAVED_LISTS).increment(1.0);
        }
    }

    fn mark_saved(&mut self, name: &ListName) {
        if self.unsaved.remove(name).is_some() {
            metrics::gauge!(UNSAVED_LISTS).decrement(1.0);
        }
    }

    /// Stores again every unsaved list (at most once per [`RETRY_EVERY`] unless `now`).
    async fn retry_unsaved(&mut self, now: bool) {
        if self.unsaved.is_empty()
            || (!now && self.last_retry.is_some_and(|t| t.elapsed() < RETRY_EVERY))
        {
            return;
        }
        // A store still out may be newer than the unsaved version.
        self.settle_all().await;
        self.last_retry = Some(tokio::time::Instant::now());
        let names: Vec<ListName> = self.unsaved.keys().cloned().collect();
        for name in names {
            let Some(list) = self.unsaved.get(&name) else {
                continue;
            };
            match self.storage.store(&name, list).await {
                Ok(()) => {
                    self.mark_saved(&name);
                    tracing::info!(list = %name, "unsaved list stored");
                }
                Err(e) if e.is_fenced() => {
                    self.mark_saved(&name);
                    tracing::warn!(list = %name, error = %e, "unsaved list fenced: a newer owner holds it; dropped");
                }
                Err(e) => tracing::warn!(list = %name, error = %e, "unsaved list still not stored"),
            }
        }
    }

    /// Group commit: every store drained from the mailbox goes to the backend in
    /// one batch (stores of the same list folded into the newest). A backend that
    /// queues ([`Storage::queue_batch`]) takes it without this worker waiting: the
    /// backend answers the durable waiters once the batch is on stable storage, and
    /// the outcome is settled here later (at most [`MAX_IN_FLIGHT`] batches out at
    /// once, so a slow disk still fills this worker's mailbox and its policy
    /// applies). Otherwise the batch is stored and settled now.
    async fn commit(&mut self, stores: Vec<Store>) {
        let started = std::time::Instant::now();
        let count = stores.len();
        let mut index: HashMap<ListName, usize> = HashMap::with_capacity(count);
        let mut batch: Vec<Store> = Vec::with_capacity(count);
        for store in stores {
            match index.get(&store.name) {
                Some(&i) => batch[i].absorb(store),
                None => {
                    index.insert(store.name.clone(), batch.len());
                    batch.push(store);
                }
            }
        }
        let mut writes = Vec::with_capacity(batch.len());
        let mut settle = Vec::with_capacity(batch.len());
        let mut waiters = Vec::with_capacity(batch.len());
        for s in batch {
            let builds_on_stored = s.base.is_some() && self.known.get(&s.name) == s.base.as_ref();
            // Until it settles, the next store of the list builds on this version.
            self.known.insert(s.name.clone(), s.version);
            writes.push(ListWrite {
                name: s.name.clone(),
                list: s.list.clone(),
                change: builds_on_stored.then_some(s.change),
            });
            settle.push((s.name, s.version, s.list));
            waiters.push(s.waiters);
        }
        let on_commit: Option<OnCommit> = waiters
            .iter()
            .any(|w| !w.is_empty())
            .then(|| Box::new(move |results: &BatchResults| answer(waiters, results)) as OnCommit);
        let in_flight = match self.storage.queue_batch(QueuedWrites { writes, on_commit }) {
            Ok(outcome) => InFlight::Queued(outcome),
            Err(batch) => {
                let results: BatchResults = self
                    .storage
                    .store_batch(&batch.writes)
                    .await
                    .into_iter()
                    .map(|r| r.map_err(Arc::new))
                    .collect();
                if let Some(on_commit) = batch.on_commit {
                    on_commit(&results);
                }
                InFlight::Done(results)
            }
        };
        self.in_flight.push_back(Pending {
            outcome: in_flight,
            stores: settle,
            count,
            started,
        });
        self.settle_ready();
        while self.in_flight.len() > MAX_IN_FLIGHT {
            self.settle_oldest().await;
        }
        self.retry_unsaved(false).await;
    }

    /// Whether a store of `name` is out and not settled.
    fn has_out(&self, name: &ListName) -> bool {
        self.in_flight
            .iter()
            .any(|p| p.stores.iter().any(|(n, ..)| n == name))
    }

    /// Settles every batch out whose outcome has arrived, oldest first.
    fn settle_ready(&mut self) {
        while let Some(front) = self.in_flight.front_mut() {
            let results = match &mut front.outcome {
                InFlight::Done(results) => std::mem::take(results),
                InFlight::Queued(rx) => match rx.try_recv() {
                    Ok(results) => results,
                    Err(oneshot::error::TryRecvError::Empty) => return,
                    Err(oneshot::error::TryRecvError::Closed) => Vec::new(),
                },
            };
            if let Some(pending) = self.in_flight.pop_front() {
                self.settled(pending, results);
            }
        }
    }

    /// Waits for the oldest batch out and settles it.
    async fn settle_oldest(&mut self) {
        let Some(mut pending) = self.in_flight.pop_front() else {
            return;
        };
        let results = match &mut pending.outcome {
            InFlight::Done(results) => std::mem::take(results),
            InFlight::Queued(rx) => rx.await.unwrap_or_default(),
        };
        self.settled(pending, results);
    }

    /// Waits for and settles every batch out (before a load, a delete, a retry of
    /// unsaved lists and at stop, which must see what the backend holds).
    async fn settle_all(&mut self) {
        while !self.in_flight.is_empty() {
            self.settle_oldest().await;
        }
    }

    /// Books a batch's outcome: a stored list is saved; a failed one is held
    /// unsaved for a retry (and its next store is written whole); a fenced one is
    /// dropped. Its waiters were answered when the outcome came.
    fn settled(&mut self, pending: Pending, results: BatchResults) {
        metrics::histogram!(COMMIT_WRITES).record(pending.count as f64);
        metrics::histogram!(COMMIT_SECONDS).record(pending.started.elapsed().as_secs_f64());
        metrics::counter!(STORES).increment(pending.count as u64);
        let mut results = results.into_iter();
        for (name, version, list) in pending.stores {
            let result = results.next().unwrap_or_else(|| Err(no_result(&name)));
            let Err(e) = result else {
                self.mark_saved(&name);
                continue;
            };
            metrics::counter!(STORE_ERRORS).increment(1);
            if self.known.get(&name) == Some(&version) {
                self.known.remove(&name);
            }
            if e.is_fenced() {
                // The list has a newer owner: this version must never be
                // written, so it is not kept for a retry either.
                tracing::warn!(list = %name, error = %e, "store fenced");
                self.mark_saved(&name);
            } else {
                tracing::warn!(list = %name, error = %e, "store failed");
                self.mark_unsaved(name, list);
            }
        }
    }
}

/// What a batch's write gets when the backend gave it no outcome (it stopped).
fn no_result(name: &ListName) -> Arc<StorageError> {
    Arc::new(StorageError::Io {
        list: Some(name.clone()),
        source: std::io::Error::other("the backend gave no result for this list"),
    })
}

/// Answers each write's durable waiters with its outcome (run by the backend as
/// soon as the batch committed).
fn answer(waiters: Vec<Vec<DurableWaiter>>, results: &BatchResults) {
    for (i, ws) in waiters.into_iter().enumerate() {
        if ws.is_empty() {
            continue;
        }
        let outcome = match results.get(i) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(StoreError::from_storage(e.clone())),
            None => Err(StoreError::Storage(Arc::new(StorageError::Io {
                list: None,
                source: std::io::Error::other("the backend gave no result for this list"),
            }))),
        };
        for w in ws {
            w.finish(outcome.clone());
        }
    }
}

/// A batch handed to the backend whose outcome is not settled yet.
struct Pending {
    outcome: InFlight,
    /// Each write's list, version and whole list (held unsaved if it fails), in order.
    stores: Vec<(ListName, Version, TodoList)>,
    /// Stores folded into the batch.
    count: usize,
    started: std::time::Instant,
}

/// Where a batch's outcome is.
enum InFlight {
    /// Still with a queueing backend.
    Queued(Queued),
    /// Stored already (a backend that does not queue).
    Done(BatchResults),
}

impl Server for DbWorker {
    type Call = DbCall;
    type Cast = Store;

    async fn handle_call(&mut self, request: DbCall) {
        // A load or delete of a list with a store out waits for it to settle: the
        // backend then holds it, and its failure is held unsaved.
        if self.has_out(request.list()) {
            self.settle_all().await;
        } else {
            self.settle_ready();
        }
        match request {
            DbCall::Load(name, epoch, reply) => {
                self.retry_unsaved(false).await;
                // A version that could not be stored is newer than the stored one.
                if let Some(list) = self.unsaved.get(&name) {
                    self.known.remove(&name);
                    return reply.send(Ok(Some(list.clone())));
                }
                let loaded = self.storage.load(&name).await;
                match &loaded {
                    Ok(_) => {
                        self.known.insert(name, Version { epoch, seq: 0 });
                    }
                    Err(_) => {
                        self.known.remove(&name);
                    }
                }
                reply.send(loaded.map_err(Arc::new))
            }
            DbCall::Delete(name, reply) => {
                // Whatever the backend holds afterwards, no store builds on it.
                self.known.remove(&name);
                match self.storage.delete_list(&name).await {
                    Ok(stored) => {
                        let held = self.unsaved.contains_key(&name);
                        self.mark_saved(&name);
                        reply.send(Ok(stored || held));
                    }
                    Err(e) => reply.send(Err(Arc::new(e))),
                }
            }
        }
    }

    async fn handle_cast(&mut self, store: Store) {
        self.commit(vec![store]).await;
    }

    const MAX_BATCH: usize = MAX_BATCH;

    /// What the mailbox held at once: loads of lists with no store among it are
    /// answered first (they do not depend on the commit), then every store is
    /// committed as one batch, then the loads of lists that were being stored.
    async fn handle_batch(&mut self, batch: Vec<Envelope<Self>>) {
        let mut stores = Vec::new();
        let mut loads = Vec::new();
        for env in batch {
            match env {
                Envelope::Cast(store) => stores.push(store),
                Envelope::Call(call) => loads.push(call),
            }
        }
        let stored: std::collections::HashSet<ListName> =
            stores.iter().map(|s| s.name.clone()).collect();
        // A delete waits for the stores of its list queued before it, like a load.
        let (after, before): (Vec<_>, Vec<_>) = loads
            .into_iter()
            .partition(|call| stored.contains(call.list()));
        for call in before {
            self.handle_call(call).await;
        }
        if !stores.is_empty() {
            self.commit(stores).await;
        }
        for call in after {
            self.handle_call(call).await;
        }
    }

    async fn terminate(&mut self, _reason: &sluicegate::runtime::ExitReason) {
        self.settle_all().await;
        self.retry_unsaved(true).await;
        for name in self.unsaved.keys() {
            tracing::error!(list = %name, "list could not be stored before stopping; its latest writes are lost");
        }
    }

    fn coalesce(old: Envelope<Self>, new: &mut Envelope<Self>) {
        match (old, new) {
            (Envelope::Cast(mut old), Envelope::Cast(new)) => {
                // The newer store takes the older one's place, carrying its change.
                let newer = std::mem::replace(new, placeholder(&old));
                old.absorb(newer);
                *new = old;
            }
            (Envelope::Call(call), _) => fail_call(call, CallError::Dropped),
            (Envelope::Cast(old), Envelope::Call(..)) => fail_waiters(old, StoreError::Dropped),
        }
    }

    fn evicted_cast(store: Store, _why: Eviction) {
        fail_waiters(store, StoreError::Dropped);
    }
}

/// A cheap stand-in while two stores are folded into one.
fn placeholder(like: &Store) -> Store {
    Store {
        name: like.name.clone(),
        list: TodoList::new(),
        base: None,
        version: like.version,
        change: Change::default(),
        waiters: Vec::new(),
    }
}

fn fail_waiters(store: Store, err: StoreError) {
    for w in store.waiters {
        w.finish(Err(err.clone()));
    }
}

/// The database: a keyed pool of [`DbWorker`]s in front of one storage backend.
#[derive(Clone)]
pub struct Database {
    pool: KeyedPool<DbWorker>,
    storage: Arc<dyn Storage>,
    /// Every list a store was handed out for by this process (a Bloom filter: no
    /// false negatives). A list not in it, which the backend surely does not hold
    /// either, is new: its load is answered at once, without a trip to a worker.
    touched: Arc<AtomicBloomFilter>,
}

/// Bits of [`Database::touched`] (1 MiB).
const TOUCHED_BITS: usize = 1 << 23;

impl Database {
    /// Starts `workers` workers under `supervisor`, routed or direct.
    pub async fn start(
        storage: Arc<dyn Storage>,
        workers: usize,
        routing: Routing,
        worker_policy: Policy,
        router_policy: Policy,
        supervisor: &Supervisor,
    ) -> Result<Self, StartError> {
        let s = storage.clone();
        let pool = KeyedPool::start(
            PoolSpec {
                worker_role: WORKER_ROLE,
                router_role: ROUTER_ROLE,
                workers,
                routing,
                worker_policy,
                router_policy,
            },
            supervisor,
            move |_| DbWorker::new(s.clone()),
        )
        .await?;
        let touched = AtomicBloomFilter::with_num_bits(TOUCHED_BITS).expected_items(1_000_000);
        Ok(Database {
            pool,
            storage,
            touched: Arc::new(touched),
        })
    }

    /// Loads a list (behind any store of it already queued on its worker) for the
    /// list server incarnation `epoch`, whose stores then build on what was loaded.
    /// A list that no store of this process touched and that the backend surely
    /// does not hold ([`Storage::surely_absent`]) is new: `Ok(None)` at once.
    ///
    /// # Errors
    ///
    /// [`LoadError`]: the backend failed or the worker did not answer in `timeout`.
    pub async fn load(
        &self,
        name: &ListName,
        epoch: u64,
        timeout: Duration,
    ) -> Result<Option<TodoList>, LoadError> {
        if !self.touched.contains(name.as_str()) && self.storage.surely_absent(name) {
            return Ok(None);
        }
        match self
            .pool
            .call(name, |r| DbCall::Load(name.clone(), epoch, r), timeout)
            .await
        {
            Ok(Ok(list)) => Ok(list),
            Ok(Err(e)) => Err(LoadError::Storage(e)),
            Err(e) => Err(LoadError::Call(e)),
        }
    }

    /// Deletes a list from storage, behind every store of it already queued on its
    /// worker; returns once the backend has made the delete durable, with whether
    /// the list was stored.
    pub async fn delete(&self, name: &ListName, timeout: Duration) -> Result<bool, StoreError> {
        match self
            .pool
            .call(name, |r| DbCall::Delete(name.clone(), r), timeout)
            .await
        {
            Ok(Ok(stored)) => Ok(stored),
            Ok(Err(e)) => Err(StoreError::from_storage(e)),
            Err(CallError::Rejected) => Err(StoreError::Rejected),
            Err(CallError::Stopped) => Err(StoreError::Stopped),
            Err(CallError::Timeout) => Err(StoreError::Unanswered(timeout)),
            // Dropped, shed or expired before a worker ran it.
            Err(_) => Err(StoreError::Dropped),
        }
    }

    /// Queues a store of a list on its worker, keyed by the list name so a
    /// `coalesce` mailbox keeps only the newest version. Waits only if the worker's
    /// policy makes senders wait.
    pub async fn store(&self, store: Store) -> Result<(), StoreError> {
        // Before it can be queued: a later load of the list then asks the worker.
        self.touched.insert(store.name.as_str());
        let key = Key::from(store.name.as_str());
        let name = store.name.clone();
        self.pool
            .cast_with(&name, store, Meta::keyed(key))
            .await
            .map_err(|e| match e {
                CastError::Stopped => StoreError::Stopped,
                // Rejected, or no space in time.
                _ => StoreError::Rejected,
            })
    }

    /// The pool (for stats, policy changes and benchmarks).
    pub fn pool(&self) -> &KeyedPool<DbWorker> {
        &self.pool
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Stops the router and workers, first writing everything queued.
    pub async fn stop(&self) {
        self.pool.stop(true).await;
    }
}

/// Why a list could not be loaded.
#[derive(Clone, Debug)]
pub enum LoadError {
    /// The backend failed or the stored list is damaged.
    Storage(Arc<StorageError>),
    /// The database did not answer.
    Call(CallError),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Storage(e) => e.fmt(f),
            LoadError::Call(e) => write!(f, "database did not answer the load: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn store(list: &TodoList, base: Option<u64>, seq: u64, touched: &[u64]) -> Store {
        let mut change = Change::default();
        for id in touched {
            change.touch(list, *id);
        }
        Store {
            name: ListName::new("l").unwrap(),
            list: list.clone(),
            base: base.map(|seq| Version { epoch: 1, seq }),
            version: Version { epoch: 1, seq },
            change,
            waiters: Vec::new(),
        }
    }

    #[test]
    fn a_newer_store_building_on_the_older_composes_their_changes() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let mut l = TodoList::new();
        l.add_entry(d, "a").unwrap();
        let mut older = store(&l, Some(0), 1, &[1]);
        l.add_entry(d, "b").unwrap();
        l.delete_entry(1).unwrap();
        older.absorb(store(&l, Some(1), 2, &[1, 2]));
        assert_eq!(older.base, Some(Version { epoch: 1, seq: 0 }));
        assert_eq!(older.version, Version { epoch: 1, seq: 2 });
        assert_eq!(older.list, l);
        assert_eq!(older.change.entries.len(), 2);
        assert_eq!(older.change.entries[&1], None, "the later delete wins");
        assert_eq!(older.change.entries[&2].as_ref().unwrap().title, "b");
    }

    #[test]
    fn a_gap_between_two_stores_makes_the_base_unknown() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let mut l = TodoList::new();
        l.add_entry(d, "a").unwrap();
        let mut older = store(&l, Some(0), 1, &[1]);
        l.add_entry(d, "b").unwrap();
        // Store 2 never reached the database; store 3 builds on it.
        older.absorb(store(&l, Some(2), 3, &[2]));
        assert_eq!(older.base, None, "written whole, not as a change");
        assert_eq!(older.list, l);
    }
}
