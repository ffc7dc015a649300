//! The `sluicegate` command, one function per subcommand: `serve` runs the to-do
//! service, `check-config` validates a policy file and prints the effective
//! settings, `load` sends open-loop HTTP load, `experiment` compares policy files
//! under the scenarios (with two hidden subcommands for its child processes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluicegate_todo::config::Config;
use sluicegate_todo::service::{self, ServeOptions};

/// The binary's allocator: mimalloc (its thread-local free lists make the many
/// small allocations of a request, headers, JSON and futures, cheaper than glibc's
/// malloc; measured in docs/benchmarks.md). The library crates leave the choice to
/// whoever builds a binary with them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sluicegate",
    version,
    about = "Actor mailboxes with pluggable overflow policies, and the Elixir in Action to-do service built on them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How `serve` writes its log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the to-do HTTP service.
    Serve(ServeArgs),
    /// Validate a config file and print the effective settings.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Run scenarios under each policy file and compare them side by side.
    Experiment(ExperimentArgs),
    /// Internal: one scenario under one policy, report as JSON on stdout.
    #[command(hide = true)]
    ExperimentRun {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        policy: PathBuf,
        #[command(flatten)]
        scale: ScaleArgs,
    },
    /// Internal: the writer process of the crash scenario.
    #[command(hide = true)]
    ExperimentWriter {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Open-loop HTTP load against a running `serve`.
    Load(LoadArgs),
}

/// `sluicegate serve`.
#[derive(clap::Args)]
struct ServeArgs {
    /// Config file (TOML); default: the built-in recommended config (policies/coalesce.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on, HOST:PORT (an IP or a host name such as localhost;
    /// a name resolving to several addresses binds its first IPv4 one); port 0
    /// picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Data directory; overrides the config's storage.data_dir (default ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log lines on stderr as text or as one JSON object per line. RUST_LOG
    /// filters them (default: info), e.g. RUST_LOG=debug or RUST_LOG=sluicegate=debug.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Run as the cluster node with this id (overrides [cluster] node_id; without a
    /// [cluster] section its defaults apply). The config's storage must be postgres.
    #[arg(long)]
    node_id: Option<String>,
    /// The URL other cluster nodes reach this one at (overrides [cluster]
    /// advertise; default: http:// and the address bound).
    #[arg(long)]
    advertise: Option<String>,
}

/// The size of an experiment run, shared by `experiment` and its child processes.
#[derive(clap::Args)]
struct ScaleArgs {
    /// A small version: smaller workloads, durability awaited at most 2 s, the crash
    /// runs of all policies at once (its figures are counts), the rest one at a time.
    #[arg(long)]
    quick: bool,
    /// Minutes of the soak scenario.
    #[arg(long, default_value_t = 1.0)]
    minutes: f64,
    /// Seed of every random choice (the same for every policy).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Send each write with an idempotency key and repeat it with that key up to N
    /// times while its outcome is unknown; reports unknown outcomes, repeats,
    /// replays and duplicates stored.
    #[arg(long, value_name = "N", default_value_t = 0)]
    repeat_with_key: u32,
}

impl ScaleArgs {
    fn scale(&self) -> sluicegate_todo::experiment::Scale {
        sluicegate_todo::experiment::Scale {
            quick: self.quick,
            soak_minutes: self.minutes,
            seed: self.seed,
            repeats: self.repeat_with_key,
        }
    }
}

/// `sluicegate experiment`.
#[derive(clap::Args)]
struct ExperimentArgs {
    /// Scenarios: mixed, overload, slow-disk, bottleneck, crash, poison, cold, soak
    /// (default: all but soak).
    scenarios: Vec<String>,
    /// Policy files (default: every file in policies/).
    #[arg(long, num_args = 1..)]
    policies: Vec<PathBuf>,
    /// Also write report.html, Markdown, CSV and SVG plots here.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    scale: ScaleArgs,
}

