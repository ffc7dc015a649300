//! The `crash` scenario: a writer child process runs overload and prints every
//! acknowledged write as it is acknowledged; the harness kills it with SIGKILL at a
//! random moment, reopens its data directory and counts what was lost.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::error::ExperimentError;
use super::measure::check_storage;
use super::procfs::peak_rss_kib;
use super::report::RunReport;
use super::scenario::overload;
use super::storage::{discard_backend, open_backend};
use super::workload::{self, Acked, Recorder};
use super::Scale;
use crate::config::Config;
use crate::domain::{ListName, TodoSystem};

/// Overload in a child process killed with SIGKILL mid-way, then a restart.
pub(super) async fn crash(
    name: String,
    policy: &Path,
    config: &Config,
    scale: &Scale,
) -> Result<RunReport, ExperimentError> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
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
        .map_err(ExperimentError::Writer)?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ExperimentError::Run("no writer stdout".into()))?;
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
        ack: config.system.default_ack.to_string(),
        ..RunReport::default()
    })
}

/// The writer side of `crash`: runs overload and prints each acknowledged write
/// (`ack\t<list>\t<title>`) the moment it is acknowledged, until killed.
pub async fn crash_writer(
    policy: &Path,
    data_dir: &Path,
    seed: u64,
) -> Result<(), ExperimentError> {
    let config = Config::load(policy)?;
    let storage = open_backend(&config, data_dir).await?;
    let system = TodoSystem::start_with_storage(&config, storage).await?;
    let mut w = overload(&Scale {
        quick: false,
        soak_minutes: 0.0,
        seed,
        repeats: 0,
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
