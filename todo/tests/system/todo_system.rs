//! The whole to-do system through its library API, one suite instantiated for the
//! `files` and the `sqlite` backends: read-back, restart, one server per list,
//! hostile names, crash restart, ack modes and live policy reload. Real time, real disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use sluicegate::mailbox::Policy;
use sluicegate::runtime::SupervisorEvent;
use sluicegate_todo::config::{AckMode, Config};
use sluicegate_todo::domain::{
    EntryUpdate, InvalidListName, ListName, TodoError, TodoList, TodoSystem, TodoSystemError,
    WriteOutcome,
};
use sluicegate_todo::storage::{self, BackendKind, Storage, StorageError};
use tokio::sync::watch;

use crate::support::eventually::{eventually, poll_until, PATIENCE};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn name(s: &str) -> ListName {
    ListName::new(s).unwrap()
}

fn config(backend: BackendKind) -> Config {
    let mut c = Config::builtin();
    c.storage.backend = backend;
    c.system.call_timeout = PATIENCE;
    c
}

pub(crate) async fn start(backend: BackendKind, dir: &Path) -> TodoSystem {
    TodoSystem::start(&config(backend), dir).await.unwrap()
}

/// A runtime for a property test's case (proptest's cases are not async).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn done(o: WriteOutcome) -> sluicegate_todo::domain::Entry {
    match o {
        WriteOutcome::Done(e) => e,
        WriteOutcome::Accepted => panic!("expected an applied write, got Accepted"),
        WriteOutcome::Replayed(e) => panic!("a write without a key was replayed: {e:?}"),
    }
}

/// A storage wrapper whose stores wait while the gate is closed (loads pass), so a
/// test can hold the database still and look at what each ack mode promised.
struct Gate {
    inner: Arc<dyn Storage>,
    open: watch::Receiver<bool>,
    /// Stores waiting at the closed gate now.
    waiting: Arc<AtomicUsize>,
}

struct GateCtl {
    open: watch::Sender<bool>,
    waiting: Arc<AtomicUsize>,
}

impl GateCtl {
    fn close(&self) {
        self.open.send_replace(false);
    }
    fn open(&self) {
        self.open.send_replace(true);
    }
    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

fn gate(inner: Arc<dyn Storage>) -> (Arc<dyn Storage>, GateCtl) {
    let (tx, rx) = watch::channel(true);
    let waiting = Arc::new(AtomicUsize::new(0));
    let g = Gate {
        inner,
        open: rx,
        waiting: waiting.clone(),
    };
    (Arc::new(g), GateCtl { open: tx, waiting })
}

#[async_trait]
impl Storage for Gate {
    async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError> {
        self.inner.load(name).await
    }
    async fn store(&self, name: &ListName, list: &TodoList) -> Result<(), StorageError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.clone();
        let _ = open.wait_for(|o| *o).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.inner.store(name, list).await
    }
    async fn delete_list(&self, name: &ListName) -> Result<bool, StorageError> {
        self.inner.delete_list(name).await
    }
    async fn list_names(&self) -> Result<Vec<ListName>, StorageError> {
        self.inner.list_names().await
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

/// Names that must round-trip and stay inside the data dir.
fn hostile_names() -> Vec<ListName> {
    let mut v: Vec<ListName> = [
        "bad/name",
        "../x",
        "CON",
        "日本語",
        ".",
        "..",
        "/",
        "\\..\\y",
    ]
    .into_iter()
    .map(name)
    .collect();
    v.push(name(&"n".repeat(256)));
    v.push(name(&format!("{}a", "日".repeat(85)))); // 256 bytes, multi-byte
    v
}

// ---------------------------------------------------------------------------
// The suite: each fn takes the backend; the macro at the bottom instantiates it.

async fn write_then_read_back(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let sys = start(backend, dir.path()).await;
    let l = name("groceries");
    let a = done(sys.add_entry(&l, day(23), "Dentist", None).await.unwrap());
    let b = done(
        sys.add_entry(&l, day(24), "Shopping", Some(AckMode::Durable))
            .await
            .unwrap(),
    );
    let c = done(
        sys.add_entry(&l, day(23), "Movies", Some(AckMode::Applied))
            .await
            .unwrap(),
    );
    assert_eq!((a.id, b.id, c.id), (1, 2, 3));
    let on_23 = sys.entries(&l, Some(day(23))).await.unwrap();
    assert_eq!(on_23, vec![a.clone(), c.clone()]);
    assert_eq!(sys.entries(&l, None).await.unwrap(), vec![a, b.clone(), c]);
    // Update date and title, then one of them.
    let upd = EntryUpdate {
        date: Some(day(25)),
        title: Some("Dentist (moved)".into()),
        done: None,
    };
    let a2 = done(sys.update_entry(&l, 1, upd, None).await.unwrap());
    assert_eq!(
        (a2.id, a2.date, a2.title.as_str()),
        (1, day(25), "Dentist (moved)")
    );
    let title_only = EntryUpdate {
        date: None,
        title: Some("Dentist!".into()),
        done: None,
    };
    let a3 = done(sys.update_entry(&l, 1, title_only, None).await.unwrap());
    assert_eq!(a3.date, day(25));
    assert!(!a3.done, "a new entry is not done");
    // The done flag alone, then back.
    let mark = |done| EntryUpdate {
        done: Some(done),
        ..EntryUpdate::default()
    };
    let a4 = done(sys.update_entry(&l, 1, mark(true), None).await.unwrap());
    assert!(a4.done);
    assert_eq!((a4.date, a4.title.as_str()), (day(25), "Dentist!"));
    assert!(sys.entries(&l, None).await.unwrap()[0].done);
    let a5 = done(sys.update_entry(&l, 1, mark(false), None).await.unwrap());
    assert!(!a5.done);
    // Delete, then unknown ids and bad input.
    assert_eq!(done(sys.delete_entry(&l, 2, None).await.unwrap()), b);
    assert_eq!(
        sys.delete_entry(&l, 2, None).await,
        Err(TodoSystemError::NotFound(2))
    );
    assert_eq!(
        sys.update_entry(&l, 99, EntryUpdate::default(), None).await,
        Err(TodoSystemError::NotFound(99))
    );
    assert!(matches!(
        sys.add_entry(&l, day(23), "", None).await,
        Err(TodoSystemError::Invalid(TodoError::InvalidTitle(_)))
    ));
    let ids: Vec<u64> = sys
        .entries(&l, None)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, vec![1, 3]);
    // Ids are never reused, not even after a delete.
    assert_eq!(
        done(sys.add_entry(&l, day(1), "x", None).await.unwrap()).id,
        4
    );
    // An unknown list reads as empty.
    assert!(sys.entries(&name("nobody"), None).await.unwrap().is_empty());
    sys.shutdown().await;
}

/// Every acknowledged write, by list: id -> title.
type Acked = BTreeMap<ListName, BTreeMap<u64, String>>;

/// Concurrent writers over several lists; returns what was acknowledged `Done`.
async fn concurrent_writes(sys: &TodoSystem, lists: &[ListName], ack: AckMode) -> Acked {
    let mut tasks = Vec::new();
    for t in 0..16 {
        let sys = sys.clone();
        let lists = lists.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..12 {
                let l = &lists[(t + i) % lists.len()];
                let title = format!("task {t} write {i}");
                let e = done(sys.add_entry(l, day(27), &title, Some(ack)).await.unwrap());
                assert_eq!(e.title, title);
                acked.push((l.clone(), e.id, title));
            }
            acked
        }));
    }
    let mut acked = Acked::new();
    for t in tasks {
        for (l, id, title) in t.await.unwrap() {
            let prev = acked.entry(l).or_default().insert(id, title);
            assert!(prev.is_none(), "one id handed out twice");
        }
    }
    acked
}