/// `sluicegate load`.
#[derive(clap::Args)]
struct LoadArgs {
    /// Base URL of the service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Requests per second (constant arrival rate).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long to send, e.g. 30s or 2m.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    /// Lists to spread requests over.
    #[arg(long, default_value_t = 100)]
    lists: usize,
    /// Percent of requests that add an entry (the rest read).
    #[arg(long, default_value_t = 80)]
    write_pct: u8,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Name prefix of the lists written and read: `PREFIX0`, `PREFIX1`, ... They are
    /// real lists in the target's data (default: load-0, load-1, ...).
    #[arg(long, default_value = sluicegate_todo::load::DEFAULT_PREFIX)]
    prefix: String,
    /// Exit 1 when more than this share (0 to 1) of requests fail (transport error
    /// or non-2xx answer); 1 never fails the run.
    #[arg(long, default_value_t = sluicegate_todo::load::DEFAULT_MAX_FAILURE_SHARE)]
    max_failure_share: f64,
    /// Send each write with an Idempotency-Key and repeat it with that key up to N
    /// times while its answer is neither 2xx nor certainly refused; then read every
    /// list back and count duplicates and acknowledged writes missing.
    #[arg(long, value_name = "N", default_value_t = 0)]
    repeat_with_key: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log_panics_as_one_line();
    match cli.command {
        Command::Serve(args) => serve_command(args),
        Command::CheckConfig { file } => check_config(&file),
        Command::Experiment(args) => experiment(args),
        Command::ExperimentRun {
            scenario,
            policy,
            scale,
        } => experiment_run(&scenario, &policy, &scale),
        Command::ExperimentWriter {
            policy,
            data_dir,
            seed,
        } => experiment_writer(&policy, &data_dir, seed),
        Command::Load(args) => load(args),
    }
}

/// Handler panics are caught by the runtime and reported as errors; log them as one
/// line instead of a backtrace on stderr.
fn log_panics_as_one_line() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        tracing::error!(%location, "panic: {message}");
    }));
}

/// Prints `error: ...` and returns `code`.
fn fail(error: impl std::fmt::Display, code: ExitCode) -> ExitCode {
    eprintln!("error: {error}");
    code
}

/// `check-config FILE`: exit 0 with the effective settings, 2 naming what is wrong.
fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => {
            println!("{}: ok", file.display());
            print!("{}", config.effective_settings());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, ExitCode::from(2)),
    }
}

/// `experiment`: scenarios x policy files, each run in a child process.
fn experiment(args: ExperimentArgs) -> ExitCode {
    let scenarios = match args
        .scenarios
        .iter()
        .map(|s| s.parse::<sluicegate_todo::experiment::Scenario>())
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(s) => s,
        Err(e) => return fail(e, ExitCode::from(2)),
    };
    let opts = sluicegate_todo::experiment::ExperimentOptions {
        scenarios,
        policies: args.policies,
        out: args.out,
        scale: args.scale.scale(),
    };
    match sluicegate_todo::experiment::run_all(&opts) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(e, ExitCode::from(2)),
    }
}

/// The child process of `experiment`: one scenario, its report as JSON on stdout.
fn experiment_run(scenario: &str, policy: &std::path::Path, scale: &ScaleArgs) -> ExitCode {
    let result = runtime().and_then(|rt| {
        let scenario = scenario.parse().map_err(|e| format!("{e}"))?;
        rt.block_on(sluicegate_todo::experiment::run_one(
            scenario,
            policy,
            scale.scale(),
        ))
        .map_err(|e| e.to_string())
    });
    match result.and_then(|r| serde_json::to_string(&r).map_err(|e| e.to_string())) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, ExitCode::FAILURE),
    }
}

/// The writer process of the crash scenario, holding the data dir's lock.
fn experiment_writer(policy: &std::path::Path, data_dir: &std::path::Path, seed: u64) -> ExitCode {
    let run = sluicegate_todo::service::DataDirLock::acquire(data_dir)
        .map_err(|e| e.to_string())
        .and_then(|_lock| {
            runtime().and_then(|rt| {
                rt.block_on(sluicegate_todo::experiment::crash_writer(
                    policy, data_dir, seed,
                ))
                .map_err(|e| e.to_string())
            })
        });
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, ExitCode::FAILURE),
    }
}

/// `load`: open-loop HTTP load; exit 1 when too many requests failed, 2 on bad input.
fn load(args: LoadArgs) -> ExitCode {
    let max_failure_share = args.max_failure_share;
    let opts = sluicegate_todo::load::LoadOptions {
        target: args.target,
        rate: args.rate,
        duration: args.duration,
        lists: args.lists,
        write_pct: args.write_pct,
        connections: args.connections,
        seed: 42,
        prefix: args.prefix,
        max_failure_share,
        repeats: args.repeat_with_key,
    };
    if let Err(e) = opts.validate() {
        return fail(e, ExitCode::from(2));
    }
    let bar = indicatif::ProgressBar::new(opts.total());
    let b2 = bar.clone();
    let result = runtime().and_then(|rt| {
        rt.block_on(sluicegate_todo::load::run(&opts, move || b2.inc(1)))
            .map_err(|e| e.to_string())
    });
    bar.finish_and_clear();
    match result {
        Ok(report) if report.failure_share() > max_failure_share => {
            print!("{}", report.summary());
            fail(
                format!(
                    "{} of {} requests failed ({:.1} %), more than --max-failure-share {max_failure_share}",
                    report.failed(),
                    report.sent,
                    report.failure_share() * 100.0
                ),
                ExitCode::FAILURE,
            )
        }
        Ok(report) => {
            print!("{}", report.summary());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, ExitCode::from(2)),
    }
}

