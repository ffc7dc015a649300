//! What one run of a scenario under one policy measured, and the comparison
//! tables (text, Markdown, CSV, HTML) built from several runs, with a key for every column.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::findings::Finding;
use crate::domain::RoleStats;

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
    /// The policy file's default ack mode (`none`, `applied`, `durable`), which
    /// every write of the workload used; empty in reports written before it was recorded.
    #[serde(default)]
    pub ack: String,
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

    /// The mailbox accounting of `role` (`todo_server`, `database_worker`, `database`).
    pub fn role(&self, role: &str) -> Option<&RoleStats> {
        self.roles.iter().find(|r| r.role == role)
    }

    /// Messages the mailboxes of `role` refused, dropped, shed, expired or timed out.
    pub fn lost_in_mailboxes(&self, role: &str) -> u64 {
        self.role(role).map_or(0, |r| {
            ["rejected", "dropped_oldest", "shed", "expired", "timed_out"]
                .iter()
                .map(|k| r.outcomes.get(*k).copied().unwrap_or(0))
                .sum()
        })
    }
}

/// One column of the comparison tables: its header and what it means.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// Header, as in the tables and the CSV.
    pub name: &'static str,
    /// What the column means (the key printed with every table).
    pub key: &'static str,
}

/// Every fixed column after `policy`; scenario-specific figures follow, one column each.
pub const COLUMNS: [Column; 18] = [
    Column { name: "offered/s", key: "operations the clients offered per second of workload wall time" },
    Column { name: "done/s", key: "operations answered successfully per second" },
    Column { name: "p50 ms", key: "median latency of an operation, ms (0 when none completed)" },
    Column { name: "p99 ms", key: "99th percentile latency, ms" },
    Column { name: "max ms", key: "slowest operation, ms" },
    Column { name: "errors", key: "operations answered with an error (refused, timed out, unavailable ...)" },
    Column { name: "acked", key: "writes acknowledged to clients" },
    Column { name: "lost@kill", key: "acknowledged writes missing from storage the moment the workload ended (what a kill -9 then would lose)" },
    Column { name: "lost@restart", key: "acknowledged writes missing after shutdown (SIGKILL for crash) and a restart on the same data" },
    Column { name: "unreadable", key: "lists that could not be read back after the restart" },
    Column { name: "RYW viol.", key: "reads that missed the reader's own earlier acknowledged write" },
    Column { name: "durable after ms", key: "ms from the end of the workload until every acknowledged write was in storage; empty: not reached within the limit (2 s quick, 60 s full)" },
    Column { name: "srv peak", key: "most messages queued at once in one to-do server mailbox" },
    Column { name: "db peak", key: "most messages queued at once in one database mailbox (worker or router)" },
    Column { name: "srv refused/dropped", key: "messages the to-do server mailboxes refused, dropped, shed, expired or timed out" },
    Column { name: "db refused/dropped", key: "the same for the database mailboxes (workers and router)" },
    Column { name: "peak RSS MiB", key: "peak resident memory of the run's process, MiB" },
    Column { name: "seconds", key: "workload wall time, s" },
];

/// Keys of scenario-specific figures (the `extra` of a report), for the column key.
pub const EXTRA_KEYS: [(&str, &str); 15] = [
    (
        "poison_panics",
        "poison: panics injected into the `poison` list's server",
    ),
    (
        "hostile_writes_ok",
        "poison: durable writes to hostile list names that succeeded",
    ),
    (
        "hostile_writes_failed",
        "poison: durable writes to hostile list names that failed",
    ),
    (
        "db_backlog_at_probe",
        "cold: database messages queued when the probe went in",
    ),
    (
        "new_list_first_request_ms",
        "cold: latency of the first request to a new list, ms",
    ),
    ("new_list_ok", "cold: 1 if that request succeeded"),
    (
        "existing_list_read_ms",
        "cold: latency of a read of an existing list, ms",
    ),
    ("existing_list_ok", "cold: 1 if that read succeeded"),
    (
        "killed_after_ms",
        "crash: when the writer process was killed with SIGKILL, ms",
    ),
    ("rounds", "soak: overload rounds run"),
    (
        "unknown_outcomes",
        "--repeat-with-key: write answers whose outcome was unknown (each try)",
    ),
    (
        "repeated_with_key",
        "--repeat-with-key: writes sent again with their idempotency key",
    ),
    (
        "replayed",
        "--repeat-with-key: writes answered with the recorded first result",
    ),
    (
        "duplicates",
        "--repeat-with-key: entries stored more than once (each extra copy)",
    ),
    (
        "rss_first_minute_mib",
        "soak: resident memory at the end of the first minute, MiB (rss_at_end_mib: at the end)",
    ),
];