async fn assert_all_present(sys: &TodoSystem, acked: &Acked) {
    for (l, want) in acked {
        let got: BTreeMap<u64, String> = sys
            .entries(l, None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.id, e.title))
            .collect();
        for (id, title) in want {
            assert_eq!(got.get(id), Some(title), "list {l:?}: entry {id} lost");
        }
    }
}

async fn restart_keeps_every_acknowledged_write(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let lists: Vec<ListName> = ["a", "b", "c", "d"].into_iter().map(name).collect();
    let sys = start(backend, dir.path()).await;
    let durable = concurrent_writes(&sys, &lists, AckMode::Durable).await;
    let applied = concurrent_writes(&sys, &lists, AckMode::Applied).await;
    sys.shutdown().await;
    drop(sys);
    // Graceful stop: every acknowledged write, durable or applied, is back.
    let sys = start(backend, dir.path()).await;
    assert_all_present(&sys, &durable).await;
    assert_all_present(&sys, &applied).await;
    let total: usize = durable
        .values()
        .chain(applied.values())
        .map(|m| m.len())
        .sum();
    let mut read = 0;
    for l in &lists {
        read += sys.entries(l, None).await.unwrap().len();
    }
    assert_eq!(read, total, "no write appears twice or from nowhere");
    sys.shutdown().await;
}

async fn durable_writes_survive_without_a_shutdown(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let lists: Vec<ListName> = ["p", "q", "r"].into_iter().map(name).collect();
    let sys = start(backend, dir.path()).await;
    let durable = concurrent_writes(&sys, &lists, AckMode::Durable).await;
    // No shutdown, no final flush: what a durable ack promised must already be stored.
    let fresh = storage::open(backend, dir.path()).unwrap();
    for (l, want) in &durable {
        let list = fresh.load(l).await.unwrap().expect("list stored");
        for (id, title) in want {
            let e = list.all_entries().into_iter().find(|e| e.id == *id);
            assert_eq!(e.map(|e| e.title).as_ref(), Some(title), "{l:?}/{id}");
        }
    }
    drop(fresh);
    sys.shutdown().await;
}

/// Issue 14's `DELETE /lists/{list}` in the system: the list is gone from storage
/// when the delete returns (checked on a second handle to the data dir, with no
/// shutdown), its server is stopped and out of the registry, the next write starts
/// a fresh list with id 1, other lists are untouched, and an unknown list is
/// `ListNotFound`.
async fn delete_list_is_durable_and_the_next_write_starts_afresh(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let sys = start(backend, dir.path()).await;
    let (gone, kept) = (name("gone"), name("kept"));
    for t in ["a", "b", "c"] {
        sys.add_entry(&gone, day(23), t, Some(AckMode::Applied))
            .await
            .unwrap();
    }
    // The last write only applied (its store may still be queued): the delete must
    // not be overtaken by it.
    sys.add_entry(&kept, day(23), "k", Some(AckMode::Durable))
        .await
        .unwrap();
    assert!(sys.registry().get(&gone).is_some());
    sys.delete_list(&gone).await.unwrap();
    assert!(sys.registry().get(&gone).is_none(), "server stopped");
    let fresh = storage::open(backend, dir.path()).unwrap();
    assert_eq!(fresh.load(&gone).await.unwrap(), None, "deleted on disk");
    assert_eq!(fresh.load(&kept).await.unwrap().unwrap().len(), 1);
    assert!(!fresh.list_names().await.unwrap().contains(&gone));
    drop(fresh);
    assert_eq!(sys.entries(&gone, None).await.unwrap(), vec![]);
    let again = done(sys.add_entry(&gone, day(24), "new", None).await.unwrap());
    assert_eq!(again.id, 1, "a fresh list");
    assert_eq!(
        sys.delete_list(&name("never")).await,
        Err(TodoSystemError::ListNotFound(name("never")))
    );
    // After a restart the deleted entries stay deleted; the new one is there.
    sys.shutdown().await;
    let sys = start(backend, dir.path()).await;
    let entries = sys.entries(&gone, None).await.unwrap();
    assert_eq!(
        entries.iter().map(|e| e.title.as_str()).collect::<Vec<_>>(),
        ["new"]
    );
    sys.shutdown().await;
}

async fn concurrent_first_use_starts_one_server(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let sys = start(backend, dir.path()).await;
    let l = name("hot");
    let n = 64;
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (sys, l, barrier) = (sys.clone(), l.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            // Half look the server up directly, half go through a write only.
            let id = if i % 2 == 0 {
                Some(sys.registry().get_or_start(&l).await.unwrap().id())
            } else {
                None
            };
            let e = done(
                sys.add_entry(&l, day(1), &format!("w{i}"), Some(AckMode::Applied))
                    .await
                    .unwrap(),
            );
            (id, e.id)
        }));
    }
    let mut server_ids = std::collections::BTreeSet::new();
    let mut entry_ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (sid, eid) = t.await.unwrap();
        server_ids.extend(sid);
        assert!(entry_ids.insert(eid), "entry id {eid} given twice");
    }
    let live = sys.registry().get(&l).expect("the list server is live");
    assert_eq!(server_ids.len(), 1, "several servers: {server_ids:?}");
    assert_eq!(server_ids.first(), Some(&live.id()));
    assert_eq!(sys.live_lists(), 1);
    // Every write went through this one server's mailbox.
    assert_eq!(live.stats().sent, n as u64);
    assert_eq!(entry_ids, (1..=n as u64).collect());
    assert_eq!(sys.entries(&l, None).await.unwrap().len(), n);
    sys.shutdown().await;
}

/// Every path below `root`.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

