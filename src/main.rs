//! The `sluicegate` command: `serve` runs the to-do service, `check-config`
//! validates a policy file and prints the effective settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluicegate::config::Config;
use sluicegate::service::{self, ServeOptions};

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

#[derive(Subcommand)]
enum Command {
    /// Run the to-do HTTP service.
    Serve {
        /// Config file (TOML); default: the built-in recommended config (policies/coalesce.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Data directory; overrides the config's storage.data_dir (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Validate a config file and print the effective settings.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(config) => {
                println!("{}: ok", file.display());
                print!("{}", config.effective_settings());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            init_tracing();
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(serve(config, listen, data_dir)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn serve(
    config_path: Option<PathBuf>,
    listen: SocketAddr,
    data_dir: Option<PathBuf>,
) -> Result<(), String> {
    let config = match &config_path {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::builtin(),
    };
    let data_dir = data_dir
        .or_else(|| config.storage.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("./data"));
    let running = service::start(ServeOptions {
        config,
        config_path: config_path.clone(),
        listen,
        data_dir,
    })
    .await?;
    println!("listening on http://{}", running.addr);
    let trigger = running.shutdown_trigger();
    let system = running.system();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("shutdown signal received: finishing in-flight requests");
        let _ = trigger.send(true);
    });
    #[cfg(unix)]
    if let Some(path) = config_path {
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                match service::reload(&system, &path) {
                    Ok(()) => tracing::info!(file = %path.display(), "mailbox policies reloaded"),
                    Err(e) => tracing::error!(error = %e, "reload failed; policies unchanged"),
                }
            }
        });
    }
    running.wait().await
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
