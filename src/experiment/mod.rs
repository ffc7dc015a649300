//! Experiments: the chapter's questions (lost writes, stale reads, full queues,
//! bottlenecks, crashes) as scenarios run under every policy file, side by side.
//!
//! Each (scenario, policy) runs in its own child process (`sluicegate
//! experiment-run`), so peak memory is per run and a crash can be a real SIGKILL.
//! `--quick` shrinks the workloads and runs the policies of `crash` at once (see [`parallel_runs`]).

mod html;
mod plot;
mod report;
pub mod workload;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

pub use report::{csv, markdown, markdown_table, text_table, Column, RunReport, Sample, COLUMNS};
use workload::{Acked, Recorder, Workload};

use crate::config::{AckMode, Config, Routing};
use crate::storage::{
    self, BackendKind, FaultConfig, FaultyStorage, PostgresOptions, PostgresStorage, Storage,
};
use crate::todo::{ListName, TodoSystem};

/// The scenarios, in the order they run.
pub const SCENARIOS: [&str; 8] = [
    "mixed",
    "overload",
    "slow-disk",
    "bottleneck",
    "crash",
    "poison",
    "cold",
    "soak",
];

/// How big a run is.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Small version: every scenario under every policy file in about 25 s on a quiet 2-core machine.
    pub quick: bool,
    /// Minutes of the soak scenario.
    pub soak_minutes: f64,
    /// Seed of every random choice.
    pub seed: u64,
}

fn mixed(scale: &Scale) -> Workload {
    if scale.quick {
        Workload {
            lists: 100,
            clients: 20,
            ops_per_client: 100,
            write_share: 0.8,
            dates: 30,
            prefix: "list-",
            seed: scale.seed,
        }
    } else {
        Workload {
            lists: 1000,
            clients: 100,
            ops_per_client: 1000,
            write_share: 0.8,
            dates: 30,
            prefix: "list-",
            seed: scale.seed,
        }
    }
}

fn overload(scale: &Scale) -> Workload {
    Workload {
        lists: 100,
        clients: if scale.quick { 20 } else { 100 },
        ops_per_client: if scale.quick { 50 } else { 200 },
        write_share: 1.0,
        dates: 30,
        prefix: "list-",
        seed: scale.seed,
    }
}

/// The local backend `config` names (`None`: PostgreSQL).
fn backend(config: &Config) -> Option<BackendKind> {
    match config.storage.backend {
        crate::config::StorageBackend::Files => Some(BackendKind::Files),
        crate::config::StorageBackend::Sqlite => Some(BackendKind::Sqlite),
        crate::config::StorageBackend::Memory => Some(BackendKind::Memory),
        crate::config::StorageBackend::Postgres => None,
    }
}

/// The PostgreSQL schema of the run whose data dir is `dir`: each run starts on
/// empty tables in the database at `storage.url`, and a run's child process
/// (`crash`) finds the same schema from the same dir.
fn run_schema(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    format!("sluicegate_run_{:016x}", h.finish())
}

/// Opens the backend `config` names for the run in `dir` (PostgreSQL: in the run's schema).
async fn open_backend(config: &Config, dir: &Path) -> Result<Arc<dyn Storage>, String> {
    match backend(config) {
        Some(kind) => storage::open(kind, dir).map_err(|e| e.to_string()),
        None => Ok(Arc::new(open_run_postgres(config, dir).await?)),
    }
}

async fn open_run_postgres(config: &Config, dir: &Path) -> Result<PostgresStorage, String> {
    let url = config.storage.url.as_deref().unwrap_or_default();
    let options = PostgresOptions {
        schema: run_schema(dir),
        timeout: config.system.call_timeout,
        ..PostgresOptions::default()
    };
    PostgresStorage::open(url, options)
        .await
        .map_err(|e| e.to_string())
}