async fn hostile_names_round_trip_and_stay_inside(backend: BackendKind) {
    let outer = tempfile::tempdir().unwrap();
    let data = outer.path().join("data");
    let sys = start(backend, &data).await;
    for (i, l) in hostile_names().iter().enumerate() {
        sys.add_entry(l, day(2), &format!("entry of {i}"), Some(AckMode::Durable))
            .await
            .unwrap();
    }
    sys.shutdown().await;
    drop(sys);
    let sys = start(backend, &data).await;
    for (i, l) in hostile_names().iter().enumerate() {
        let got = sys.entries(l, None).await.unwrap();
        assert_eq!(got.len(), 1, "{l:?}");
        assert_eq!(got[0].title, format!("entry of {i}"), "{l:?}");
    }
    let mut names = sys.database().storage().list_names().await.unwrap();
    names.sort();
    let mut want = hostile_names();
    want.sort();
    assert_eq!(names, want);
    sys.shutdown().await;
    // Nothing was created beside the data dir, and nothing inside points out.
    let top: Vec<_> = std::fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, vec![std::ffi::OsString::from("data")]);
    let root = data.canonicalize().unwrap();
    for p in walk(&root) {
        assert!(!std::fs::symlink_metadata(&p).unwrap().is_symlink());
        assert!(
            p.canonicalize().unwrap().starts_with(&root),
            "{}",
            p.display()
        );
    }
}