/// `serve`: runs the service until SIGTERM or Ctrl-C.
fn serve_command(args: ServeArgs) -> ExitCode {
    init_tracing(args.log_format);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(e, ExitCode::FAILURE),
    };
    let cluster = ClusterFlags {
        node_id: args.node_id,
        advertise: args.advertise,
    };
    match rt.block_on(serve(args.config, args.listen, args.data_dir, cluster)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, ExitCode::FAILURE),
    }
}

/// Resolves `--listen`: a socket address, or HOST:PORT with a host name.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if text
        .rsplit_once(':')
        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(format!(
            "expected HOST:PORT (e.g. 127.0.0.1:8080 or localhost:8080), got {text:?}"
        ));
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {text:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `serve --node-id` and `--advertise`.
struct ClusterFlags {
    node_id: Option<String>,
    advertise: Option<String>,
}

impl ClusterFlags {
    /// Lays the flags over the config's `[cluster]` section (created with its
    /// defaults when `--node-id` asks for a cluster and the file has none), and
    /// checks the result.
    fn apply(self, mut config: Config) -> Result<Config, String> {
        if self.node_id.is_none() && self.advertise.is_none() {
            return Ok(config);
        }
        if config.cluster.is_none() {
            if self.node_id.is_none() {
                return Err("--advertise is for cluster nodes: give --node-id too, or a config with a [cluster] section".into());
            }
            config.cluster = Some(
                Config::from_toml_str(
                    "[storage]\nbackend = \"postgres\"\nurl = \"host=localhost\"\n[cluster]\n",
                )
                .map_err(|e| e.to_string())?
                .cluster
                .ok_or("the [cluster] defaults are missing")?,
            );
        }
        if let Some(c) = config.cluster.as_mut() {
            if let Some(id) = self.node_id {
                c.node_id = Some(id);
            }
            if let Some(a) = self.advertise {
                c.advertise = Some(a);
            }
        }
        config
            .validate()
            .map_err(|e| format!("{e} (with the --node-id / --advertise flags applied)"))?;
        Ok(config)
    }
}

async fn serve(
    config_path: Option<PathBuf>,
    listen: SocketAddr,
    data_dir: Option<PathBuf>,
    cluster: ClusterFlags,
) -> Result<(), String> {
    let config = match &config_path {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::builtin(),
    };
    let config = cluster.apply(config)?;
    let data_dir = data_dir
        .or_else(|| config.storage.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("./data"));
    // Signal handlers are registered before the service starts (and so before the
    // `listening on` line), so a signal sent as soon as that line is read is handled
    // rather than killing the process with the default action.
    let stop = StopSignals::register().map_err(|e| format!("cannot handle signals: {e}"))?;
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    let mut in_force = config.clone();
    let running = service::start(ServeOptions {
        config,
        config_path: config_path.clone(),
        listen,
        data_dir,
    })
    .await
    .map_err(|e| e.to_string())?;
    println!("listening on http://{}", running.addr);
    let trigger = running.shutdown_trigger();
    let system = running.system();
    tokio::spawn(async move {
        stop.wait().await;
        tracing::info!("shutdown signal received: finishing in-flight requests");
        let _ = trigger.send(true);
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let Some(path) = &config_path else {
                tracing::warn!(
                    "SIGHUP: serving the built-in config (no --config file); nothing to reload"
                );
                continue;
            };
            match service::reload(&system, path, &in_force) {
                Ok(now) => {
                    in_force = now;
                    tracing::info!(file = %path.display(), "mailbox policies reloaded");
                }
                Err(e) => tracing::error!(error = %e, "reload failed; policies unchanged"),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (system, in_force);
    running.wait().await.map_err(|e| e.to_string())
}

/// SIGTERM and Ctrl-C (SIGINT), listened for from the moment they are registered.
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(StopSignals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignals {})
        }
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
