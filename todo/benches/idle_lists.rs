//! Memory of a live idle list server (issue #25: at most 2 KiB, its list's data
//! aside): starts `N` list servers through a [`TodoSystem`] on the memory backend
//! (the built-in config, the Prometheus recorder installed as `serve` does), one read
//! of an empty list each, lets them go idle, and prints what the process grew by,
//! per server: heap bytes still allocated (a counting global allocator) and resident
//! memory (`/proc/self/statm`). The same for `N` bare runtime servers (a registry of
//! servers with no state) to tell the framework's share from the to-do server's.
//!
//! `cargo bench -p sluicegate-todo --bench idle_lists -- [todo|runtime|both] [N]`
//! (default: both, each in its own process, 100000).
//!
//! Heap bytes are what is asked of the allocator and still held: exact, and what
//! a smaller actor saves. Resident memory also counts the allocator's own overhead
//! and fragmentation, and leaves out allocated pages never touched (a large queue
//! buffer allocated but never written).

use std::alloc::System;
use std::time::Duration;

use sluicegate::mailbox::Policy;
use sluicegate::runtime::{Registry, RegistryConfig, ReplyTo, Server, Spec, Supervisor};
use sluicegate_todo::config::Config;
use sluicegate_todo::domain::server::ListServer;
use sluicegate_todo::domain::{ListName, TodoList, TodoSystem};
use sluicegate_todo::storage::MemoryStorage;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Servers started before the measure, so that one-time costs (metric series,
/// first growth of maps, worker threads' caches) are not charged to the others.
const WARM_UP: usize = 1_000;

/// Heap bytes allocated and not yet freed.
fn heap() -> i64 {
    let s = GLOBAL.stats();
    (s.bytes_allocated as i64 + s.bytes_reallocated as i64) - s.bytes_deallocated as i64
}

/// Resident memory in bytes.
fn rss() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Heap and resident bytes now, after the runtime has had time to settle.
async fn settled() -> (i64, i64) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    (heap(), rss())
}

fn report(what: &str, n: usize, before: (i64, i64), after: (i64, i64)) {
    let per = |a: i64, b: i64| (a - b) as f64 / n as f64;
    println!(
        "{what}: {n} idle servers: heap {:.0} B/server, RSS {:.0} B/server (heap {:.1} MiB -> {:.1} MiB, RSS {:.1} MiB -> {:.1} MiB)",
        per(after.0, before.0),
        per(after.1, before.1),
        before.0 as f64 / 1048576.0,
        after.0 as f64 / 1048576.0,
        before.1 as f64 / 1048576.0,
        after.1 as f64 / 1048576.0,
    );
}

fn name(i: usize) -> ListName {
    ListName::new(format!("list-{i:07}")).expect("a valid list name")
}

/// Starts `n` list servers, each by reading its (empty) list.
async fn open_lists(system: &TodoSystem, from: usize, n: usize) {
    let mut tasks = Vec::new();
    for chunk in 0..2 {
        let system = system.clone();
        tasks.push(tokio::spawn(async move {
            for i in (from + chunk..from + n).step_by(2) {
                system.entries(&name(i), None).await.expect("a read");
            }
        }));
    }
    for t in tasks {
        t.await.expect("the opening task");
    }
}

async fn todo_lists(n: usize) {
    sluicegate_todo::service::install_prometheus().expect("the recorder");
    let mut config = Config::builtin();
    config.system.max_live_servers = None;
    config.system.idle_timeout = Duration::from_secs(3600);
    let storage = std::sync::Arc::new(MemoryStorage::new());
    let system = TodoSystem::start_with_storage(&config, storage)
        .await
        .expect("the system starts");
    open_lists(&system, 0, WARM_UP).await;
    let before = settled().await;
    open_lists(&system, WARM_UP, n).await;
    let after = settled().await;
    assert_eq!(
        system.published_lists(),
        WARM_UP + n,
        "every server is live"
    );
    report("todo list servers", n, before, after);
    println!(
        "  a list server's state: {} B inline in its task; an empty list: {} B (its data)",
        std::mem::size_of::<ListServer>(),
        std::mem::size_of::<TodoList>(),
    );
    system.shutdown().await;
}

/// A server with no state: what the runtime itself costs per server.
struct Bare;

impl Server for Bare {
    type Call = ReplyTo<()>;
    type Cast = ();
    async fn handle_call(&mut self, reply: ReplyTo<()>) {
        reply.send(())
    }
}

async fn runtime_servers(n: usize) {
    sluicegate_todo::service::install_prometheus().expect("the recorder");
    let registry = Registry::new(
        "bare",
        Supervisor::default(),
        RegistryConfig {
            idle_timeout: Some(Duration::from_secs(3600)),
            max_live: None,
        },
        |_: &u64| Spec::new("bare", Policy::DropNewest { capacity: 1024 }, || Bare),
    );
    let open = |from: usize, n: usize| {
        let mut tasks = Vec::new();
        for chunk in 0..2 {
            let registry = registry.clone();
            tasks.push(tokio::spawn(async move {
                for i in (from + chunk..from + n).step_by(2) {
                    registry
                        .call(&(i as u64), |r| r, Duration::from_secs(5))
                        .await
                        .expect("a call");
                }
            }));
        }
        async move {
            for t in tasks {
                t.await.expect("the opening task");
            }
        }
    };
    open(0, WARM_UP).await;
    let before = settled().await;
    open(WARM_UP, n).await;
    let after = settled().await;
    report(
        "bare runtime servers (registry, drop_newest 1024)",
        n,
        before,
        after,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let what = args.first().map_or("both", String::as_str).to_string();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    if what == "both" {
        // Each in a fresh process: memory one freed would be reused by the other.
        for one in ["runtime", "todo"] {
            let exe = std::env::current_exe().expect("this bench's path");
            let status = std::process::Command::new(exe)
                .args([one, &n.to_string()])
                .status()
                .expect("the bench runs again");
            assert!(status.success(), "{one}: {status}");
        }
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move {
        match what.as_str() {
            "runtime" => runtime_servers(n).await,
            "todo" => todo_lists(n).await,
            other => panic!("unknown case {other:?}: todo, runtime or both"),
        }
    });
}
