//! The SQLite writer's commit window and queued batches (`Storage::queue_batch`):
//! batches nobody waits for are folded into fewer transactions while the window
//! is open; a batch with durable waiters closes it and is on disk when its waiters
//! are answered; a queued change whose earlier write of the same list failed is
//! written whole; and a list never stored is known to be absent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use sluicegate_todo::domain::port::{BatchResults, QueuedWrites};
use sluicegate_todo::domain::{ListName, TodoList};
use sluicegate_todo::storage::{self, CommitWindow, ListWrite, SqliteStorage, Storage};

fn name(s: &str) -> ListName {
    ListName::new(s).unwrap()
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()
}

fn list_with(titles: &[&str]) -> TodoList {
    let mut l = TodoList::new();
    for t in titles {
        l.add_entry(day(), t).unwrap();
    }
    l
}

fn whole(n: &ListName, list: &TodoList) -> ListWrite {
    ListWrite::whole(n, list)
}

#[test]
fn the_window_doubles_while_nobody_waits_and_closes_for_a_waiter() {
    let w = CommitWindow::closed();
    assert_eq!(w.wait(), Duration::ZERO);
    let w = w.after_commit(false);
    assert_eq!(w.wait(), CommitWindow::FIRST);
    assert_eq!(w.after_commit(false).wait(), CommitWindow::FIRST * 2);
    let mut wide = w;
    for _ in 0..32 {
        wide = wide.after_commit(false);
    }
    assert_eq!(wide.wait(), CommitWindow::MAX, "the window is bounded");
    assert_eq!(wide.after_commit(true), CommitWindow::closed());
}

#[tokio::test]
async fn batches_nobody_waits_for_share_transactions_while_the_window_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(dir.path()).unwrap();
    // Batches arriving one at a time, 200 µs apart: without a window each would
    // find the writer idle and commit alone.
    let mut outcomes = Vec::new();
    let lists: Vec<(ListName, TodoList)> = (0..200)
        .map(|i| (name(&format!("w{i}")), list_with(&[&format!("t{i}")])))
        .collect();
    for (n, l) in &lists {
        let batch = QueuedWrites {
            writes: vec![whole(n, l)],
            on_commit: None,
        };
        outcomes.push(s.queue_batch(batch).ok().expect("sqlite queues batches"));
        std::thread::sleep(Duration::from_micros(200));
    }
    for o in outcomes {
        let results = o.await.unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
    let stats = s.writer_stats();
    assert_eq!(stats.batches, 200);
    assert!(
        stats.transactions <= 100,
        "200 applied batches took {} transactions",
        stats.transactions
    );
    assert!(
        stats.window > Duration::ZERO,
        "the window opened: {stats:?}"
    );
    for (n, l) in &lists {
        assert_eq!(s.load(n).await.unwrap().as_ref(), Some(l));
    }
}

#[tokio::test]
async fn a_durable_batch_closes_the_window_and_is_on_disk_when_answered() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(dir.path()).unwrap();
    // Open the window with batches nobody waits for.
    for i in 0..20 {
        let n = name(&format!("a{i}"));
        let batch = QueuedWrites {
            writes: vec![whole(&n, &list_with(&["x"]))],
            on_commit: None,
        };
        s.queue_batch(batch).ok().unwrap().await.unwrap();
    }
    assert!(s.writer_stats().window > Duration::ZERO);
    // A batch with a waiter: its waiter reads the list back from a connection of
    // its own when told, so "answered" means "on disk" (committed, synchronous = FULL).
    let n = name("durable");
    let l = list_with(&["must survive"]);
    let db = dir.path().join("sluicegate.sqlite3");
    let seen = Arc::new(AtomicBool::new(false));
    let seen_in = seen.clone();
    let on_commit = Box::new(move |results: &BatchResults| {
        assert!(results[0].is_ok(), "{results:?}");
        let c = rusqlite::Connection::open(&db).unwrap();
        let title: String = c
            .query_row(
                "SELECT title FROM entries WHERE list = 'durable'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(title, "must survive");
        seen_in.store(true, Ordering::SeqCst);
    });
    let outcome = s
        .queue_batch(QueuedWrites {
            writes: vec![whole(&n, &l)],
            on_commit: Some(on_commit),
        })
        .ok()
        .unwrap();
    let results = outcome.await.unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert!(seen.load(Ordering::SeqCst), "the waiter was answered first");
    assert_eq!(
        s.writer_stats().window,
        Duration::ZERO,
        "a waiter closes it"
    );
    drop(s);
    let fresh = storage::open(storage::BackendKind::Sqlite, dir.path()).unwrap();
    assert_eq!(fresh.load(&n).await.unwrap(), Some(l));
}

#[tokio::test]
async fn a_queued_change_after_a_failed_write_of_its_list_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(dir.path()).unwrap();
    let n = name("chain");
    s.store(&n, &TodoList::new()).await.unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join("sluicegate.sqlite3")).unwrap();
        c.execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON entries WHEN NEW.title = 'boom'
             BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .unwrap();
    }
    // v1 adds "a" and "boom" (its write fails); v2, queued before v1 settled,
    // renames "boom" and carries only that entry as its change.
    let v1 = list_with(&["a", "boom"]);
    let mut c1 = storage::Change::default();
    c1.touch(&v1, 1);
    c1.touch(&v1, 2);
    let mut v2 = v1.clone();
    v2.update_entry(
        2,
        sluicegate_todo::domain::EntryUpdate {
            title: Some("fixed".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let mut c2 = storage::Change::default();
    c2.touch(&v2, 2);
    let write = |list: &TodoList, change| QueuedWrites {
        writes: vec![ListWrite {
            name: n.clone(),
            list: list.clone(),
            change: Some(change),
        }],
        on_commit: None,
    };
    let first = s.queue_batch(write(&v1, c1)).ok().unwrap();
    let second = s.queue_batch(write(&v2, c2)).ok().unwrap();
    assert!(first.await.unwrap()[0].is_err(), "the trigger fails v1");
    assert!(second.await.unwrap()[0].is_ok());
    // Written as its change alone, v2 would have lost entry 1.
    assert_eq!(s.load(&n).await.unwrap(), Some(v2));
}

#[tokio::test]
async fn a_list_never_stored_is_surely_absent_and_a_stored_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(dir.path()).unwrap();
    let kept = name("kept");
    assert!(s.surely_absent(&kept));
    s.store(&kept, &list_with(&["x"])).await.unwrap();
    assert!(!s.surely_absent(&kept));
    drop(s);
    // Reopened, the names come from the database.
    let s = SqliteStorage::open(dir.path()).unwrap();
    assert!(!s.surely_absent(&kept));
    assert!(s.surely_absent(&name("never")));
}