async fn injected_panic_restarts_one_list_with_its_list_reloaded(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let sys = start(backend, dir.path()).await;
    let (victim, bystander) = (name("victim"), name("bystander"));
    for i in 0..5 {
        sys.add_entry(&victim, day(3), &format!("v{i}"), Some(AckMode::Durable))
            .await
            .unwrap();
        sys.add_entry(&victim, day(3), &format!("va{i}"), Some(AckMode::Applied))
            .await
            .unwrap();
        sys.add_entry(&bystander, day(3), &format!("b{i}"), Some(AckMode::Applied))
            .await
            .unwrap();
    }
    let before = sys.entries(&victim, None).await.unwrap();
    let server_id = sys.registry().get(&victim).unwrap().id();
    let mut events = sys.supervisor().subscribe();

    // The bystander keeps being written while the victim crashes.
    let writer = {
        let (sys, l) = (sys.clone(), bystander.clone());
        tokio::spawn(async move {
            for i in 5..45 {
                sys.add_entry(&l, day(3), &format!("b{i}"), Some(AckMode::Applied))
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    // Readers of the victim itself, queued around the crash, are all answered.
    let readers: Vec<_> = (0..20)
        .map(|_| {
            let (sys, l) = (sys.clone(), victim.clone());
            tokio::spawn(async move { sys.entries(&l, None).await })
        })
        .collect();
    sys.inject_panic(&victim).await.unwrap();
    for r in readers {
        assert_eq!(r.await.unwrap().as_ref(), Ok(&before));
    }
    let ev = tokio::time::timeout(PATIENCE, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&ev, SupervisorEvent::Restarted { role: "todo_server", name, .. } if name == "victim"),
        "{ev:?}"
    );
    // Same server (handle), fresh state loaded from storage: every write is back,
    // the ones acknowledged `applied` too (their store was queued before the crash).
    assert_eq!(sys.entries(&victim, None).await.unwrap(), before);
    assert_eq!(sys.registry().get(&victim).unwrap().id(), server_id);
    // And it keeps counting ids where it was.
    let next = done(sys.add_entry(&victim, day(3), "after", None).await.unwrap());
    assert_eq!(next.id, before.last().unwrap().id + 1);
    writer.await.unwrap();
    assert_eq!(sys.entries(&bystander, None).await.unwrap().len(), 45);
    assert!(
        events.try_recv().is_err(),
        "only the victim was restarted, once"
    );
    sys.shutdown().await;
}

/// The list's entries once `done` holds for them (reads do not wait behind queued
/// writes, so a write accepted or delivered shows up a little later); the last read
/// if it never does within [`PATIENCE`].
async fn entries_once(
    sys: &TodoSystem,
    l: &ListName,
    done: impl Fn(&[sluicegate_todo::domain::Entry]) -> bool,
) -> Vec<sluicegate_todo::domain::Entry> {
    let found = poll_until(async || {
        let e = sys.entries(l, None).await.unwrap();
        done(&e).then_some(e)
    })
    .await;
    match found {
        Some(e) => e,
        None => sys.entries(l, None).await.unwrap(),
    }
}

async fn ack_modes_behave_as_documented(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let backing = storage::open(backend, dir.path()).unwrap();
    let (gated, gate) = gate(backing.clone());
    let sys = TodoSystem::start_with_storage(&config(backend), gated)
        .await
        .unwrap();
    let l = name("acks");
    // Start the list server (its load passes the gate), then hold every store.
    assert!(sys.entries(&l, None).await.unwrap().is_empty());
    gate.close();

    // none: accepted at once, nothing stored; applied in order, and reads see it
    // once it is (they do not wait in the mailbox behind it).
    let r = sys.add_entry(&l, day(4), "cast", Some(AckMode::None)).await;
    assert_eq!(r, Ok(WriteOutcome::Accepted));
    let seen = entries_once(&sys, &l, |e| !e.is_empty()).await;
    assert_eq!(
        seen.iter().map(|e| e.title.as_str()).collect::<Vec<_>>(),
        ["cast"]
    );
    // none hides a refused write: the caller learns nothing.
    assert_eq!(
        sys.delete_entry(&l, 777, Some(AckMode::None)).await,
        Ok(WriteOutcome::Accepted)
    );

    // applied: answered with the entry while its store is still held at the gate.
    let e = done(
        sys.add_entry(&l, day(4), "applied", Some(AckMode::Applied))
            .await
            .unwrap(),
    );
    assert_eq!(e.id, 2);
    eventually("a store waits at the gate", || gate.waiting() > 0).await;
    assert_eq!(backing.load(&l).await.unwrap(), None, "nothing stored yet");

    // durable: not answered while the store is held...
    let durable = {
        let (sys, l) = (sys.clone(), l.clone());
        tokio::spawn(async move {
            sys.add_entry(&l, day(4), "durable", Some(AckMode::Durable))
                .await
        })
    };
    // ...even once it is applied in memory (a read sees it)...
    eventually("the durable write is applied", || {
        sys.registry()
            .get(&l)
            // the first read (the list was not live yet), the cast, the delete,
            // the applied and the durable write: later reads need no message
            .is_some_and(|s| s.stats().delivered >= 5)
    })
    .await;
    // Delivered is not yet applied: the read sees it once the server applied it.
    let applied = entries_once(&sys, &l, |e| e.len() == 3).await.len();
    assert_eq!(applied, 3);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!durable.is_finished(), "durable answered before the store");
    // ...and answered once stored: then the backend has every write up to it.
    gate.open();
    let e = done(
        tokio::time::timeout(PATIENCE, durable)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    );
    assert_eq!(e.id, 3);
    let stored = backing.load(&l).await.unwrap().expect("stored");
    let titles: Vec<String> = stored.all_entries().into_iter().map(|e| e.title).collect();
    assert_eq!(titles, ["cast", "applied", "durable"]);

    // The configured default applies when a request names none.
    let mut cfg = config(backend);
    cfg.system.default_ack = AckMode::None;
    sys.shutdown().await;
    drop(sys);
    let sys = TodoSystem::start(&cfg, dir.path()).await.unwrap();
    assert_eq!(
        sys.add_entry(&l, day(4), "default", None).await,
        Ok(WriteOutcome::Accepted)
    );
    // Accepted, so applied soon; a read does not wait for it.
    let read = entries_once(&sys, &l, |e| e.len() == 4).await.len();
    assert_eq!(read, 4);
    sys.shutdown().await;
}

async fn reload_policies_loses_no_accepted_message(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (gated, gate) = gate(storage::open(backend, dir.path()).unwrap());
    let mut cfg = config(backend);
    // One worker with room for one store, list servers that make senders wait:
    // holding the store makes work pile up in every mailbox.
    cfg.database.workers = 1;
    cfg.mailbox.database_worker = Policy::Block {
        capacity: 1,
        send_timeout: None,
    };
    cfg.mailbox.todo_server = Policy::Block {
        capacity: 64,
        send_timeout: None,
    };
    let sys = TodoSystem::start_with_storage(&cfg, gated).await.unwrap();
    let lists: Vec<ListName> = ["r1", "r2", "r3"].into_iter().map(name).collect();
    for l in &lists {
        sys.entries(l, None).await.unwrap();
    }
    gate.close();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (sys, l) = (sys.clone(), lists[i % 3].clone());
        tasks.push(tokio::spawn(async move {
            sys.add_entry(&l, day(5), &format!("w{i}"), Some(AckMode::Applied))
                .await
        }));
    }
    let queued = |sys: &TodoSystem| {
        sys.mailbox_stats()
            .iter()
            .find(|r| r.role == "todo_server")
            .map_or(0, |r| r.depth)
    };
    eventually("writes queue up in the list servers", || queued(&sys) > 3).await;

    // An invalid policy is refused and changes nothing.
    let mut bad = cfg.mailbox.clone();
    bad.todo_server = Policy::DropNewest { capacity: 0 };
    assert!(sys.reload_policies(&bad).is_err());
    assert_eq!(
        sys.registry().get(&lists[0]).unwrap().stats().policy,
        cfg.mailbox.todo_server
    );

    // Shrink the list servers' capacity below what they hold; widen the worker.
    let mut new = cfg.mailbox.clone();
    new.todo_server = Policy::Block {
        capacity: 2,
        send_timeout: None,
    };
    new.database_worker = Policy::Coalesce { capacity: 16 };
    sys.reload_policies(&new).unwrap();
    for l in &lists {
        assert_eq!(
            sys.registry().get(l).unwrap().stats().policy,
            new.todo_server
        );
    }
    for w in sys.database().pool().workers() {
        assert_eq!(w.stats().policy, new.database_worker);
    }
    gate.open();
    let mut titles = std::collections::BTreeSet::new();
    for t in tasks {
        let e = done(
            tokio::time::timeout(PATIENCE, t)
                .await
                .unwrap()
                .unwrap()
                .unwrap(),
        );
        titles.insert(e.title);
    }
    assert_eq!(titles.len(), 30);
    let mut read = 0;
    for l in &lists {
        read += sys.entries(l, None).await.unwrap().len();
    }
    assert_eq!(read, 30, "every accepted write applied");
    for r in sys.mailbox_stats() {
        for lost in [
            "rejected",
            "timed_out",
            "dropped_oldest",
            "shed",
            "expired",
            "discarded",
        ] {
            assert_eq!(
                r.outcomes.get(lost).copied().unwrap_or(0),
                0,
                "{} {lost}",
                r.role
            );
        }
    }
    // A list server started after the reload gets the new policy.
    sys.entries(&name("late"), None).await.unwrap();
    assert_eq!(
        sys.registry().get(&name("late")).unwrap().stats().policy,
        new.todo_server
    );
    sys.shutdown().await;
    let sys = start(backend, dir.path()).await;
    let mut read = 0;
    for l in &lists {
        read += sys.entries(l, None).await.unwrap().len();
    }
    assert_eq!(read, 30, "every accepted write stored");
    sys.shutdown().await;
}

async fn shutdown_under_load_keeps_every_acknowledged_write(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let sys = start(backend, dir.path()).await;
    let lists: Vec<ListName> = (0..6).map(|i| name(&format!("s{i}"))).collect();
    let acked_so_far = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..12 {
        let (sys, lists, count) = (sys.clone(), lists.clone(), acked_so_far.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..400 {
                let l = &lists[(t + i) % lists.len()];
                let ack = if i % 2 == 0 {
                    AckMode::Durable
                } else {
                    AckMode::Applied
                };
                match sys
                    .add_entry(l, day(6), &format!("{t}-{i}"), Some(ack))
                    .await
                {
                    Ok(o) => {
                        let e = done(o);
                        acked.push((l.clone(), e.id, e.title));
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    // Once shutdown begins, requests are refused, nothing else.
                    Err(TodoSystemError::ShuttingDown) => break,
                    Err(e) => panic!("{e:?}"),
                }
            }
            acked
        }));
    }
    eventually("writes are acknowledged", || {
        acked_so_far.load(Ordering::SeqCst) >= 100
    })
    .await;
    sys.shutdown().await;
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    // After shutdown nothing is acknowledged that could not be stored.
    assert!(matches!(
        sys.add_entry(&lists[0], day(6), "late", Some(AckMode::Applied))
            .await,
        Err(TodoSystemError::ShuttingDown)
    ));
    assert!(matches!(
        sys.entries(&lists[0], None).await,
        Err(TodoSystemError::ShuttingDown)
    ));
    drop(sys);
    let sys = start(backend, dir.path()).await;
    let mut stored = BTreeMap::new();
    for l in &lists {
        let entries = sys.entries(l, None).await.unwrap();
        stored.insert(l.clone(), entries);
    }
    for (l, id, title) in &acked {
        assert!(
            stored[l].iter().any(|e| e.id == *id && &e.title == title),
            "{l:?}: acknowledged entry {id} ({title}) lost at shutdown"
        );
    }
    sys.shutdown().await;
}

