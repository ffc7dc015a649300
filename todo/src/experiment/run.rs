//! Running `sluicegate experiment`: every scenario under every policy file, each
//! run in its own child process (`sluicegate experiment-run`), with progress,
//! one table per scenario, the findings, and the files `--out` asks for
//! (`findings.md` among them).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::error::ExperimentError;
use super::findings::{finding, findings};
use super::measure::{sample_every, QUICK_DURABLE_LIMIT, SAMPLES_PER_RUN};
use super::report::{self, csv, text_table, RunReport};
use super::scenario::{stem, Scenario};
use super::{html, plot, Scale};
use crate::config::Config;

/// Options of `sluicegate experiment`.
#[derive(Clone, Debug)]
pub struct ExperimentOptions {
    /// Scenarios to run (empty: all but `soak`).
    pub scenarios: Vec<Scenario>,
    /// Policy files (empty: every file in `policies/`).
    pub policies: Vec<PathBuf>,
    /// Where to write Markdown, CSV and SVG.
    pub out: Option<PathBuf>,
    /// Sizes and seed.
    pub scale: Scale,
}

/// Runs every scenario under every policy (each in a child process) and prints
/// one table per scenario; returns the reports by scenario.
pub fn run_all(
    opts: &ExperimentOptions,
) -> Result<Vec<(Scenario, Vec<RunReport>)>, ExperimentError> {
    let scenarios: Vec<Scenario> = if opts.scenarios.is_empty() {
        Scenario::ALL
            .into_iter()
            .filter(|s| s.runs_by_default())
            .collect()
    } else {
        opts.scenarios.clone()
    };
    let policies = if opts.policies.is_empty() {
        let mut files: Vec<PathBuf> = std::fs::read_dir("policies")
            .map_err(ExperimentError::PolicyDir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        files
    } else {
        opts.policies.clone()
    };
    for p in &policies {
        Config::load(p)?;
    }
    if let Some(out) = &opts.out {
        std::fs::create_dir_all(out).map_err(|source| ExperimentError::Create {
            path: out.clone(),
            source,
        })?;
    }
    let exe = std::env::current_exe()?;
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
    for &scenario in &scenarios {
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
            let results: Vec<Result<(Vec<RunReport>, f64), ExperimentError>> =
                std::thread::scope(|s| {
                    let handles: Vec<_> = group
                        .iter()
                        .map(|policy| s.spawn(|| run_child(&exe, scenario, policy, &opts.scale)))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join().unwrap_or_else(|_| {
                                Err(ExperimentError::Run("a run's thread panicked".into()))
                            })
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
                report::markdown_with_finding(&runs, &params, Some(&finding(scenario, &runs))),
            )?;
            write_file(out, &format!("{scenario}.csv"), csv(&runs))?;
            plot::write_plots(out, scenario.name(), &runs)?;
        }
        all.push((scenario, runs));
    }
    bar.finish_and_clear();
    let found = findings(&all);
    println!("\n## Findings\n");
    for f in &found {
        println!("- {}: {} {}", f.scenario, f.question, f.text());
    }
    let mut params = params;
    params.push((
        "wall time".into(),
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    ));
    if let Some(out) = &opts.out {
        let page = html::report(&all, &params, &html::machine(), out);
        write_file(out, "report.html", page)?;
        let mut md = String::from("# Findings\n\n");
        for f in &found {
            md.push_str(&format!(
                "## {}\n\n*{}*\n\n{}\n\n",
                f.scenario,
                f.question,
                f.text()
            ));
        }
        write_file(out, "findings.md", md)?;
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
pub fn parallel_runs(scenario: Scenario, quick: bool, policies: usize) -> usize {
    if quick && scenario == Scenario::Crash {
        policies.max(1)
    } else {
        1
    }
}

/// Runs one scenario under one policy in a child process; its reports and wall time.
fn run_child(
    exe: &Path,
    scenario: Scenario,
    policy: &Path,
    scale: &Scale,
) -> Result<(Vec<RunReport>, f64), ExperimentError> {
    let started = Instant::now();
    let mut cmd = Command::new(exe);
    cmd.arg("experiment-run")
        .arg("--scenario")
        .arg(scenario.name())
        .arg("--policy")
        .arg(policy)
        .arg("--seed")
        .arg(scale.seed.to_string())
        .arg("--minutes")
        .arg(scale.soak_minutes.to_string())
        .arg("--repeat-with-key")
        .arg(scale.repeats.to_string());
    if scale.quick {
        cmd.arg("--quick");
    }
    let output = cmd.stderr(Stdio::inherit()).output().map_err(|e| {
        ExperimentError::Run(format!(
            "cannot run {scenario} under {}: {e}",
            policy.display()
        ))
    })?;
    if !output.status.success() {
        return Err(ExperimentError::Run(format!(
            "{scenario} under {} failed: {}",
            policy.display(),
            output.status
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let reports: Vec<RunReport> = serde_json::from_str(text.trim()).map_err(|e| {
        ExperimentError::Run(format!(
            "bad report from {scenario}/{}: {e}",
            policy.display()
        ))
    })?;
    Ok((reports, started.elapsed().as_secs_f64()))
}

/// The parameters of a run of `experiment`, for the Markdown files and `report.html`.
fn parameters(
    opts: &ExperimentOptions,
    scenarios: &[Scenario],
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
        (
            "scenarios".into(),
            scenarios
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", "),
        ),
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
                "depth and p99 about {SAMPLES_PER_RUN} times a run (every 1/{SAMPLES_PER_RUN} \
                 of its operations) and at least every {} ms",
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

fn write_file(out: &Path, name: &str, body: String) -> Result<(), ExperimentError> {
    std::fs::write(out.join(name), body).map_err(|source| ExperimentError::Write {
        path: out.join(name),
        source,
    })
}
