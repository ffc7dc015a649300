//! `report.html`: one self-contained page for an `experiment --out` run: the findings
//! (each scenario's question answered from the numbers, see `findings.rs`), the
//! parameters, the machine, every scenario's table with its column key, and its plots inlined.

use std::fmt::Write as _;
use std::path::Path;

use super::findings::findings;
use super::report::{column_key, extra_columns, html_escape, html_table, RunReport};
use super::scenario::Scenario;

/// Facts about this machine for the report: OS, kernel, CPU, cores, memory.
pub fn machine() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("unknown".to_string(), |kib| {
            format!("{:.1} GiB", kib / 1024.0 / 1024.0)
        });
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    vec![
        ("os".into(), os),
        (
            "kernel".into(),
            read("/proc/sys/kernel/osrelease").trim().to_string(),
        ),
        ("cpu".into(), cpu),
        ("cores available".into(), cores.to_string()),
        ("memory".into(), mem),
        (
            "sluicegate".into(),
            format!(
                "{} ({} build)",
                env!("CARGO_PKG_VERSION"),
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                }
            ),
        ),
    ]
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:1em 2em;color:#1a202c}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #cbd5e0;padding:.15em .5em}\
th{background:#edf2f7;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.plots{display:flex;flex-wrap:wrap;gap:1em}.plots svg{max-width:100%;height:auto;border:1px solid #e2e8f0}\
dl.findings dt{font-weight:bold;margin-top:.6em}dl.findings dd{margin:.2em 0 0 1em;max-width:60em}\
dl.findings dt i{font-weight:normal;color:#4a5568}dl.key{columns:2}dl.key dt{font-weight:bold}dl.key dd{margin:0 0 .3em 1em;color:#4a5568}\
.scroll{overflow-x:auto}";

fn pairs(title: &str, items: &[(String, String)]) -> String {
    let mut s = format!("<h2>{}</h2>\n<table>\n", html_escape(title));
    for (k, v) in items {
        let _ = writeln!(
            s,
            "<tr><th>{}</th><td>{}</td></tr>",
            html_escape(k),
            html_escape(v)
        );
    }
    s.push_str("</table>\n");
    s
}

/// The whole report. Plots are read from the SVG files already written into `out`
/// (`<scenario>-depth.svg`, `<scenario>-latency.svg`) and inlined, so the page needs
/// nothing else.
pub fn report(
    all: &[(Scenario, Vec<RunReport>)],
    params: &[(String, String)],
    machine: &[(String, String)],
    out: &Path,
) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>sluicegate experiments</title><style>{STYLE}</style></head><body>\n\
         <h1>sluicegate experiments</h1>\n<p>Every scenario under every policy file, \
         side by side. Hover a column header for its meaning; the key follows each table.</p>\n"
    );
    s.push_str(
        "<h2 id=\"findings\">Findings</h2>\n<p>Each scenario's question, answered from this \
         run's numbers (figures within 5 % of each other are called about the same).</p>\n\
         <dl class=\"findings\">\n",
    );
    for f in findings(all) {
        let _ = writeln!(
            s,
            "<dt><a href=\"#{0}\">{0}</a>: <i>{1}</i></dt><dd>{2}</dd>",
            html_escape(f.scenario.name()),
            html_escape(f.question),
            html_escape(&f.text())
        );
    }
    s.push_str("</dl>\n");
    s.push_str(&pairs("Parameters", params));
    s.push_str(&pairs("Machine", machine));
    s.push_str("<h2>Scenarios</h2>\n<ul>");
    for (scenario, _) in all {
        let _ = write!(
            s,
            "<li><a href=\"#{0}\">{0}</a></li>",
            html_escape(scenario.name())
        );
    }
    s.push_str("</ul>\n");
    for (scenario, runs) in all {
        let _ = writeln!(
            s,
            "<h2 id=\"{0}\">{0}</h2>\n<div class=\"scroll\">{1}</div>",
            html_escape(scenario.name()),
            html_table(runs)
        );
        s.push_str("<div class=\"plots\">\n");
        for plot in ["depth", "latency"] {
            let file = out.join(format!("{scenario}-{plot}.svg"));
            match std::fs::read_to_string(&file) {
                Ok(svg) => {
                    let svg = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
                    s.push_str(svg);
                    s.push('\n');
                }
                Err(e) => {
                    let _ = writeln!(
                        s,
                        "<p>No {plot} plot: cannot read {}: {}</p>",
                        html_escape(&file.display().to_string()),
                        html_escape(&e.to_string())
                    );
                }
            }
        }
        s.push_str("</div>\n<details open><summary>Column key</summary><dl class=\"key\">\n");
        for (k, m) in column_key(&extra_columns(runs)) {
            let _ = writeln!(
                s,
                "<dt>{}</dt><dd>{}</dd>",
                html_escape(&k),
                html_escape(&m)
            );
        }
        s.push_str("</dl></details>\n");
    }
    s.push_str("</body></html>\n");
    s
}
