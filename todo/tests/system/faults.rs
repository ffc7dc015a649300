//! Injected storage faults under load (issue 7): failing lists, a full disk, slow
//! stores and a damaged file hit only the lists concerned, with typed errors, and
//! the system recovers when the fault clears. Slow-store tests use paused time
//! over the memory backend; the others real time over files.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use sluicegate::runtime::SupervisorEvent;
use sluicegate_todo::config::{AckMode, Config};
use sluicegate_todo::domain::database::StoreError;
use sluicegate_todo::domain::{ListName, TodoSystem, TodoSystemError, WriteOutcome};
use sluicegate_todo::storage::{
    FaultConfig, FaultHandle, FaultyStorage, FileStorage, MemoryStorage, StorageError,
};

use crate::support::eventually::PATIENCE;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
}

fn name(s: &str) -> ListName {
    ListName::new(s).unwrap()
}

fn config() -> Config {
    let mut c = Config::builtin();
    c.system.call_timeout = PATIENCE;
    c
}

async fn start_files(dir: &std::path::Path) -> (TodoSystem, FaultHandle) {
    let (faulty, handle) =
        FaultyStorage::new(FileStorage::open(dir).unwrap(), FaultConfig::default(), 7);
    let sys = TodoSystem::start_with_storage(&config(), Arc::new(faulty))
        .await
        .unwrap();
    (sys, handle)
}

fn only(lists: &[&ListName]) -> Option<HashSet<ListName>> {
    Some(lists.iter().map(|l| (*l).clone()).collect())
}

