//! Experiments: the chapter's questions (lost writes, stale reads, full queues,
//! bottlenecks, crashes) as scenarios run under every policy file, side by side.
//!
//! Each (scenario, policy) runs in its own child process (`sluicegate
//! experiment-run`), so peak memory is per run and a crash can be a real SIGKILL.
//! `--quick` shrinks the workloads and runs the policies of `crash` at once (see [`parallel_runs`]).
//!
//! One job per file: [`Scenario`]s and their bodies (`scenario.rs`, the crash
//! scenario's two processes in `crash.rs`), measuring one run (`measure.rs`), the
//! storage the harness runs on (`storage.rs`), `/proc` sampling (`procfs.rs`), the
//! closed-loop [`workload`], running everything and writing reports (`run.rs`,
//! `report.rs`, `plot.rs`, `html.rs`), and the findings that open them: each
//! scenario's question answered in words from the run's numbers (`findings.rs`).
//! Built with the `experiment` cargo feature (on by default); the library's core
//! does not use it.

mod crash;
mod error;
mod findings;
mod html;
mod measure;
mod plot;
mod procfs;
mod report;
mod run;
mod scenario;
mod storage;
pub mod workload;

pub use crash::crash_writer;
pub use error::ExperimentError;
pub use findings::{finding, findings, question, Finding, ABOUT_EQUAL};
pub use measure::QUICK_DURABLE_LIMIT;
pub use procfs::{peak_rss_kib, rss_kib};
pub use report::{
    csv, markdown, markdown_table, markdown_with_finding, text_table, Column, RunReport, Sample,
    COLUMNS,
};
pub use run::{parallel_runs, run_all, ExperimentOptions};
pub use scenario::{run_one, Scenario, UnknownScenario};

/// How big a run is.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Small version: every scenario under every policy file in about 25 s on a quiet 2-core machine.
    pub quick: bool,
    /// Minutes of the soak scenario.
    pub soak_minutes: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Send every write with an idempotency key and repeat it with that key up to
    /// this many times while its outcome is unknown; the run then reports unknown
    /// outcomes, repeats, replays and duplicates stored (`0`: no keys).
    pub repeats: u32,
}