/// The scenario-specific columns of `runs`: every `extra` key any run has, sorted.
pub fn extra_columns(runs: &[RunReport]) -> Vec<String> {
    let mut keys: Vec<String> = runs.iter().flat_map(|r| r.extra.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The values of a run, one per column of [`COLUMNS`] then of `extras`; `None` where
/// the figure was not reached (or the run has no such figure).
pub fn values(r: &RunReport, extras: &[String]) -> Vec<Option<f64>> {
    let errors: u64 = r.errors.values().sum();
    let peak = |role: &str| r.role(role).map_or(0, |s| s.peak_depth) as f64;
    let mut v = vec![
        Some(r.offered_per_s()),
        Some(r.completed_per_s()),
        Some(r.p50_ms),
        Some(r.p99_ms),
        Some(r.max_ms),
        Some(errors as f64),
        Some(r.acked as f64),
        Some(r.lost_at_end as f64),
        Some(r.lost_after_restart as f64),
        Some(r.unreadable_lists as f64),
        Some(r.ryw_violations as f64),
        r.durable_after_ms,
        Some(peak("todo_server")),
        Some(peak("database_worker").max(peak("database"))),
        Some(r.lost_in_mailboxes("todo_server") as f64),
        Some((r.lost_in_mailboxes("database_worker") + r.lost_in_mailboxes("database")) as f64),
        Some(r.peak_rss_kib as f64 / 1024.0),
        Some(r.seconds),
    ];
    v.extend(extras.iter().map(|k| r.extra.get(k).copied()));
    v
}

/// Decimals shown for a column in the text, Markdown and HTML tables.
fn decimals(col: &str) -> usize {
    match col {
        "p50 ms" | "p99 ms" => 3,
        "max ms" | "peak RSS MiB" | "seconds" => 1,
        c if COLUMNS.iter().any(|k| k.name == c) => 0,
        _ => 2,
    }
}

/// The header of every table: `policy`, the fixed columns, then `extras`.
fn header(extras: &[String]) -> Vec<String> {
    let mut h = vec!["policy".to_string()];
    h.extend(COLUMNS.iter().map(|c| c.name.to_string()));
    h.extend(extras.iter().cloned());
    h
}

/// Human-readable cells: numbers rounded per column, `never` where not reached.
fn display_row(r: &RunReport, extras: &[String]) -> Vec<String> {
    let head = header(extras);
    let mut cells = vec![r.policy.clone()];
    for (i, v) in values(r, extras).into_iter().enumerate() {
        let col = &head[i + 1];
        cells.push(match v {
            Some(x) => format!("{x:.*}", decimals(col)),
            None if col == "durable after ms" => "never".into(),
            None => String::new(),
        });
    }
    cells
}

/// A plain-text table of runs of one scenario.
pub fn text_table(runs: &[RunReport]) -> String {
    let extras = extra_columns(runs);
    let head = header(&extras);
    let rows: Vec<Vec<String>> = runs.iter().map(|r| display_row(r, &extras)).collect();
    let mut widths: Vec<usize> = head.iter().map(String::len).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut s = String::new();
    let line = |cells: &[String], s: &mut String| {
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(s, "{:<w$}  ", c, w = widths[i]);
        }
        s.push('\n');
    };
    line(&head, &mut s);
    for r in &rows {
        line(r, &mut s);
    }
    s
}

/// The column key, one `name: meaning` per line, for the columns of `runs`.
pub fn column_key(extras: &[String]) -> Vec<(String, String)> {
    let mut key = vec![(
        "policy".to_string(),
        "policy file stem (and database variant, for bottleneck)".to_string(),
    )];
    key.extend(
        COLUMNS
            .iter()
            .map(|c| (c.name.to_string(), c.key.to_string())),
    );
    for e in extras {
        let meaning = EXTRA_KEYS
            .iter()
            .find(|(k, _)| k == e)
            .map_or("scenario-specific figure".to_string(), |(_, m)| {
                m.to_string()
            });
        key.push((e.clone(), meaning));
    }
    key
}

/// A Markdown document for runs of one scenario: title, parameters, table and key.
pub fn markdown_table(runs: &[RunReport]) -> String {
    markdown(runs, &[])
}

/// Like [`markdown_table`], with `(name, value)` parameters of the run listed first.
pub fn markdown(runs: &[RunReport], params: &[(String, String)]) -> String {
    markdown_with_finding(runs, params, None)
}

/// Like [`markdown`], opening with the scenario's finding (its question and the answer).
pub fn markdown_with_finding(
    runs: &[RunReport],
    params: &[(String, String)],
    finding: Option<&Finding>,
) -> String {
    let extras = extra_columns(runs);
    let scenario = runs.first().map_or("(no runs)", |r| r.scenario.as_str());
    let mut s = String::new();
    let _ = writeln!(s, "# Experiment: {scenario}\n");
    if let Some(f) = finding {
        let _ = writeln!(s, "## Findings\n\n*{}*\n\n{}\n", f.question, f.text());
    }
    if !params.is_empty() {
        let _ = writeln!(s, "Parameters:\n");
        for (k, v) in params {
            let _ = writeln!(s, "- {k}: {v}");
        }
        s.push('\n');
    }
    let head = header(&extras);
    let _ = writeln!(s, "| {} |", head.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
    for r in runs {
        let _ = writeln!(s, "| {} |", display_row(r, &extras).join(" | "));
    }
    let _ = writeln!(s, "\nColumns:\n");
    for (k, m) in column_key(&extras) {
        let _ = writeln!(s, "- **{k}**: {m}");
    }
    s
}

/// CSV of runs of one scenario: `scenario,policy`, then one number per column (the
/// fixed columns, then one per scenario-specific figure); an empty cell where the
/// figure was not reached. Numbers are plain (no quotes, no units).
pub fn csv(runs: &[RunReport]) -> String {
    let extras = extra_columns(runs);
    let mut s = String::new();
    let _ = writeln!(s, "scenario,{}", header(&extras).join(","));
    for r in runs {
        let cells: Vec<String> = values(r, &extras)
            .into_iter()
            .map(|v| {
                v.map_or(String::new(), |x| {
                    format!("{}", (x * 1000.0).round() / 1000.0)
                })
            })
            .collect();
        let _ = writeln!(
            s,
            "{},{},{}",
            csv_text(&r.scenario),
            csv_text(&r.policy),
            cells.join(",")
        );
    }
    s
}

fn csv_text(t: &str) -> String {
    if t.contains([',', '"', '\n']) {
        format!("\"{}\"", t.replace('"', "\"\""))
    } else {
        t.to_string()
    }
}

/// An HTML table of runs of one scenario (cells escaped; `never`/empty as in the text table).
pub fn html_table(runs: &[RunReport]) -> String {
    let extras = extra_columns(runs);
    let mut s = String::from("<table>\n<thead><tr>");
    for (k, m) in column_key(&extras) {
        let _ = write!(
            s,
            "<th title=\"{}\">{}</th>",
            html_escape(&m),
            html_escape(&k)
        );
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for r in runs {
        s.push_str("<tr>");
        for (i, c) in display_row(r, &extras).iter().enumerate() {
            let class = if i == 0 { "" } else { " class=\"num\"" };
            let _ = write!(s, "<td{class}>{}</td>", html_escape(c));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n");
    s
}

/// Escapes text for HTML.
pub fn html_escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