async fn durable_waiters_of_a_replaced_store_are_answered(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let backing = storage::open(backend, dir.path()).unwrap();
    let (gated, gate) = gate(backing.clone());
    let sys = TodoSystem::start_with_storage(&config(backend), gated)
        .await
        .unwrap();
    let l = name("coalesced");
    sys.entries(&l, None).await.unwrap();
    gate.close();
    let write = |i: usize| {
        let (sys, l) = (sys.clone(), l.clone());
        tokio::spawn(async move {
            sys.add_entry(&l, day(7), &format!("d{i}"), Some(AckMode::Durable))
                .await
        })
    };
    // The first store is taken by the worker and held at the gate...
    let first = write(0);
    eventually("the first store is held", || gate.waiting() == 1).await;
    // ...so the next ten queue on the worker, each replacing the one before.
    let rest: Vec<_> = (1..=10).map(write).collect();
    let coalesced = |sys: &TodoSystem| {
        sys.mailbox_stats()
            .into_iter()
            .find(|r| r.role == "database_worker")
            .map_or(0, |r| r.outcomes["coalesced"])
    };
    eventually("ten stores coalesce into one", || coalesced(&sys) == 9).await;
    assert!(!first.is_finished() && rest.iter().all(|t| !t.is_finished()));
    gate.open();
    for (i, t) in std::iter::once(first).chain(rest).enumerate() {
        let e = done(
            tokio::time::timeout(PATIENCE, t)
                .await
                .unwrap()
                .unwrap()
                .unwrap(),
        );
        assert_eq!(e.title, format!("d{i}"));
    }
    // Two stores reached the backend, the second holding all eleven writes.
    assert_eq!(backing.load(&l).await.unwrap().unwrap().len(), 11);
    assert_eq!(coalesced(&sys), 9);
    sys.shutdown().await;
}

async fn idle_list_servers_stop_and_come_back_with_their_list(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(backend);
    cfg.system.idle_timeout = Duration::from_millis(50);
    let sys = TodoSystem::start(&cfg, dir.path()).await.unwrap();
    let l = name("sleepy");
    for round in 0..3 {
        // `applied`: the store may still be queued when the server idles out.
        sys.add_entry(&l, day(8), &format!("r{round}"), Some(AckMode::Applied))
            .await
            .unwrap();
        eventually("the idle list server stops", || sys.live_lists() == 0).await;
        let titles: Vec<String> = sys
            .entries(&l, None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.title)
            .collect();
        let want: Vec<String> = (0..=round).map(|r| format!("r{r}")).collect();
        assert_eq!(titles, want);
    }
    sys.shutdown().await;
}

