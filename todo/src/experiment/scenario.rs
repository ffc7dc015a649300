//! The scenarios: the chapter's questions (lost writes, stale reads, full queues,
//! bottlenecks, crashes) as a [`Scenario`] enum, their workloads, and
//! [`run_one`], which runs one under one policy file (the child process's side).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::crash::crash;
use super::error::ExperimentError;
use super::measure::{measure, SideTask};
use super::procfs::{peak_rss_kib, rss_kib};
use super::report::RunReport;
use super::workload::Workload;
use super::Scale;
use crate::config::Config;
use crate::domain::{AckMode, ListName, TodoSystem};
use sluicegate::runtime::Routing;

/// A scenario: one of the chapter's questions, asked under each policy file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Many clients, mostly writes, many lists: the baseline.
    Mixed,
    /// Writes only, on few lists, faster than the database stores them.
    Overload,
    /// The mixed workload on storage that takes ~4 ms per store.
    SlowDisk,
    /// One router and one worker, or three, routed or direct: where it queues.
    Bottleneck,
    /// Overload in a child process killed with SIGKILL, then a restart.
    Crash,
    /// Hostile list names and a list whose server keeps panicking, beside traffic.
    Poison,
    /// A backlog of queued stores, then a new list's first request.
    Cold,
    /// Overload again and again for minutes: does memory stay flat?
    Soak,
}

impl Scenario {
    /// Every scenario, in the order they run.
    pub const ALL: [Scenario; 8] = [
        Scenario::Mixed,
        Scenario::Overload,
        Scenario::SlowDisk,
        Scenario::Bottleneck,
        Scenario::Crash,
        Scenario::Poison,
        Scenario::Cold,
        Scenario::Soak,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Mixed => "mixed",
            Scenario::Overload => "overload",
            Scenario::SlowDisk => "slow-disk",
            Scenario::Bottleneck => "bottleneck",
            Scenario::Crash => "crash",
            Scenario::Poison => "poison",
            Scenario::Cold => "cold",
            Scenario::Soak => "soak",
        }
    }

    /// Whether it runs when none is named (all but `soak`, which takes minutes).
    pub fn runs_by_default(self) -> bool {
        self != Scenario::Soak
    }

    /// Storage latency injected into every store.
    pub fn disk_latency(self) -> Duration {
        match self {
            Scenario::SlowDisk => Duration::from_millis(4),
            Scenario::Bottleneck | Scenario::Cold => Duration::from_millis(1),
            _ => Duration::ZERO,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no scenario's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario \"{0}\"; expected one of {names}", names = names())]
pub struct UnknownScenario(String);

fn names() -> String {
    Scenario::ALL.map(Scenario::name).join(", ")
}

impl FromStr for Scenario {
    type Err = UnknownScenario;
    fn from_str(s: &str) -> Result<Self, UnknownScenario> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| UnknownScenario(s.to_string()))
    }
}

pub(super) fn mixed(scale: &Scale) -> Workload {
    if scale.quick {
        Workload {
            lists: 100,
            clients: 20,
            ops_per_client: 100,
            write_share: 0.8,
            dates: 30,
            prefix: "list-",
            seed: scale.seed,
            repeats: scale.repeats,
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
            repeats: scale.repeats,
        }
    }
}

pub(super) fn overload(scale: &Scale) -> Workload {
    Workload {
        lists: 100,
        clients: if scale.quick { 20 } else { 100 },
        ops_per_client: if scale.quick { 50 } else { 200 },
        write_share: 1.0,
        dates: 30,
        prefix: "list-",
        seed: scale.seed,
        repeats: scale.repeats,
    }
}

/// Runs one scenario under one policy file in this process (the child side).
pub async fn run_one(
    scenario: Scenario,
    policy: &Path,
    scale: Scale,
) -> Result<Vec<RunReport>, ExperimentError> {
    let config = Config::load(policy)?;
    let name = stem(policy);
    match scenario {
        Scenario::Mixed => Ok(vec![
            measure(scenario, name, &config, &mixed(&scale), &scale, None).await?,
        ]),
        Scenario::SlowDisk => {
            // Every store waits ~4 ms: a quarter of the mixed workload when quick.
            let mut w = mixed(&scale);
            if scale.quick {
                w.ops_per_client /= 4;
            }
            Ok(vec![
                measure(scenario, name, &config, &w, &scale, None).await?,
            ])
        }
        Scenario::Overload => Ok(vec![
            measure(scenario, name, &config, &overload(&scale), &scale, None).await?,
        ]),
        Scenario::Bottleneck => {
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
                let label = format!("{name}/{workers}-{}", crate::config::routing_name(routing));
                out.push(measure(scenario, label, &c, &w, &scale, None).await?);
            }
            Ok(out)
        }
        Scenario::Poison => {
            let quick = scale.quick;
            let side: SideTask =
                Box::new(move |system: TodoSystem| tokio::spawn(poison(system, quick)));
            Ok(vec![
                measure(scenario, name, &config, &mixed(&scale), &scale, Some(side)).await?,
            ])
        }
        Scenario::Cold => Ok(vec![cold(name, &config, &scale).await?]),
        Scenario::Soak => Ok(vec![soak(name, &config, &scale).await?]),
        Scenario::Crash => Ok(vec![crash(name, policy, &config, &scale).await?]),
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
async fn cold(name: String, config: &Config, scale: &Scale) -> Result<RunReport, ExperimentError> {
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
        repeats: scale.repeats,
    };
    measure(Scenario::Cold, name, config, &w, scale, Some(side)).await
}

/// Overload again and again for the soak time; peak RSS early and late.
async fn soak(name: String, config: &Config, scale: &Scale) -> Result<RunReport, ExperimentError> {
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
        let r = measure(Scenario::Soak, name.clone(), config, &w, scale, None).await?;
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

/// A policy file's name without its extension (the report's policy label).
pub(super) fn stem(policy: &Path) -> String {
    policy
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| policy.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_parses_from_its_name_and_nothing_else_does() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>(), Ok(s));
        }
        let e = "slow_disk".parse::<Scenario>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown scenario \"slow_disk\"; expected one of mixed, overload, slow-disk, \
             bottleneck, crash, poison, cold, soak"
        );
    }
}