/// Drops what the run in `dir` left in PostgreSQL (nothing to do for local backends,
/// whose data dir is a temporary directory).
async fn discard_backend(config: &Config, dir: &Path) {
    if backend(config).is_none() {
        match open_run_postgres(config, dir).await {
            Ok(pg) => {
                if let Err(e) = pg.drop_schema().await {
                    tracing::warn!(error = %e, "could not drop the run's postgres schema");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not drop the run's postgres schema"),
        }
    }
}

async fn open_storage(
    config: &Config,
    dir: &Path,
    latency: Duration,
) -> Result<Arc<dyn Storage>, String> {
    let inner = open_backend(config, dir).await?;
    if latency.is_zero() {
        return Ok(inner);
    }
    let (faulty, _handle) = FaultyStorage::new(
        ArcStorage(inner),
        FaultConfig {
            latency,
            jitter: latency / 2,
            ..FaultConfig::default()
        },
        7,
    );
    Ok(Arc::new(faulty))
}

/// Lets an `Arc<dyn Storage>` be wrapped by [`FaultyStorage`].
struct ArcStorage(Arc<dyn Storage>);

#[async_trait::async_trait]
impl Storage for ArcStorage {
    async fn load(
        &self,
        name: &ListName,
    ) -> Result<Option<crate::todo::TodoList>, crate::storage::StorageError> {
        self.0.load(name).await
    }
    async fn store(
        &self,
        name: &ListName,
        list: &crate::todo::TodoList,
    ) -> Result<(), crate::storage::StorageError> {
        self.0.store(name, list).await
    }
    async fn store_batch(
        &self,
        writes: &[crate::storage::ListWrite],
    ) -> Vec<Result<(), crate::storage::StorageError>> {
        self.0.store_batch(writes).await
    }
    async fn list_names(&self) -> Result<Vec<ListName>, crate::storage::StorageError> {
        self.0.list_names().await
    }
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
}

/// Counts writes handed to a backend and finished, so the harness can tell when
/// the database is idle without reloading lists while it works.
struct Counting {
    inner: Arc<dyn Storage>,
    started: AtomicU64,
    finished: AtomicU64,
}

impl Counting {
    fn wrap(inner: Arc<dyn Storage>) -> Arc<Self> {
        Arc::new(Counting {
            inner,
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        })
    }

    /// Writes handed to the backend and not finished yet.
    fn in_flight(&self) -> u64 {
        let finished = self.finished.load(Ordering::SeqCst);
        self.started.load(Ordering::SeqCst).saturating_sub(finished)
    }
}

#[async_trait::async_trait]
impl Storage for Counting {
    async fn load(
        &self,
        name: &ListName,
    ) -> Result<Option<crate::todo::TodoList>, crate::storage::StorageError> {
        self.inner.load(name).await
    }
    async fn store(
        &self,
        name: &ListName,
        list: &crate::todo::TodoList,
    ) -> Result<(), crate::storage::StorageError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let r = self.inner.store(name, list).await;
        self.finished.fetch_add(1, Ordering::SeqCst);
        r
    }
    async fn store_batch(
        &self,
        writes: &[crate::storage::ListWrite],
    ) -> Vec<Result<(), crate::storage::StorageError>> {
        let n = writes.len() as u64;
        self.started.fetch_add(n, Ordering::SeqCst);
        let r = self.inner.store_batch(writes).await;
        self.finished.fetch_add(n, Ordering::SeqCst);
        r
    }
    async fn list_names(&self) -> Result<Vec<ListName>, crate::storage::StorageError> {
        self.inner.list_names().await
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

/// Whether nothing is queued in any mailbox and no store is in flight: every
/// write handed to the database so far has reached the backend.
fn quiescent(system: &TodoSystem, counting: &Counting) -> bool {
    counting.in_flight() == 0 && system.mailbox_stats().iter().all(|r| r.depth == 0)
}

/// Acknowledged writes missing from storage, and lists that could not be read.
async fn check_storage(storage: &dyn Storage, acked: &[Acked]) -> (u64, u64) {
    let mut by_list: HashMap<&ListName, Vec<&str>> = HashMap::new();
    for a in acked {
        by_list.entry(&a.list).or_default().push(&a.title);
    }
    let (mut missing, mut unreadable) = (0u64, 0u64);
    for (list, titles) in by_list {
        match storage.load(list).await {
            Ok(Some(l)) => {
                let have: HashSet<String> = l.all_entries().into_iter().map(|e| e.title).collect();
                missing += titles.iter().filter(|t| !have.contains(**t)).count() as u64;
            }
            Ok(None) => missing += titles.len() as u64,
            Err(_) => {
                unreadable += 1;
                missing += titles.len() as u64;
            }
        }
    }
    (missing, unreadable)
}

/// Peak resident memory of this process (VmHWM), KiB.
pub fn peak_rss_kib() -> u64 {
    proc_status_kib("VmHWM:")
}

/// Resident memory of this process now (VmRSS), KiB.
pub fn rss_kib() -> u64 {
    proc_status_kib("VmRSS:")
}

fn proc_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples depth and latency every `period` while a workload runs.
fn spawn_sampler(
    system: TodoSystem,
    rec: Arc<Recorder>,
    started: Instant,
    period: Duration,
) -> (
    tokio::task::JoinHandle<Vec<Sample>>,
    tokio::sync::watch::Sender<bool>,
) {
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            let depth = system.mailbox_stats().iter().map(|r| r.depth).sum();
            out.push(Sample {
                t_ms: started.elapsed().as_secs_f64() * 1000.0,
                depth,
                p99_ms: rec.take_window_p99_ms(),
            });
        }
        out
    });
    (task, stop_tx)
}