/// Writes from many tasks to every list; returns per list the results in order.
async fn load(
    sys: &TodoSystem,
    lists: &[ListName],
    ack: AckMode,
    tag: &str,
) -> Vec<(ListName, Result<WriteOutcome, TodoSystemError>)> {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (sys, lists, tag) = (sys.clone(), lists.to_vec(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for (i, l) in lists.iter().enumerate() {
                let r = sys
                    .add_entry(l, day(), &format!("{tag} {t}.{i}"), Some(ack))
                    .await;
                out.push((l.clone(), r));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_lists_get_not_durable_others_unaffected_then_recover() {
    let dir = tempfile::tempdir().unwrap();
    let (sys, faults) = start_files(dir.path()).await;
    let (sick, cold) = (name("sick"), name("cold"));
    let healthy: Vec<ListName> = (0..4).map(|i| name(&format!("healthy-{i}"))).collect();
    let mut lists = healthy.clone();
    lists.push(sick.clone());
    for l in &lists {
        sys.add_entry(l, day(), "before", Some(AckMode::Durable))
            .await
            .unwrap();
    }
    faults.set(FaultConfig {
        error_rate: 1.0,
        fail_lists: only(&[&sick, &cold]),
        ..FaultConfig::default()
    });

    for (l, r) in load(&sys, &lists, AckMode::Durable, "during").await {
        if l == sick {
            match r {
                Err(TodoSystemError::NotDurable(StoreError::Storage(e))) => {
                    let msg = e.to_string();
                    assert!(
                        matches!(*e, StorageError::Injected { .. }),
                        "the backend's own error kind is kept: {e:?}"
                    );
                    assert!(
                        msg.contains("\"sick\"") && msg.contains("injected"),
                        "{msg}"
                    );
                }
                other => panic!("sick list: {other:?}"),
            }
        } else {
            assert!(matches!(r, Ok(WriteOutcome::Done(_))), "{l}: {r:?}");
        }
    }
    // `applied` promises only memory: it is answered, and reads are served.
    let r = sys
        .add_entry(&sick, day(), "applied", Some(AckMode::Applied))
        .await;
    assert!(matches!(r, Ok(WriteOutcome::Done(_))), "{r:?}");
    assert_eq!(sys.entries(&sick, None).await.unwrap().len(), 1 + 8 + 1);
    // A list that is not live yet cannot be loaded: a clear error, for it alone.
    match sys.entries(&cold, None).await {
        Err(e @ TodoSystemError::NotStarted(_)) => {
            let msg = e.to_string();
            assert!(
                matches!(e.load_error(), Some(StorageError::Injected { .. })),
                "the load's storage error is kept: {e:?}"
            );
            assert!(
                msg.contains("\"cold\"") && msg.contains("injected"),
                "{msg}"
            )
        }
        other => panic!("cold list: {other:?}"),
    }
    assert!(sys.entries(&healthy[0], None).await.is_ok());
    // Coalesced stores of the sick list fail together; the cold list's load fails.
    assert!(faults.injected() >= 2);

    // The fault clears: both lists accept durable writes again.
    faults.clear();
    for l in [&sick, &cold] {
        let r = sys
            .add_entry(l, day(), "after", Some(AckMode::Durable))
            .await;
        assert!(matches!(r, Ok(WriteOutcome::Done(_))), "{l}: {r:?}");
    }
    sys.shutdown().await;
    drop(sys);
    // Writes refused as not durable stayed applied; the next good store kept them.
    let (sys, _) = start_files(dir.path()).await;
    assert_eq!(sys.entries(&sick, None).await.unwrap().len(), 1 + 8 + 1 + 1);
    assert_eq!(sys.entries(&cold, None).await.unwrap().len(), 1);
    for l in &healthy {
        assert_eq!(sys.entries(l, None).await.unwrap().len(), 1 + 8);
    }
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_space_fails_durable_writes_clearly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (sys, faults) = start_files(dir.path()).await;
    let lists: Vec<ListName> = (0..3).map(|i| name(&format!("l{i}"))).collect();
    for l in &lists {
        sys.add_entry(l, day(), "before", None).await.unwrap();
    }
    faults.set(FaultConfig {
        out_of_space: true,
        ..FaultConfig::default()
    });
    for (l, r) in load(&sys, &lists, AckMode::Durable, "full").await {
        match r {
            Err(e @ TodoSystemError::NotDurable(StoreError::Storage(_))) => {
                let msg = e.to_string();
                assert!(msg.contains("no space left"), "{msg}");
                assert!(msg.contains(&format!("\"{l}\"")), "{msg}");
                assert!(msg.contains("not confirmed durable"), "{msg}");
            }
            other => panic!("{l}: {other:?}"),
        }
    }
    // Reads and loads need no space: live lists and new ones are served.
    assert_eq!(sys.entries(&lists[0], None).await.unwrap().len(), 9);
    assert!(sys.entries(&name("new"), None).await.unwrap().is_empty());

    faults.clear();
    let r = sys
        .add_entry(&lists[0], day(), "after", Some(AckMode::Durable))
        .await;
    assert!(matches!(r, Ok(WriteOutcome::Done(_))), "{r:?}");
    // The durable answer means the stored list holds every earlier write too.
    let stored = sys
        .database()
        .storage()
        .load(&lists[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.len(), 10);
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_file_fails_its_list_alone() {
    let dir = tempfile::tempdir().unwrap();
    let lists: Vec<ListName> = ["ok-1", "broken", "ok-2"].into_iter().map(name).collect();
    {
        let (sys, _) = start_files(dir.path()).await;
        for l in &lists {
            sys.add_entry(l, day(), "x", Some(AckMode::Durable))
                .await
                .unwrap();
        }
        sys.shutdown().await;
    }
    let path = FileStorage::open(dir.path()).unwrap().path_of(&lists[1]);
    std::fs::write(&path, b"{\"format\":1,\"name\":\"broken\",\"list\":{\"nex").unwrap();
    let damaged = std::fs::read(&path).unwrap();

    let (sys, _) = start_files(dir.path()).await;
    let mut events = sys.supervisor().subscribe();
    let mut tasks = Vec::new();
    for t in 0..6 {
        let (sys, lists) = (sys.clone(), lists.clone());
        tasks.push(tokio::spawn(async move {
            for l in &lists {
                let r = sys
                    .add_entry(l, day(), &format!("t{t}"), Some(AckMode::Durable))
                    .await;
                if l.as_str() == "broken" {
                    match r {
                        Err(e @ TodoSystemError::NotStarted(_)) => {
                            assert!(e.is_damaged_data(), "{e:?}");
                            let msg = e.to_string();
                            assert!(
                                msg.contains("\"broken\"") && msg.contains("damaged"),
                                "{msg}"
                            )
                        }
                        other => panic!("broken: {other:?}"),
                    }
                } else {
                    assert!(matches!(r, Ok(WriteOutcome::Done(_))), "{l}: {r:?}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(matches!(
        sys.entries(&lists[1], None).await,
        Err(e @ TodoSystemError::NotStarted(_)) if e.is_damaged_data()
    ));
    for l in [&lists[0], &lists[2]] {
        assert_eq!(sys.entries(l, None).await.unwrap().len(), 7);
    }
    // No database worker died of it, and the damaged file was left as it was.
    while let Ok(ev) = events.try_recv() {
        if let SupervisorEvent::Restarted { role, .. } | SupervisorEvent::Escalated { role, .. } =
            &ev
        {
            assert_ne!(*role, "database_worker", "{ev:?}");
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), damaged);
    sys.shutdown().await;
}

async fn start_memory(fault: FaultConfig, call_timeout: Duration) -> (TodoSystem, FaultHandle) {
    let mut c = Config::builtin();
    c.system.call_timeout = call_timeout;
    start_memory_with(fault, c).await
}

async fn start_memory_with(fault: FaultConfig, c: Config) -> (TodoSystem, FaultHandle) {
    let (faulty, handle) = FaultyStorage::new(MemoryStorage::new(), fault, 11);
    let sys = TodoSystem::start_with_storage(&c, Arc::new(faulty))
        .await
        .unwrap();
    (sys, handle)
}

#[tokio::test(start_paused = true)]
async fn slow_stores_delay_only_durable_answers_and_coalesce() {
    let (sys, _faults) = start_memory(
        FaultConfig {
            latency: Duration::from_secs(2),
            ..FaultConfig::default()
        },
        Duration::from_secs(5),
    )
    .await;
    let (hot, other) = (name("hot"), name("other"));
    sys.entries(&hot, None).await.unwrap();
    sys.entries(&other, None).await.unwrap();

    // A durable write waits for its store...
    let t0 = tokio::time::Instant::now();
    let pending = {
        let (sys, l) = (sys.clone(), hot.clone());
        tokio::spawn(async move { sys.add_entry(&l, day(), "d", Some(AckMode::Durable)).await })
    };
    let server = sys.registry().get(&hot).unwrap();
    while server.stats().sent < 2 {
        tokio::task::yield_now().await;
    }
    // ...while reads of that list and others, and applied writes, need no disk.
    assert_eq!(sys.entries(&hot, None).await.unwrap().len(), 1);
    sys.add_entry(&other, day(), "a", Some(AckMode::Applied))
        .await
        .unwrap();
    assert_eq!(tokio::time::Instant::now(), t0, "no virtual time passed");
    assert!(!pending.is_finished());
    assert!(matches!(pending.await.unwrap(), Ok(WriteOutcome::Done(_))));
    assert!(t0.elapsed() >= Duration::from_secs(2));

    // A burst of durable writes to one hot list: all answered, stores coalesced.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (sys, l) = (sys.clone(), hot.clone());
        tasks.push(tokio::spawn(async move {
            sys.add_entry(&l, day(), &format!("burst {i}"), Some(AckMode::Durable))
                .await
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Ok(WriteOutcome::Done(_))));
    }
    let workers = sys
        .mailbox_stats()
        .into_iter()
        .find(|r| r.role == "database_worker")
        .unwrap();
    assert!(
        workers.outcomes["coalesced"] > 0,
        "a burst on one list should coalesce its stores: {workers:?}"
    );
    let stored = sys.database().storage().load(&hot).await.unwrap().unwrap();
    assert_eq!(stored.len(), 41);
    sys.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_store_slower_than_the_call_timeout_times_out_then_lands() {
    let (sys, faults) = start_memory(FaultConfig::default(), Duration::from_secs(5)).await;
    let l = name("slow");
    sys.entries(&l, None).await.unwrap();
    faults.set(FaultConfig {
        latency: Duration::from_secs(8),
        ..FaultConfig::default()
    });
    let r = sys
        .add_entry(&l, day(), "late", Some(AckMode::Durable))
        .await;
    assert_eq!(r, Err(TodoSystemError::Timeout));
    // Timed out is not refused: the write is applied and its store still lands.
    assert_eq!(sys.entries(&l, None).await.unwrap().len(), 1);
    faults.clear();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stored = sys.database().storage().load(&l).await.unwrap().unwrap();
    assert_eq!(stored.len(), 1);
    let r = sys
        .add_entry(&l, day(), "fast", Some(AckMode::Durable))
        .await;
    assert!(matches!(r, Ok(WriteOutcome::Done(_))), "{r:?}");
    sys.shutdown().await;
}

fn titles(entries: Vec<sluicegate_todo::domain::Entry>) -> Vec<String> {
    entries.into_iter().map(|e| e.title).collect()
}

#[tokio::test(start_paused = true)]
async fn an_idle_stop_while_stores_fail_keeps_applied_writes() {
    let mut c = Config::builtin();
    c.system.idle_timeout = Duration::from_secs(1);
    let (sys, faults) = start_memory_with(FaultConfig::default(), c).await;
    let (l, other) = (name("idle"), name("other"));
    sys.add_entry(&l, day(), "stored", None).await.unwrap();
    faults.set(FaultConfig {
        error_rate: 1.0,
        fail_lists: only(&[&l]),
        ..FaultConfig::default()
    });
    sys.add_entry(
        &l,
        day(),
        "applied during the fault",
        Some(AckMode::Applied),
    )
    .await
    .unwrap();
    // The list server idles out; its final store fails too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sys.live_lists(), 0);
    // While the fault lasts the list still reads back whole (from the database's memory).
    assert_eq!(
        titles(sys.entries(&l, None).await.unwrap()),
        ["stored", "applied during the fault"]
    );
    faults.clear();
    // Once it clears, the next database activity stores what was left unsaved.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sys.add_entry(&other, day(), "traffic", None).await.unwrap();
    let stored = sys.database().storage().load(&l).await.unwrap().unwrap();
    assert_eq!(stored.len(), 2);
    sys.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_crash_while_stores_fail_keeps_applied_writes() {
    let (sys, faults) = start_memory(FaultConfig::default(), Duration::from_secs(5)).await;
    let l = name("crashy");
    sys.add_entry(&l, day(), "stored", None).await.unwrap();
    faults.set(FaultConfig {
        out_of_space: true,
        ..FaultConfig::default()
    });
    sys.add_entry(&l, day(), "applied while full", Some(AckMode::Applied))
        .await
        .unwrap();
    sys.inject_panic(&l).await.unwrap();
    assert_eq!(
        titles(sys.entries(&l, None).await.unwrap()),
        ["stored", "applied while full"]
    );
    faults.clear();
    sys.shutdown().await;
    // Shutdown stores what was left unsaved.
    let stored = sys.database().storage().load(&l).await.unwrap().unwrap();
    assert_eq!(stored.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_refused_write_causes_no_store() {
    let mut c = Config::builtin();
    c.system.idle_timeout = Duration::from_secs(1);
    let (sys, faults) = start_memory_with(FaultConfig::default(), c).await;
    let l = name("quiet");
    sys.add_entry(&l, day(), "stored", Some(AckMode::Durable))
        .await
        .unwrap();
    // Let the server idle out, so the next one starts clean.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sys.live_lists(), 0);
    // Every store from now on would count as an injected fault.
    faults.set(FaultConfig {
        out_of_space: true,
        ..FaultConfig::default()
    });
    assert_eq!(
        sys.delete_entry(&l, 42, Some(AckMode::Applied)).await,
        Err(TodoSystemError::NotFound(42))
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sys.live_lists(), 0, "the server idled out again");
    assert_eq!(
        faults.injected(),
        0,
        "a write that changed nothing was stored"
    );
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_store_failures_answer_every_durable_write_truthfully() {
    let dir = tempfile::tempdir().unwrap();
    let (sys, faults) = start_files(dir.path()).await;
    let lists: Vec<ListName> = (0..5).map(|i| name(&format!("r{i}"))).collect();
    for l in &lists {
        sys.entries(l, None).await.unwrap();
    }
    faults.set(FaultConfig {
        error_rate: 0.3,
        ..FaultConfig::default()
    });
    let mut durable = Vec::new();
    let mut refused = 0;
    for round in 0..3 {
        for (l, r) in load(&sys, &lists, AckMode::Durable, &format!("round {round}")).await {
            match r {
                Ok(WriteOutcome::Done(e)) => durable.push((l, e.id, e.title)),
                // Every other answer is the typed "not durable" error.
                Err(TodoSystemError::NotDurable(StoreError::Storage(e))) => {
                    assert!(e.to_string().contains(&format!("\"{l}\"")), "{e}");
                    refused += 1;
                }
                other => panic!("{l}: {other:?}"),
            }
        }
    }
    assert!(
        faults.injected() > 0 && refused > 0,
        "no fault was injected"
    );
    // What was answered durable is in storage now.
    faults.clear();
    for (l, id, title) in &durable {
        let stored = sys.database().storage().load(l).await.unwrap().unwrap();
        assert!(
            stored.get(*id).is_some_and(|e| &e.title == title),
            "{l}: durable entry {id} not stored"
        );
    }
    sys.shutdown().await;
    drop(sys);
    // After recovery and a restart every write is back, the refused ones too
    // (they stayed applied and a later store carried them).
    let (sys, _) = start_files(dir.path()).await;
    let total: usize = {
        let mut n = 0;
        for l in &lists {
            n += sys.entries(l, None).await.unwrap().len();
        }
        n
    };
    assert_eq!(total, 3 * 8 * lists.len());
    sys.shutdown().await;
}

/// Shedding policies on the database workers may drop a store in flight, but the
/// final store of each list at shutdown is the last copy of its applied writes:
/// shutdown must not shed it (found by `sluicegate experiment mixed` under codel).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_shedding_database_policies_keeps_applied_writes() {
    for file in ["codel.toml", "drop-oldest.toml", "drop-newest.toml"] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../policies")
                .join(file),
        )
        .unwrap();
        c.system.call_timeout = PATIENCE;
        c.database.workers = 1;
        // A slow disk and a tiny queue make the database shed or drop stores.
        c.mailbox.database_worker = match c.mailbox.database_worker {
            sluicegate::mailbox::Policy::Codel { .. } => sluicegate::mailbox::Policy::Codel {
                capacity: 4,
                target: Duration::from_millis(1),
                interval: Duration::from_millis(2),
            },
            sluicegate::mailbox::Policy::DropOldest { .. } => {
                sluicegate::mailbox::Policy::DropOldest { capacity: 2 }
            }
            _ => sluicegate::mailbox::Policy::DropNewest { capacity: 2 },
        };
        let slow = FaultConfig {
            latency: Duration::from_millis(2),
            ..FaultConfig::default()
        };
        let (faulty, _faults) = FaultyStorage::new(FileStorage::open(dir.path()).unwrap(), slow, 3);
        let sys = TodoSystem::start_with_storage(&c, Arc::new(faulty))
            .await
            .unwrap();
        let lists: Vec<ListName> = (0..40).map(|i| name(&format!("l{i}"))).collect();
        let results = load(&sys, &lists, AckMode::Applied, "w").await;
        let stats = sys.mailbox_stats();
        sys.shutdown().await;

        let lossy: u64 = stats
            .iter()
            .filter(|r| r.role.starts_with("database"))
            .map(|r| {
                ["shed", "dropped_oldest", "rejected"]
                    .iter()
                    .map(|o| r.outcomes.get(*o).copied().unwrap_or(0))
                    .sum::<u64>()
            })
            .sum();
        assert!(
            lossy > 0,
            "{file}: the database never lost a store: {stats:?}"
        );

        let sys = TodoSystem::start_with_storage(
            &config(),
            Arc::new(FileStorage::open(dir.path()).unwrap()),
        )
        .await
        .unwrap();
        let mut missing = Vec::new();
        for (list, r) in &results {
            if let Ok(WriteOutcome::Done(entry)) = r {
                let got = sys.entries(list, None).await.unwrap();
                if !got.contains(entry) {
                    missing.push((list.clone(), entry.clone()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "{file}: applied writes lost at shutdown: {missing:?}"
        );
        sys.shutdown().await;
    }
}
