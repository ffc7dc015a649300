//! `sluicegate experiment --quick` end to end: a few scenarios under two policy files,
//! checking the tables, the files `--out` writes (Markdown, numeric CSV, never-empty
//! plots, a self-contained `report.html`), and what the figures must say.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

const SCENARIOS: [&str; 3] = ["mixed", "crash", "poison"];

/// One CSV row as column name → value (text cells may be quoted).
fn rows(csv: &str) -> Vec<HashMap<String, String>> {
    let mut lines = csv.lines();
    let header: Vec<String> = lines
        .next()
        .expect("a header line")
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .map(|line| {
            let mut cells = Vec::new();
            let mut cell = String::new();
            let mut quoted = false;
            for ch in line.chars() {
                match ch {
                    '"' => quoted = !quoted,
                    ',' if !quoted => cells.push(std::mem::take(&mut cell)),
                    c => cell.push(c),
                }
            }
            cells.push(cell);
            header.iter().cloned().zip(cells).collect()
        })
        .collect()
}

fn num(row: &HashMap<String, String>, col: &str) -> f64 {
    let v = row
        .get(col)
        .unwrap_or_else(|| panic!("no column {col} in {row:?}"));
    v.parse()
        .unwrap_or_else(|_| panic!("column {col} = {v:?} is not a number in {row:?}"))
}

fn row<'a>(rows: &'a [HashMap<String, String>], policy: &str) -> &'a HashMap<String, String> {
    rows.iter()
        .find(|r| r["policy"] == policy)
        .unwrap_or_else(|| panic!("no row for {policy} in {rows:?}"))
}

#[test]
fn quick_experiments_compare_policies_and_write_tables_and_plots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(crate::support::serve::bin())
        .arg("experiment")
        .arg("--quick")
        .args(SCENARIOS)
        .arg("--policies")
        .arg(root.join("policies/coalesce.toml"))
        .arg(root.join("policies/book.toml"))
        .arg("--out")
        .arg(out.path())
        .current_dir(out.path())
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    for scenario in SCENARIOS {
        let table = stdout
            .split(&format!("## {scenario}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no table for {scenario} in:\n{stdout}"));
        for policy in ["coalesce", "book"] {
            assert!(
                table.lines().any(|l| l.starts_with(policy)),
                "{scenario} has no {policy} row:\n{table}"
            );
        }
        for file in ["md", "csv"]
            .map(|ext| format!("{scenario}.{ext}"))
            .into_iter()
            .chain(["depth", "latency"].map(|plot| format!("{scenario}-{plot}.svg")))
        {
            let text = std::fs::read_to_string(out.path().join(&file))
                .unwrap_or_else(|e| panic!("{file} not written: {e}"));
            assert!(text.contains("coalesce") && text.contains("book"), "{file}");
        }
    }

    // mixed: applied acks and a clean stop lose nothing, and every read sees the
    // reader's own acknowledged writes.
    let mixed = rows(&std::fs::read_to_string(out.path().join("mixed.csv")).unwrap());
    let coalesce = row(&mixed, "coalesce");
    assert_eq!(num(coalesce, "errors"), 0.0, "{coalesce:?}");
    assert!(num(coalesce, "done/s") > 0.0, "{coalesce:?}");
    assert!(num(coalesce, "acked") > 0.0, "{coalesce:?}");
    assert_eq!(num(coalesce, "lost@restart"), 0.0, "{coalesce:?}");
    assert_eq!(num(coalesce, "RYW viol."), 0.0, "{coalesce:?}");

    // crash: whatever SIGKILL loses, every list reads back after the restart, and
    // no policy loses more than it acknowledged.
    let crash = rows(&std::fs::read_to_string(out.path().join("crash.csv")).unwrap());
    for r in &crash {
        assert_eq!(num(r, "unreadable"), 0.0, "{r:?}");
        assert!(num(r, "lost@restart") <= num(r, "acked"), "{r:?}");
        assert!(num(r, "acked") > 0.0, "{r:?}");
    }

    // poison: hostile names are stored, panics happen, normal lists lose nothing.
    let poison = rows(&std::fs::read_to_string(out.path().join("poison.csv")).unwrap());
    for r in &poison {
        assert_eq!(num(r, "lost@restart"), 0.0, "{r:?}");
        assert_eq!(num(r, "hostile_writes_failed"), 0.0, "{r:?}");
        assert!(num(r, "poison_panics") > 0.0, "{r:?}");
    }

    // Every CSV cell but scenario and policy is a plain number or empty ("not reached").
    for scenario in SCENARIOS {
        let text = std::fs::read_to_string(out.path().join(format!("{scenario}.csv"))).unwrap();
        let all = rows(&text);
        assert_eq!(all.len(), 2, "{scenario}: one row per policy:\n{text}");
        for r in &all {
            for (col, v) in r {
                if col != "scenario" && col != "policy" {
                    assert!(
                        v.is_empty() || v.parse::<f64>().is_ok(),
                        "{scenario}.csv: column {col} = {v:?} is neither a number nor empty"
                    );
                }
            }
        }
    }

    // crash samples no series: its plots say so in words rather than showing empty axes.
    let crash_plot = std::fs::read_to_string(out.path().join("crash-depth.svg")).unwrap();
    assert!(crash_plot.contains("No samples"), "{crash_plot}");

    // report.html: parameters, machine, every scenario's table and plots, inline.
    let html = std::fs::read_to_string(out.path().join("report.html")).expect("report.html");
    for needle in [
        "Parameters",
        "Machine",
        "cores available",
        "<svg",
        "durable after ms",
    ] {
        assert!(html.contains(needle), "report.html lacks {needle:?}");
    }
    for scenario in SCENARIOS {
        assert!(
            html.contains(&format!("id=\"{scenario}\"")),
            "report.html lacks {scenario}"
        );
    }
    assert!(
        !html.contains("src=\"http"),
        "report.html loads something from the network"
    );

    // Not a terminal: plain progress lines on stderr.
    assert!(
        stderr.contains("experiment: [1/6]") && stderr.contains("done in"),
        "no progress lines on stderr:\n{stderr}"
    );
}