/// How long a quick run waits for every acknowledged write to be durable before it
/// reports "not reached" (a full run waits 60 s).
pub const QUICK_DURABLE_LIMIT: Duration = Duration::from_secs(2);

/// How often depth and latency are sampled: every 20 ms in a quick run (whose
/// workloads last about a second), every 100 ms otherwise.
fn sample_every(scale: &Scale) -> Duration {
    Duration::from_millis(if scale.quick { 20 } else { 100 })
}

/// A task run beside the workload; its figures land in the report's `extra`.
type SideTask =
    Box<dyn FnOnce(TodoSystem) -> tokio::task::JoinHandle<BTreeMap<String, f64>> + Send>;

/// Storage latency injected per scenario.
fn disk_latency(scenario: &str) -> Duration {
    match scenario {
        "slow-disk" => Duration::from_millis(4),
        "bottleneck" => Duration::from_millis(1),
        "cold" => Duration::from_millis(1),
        _ => Duration::ZERO,
    }
}

/// Runs one workload on a fresh system and fills a report.
async fn measure(
    scenario: &str,
    label: String,
    config: &Config,
    w: &Workload,
    scale: &Scale,
    during: Option<SideTask>,
) -> Result<RunReport, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let storage = open_storage(config, dir.path(), disk_latency(scenario)).await?;
    let counting = Counting::wrap(storage.clone());
    let system = TodoSystem::start_with_storage(config, counting.clone())
        .await
        .map_err(|e| e.to_string())?;
    let rec = Arc::new(Recorder::default());
    let started = Instant::now();
    let (sampler, stop) = spawn_sampler(system.clone(), rec.clone(), started, sample_every(scale));
    let side = during.map(|f| f(system.clone()));
    workload::run(&system, w, &rec, || {}).await;
    let seconds = started.elapsed().as_secs_f64();
    let extra = match side {
        Some(h) => h.await.unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let _ = stop.send(true);
    let series = sampler.await.unwrap_or_default();
    let roles = system.mailbox_stats();
    let acked = rec.acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (lost_at_end, _) = check_storage(storage.as_ref(), &acked).await;
    // How long until everything acknowledged is durable (bounded wait).
    let limit = if scale.quick {
        QUICK_DURABLE_LIMIT
    } else {
        Duration::from_secs(60)
    };
    // The poll does not reload lists while the database works (that would compete
    // with the workers it times): it waits until no mailbox holds a message and no
    // store is in flight (cheap counters), then checks storage. Writes still
    // missing then (dropped or failed stores, or a write a list server was still
    // applying) are checked again at the next quiet moment, 20 ms on.
    let waited = Instant::now();
    let mut durable_after_ms = None;
    let mut missing = lost_at_end;
    while waited.elapsed() < limit {
        if missing == 0 {
            durable_after_ms = Some(waited.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        if !quiescent(&system, &counting) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let quiet_at = waited.elapsed();
        missing = check_storage(storage.as_ref(), &acked).await.0;
        if missing == 0 {
            durable_after_ms = Some(quiet_at.as_secs_f64() * 1000.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    system.shutdown().await;
    // Restart: a fresh backend object on the same data directory.
    let reopened = open_backend(config, dir.path()).await?;
    let (lost_after_restart, unreadable_lists) = if backend(config) == Some(BackendKind::Memory) {
        check_storage(storage.as_ref(), &acked).await
    } else {
        check_storage(reopened.as_ref(), &acked).await
    };
    drop(reopened);
    discard_backend(config, dir.path()).await;
    let h = rec
        .latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let ms = |q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let errors = rec.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(RunReport {
        scenario: scenario.to_string(),
        policy: label,
        offered: rec.offered.load(Ordering::Relaxed),
        completed: rec.completed.load(Ordering::Relaxed),
        seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: if h.is_empty() {
            0.0
        } else {
            h.max() as f64 / 1000.0
        },
        errors,
        acked: acked.len() as u64,
        lost_at_end,
        lost_after_restart,
        unreadable_lists,
        ryw_violations: rec.ryw_violations.load(Ordering::Relaxed),
        durable_after_ms,
        roles,
        peak_rss_kib: peak_rss_kib(),
        extra,
        series,
    })
}

fn stem(policy: &Path) -> String {
    policy
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| policy.display().to_string())
}

/// Runs one scenario under one policy file in this process (the child side).
pub async fn run_one(
    scenario: &str,
    policy: &Path,
    scale: Scale,
) -> Result<Vec<RunReport>, String> {
    let config = Config::load(policy).map_err(|e| e.to_string())?;
    let name = stem(policy);
    match scenario {
        "mixed" => Ok(vec![
            measure(scenario, name, &config, &mixed(&scale), &scale, None).await?,
        ]),
        "slow-disk" => {
            // Every store waits ~4 ms: a quarter of the mixed workload when quick.
            let mut w = mixed(&scale);
            if scale.quick {
                w.ops_per_client /= 4;
            }
            Ok(vec![
                measure(scenario, name, &config, &w, &scale, None).await?,
            ])
        }
        "overload" => Ok(vec![
            measure(scenario, name, &config, &overload(&scale), &scale, None).await?,
        ]),
        "bottleneck" => {
            let mut out = Vec::new();
            let mut w = mixed(&scale);
            // Three database variants per policy (one of them a single worker): 15% of
            // the mixed workload each when quick.
            w.ops_per_client = if scale.quick { 15 } else { 200 };
            for (workers, routing) in [
                (1, Routing::Routed),
                (3, Routing::Routed),
                (3, Routing::Direct),
            ] {
                let mut c = config.clone();
                c.database.workers = workers;
                c.database.routing = routing;
                let label = format!("{name}/{workers}-{routing}");
                out.push(measure(scenario, label, &c, &w, &scale, None).await?);
            }
            Ok(out)
        }
        "poison" => {
            let quick = scale.quick;
            let side: SideTask =
                Box::new(move |system: TodoSystem| tokio::spawn(poison(system, quick)));
            Ok(vec![
                measure(scenario, name, &config, &mixed(&scale), &scale, Some(side)).await?,
            ])
        }
        "cold" => Ok(vec![cold(name, &config, &scale).await?]),
        "soak" => Ok(vec![soak(name, &config, &scale).await?]),
        "crash" => Ok(vec![crash(name, policy, &config, &scale).await?]),
        other => Err(format!(
            "unknown scenario \"{other}\"; expected one of {}",
            SCENARIOS.join(", ")
        )),
    }
}

/// Hostile names and a list whose server keeps panicking, beside normal traffic.
async fn poison(system: TodoSystem, quick: bool) -> BTreeMap<String, f64> {
    let hostile = [
        "../x".to_string(),
        "bad/name".to_string(),
        "CON".to_string(),
        "日本語".to_string(),
        "é".repeat(128),
        "poison".to_string(),
    ];
    let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    let rounds = if quick { 20 } else { 200 };
    let (mut panics, mut ok, mut errors) = (0.0, 0.0, 0.0);
    for i in 0..rounds {
        let poison = ListName::new("poison").unwrap_or_else(|_| unreachable!());
        if system.inject_panic(&poison).await.is_ok() {
            panics += 1.0;
        }
        for h in &hostile {
            let Ok(name) = ListName::new(h.as_str()) else {
                continue;
            };
            match system
                .add_entry(&name, date, &format!("h{i}"), Some(AckMode::Durable))
                .await
            {
                Ok(_) => ok += 1.0,
                Err(_) => errors += 1.0,
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    BTreeMap::from([
        ("poison_panics".to_string(), panics),
        ("hostile_writes_ok".to_string(), ok),
        ("hostile_writes_failed".to_string(), errors),
    ])
}

/// A backlog of queued stores, then the first request to a new list and a read
/// of an existing one.
async fn cold(name: String, config: &Config, scale: &Scale) -> Result<RunReport, String> {
    // The writers pile stores onto the database; the probe goes in once the backlog
    // reaches `backlog` queued stores (only policies that queue that much get there:
    // coalesce holds one store per list, bounded ones stop at their capacity) or
    // after `patience`.
    let (backlog, lists, per_client, patience) = if scale.quick {
        (300, 100, 10, Duration::from_secs(1))
    } else {
        (10_000, 1_000, 200, Duration::from_secs(10))
    };
    let clients = 100;
    let side: SideTask = Box::new(move |system: TodoSystem| {
        tokio::spawn(async move {
            let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
            let warm = ListName::new("warm").unwrap_or_else(|_| unreachable!());
            let _ = system
                .add_entry(&warm, date, "kept", Some(AckMode::Durable))
                .await;
            // Wait until the database backlog stands (or the writers are done).
            let started = Instant::now();
            let mut peak = 0usize;
            loop {
                let depth: usize = system
                    .mailbox_stats()
                    .iter()
                    .filter(|r| r.role != "todo_server")
                    .map(|r| r.depth)
                    .sum();
                peak = peak.max(depth);
                if depth >= backlog || started.elapsed() > patience {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let t = Instant::now();
            let new = ListName::new("brand-new").unwrap_or_else(|_| unreachable!());
            let first = system.add_entry(&new, date, "first", None).await;
            let cold_ms = t.elapsed().as_secs_f64() * 1000.0;
            let t = Instant::now();
            let read = system.entries(&warm, None).await;
            let warm_ms = t.elapsed().as_secs_f64() * 1000.0;
            BTreeMap::from([
                ("db_backlog_at_probe".to_string(), peak as f64),
                ("new_list_first_request_ms".to_string(), cold_ms),
                (
                    "new_list_ok".to_string(),
                    f64::from(u8::from(first.is_ok())),
                ),
                ("existing_list_read_ms".to_string(), warm_ms),
                (
                    "existing_list_ok".to_string(),
                    f64::from(u8::from(read.is_ok())),
                ),
            ])
        })
    });
    let w = Workload {
        lists,
        clients,
        ops_per_client: per_client,
        write_share: 1.0,
        dates: 1,
        prefix: "backlog-",
        seed: scale.seed,
    };
    measure("cold", name, config, &w, scale, Some(side)).await
}

/// Overload again and again for the soak time; peak RSS early and late.
async fn soak(name: String, config: &Config, scale: &Scale) -> Result<RunReport, String> {
    let minutes = if scale.quick {
        scale.soak_minutes.min(0.1)
    } else {
        scale.soak_minutes
    };
    let total = Duration::from_secs_f64(minutes * 60.0);
    let started = Instant::now();
    let mut first_minute_peak = 0u64;
    let mut last_rss = 0u64;
    let mut report: Option<RunReport> = None;
    let mut rounds = 0.0;
    while started.elapsed() < total || report.is_none() {
        let mut w = overload(scale);
        w.seed = scale.seed.wrapping_add(rounds as u64);
        let r = measure("soak", name.clone(), config, &w, scale, None).await?;
        rounds += 1.0;
        let rss = rss_kib();
        if started.elapsed() < Duration::from_secs(60) {
            first_minute_peak = first_minute_peak.max(rss);
        }
        last_rss = rss;
        report = Some(match report {
            None => r,
            Some(mut acc) => {
                acc.offered += r.offered;
                acc.completed += r.completed;
                acc.seconds += r.seconds;
                acc.acked += r.acked;
                acc.lost_at_end += r.lost_at_end;
                acc.lost_after_restart += r.lost_after_restart;
                acc.p99_ms = acc.p99_ms.max(r.p99_ms);
                acc.max_ms = acc.max_ms.max(r.max_ms);
                acc
            }
        });
    }
    let mut r = report.unwrap_or_default();
    r.peak_rss_kib = peak_rss_kib();
    r.extra.insert("rounds".into(), rounds);
    r.extra.insert(
        "rss_first_minute_mib".into(),
        first_minute_peak as f64 / 1024.0,
    );
    r.extra
        .insert("rss_at_end_mib".into(), last_rss as f64 / 1024.0);
    Ok(r)
}

/// Overload in a child process killed with SIGKILL mid-way, then a restart.
async fn crash(
    name: String,
    policy: &Path,
    config: &Config,
    scale: &Scale,
) -> Result<RunReport, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("experiment-writer")
        .arg("--policy")
        .arg(policy)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--seed")
        .arg(scale.seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the writer process: {e}"))?;
    let stdout = child.stdout.take().ok_or("no writer stdout")?;
    let acked: Arc<std::sync::Mutex<Vec<Acked>>> = Arc::default();
    let a2 = acked.clone();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.splitn(3, '\t');
            if let (Some("ack"), Some(list), Some(title)) =
                (parts.next(), parts.next(), parts.next())
            {
                if let Ok(list) = ListName::new(list) {
                    a2.lock().unwrap_or_else(|e| e.into_inner()).push(Acked {
                        list,
                        title: title.to_string(),
                    });
                }
            }
        }
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(scale.seed);
    let kill_after = Duration::from_millis(rng.gen_range(500..1500));
    let started = Instant::now();
    tokio::time::sleep(kill_after).await;
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let _ = reader.join();
    let seconds = started.elapsed().as_secs_f64();
    let acked = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let reopened = open_backend(config, dir.path()).await?;
    let (lost, unreadable) = check_storage(reopened.as_ref(), &acked).await;
    drop(reopened);
    discard_backend(config, dir.path()).await;
    let mut extra = BTreeMap::new();
    extra.insert("killed_after_ms".into(), kill_after.as_secs_f64() * 1000.0);
    Ok(RunReport {
        scenario: "crash".into(),
        policy: name,
        offered: acked.len() as u64,
        completed: acked.len() as u64,
        seconds,
        acked: acked.len() as u64,
        lost_at_end: lost,
        lost_after_restart: lost,
        unreadable_lists: unreadable,
        peak_rss_kib: peak_rss_kib(),
        extra,
        ..RunReport::default()
    })
}

/// The writer side of `crash`: runs overload and prints each acknowledged write
/// (`ack\t<list>\t<title>`) the moment it is acknowledged, until killed.
pub async fn crash_writer(policy: &Path, data_dir: &Path, seed: u64) -> Result<(), String> {
    let config = Config::load(policy).map_err(|e| e.to_string())?;
    let storage = open_backend(&config, data_dir).await?;
    let system = TodoSystem::start_with_storage(&config, storage)
        .await
        .map_err(|e| e.to_string())?;
    let mut w = overload(&Scale {
        quick: false,
        soak_minutes: 0.0,
        seed,
    });
    w.ops_per_client = 100_000; // runs until killed
    let rec = Arc::new(Recorder::default());
    let printed = Arc::new(std::sync::Mutex::new(0usize));
    let rec2 = rec.clone();
    workload::run(&system, &w, &rec, move || {
        let acked = rec2.acked.lock().unwrap_or_else(|e| e.into_inner());
        let mut done = printed.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        for a in &acked[*done..] {
            let _ = writeln!(out, "ack\t{}\t{}", a.list, a.title);
        }
        let _ = out.flush();
        *done = acked.len();
    })
    .await;
    Ok(())
}

/// Options of `sluicegate experiment`.
#[derive(Clone, Debug)]
pub struct ExperimentOptions {
    /// Scenarios to run (empty: all but `soak`).
    pub scenarios: Vec<String>,
    /// Policy files (empty: every file in `policies/`).
    pub policies: Vec<PathBuf>,
    /// Where to write Markdown, CSV and SVG.
    pub out: Option<PathBuf>,
    /// Sizes and seed.
    pub scale: Scale,
}

/// Runs every scenario under every policy (each in a child process) and prints
/// one table per scenario; returns the reports by scenario.
pub fn run_all(opts: &ExperimentOptions) -> Result<Vec<(String, Vec<RunReport>)>, String> {
    let scenarios: Vec<String> = if opts.scenarios.is_empty() {
        SCENARIOS
            .iter()
            .filter(|s| **s != "soak")
            .map(|s| s.to_string())
            .collect()
    } else {
        opts.scenarios.clone()
    };
    for s in &scenarios {
        if !SCENARIOS.contains(&s.as_str()) {
            return Err(format!(
                "unknown scenario \"{s}\"; expected one of {}",
                SCENARIOS.join(", ")
            ));
        }
    }
    let policies = if opts.policies.is_empty() {
        let mut files: Vec<PathBuf> = std::fs::read_dir("policies")
            .map_err(|e| format!("cannot read policies/: {e} (give --policies FILE...)"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        files
    } else {
        opts.policies.clone()
    };
    for p in &policies {
        Config::load(p).map_err(|e| e.to_string())?;
    }
    if let Some(out) = &opts.out {
        std::fs::create_dir_all(out)
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let total = scenarios.len() * policies.len();
    // A bar on a terminal; plain progress lines otherwise (logs, CI, pipes).
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        indicatif::ProgressBar::new(total as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let params = parameters(opts, &scenarios, &policies);
    let started = Instant::now();
    let mut done = 0usize;
    let mut all = Vec::new();
    for scenario in &scenarios {
        let jobs = parallel_runs(scenario, opts.scale.quick, policies.len());
        let mut runs = Vec::new();
        for group in policies.chunks(jobs) {
            let names: Vec<String> = group.iter().map(|p| stem(p)).collect();
            bar.set_message(format!("{scenario} / {}", names.join(", ")));
            if !tty {
                eprintln!(
                    "experiment: [{}/{total}] {scenario}: starting {} ({:.0} s elapsed)",
                    done + 1,
                    names.join(", "),
                    started.elapsed().as_secs_f64()
                );
            }
            let results: Vec<Result<(Vec<RunReport>, f64), String>> = std::thread::scope(|s| {
                let handles: Vec<_> = group
                    .iter()
                    .map(|policy| s.spawn(|| run_child(&exe, scenario, policy, &opts.scale)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err("a run's thread panicked".to_string()))
                    })
                    .collect()
            });
            for (policy, result) in group.iter().zip(results) {
                let (reports, secs) = result?;
                runs.extend(reports);
                done += 1;
                bar.inc(1);
                if !tty {
                    eprintln!(
                        "experiment: [{done}/{total}] {scenario} / {} done in {secs:.1} s",
                        stem(policy)
                    );
                }
            }
        }
        bar.suspend(|| {
            println!("\n## {scenario}\n");
            print!("{}", text_table(&runs));
        });
        if let Some(out) = &opts.out {
            write_file(
                out,
                &format!("{scenario}.md"),
                report::markdown(&runs, &params),
            )?;
            write_file(out, &format!("{scenario}.csv"), csv(&runs))?;
            plot::write_plots(out, scenario, &runs)?;
        }
        all.push((scenario.clone(), runs));
    }
    bar.finish_and_clear();
    let mut params = params;
    params.push((
        "wall time".into(),
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    ));
    if let Some(out) = &opts.out {
        let page = html::report(&all, &params, &html::machine(), out);
        write_file(out, "report.html", page)?;
        if !tty {
            eprintln!("experiment: wrote {}", out.join("report.html").display());
        }
    }
    if !tty {
        eprintln!(
            "experiment: {done} runs in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(all)
}

/// How many policies of `scenario` run at the same time: in a quick run, every policy
/// of `crash` at once; otherwise one at a time.
///
/// Each run is its own process with its own data directory, and what `crash` reports
/// are counts (acknowledged, lost, unreadable after a SIGKILL at a fixed moment), which
/// mean the same when runs share the CPU. Scenarios whose throughput and latency are the
/// point run alone: side by side on a small machine they would time each other out.
pub fn parallel_runs(scenario: &str, quick: bool, policies: usize) -> usize {
    if quick && scenario == "crash" {
        policies.max(1)
    } else {
        1
    }
}

/// Runs one scenario under one policy in a child process; its reports and wall time.
fn run_child(
    exe: &Path,
    scenario: &str,
    policy: &Path,
    scale: &Scale,
) -> Result<(Vec<RunReport>, f64), String> {
    let started = Instant::now();
    let mut cmd = Command::new(exe);
    cmd.arg("experiment-run")
        .arg("--scenario")
        .arg(scenario)
        .arg("--policy")
        .arg(policy)
        .arg("--seed")
        .arg(scale.seed.to_string())
        .arg("--minutes")
        .arg(scale.soak_minutes.to_string());
    if scale.quick {
        cmd.arg("--quick");
    }
    let output = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {scenario} under {}: {e}", policy.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{scenario} under {} failed: {}",
            policy.display(),
            output.status
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let reports: Vec<RunReport> = serde_json::from_str(text.trim())
        .map_err(|e| format!("bad report from {scenario}/{}: {e}", policy.display()))?;
    Ok((reports, started.elapsed().as_secs_f64()))
}

/// The parameters of a run of `experiment`, for the Markdown files and `report.html`.
fn parameters(
    opts: &ExperimentOptions,
    scenarios: &[String],
    policies: &[PathBuf],
) -> Vec<(String, String)> {
    vec![
        (
            "size".into(),
            if opts.scale.quick {
                format!(
                    "quick: small workloads, durability awaited at most {} s, crash runs every policy at once",
                    QUICK_DURABLE_LIMIT.as_secs()
                )
            } else {
                "full: durability awaited at most 60 s, one run at a time".into()
            },
        ),
        ("seed".into(), opts.scale.seed.to_string()),
        ("soak minutes".into(), opts.scale.soak_minutes.to_string()),
        ("scenarios".into(), scenarios.join(", ")),
        (
            "policy files".into(),
            policies
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "sampling".into(),
            format!(
                "depth and p99 every {} ms",
                sample_every(&opts.scale).as_millis()
            ),
        ),
        (
            "started".into(),
            chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
        ),
    ]
}

fn write_file(out: &Path, name: &str, body: String) -> Result<(), String> {
    std::fs::write(out.join(name), body)
        .map_err(|e| format!("cannot write {}: {e}", out.join(name).display()))
}
