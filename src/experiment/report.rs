//! What one run of a scenario under one policy measured, and the comparison
//! tables (text, Markdown, CSV) built from several runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::todo::RoleStats;

/// One point of the time series sampled during a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the workload started.
    pub t_ms: f64,
    /// Messages queued, summed over all mailboxes.
    pub depth: usize,
    /// p99 call latency in the last window, ms.
    pub p99_ms: f64,
}

/// The figures of one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// Policy file stem (and variant, for `bottleneck`).
    pub policy: String,
    /// Operations offered.
    pub offered: u64,
    /// Operations answered successfully.
    pub completed: u64,
    /// Workload wall time, seconds.
    pub seconds: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Writes acknowledged to clients.
    pub acked: u64,
    /// Acknowledged writes missing from storage at the instant the workload ended
    /// (what a kill -9 then would lose).
    pub lost_at_end: u64,
    /// Acknowledged writes missing after the run ended (graceful shutdown, or a
    /// SIGKILL for `crash`) and a restart on the same data.
    pub lost_after_restart: u64,
    /// Lists that could not be read back after the restart.
    pub unreadable_lists: u64,
    /// Reads that missed the reader's own earlier acknowledged write.
    pub ryw_violations: u64,
    /// Milliseconds from the end of the workload until every acknowledged write
    /// was in storage (None: not within the limit).
    pub durable_after_ms: Option<f64>,
    /// Mailbox accounting per role.
    pub roles: Vec<RoleStats>,
    /// Peak resident memory of the run's process, KiB.
    pub peak_rss_kib: u64,
    /// Scenario-specific figures (e.g. `cold` latencies).
    pub extra: BTreeMap<String, f64>,
    /// Depth and latency over time.
    pub series: Vec<Sample>,
}

impl RunReport {
    /// Offered operations per second.
    pub fn offered_per_s(&self) -> f64 {
        self.offered as f64 / self.seconds.max(1e-9)
    }

    /// Completed operations per second.
    pub fn completed_per_s(&self) -> f64 {
        self.completed as f64 / self.seconds.max(1e-9)
    }

    fn role(&self, role: &str) -> Option<&RoleStats> {
        self.roles.iter().find(|r| r.role == role)
    }

    fn lost_in_mailboxes(&self, role: &str) -> u64 {
        self.role(role).map_or(0, |r| {
            ["rejected", "dropped_oldest", "shed", "expired", "timed_out"]
                .iter()
                .map(|k| r.outcomes.get(*k).copied().unwrap_or(0))
                .sum()
        })
    }
}

const COLUMNS: [&str; 17] = [
    "policy",
    "offered/s",
    "done/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "errors",
    "acked",
    "lost@kill",
    "lost@restart",
    "unreadable",
    "RYW viol.",
    "durable after ms",
    "srv peak",
    "db peak",
    "refused/dropped (srv/db)",
    "peak RSS MiB",
];

fn row(r: &RunReport) -> Vec<String> {
    let errors: u64 = r.errors.values().sum();
    let peak = |role: &str| r.role(role).map_or(0, |s| s.peak_depth);
    let mut cells = vec![
        r.policy.clone(),
        format!("{:.0}", r.offered_per_s()),
        format!("{:.0}", r.completed_per_s()),
        format!("{:.3}", r.p50_ms),
        format!("{:.3}", r.p99_ms),
        format!("{:.1}", r.max_ms),
        errors.to_string(),
        r.acked.to_string(),
        r.lost_at_end.to_string(),
        r.lost_after_restart.to_string(),
        r.unreadable_lists.to_string(),
        r.ryw_violations.to_string(),
        r.durable_after_ms
            .map_or("never".into(), |ms| format!("{ms:.0}")),
        peak("todo_server").to_string(),
        peak("database_worker").max(peak("database")).to_string(),
        format!(
            "{}/{}",
            r.lost_in_mailboxes("todo_server"),
            r.lost_in_mailboxes("database_worker") + r.lost_in_mailboxes("database")
        ),
        format!("{:.1}", r.peak_rss_kib as f64 / 1024.0),
    ];
    for (k, v) in &r.extra {
        cells.push(format!("{k}={v:.2}"));
    }
    cells
}

/// A plain-text table of runs of one scenario.
pub fn text_table(runs: &[RunReport]) -> String {
    let rows: Vec<Vec<String>> = runs.iter().map(row).collect();
    let ncol = rows
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(COLUMNS.len());
    let mut widths = vec![0; ncol];
    for (i, c) in COLUMNS.iter().enumerate() {
        widths[i] = c.len();
    }
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut s = String::new();
    let line = |cells: Vec<&str>, s: &mut String| {
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(s, "{:<w$}  ", c, w = widths[i]);
        }
        s.push('\n');
    };
    line(COLUMNS.to_vec(), &mut s);
    for r in &rows {
        line(r.iter().map(String::as_str).collect(), &mut s);
    }
    s
}

/// A Markdown table of runs of one scenario.
pub fn markdown_table(runs: &[RunReport]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| {} | extra |", COLUMNS.join(" | "));
    let _ = writeln!(s, "|{}---|", "---|".repeat(COLUMNS.len()));
    for r in runs {
        let mut cells = row(r);
        let extra = cells.split_off(COLUMNS.len()).join(" ");
        let _ = writeln!(s, "| {} | {} |", cells.join(" | "), extra);
    }
    s
}

/// CSV of runs of one scenario (same columns as the tables).
pub fn csv(runs: &[RunReport]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "scenario,{},extra", COLUMNS.join(","));
    for r in runs {
        let mut cells = row(r);
        let extra = cells.split_off(COLUMNS.len()).join(" ");
        let quoted: Vec<String> = cells.iter().map(|c| format!("\"{c}\"")).collect();
        let _ = writeln!(s, "{},{},\"{}\"", r.scenario, quoted.join(","), extra);
    }
    s
}
