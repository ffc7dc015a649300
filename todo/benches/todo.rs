//! The to-do system under the `mixed` workload (80 % add_entry, 20 % entries(date)),
//! in-process, once per file in `policies/`, on the memory backend so the figures are
//! about queueing, not the disk. The experiments (`sluicegate experiment`) report loss,
//! latency percentiles and durability; this bench tracks throughput between commits.
//!
//! Each iteration starts a fresh system (not timed), runs 20 clients x 100 operations
//! over 100 lists (timed), and shuts the system down (not timed).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluicegate_todo::config::Config;
use sluicegate_todo::domain::TodoSystem;
use sluicegate_todo::experiment::workload::{self, Recorder, Workload};
use sluicegate_todo::storage::MemoryStorage;

fn workload() -> Workload {
    Workload {
        lists: 100,
        clients: 20,
        ops_per_client: 100,
        write_share: 0.8,
        dates: 30,
        prefix: "bench-",
        seed: 7,
        repeats: 0,
    }
}

/// Every policy file, sorted by name, with the name it is reported under.
fn policy_files() -> Vec<(String, Config)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("policies/ is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let config = Config::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, config)
        })
        .collect()
}

fn mixed(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let w = workload();
    let mut g = c.benchmark_group("mixed");
    g.throughput(Throughput::Elements((w.clients * w.ops_per_client) as u64));
    for (name, config) in policy_files() {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        let system =
                            TodoSystem::start_with_storage(&config, Arc::new(MemoryStorage::new()))
                                .await
                                .expect("system starts");
                        let rec = Arc::new(Recorder::default());
                        let started = Instant::now();
                        workload::run(&system, &w, &rec, || {}).await;
                        timed += started.elapsed();
                        system.shutdown().await;
                    }
                    timed
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    targets = mixed
}
criterion_main!(benches);