async fn a_list_that_keeps_crashing_is_given_up_then_started_afresh(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let sys = start(backend, dir.path()).await;
    let l = name("fragile");
    sys.add_entry(&l, day(9), "kept", Some(AckMode::Durable))
        .await
        .unwrap();
    let mut events = sys.supervisor().subscribe();
    // More crashes than the restart intensity (3 in 5 s) allows. A crash fails the
    // calls queued behind it ("list server stopped"), so panic until given up.
    let mut escalated = false;
    for _ in 0..20 {
        match sys.inject_panic(&l).await {
            Ok(()) | Err(TodoSystemError::Stopped | TodoSystemError::NotStarted(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
        while let Ok(ev) = events.try_recv() {
            escalated |=
                matches!(&ev, SupervisorEvent::Escalated { name, .. } if name == "fragile");
        }
        if escalated {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(escalated, "the supervisor never gave up on the list server");
    // The next request starts a fresh server, which loads the list.
    let titles: Vec<String> = sys
        .entries(&l, None)
        .await
        .expect("a request after the escalation")
        .into_iter()
        .map(|e| e.title)
        .collect();
    assert_eq!(titles, ["kept"]);
    sys.add_entry(&l, day(9), "again", Some(AckMode::Durable))
        .await
        .unwrap();
    assert_eq!(sys.live_lists(), 1);
    sys.shutdown().await;
}

macro_rules! backend_suite {
    ($($module:ident => $backend:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn write_then_read_back() {
                super::write_then_read_back($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn restart_keeps_every_acknowledged_write() {
                super::restart_keeps_every_acknowledged_write($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn durable_writes_survive_without_a_shutdown() {
                super::durable_writes_survive_without_a_shutdown($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_first_use_starts_one_server() {
                super::concurrent_first_use_starts_one_server($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn hostile_names_round_trip_and_stay_inside() {
                super::hostile_names_round_trip_and_stay_inside($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn injected_panic_restarts_one_list_with_its_list_reloaded() {
                super::injected_panic_restarts_one_list_with_its_list_reloaded($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ack_modes_behave_as_documented() {
                super::ack_modes_behave_as_documented($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn shutdown_under_load_keeps_every_acknowledged_write() {
                super::shutdown_under_load_keeps_every_acknowledged_write($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn durable_waiters_of_a_replaced_store_are_answered() {
                super::durable_waiters_of_a_replaced_store_are_answered($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn idle_list_servers_stop_and_come_back_with_their_list() {
                super::idle_list_servers_stop_and_come_back_with_their_list($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_list_that_keeps_crashing_is_given_up_then_started_afresh() {
                super::a_list_that_keeps_crashing_is_given_up_then_started_afresh($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delete_list_is_durable_and_the_next_write_starts_afresh() {
                super::delete_list_is_durable_and_the_next_write_starts_afresh($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reload_policies_loses_no_accepted_message() {
                super::reload_policies_loses_no_accepted_message($backend).await;
            }
        }
    )*};
}

backend_suite! {
    files => BackendKind::Files,
    sqlite => BackendKind::Sqlite,
}

#[test]
fn invalid_names_are_refused_with_a_clear_error() {
    let cases: [(String, InvalidListName, &str); 6] = [
        (String::new(), InvalidListName::Empty, "empty"),
        (
            "x".repeat(257),
            InvalidListName::TooLong { len: 257 },
            "257 bytes",
        ),
        // 255 bytes of 3-byte characters plus 2 bytes: 257 bytes, 86 characters.
        (
            format!("{}é", "日".repeat(85)),
            InvalidListName::TooLong { len: 257 },
            "at most 256",
        ),
        (
            "a\u{1}b".into(),
            InvalidListName::ControlChar { index: 1 },
            "control character",
        ),
        (
            "nul\0".into(),
            InvalidListName::ControlChar { index: 3 },
            "byte 3",
        ),
        (
            "日\u{85}".into(),
            InvalidListName::ControlChar { index: 3 },
            "control",
        ),
    ];
    for (raw, want, words) in cases {
        let err = ListName::new(raw.clone()).unwrap_err();
        assert_eq!(err, want, "{raw:?}");
        assert!(err.to_string().contains(words), "{raw:?}: {err}");
    }
    for ok in ["x".repeat(256), "日".repeat(85), " ".into(), "a b".into()] {
        assert!(ListName::new(ok.clone()).is_ok(), "{ok:?}");
    }
    // The same rules hold where names arrive as JSON.
    assert!(serde_json::from_str::<ListName>("\"\"").is_err());
    assert!(serde_json::from_str::<ListName>("\"a\\u0000\"").is_err());
}

/// Like [`concurrent_writes`], but a write may be refused as overload (bounded
/// and shedding policies refuse or shed by design): only `Done` answers count.
async fn concurrent_writes_under_policy(
    sys: &TodoSystem,
    lists: &[ListName],
    ack: AckMode,
) -> Acked {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (sys, lists) = (sys.clone(), lists.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..12 {
                let l = &lists[(t + i) % lists.len()];
                let title = format!("task {t} write {i}");
                match sys.add_entry(l, day(27), &title, Some(ack)).await {
                    Ok(o) => acked.push((l.clone(), done(o).id, title)),
                    Err(TodoSystemError::Overloaded(_) | TodoSystemError::NotDurable(_)) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            acked
        }));
    }
    let mut acked = Acked::new();
    for t in tasks {
        for (l, id, title) in t.await.unwrap() {
            acked.entry(l).or_default().insert(id, title);
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_file_keeps_acknowledged_writes_across_a_restart() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let lists: Vec<ListName> = ["x", "y", "z"].into_iter().map(name).collect();
    for f in files {
        let data = tempfile::tempdir().unwrap();
        let mut cfg = Config::load(&f).unwrap();
        cfg.system.call_timeout = PATIENCE;
        let sys = TodoSystem::start(&cfg, data.path()).await.unwrap();
        let durable = concurrent_writes_under_policy(&sys, &lists, AckMode::Durable).await;
        let applied = concurrent_writes_under_policy(&sys, &lists, AckMode::Applied).await;
        sys.shutdown().await;
        drop(sys);
        let sys = TodoSystem::start(&cfg, data.path()).await.unwrap();
        assert_all_present(&sys, &durable).await;
        assert_all_present(&sys, &applied).await;
        sys.shutdown().await;
    }
}

/// Model-based property test of the whole system (files and sqlite): random
/// writes, reads, list-server crashes and system restarts against a plain model.
mod model {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::Duration;

    use chrono::NaiveDate;
    use proptest::prelude::*;

    use super::runtime;
    use sluicegate_todo::config::{AckMode, BackendKind, Config};
    use sluicegate_todo::domain::{
        EntryUpdate, ListName, TodoSystem, TodoSystemError, WriteOutcome,
    };

    type Row = (u64, NaiveDate, String, bool);

    /// Per list: the next id and the rows in id order.
    #[derive(Default)]
    struct Model {
        lists: BTreeMap<usize, (u64, Vec<Row>)>,
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(usize, u32, String, AckMode),
        Update(usize, u64, Option<u32>, Option<String>, Option<bool>),
        Delete(usize, u64),
        DeleteList(usize),
        Entries(usize, Option<u32>),
        Crash(usize),
        Restart,
    }

    const NAMES: [&str; 3] = ["a", "../b", "日本"];

    fn date(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn op() -> impl Strategy<Value = Op> {
        let list = 0usize..NAMES.len();
        let title = prop_oneof!["[a-z ]{1,8}", Just(String::new()), Just("x".repeat(1025))];
        let ack = prop_oneof![Just(AckMode::Applied), Just(AckMode::Durable)];
        prop_oneof![
            5 => (list.clone(), 1u32..4, title.clone(), ack).prop_map(|(l, d, t, a)| Op::Add(l, d, t, a)),
            2 => (list.clone(), 0u64..6, prop::option::of(1u32..4), prop::option::of(title),
                prop::option::of(any::<bool>()))
                .prop_map(|(l, i, d, t, done)| Op::Update(l, i, d, t, done)),
            2 => (list.clone(), 0u64..6).prop_map(|(l, i)| Op::Delete(l, i)),
            1 => list.clone().prop_map(Op::DeleteList),
            2 => (list.clone(), prop::option::of(1u32..4)).prop_map(|(l, d)| Op::Entries(l, d)),
            1 => list.prop_map(Op::Crash),
            1 => Just(Op::Restart),
        ]
    }

    fn title_ok(t: &str) -> bool {
        (1..=1024).contains(&t.chars().count())
    }

    fn rows(entries: Vec<sluicegate_todo::domain::Entry>) -> Vec<Row> {
        entries
            .into_iter()
            .map(|e| (e.id, e.date, e.title, e.done))
            .collect()
    }

    async fn start(backend: BackendKind, dir: &Path) -> TodoSystem {
        let mut c = Config::builtin();
        c.storage.backend = backend;
        c.system.call_timeout = Duration::from_secs(30);
        TodoSystem::start(&c, dir).await.unwrap()
    }

    fn done(r: Result<WriteOutcome, TodoSystemError>) -> Result<Row, TodoSystemError> {
        match r? {
            WriteOutcome::Done(e) => Ok((e.id, e.date, e.title, e.done)),
            WriteOutcome::Accepted => panic!("Accepted under an applied or durable ack"),
            WriteOutcome::Replayed(e) => panic!("a write without a key was replayed: {e:?}"),
        }
    }

    async fn run(backend: BackendKind, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<ListName> = NAMES.iter().map(|n| ListName::new(*n).unwrap()).collect();
        let mut sys = start(backend, dir.path()).await;
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Add(l, d, t, ack) => {
                    let got = done(sys.add_entry(&names[l], date(d), &t, Some(ack)).await);
                    if title_ok(&t) {
                        let (next, rows) = model.lists.entry(l).or_insert((1, Vec::new()));
                        let row = (*next, date(d), t, false);
                        *next += 1;
                        rows.push(row.clone());
                        prop_assert_eq!(got, Ok(row));
                    } else {
                        prop_assert!(matches!(got, Err(TodoSystemError::Invalid(_))));
                    }
                }
                Op::Update(l, id, d, t, done_flag) => {
                    let update = EntryUpdate {
                        date: d.map(date),
                        title: t.clone(),
                        done: done_flag,
                    };
                    let got = done(sys.update_entry(&names[l], id, update, None).await);
                    let rows = &mut model.lists.entry(l).or_insert((1, Vec::new())).1;
                    if !t.as_deref().is_none_or(title_ok) {
                        prop_assert!(matches!(got, Err(TodoSystemError::Invalid(_))));
                    } else if let Some(row) = rows.iter_mut().find(|r| r.0 == id) {
                        if let Some(d) = d {
                            row.1 = date(d);
                        }
                        if let Some(t) = t {
                            row.2 = t;
                        }
                        if let Some(flag) = done_flag {
                            row.3 = flag;
                        }
                        prop_assert_eq!(got, Ok(row.clone()));
                    } else {
                        prop_assert_eq!(got, Err(TodoSystemError::NotFound(id)));
                    }
                }
                Op::Delete(l, id) => {
                    let got = done(sys.delete_entry(&names[l], id, None).await);
                    let rows = &mut model.lists.entry(l).or_insert((1, Vec::new())).1;
                    match rows.iter().position(|r| r.0 == id) {
                        Some(p) => prop_assert_eq!(got, Ok(rows.remove(p))),
                        None => prop_assert_eq!(got, Err(TodoSystemError::NotFound(id))),
                    }
                }
                Op::DeleteList(l) => {
                    // A list exists once an entry was added to it (ids were used).
                    let existed = model.lists.get(&l).is_some_and(|(next, _)| *next > 1);
                    let got = sys.delete_list(&names[l]).await;
                    if existed {
                        prop_assert_eq!(got, Ok(()));
                    } else {
                        prop_assert_eq!(got, Err(TodoSystemError::ListNotFound(names[l].clone())));
                    }
                    // Gone: the next add starts at id 1 again.
                    model.lists.remove(&l);
                }
                Op::Entries(l, d) => {
                    let got = rows(sys.entries(&names[l], d.map(date)).await.unwrap());
                    let want: Vec<Row> = model
                        .lists
                        .get(&l)
                        .map(|(_, rows)| {
                            rows.iter()
                                .filter(|r| d.is_none_or(|d| r.1 == date(d)))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    prop_assert_eq!(got, want);
                }
                Op::Crash(l) => {
                    // The crash itself may be refused while a previous one is handled.
                    let _ = sys.inject_panic(&names[l]).await;
                }
                Op::Restart => {
                    sys.shutdown().await;
                    sys = start(backend, dir.path()).await;
                }
            }
        }
        // Finally everything is there after one more restart.
        sys.shutdown().await;
        let sys = start(backend, dir.path()).await;
        for (l, (_, want)) in &model.lists {
            let got = rows(sys.entries(&names[*l], None).await.unwrap());
            prop_assert_eq!(&got, want);
        }
        sys.shutdown().await;
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn files_system_behaves_like_the_model(ops in prop::collection::vec(op(), 1..30)) {
            runtime().block_on(run(BackendKind::Files, ops))?;
        }

        #[test]
        fn sqlite_system_behaves_like_the_model(ops in prop::collection::vec(op(), 1..30)) {
            runtime().block_on(run(BackendKind::Sqlite, ops))?;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_live_list_cap_refuses_a_new_list_until_one_idles_out() {
    let mut cfg = config(BackendKind::Memory);
    cfg.system.max_live_servers = Some(2);
    cfg.system.idle_timeout = Duration::from_secs(10);
    let sys = TodoSystem::start(&cfg, Path::new("unused")).await.unwrap();
    let (a, b, c) = (name("a"), name("b"), name("c"));
    sys.add_entry(&a, day(10), "a", None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    sys.add_entry(&b, day(10), "b", None).await.unwrap();
    match sys.entries(&c, None).await {
        Err(TodoSystemError::NotStarted(e)) => {
            assert_eq!(
                e,
                sluicegate::runtime::StartError::TooManyServers { cap: 2 }
            );
        }
        other => panic!("{other:?}"),
    }
    // Live lists are still served.
    assert_eq!(sys.entries(&b, None).await.unwrap().len(), 1);
    // `a` idles out first, which makes room for `c`; `a` comes back with its list later.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sys.live_lists(), 1);
    sys.add_entry(&c, day(10), "c", None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(sys.entries(&a, None).await.unwrap().len(), 1);
    sys.shutdown().await;
}

/// A storage wrapper that holds every batch at a gate and records each batch's size.
struct Batches {
    inner: Arc<dyn Storage>,
    open: watch::Receiver<bool>,
    waiting: Arc<AtomicUsize>,
    sizes: Arc<std::sync::Mutex<Vec<usize>>>,
}

#[async_trait]
impl Storage for Batches {
    async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError> {
        self.inner.load(name).await
    }
    async fn store(&self, name: &ListName, list: &TodoList) -> Result<(), StorageError> {
        self.inner.store(name, list).await
    }
    async fn store_batch(&self, writes: &[storage::ListWrite]) -> Vec<Result<(), StorageError>> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.clone();
        let _ = open.wait_for(|o| *o).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.sizes.lock().unwrap().push(writes.len());
        self.inner.store_batch(writes).await
    }
    async fn delete_list(&self, name: &ListName) -> Result<bool, StorageError> {
        self.inner.delete_list(name).await
    }
    async fn list_names(&self) -> Result<Vec<ListName>, StorageError> {
        self.inner.list_names().await
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_commit_makes_many_durable_writes_durable_and_none_is_answered_before() {
    let dir = tempfile::tempdir().unwrap();
    let (open_tx, open_rx) = watch::channel(true);
    let waiting = Arc::new(AtomicUsize::new(0));
    let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let batches = Batches {
        inner: storage::open(BackendKind::Sqlite, dir.path()).unwrap(),
        open: open_rx,
        waiting: waiting.clone(),
        sizes: sizes.clone(),
    };
    let mut cfg = config(BackendKind::Sqlite);
    cfg.database.workers = 1;
    let sys = TodoSystem::start_with_storage(&cfg, Arc::new(batches))
        .await
        .unwrap();
    let lists: Vec<ListName> = (0..40).map(|i| name(&format!("gc-{i}"))).collect();
    for l in &lists {
        sys.entries(l, None).await.unwrap();
    }
    open_tx.send_replace(false);
    let write = |l: ListName| {
        let sys = sys.clone();
        tokio::spawn(async move {
            sys.add_entry(&l, day(9), &format!("in {l}"), Some(AckMode::Durable))
                .await
        })
    };
    // The first store is held at the gate; the other 39 queue behind it.
    let first = write(lists[0].clone());
    eventually("the first batch is held", || {
        waiting.load(Ordering::SeqCst) == 1
    })
    .await;
    let rest: Vec<_> = lists[1..].iter().cloned().map(write).collect();
    let queued = |sys: &TodoSystem| {
        sys.mailbox_stats()
            .into_iter()
            .find(|r| r.role == "database_worker")
            .map_or(0, |r| r.depth)
    };
    eventually("39 stores queue on the worker", || queued(&sys) == 39).await;
    assert!(
        !first.is_finished() && rest.iter().all(|t| !t.is_finished()),
        "a durable write was answered before its batch reached storage"
    );
    open_tx.send_replace(true);
    for t in std::iter::once(first).chain(rest) {
        done(
            tokio::time::timeout(PATIENCE, t)
                .await
                .unwrap()
                .unwrap()
                .unwrap(),
        );
    }
    // The 39 queued stores went to storage as one batch (one transaction).
    assert_eq!(*sizes.lock().unwrap(), vec![1, 39]);
    // And every acknowledged write is on disk, read by a fresh backend.
    let fresh = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    for l in &lists {
        let stored = fresh.load(l).await.unwrap().expect("stored list");
        assert_eq!(stored.all_entries()[0].title, format!("in {l}"));
    }
    sys.shutdown().await;
}

/// Reads load the state the list server published, not a message through its
/// mailbox: with the database held still the server is stuck handing a store to
/// it after answering a write, and queued writes wait behind it; a read still
/// answers at once, with every write acknowledged before it began (the server
/// publishes before it answers) and nothing that was not.
#[tokio::test]
async fn a_read_sees_every_acknowledged_write_even_while_the_server_is_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let (gated, gate) = gate(storage::open(BackendKind::Files, dir.path()).unwrap());
    let mut cfg = config(BackendKind::Files);
    cfg.database.workers = 1;
    cfg.mailbox.database_worker = Policy::Block {
        capacity: 1,
        send_timeout: None,
    };
    let sys = TodoSystem::start_with_storage(&cfg, gated).await.unwrap();
    let l = name("stuck");
    assert!(sys.entries(&l, None).await.unwrap().is_empty());
    gate.close();
    // Writes one at a time until one is not answered: the server is then blocked
    // in the store of the last write it answered.
    let mut acknowledged = Vec::new();
    let pending = loop {
        let (sys2, l2) = (sys.clone(), l.clone());
        let n = acknowledged.len();
        let write = tokio::spawn(async move {
            sys2.add_entry(&l2, day(1), &format!("w{n}"), Some(AckMode::Applied))
                .await
        });
        let server = sys.registry().get(&l).unwrap();
        // Blocked for good once a store waits at the gate, another fills the
        // worker's mailbox, and the server cannot hand over a third.
        eventually("the write is answered or queued", || {
            write.is_finished() || (server.stats().depth > 0 && gate.waiting() > 0 && n >= 2)
        })
        .await;
        if !write.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !write.is_finished() {
            break write;
        }
        acknowledged.push(done(write.await.unwrap().unwrap()).title);
        assert!(
            acknowledged.len() < 100,
            "the database never held the server"
        );
    };
    let read = tokio::time::timeout(PATIENCE, sys.entries(&l, None))
        .await
        .expect("a read must not wait for the list server")
        .unwrap();
    let titles: Vec<String> = read.into_iter().map(|e| e.title).collect();
    // The queued write may have gone through if the server was not blocked yet.
    let pending_title = format!("w{}", acknowledged.len());
    assert!(
        titles.starts_with(&acknowledged)
            && titles[acknowledged.len()..]
                .iter()
                .all(|t| *t == pending_title),
        "the read {titles:?} misses an acknowledged write of {acknowledged:?}"
    );
    gate.open();
    done(pending.await.unwrap().unwrap());
    assert_eq!(
        sys.entries(&l, None).await.unwrap().len(),
        acknowledged.len() + 1
    );
    sys.shutdown().await;
}

/// Concurrent writers each read right after every acknowledgement, from another
/// task, lists new and live: a read never misses a write acknowledged before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_after_an_acknowledgement_always_include_it() {
    let dir = tempfile::tempdir().unwrap();
    let sys = start(BackendKind::Files, dir.path()).await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let sys = sys.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let l = name(&format!("ryw-{}", (t + i) % 6));
                let e = done(
                    sys.add_entry(&l, day(2), &format!("{t}.{i}"), Some(AckMode::Applied))
                        .await
                        .unwrap(),
                );
                let (sys2, l2) = (sys.clone(), l.clone());
                let seen = tokio::spawn(async move { sys2.entries(&l2, None).await })
                    .await
                    .unwrap()
                    .unwrap();
                assert!(
                    seen.iter().any(|s| s.id == e.id && s.title == e.title),
                    "entry {} of {l} acknowledged, then missing from a read",
                    e.id
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    sys.shutdown().await;
}

/// The JSON of a read (`GET /lists/{list}/entries`) is serialized once per
/// published version of the list and shared: each writer owns a list and reads
/// it as JSON after every acknowledged add, update and delete, while other tasks
/// keep reading every list (so a version's JSON is usually made by someone else,
/// and would be handed out stale if it outlived its version). Every read equals
/// the writer's model of its list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_read_is_never_staler_than_the_last_acknowledged_write() {
    use sluicegate_todo::domain::{Entry, EntryQuery};
    let dir = tempfile::tempdir().unwrap();
    let sys = start(BackendKind::Files, dir.path()).await;
    let lists: Vec<ListName> = (0..4).map(|t| name(&format!("json-{t}"))).collect();
    fn unfiltered() -> EntryQuery {
        EntryQuery {
            limit: 1000,
            ..EntryQuery::default()
        }
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (sys, lists, stop) = (sys.clone(), lists.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for l in &lists {
                    sys.query_json(l, unfiltered()).await.unwrap();
                    reads += 1;
                }
                tokio::task::yield_now().await;
            }
            reads
        }));
    }
    let mut writers = Vec::new();
    for l in lists.clone() {
        let sys = sys.clone();
        writers.push(tokio::spawn(async move {
            let mut model: Vec<Entry> = Vec::new();
            let read = |sys: TodoSystem, l: ListName| async move {
                let page = sys.query_json(&l, unfiltered()).await.unwrap().unwrap();
                assert!(!page.more);
                assert_eq!(
                    page.last_id,
                    serde_json::from_slice::<Vec<Entry>>(&page.json)
                        .unwrap()
                        .last()
                        .map(|e| e.id)
                );
                serde_json::from_slice::<Vec<Entry>>(&page.json).unwrap()
            };
            for i in 0..60u32 {
                let ack = Some(AckMode::Applied);
                match i % 3 {
                    0 | 1 => {
                        let title = format!("t{i}");
                        let e = sys.add_entry(&l, day(1 + i % 20), &title, ack).await;
                        model.push(done(e.unwrap()));
                    }
                    _ if i % 2 == 0 => {
                        let id = model[model.len() / 2].id;
                        let gone = sys.delete_entry(&l, id, ack).await.unwrap();
                        assert_eq!(done(gone).id, id);
                        model.retain(|e| e.id != id);
                    }
                    _ => {
                        let update = EntryUpdate {
                            done: Some(true),
                            title: Some(format!("u{i}")),
                            ..EntryUpdate::default()
                        };
                        let id = model[0].id;
                        let e = done(sys.update_entry(&l, id, update, ack).await.unwrap());
                        model[0] = e;
                    }
                }
                // Read from another task, as another request would.
                let seen = tokio::spawn(read(sys.clone(), l.clone())).await.unwrap();
                assert_eq!(seen, model, "{l} after write {i}");
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    sys.shutdown().await;
}
