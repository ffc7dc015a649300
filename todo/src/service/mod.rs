//! The HTTP service: the to-do API as JSON over axum, Prometheus `/metrics`,
//! `/healthz`, the live `/dashboard` with `/api/stats`, and graceful shutdown that
//! drains acknowledged writes to storage.

pub mod dashboard;
mod edge;
mod error;
mod fields;
pub mod forward;
mod http_metrics;
mod idempotency;
mod limit;
mod lock;
pub mod openapi;
pub mod prom_text;
mod refusals;
mod routes;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

pub use error::ApiError;
pub use http_metrics::{HTTP_DURATION, HTTP_REQUESTS};
pub use lock::{DataDirLock, LockError, LOCK_FILE};

use crate::cluster::{ClusterStore, Node};
use crate::config::{Config, ConfigError, LimitConfig};
use crate::domain::{StartSystemError, TodoSystem};
use crate::start::StartNodeError;
use sluicegate::mailbox::InvalidPolicy;

/// Why the service could not start, or ended with an error; the cause is the
/// error's [`source`](std::error::Error::source) where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The Prometheus recorder could not be installed (see [`install_prometheus`]).
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The data directory's lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The to-do system could not start.
    #[error(transparent)]
    Start(#[from] StartSystemError),
    /// The cluster node could not start.
    #[error(transparent)]
    Node(#[from] StartNodeError),
    /// The dashboard's sampling thread could not be started.
    #[error("cannot start the dashboard sampler thread: {0}")]
    Sampler(#[source] std::io::Error),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The server's task panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

/// Why a policy reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file cannot be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A policy the running system refuses.
    #[error(transparent)]
    Policy(#[from] InvalidPolicy),
}

/// Largest request body accepted (64 KiB); larger ones get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Histogram buckets (seconds) for every latency histogram, from 10 µs to 30 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 5.0, 30.0,
];

/// Buckets of the group commit size histograms (stores per worker batch, list
/// writes per SQLite transaction).
const COMMIT_WRITES_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

static PROMETHEUS: OnceLock<Result<PrometheusHandle, MetricsError>> = OnceLock::new();

/// Why the Prometheus recorder could not be installed. Cheap to clone (the first
/// call's result is kept for every later call); the cause is the error's source.
#[derive(Clone, Debug, thiserror::Error)]
pub enum MetricsError {
    /// The recorder could not be built or installed (e.g. another recorder is
    /// already installed in this process).
    #[error("cannot install the Prometheus recorder")]
    Recorder(#[source] Arc<metrics_exporter_prometheus::BuildError>),
    /// The thread that folds histogram samples could not be started.
    #[error("cannot start the metrics upkeep thread")]
    Upkeep(#[source] Arc<std::io::Error>),
}

/// How often histogram samples are folded into their buckets when nobody scrapes.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder (once; later calls return the same
/// handle). Must run before mailboxes are built so their metric handles bind to it.
///
/// The recorder keeps raw histogram samples until they are folded into buckets,
/// which a scrape does; so that an unscraped process does not grow without bound,
/// a background thread (`prometheus-upkeep`) folds them every [`UPKEEP_EVERY`].
///
/// # Errors
///
/// [`MetricsError`] when the recorder cannot be installed or its upkeep thread
/// cannot start; every later call returns the same error.
pub fn install_prometheus() -> Result<PrometheusHandle, MetricsError> {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = |e| MetricsError::Recorder(Arc::new(e));
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .map_err(recorder)?
                .set_buckets_for_metric(
                    Matcher::Full(crate::domain::database::COMMIT_WRITES.into()),
                    &COMMIT_WRITES_BUCKETS,
                )
                .map_err(recorder)?
                .set_buckets_for_metric(
                    Matcher::Full(crate::domain::database::TRANSACTION_WRITES.into()),
                    &COMMIT_WRITES_BUCKETS,
                )
                .map_err(recorder)?
                .install_recorder()
                .map_err(recorder)?;
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("prometheus-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    sluicegate::mailbox::metrics::flush_all();
                    upkeep.run_upkeep();
                })
                .map_err(|e| MetricsError::Upkeep(Arc::new(e)))?;
            Ok(handle)
        })
        .clone()
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The to-do system every route talks to.
    pub system: TodoSystem,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// The cluster node this service is, if it runs as one (`GET /cluster`, and
    /// requests for lists it does not serve go to their owner).
    pub cluster: Option<Arc<Node>>,
}

/// The API's router, with the edge around every route (see `edge.rs`): the
/// default concurrency limit, body limit, timeout, metrics and JSON errors.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    router_with_limit(state, request_timeout, &LimitConfig::default())
}

/// [`router`] with the concurrency limit of `limit` (`[limit]` in the config).
pub fn router_with_limit(
    state: AppState,
    request_timeout: Duration,
    limit: &LimitConfig,
) -> Router {
    routes::router(state, request_timeout, limit)
}

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The configuration (policies, storage, timeouts).
    pub config: Config,
    /// The file it came from, re-read on SIGHUP; `None`: the built-in config.
    pub config_path: Option<PathBuf>,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Data directory of the storage backend.
    pub data_dir: PathBuf,
}

/// A running service: its address, and a way to stop it gracefully.
pub struct Running {
    /// The address actually bound.
    pub addr: SocketAddr,
    system: TodoSystem,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// Stops accepting, finishes in-flight requests, drains the mailboxes and
    /// flushes to storage; returns once everything is written.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let _ = self.shutdown.send(true);
        self.task.await?
    }

    /// Waits until the service ends (after a shutdown signal).
    pub async fn wait(self) -> Result<(), ServeError> {
        self.task.await?
    }

    /// The to-do system behind the service (for policy reloads).
    pub fn system(&self) -> TodoSystem {
        self.system.clone()
    }

    /// A sender that triggers graceful shutdown (for signal handlers).
    pub fn shutdown_trigger(&self) -> tokio::sync::watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Starts the to-do system and the HTTP server; returns once it is listening.
///
/// Takes the data directory's [`DataDirLock`] first (held until the service has
/// drained to storage), so a second server on the same directory fails here.
pub async fn start(opts: ServeOptions) -> Result<Running, ServeError> {
    let prometheus = install_prometheus()?;
    http_metrics::describe();
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    // A single node owns its data directory; cluster nodes share PostgreSQL, whose
    // leases and fences keep one writer per list.
    let (system, lock, cluster) = match &opts.config.cluster {
        None => {
            let lock = DataDirLock::acquire(&opts.data_dir)?;
            let system = TodoSystem::start(&opts.config, &opts.data_dir).await?;
            (system, Some(lock), None)
        }
        Some(_) => {
            let started = crate::start::start_node(&opts.config, addr).await?;
            (started.system, None, Some((started.node, started.store)))
        }
    };
    zero_rare_event_counters(&opts.config);
    dashboard::start_sampler(prometheus.clone())?;
    log_startup_summary(&opts, addr);
    let request_timeout = opts.config.system.call_timeout + Duration::from_secs(1);
    let app = router_with_limit(
        AppState {
            system: system.clone(),
            prometheus,
            cluster: cluster.as_ref().map(|(node, _)| node.clone()),
        },
        request_timeout,
        &opts.config.limit,
    );
    let (tx, rx) = tokio::sync::watch::channel(false);
    let keeper = cluster.as_ref().map(|(node, store)| {
        (
            node.spawn_keeper(store.clone(), system.clone(), rx.clone()),
            node.clone(),
            store.clone(),
        )
    });
    let system_handle = system.clone();
    let grace = shutdown_grace(request_timeout);
    let task = tokio::spawn(async move {
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let server = axum::serve(listener, app).with_graceful_shutdown(stopped(rx.clone()));
        // Every request a handler has started ends within the request timeout; a
        // connection that never completes its request head is not waited for past
        // the grace period, so it cannot hold back the drain below.
        let served = tokio::select! {
            served = server.into_future() => served.map_err(ServeError::Io),
            () = async {
                stopped(rx).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "connections still open after the grace period: not waiting for them");
                Ok(())
            }
        };
        tracing::info!("HTTP server stopped; draining mailboxes to storage");
        system.shutdown().await;
        if let Some((keeper, node, store)) = keeper {
            let _ = keeper.await;
            leave_cluster(&node, store.as_ref()).await;
        }
        drop(lock);
        tracing::info!("shutdown complete");
        served
    });
    Ok(Running {
        addr,
        system: system_handle,
        shutdown: tx,
        task,
    })
}

/// Releases a node's leases and member row after its system has stored everything.
async fn leave_cluster(node: &Node, store: &dyn ClusterStore) {
    node.leave(store).await;
    tracing::info!("left the cluster: leases released");
}

/// One `info` line with what this server runs: config file, storage, acks, policies.
fn log_startup_summary(opts: &ServeOptions, addr: SocketAddr) {
    let c = &opts.config;
    let config = opts
        .config_path
        .as_ref()
        .map_or_else(|| "built-in".to_string(), |p| p.display().to_string());
    tracing::info!(
        listen = %addr,
        config = %config,
        backend = %crate::config::name_of(&c.storage.backend),
        data_dir = %opts.data_dir.display(),
        default_ack = %crate::config::name_of(&c.system.default_ack),
        call_timeout = %humantime::format_duration(c.system.call_timeout),
        database_workers = c.database.workers,
        routing = %crate::config::routing_name(c.database.routing),
        todo_server = %c.mailbox.todo_server,
        database = %c.mailbox.database,
        database_worker = %c.mailbox.database_worker,
        "serving"
    );
}

/// How long shutdown waits for open connections: the request timeout (which ends
/// every request a handler has started) and one second more to write the answers.
fn shutdown_grace(request_timeout: Duration) -> Duration {
    request_timeout + Duration::from_secs(1)
}

/// Exports the restart and escalation counters of every role at 0 from the start.
///
/// Prometheus computes `increase()` and `rate()` from samples it has seen, so a
/// counter series that first appears with the value 1 shows no increase at all:
/// without this, the dashboard's restarts panel would never show a role's first
/// restart, nor (usually the only) escalation.
fn zero_rare_event_counters(config: &Config) {
    use crate::domain::database::{ROUTER_ROLE, WORKER_ROLE};
    use sluicegate::runtime::metrics::{ESCALATIONS, RESTARTS};
    let mut roles = vec![crate::domain::server::ROLE, WORKER_ROLE];
    if config.database.routing == sluicegate::runtime::Routing::Routed {
        roles.push(ROUTER_ROLE);
    }
    for role in roles {
        metrics::counter!(RESTARTS, "role" => role).increment(0);
        metrics::counter!(ESCALATIONS, "role" => role).increment(0);
    }
}

/// Re-reads the config file and applies to the live system what can change while
/// running ([`Config::LIVE_SETTINGS`]: mailbox policies, `system.default_ack`); each
/// other setting that differs from `running` is logged by name at `warn`, as
/// taking effect only after a restart. Returns the config now in force (`running`
/// with the live settings of the file); on an error nothing changed.
pub fn reload(system: &TodoSystem, path: &Path, running: &Config) -> Result<Config, ReloadError> {
    let mut new = Config::load(path)?;
    // A node's id and address may come from the command line, not the file.
    if let (Some(run), Some(file)) = (&running.cluster, new.cluster.as_mut()) {
        file.node_id = file.node_id.take().or_else(|| run.node_id.clone());
        file.advertise = file.advertise.take().or_else(|| run.advertise.clone());
    }
    system.reload(&new.mailbox, new.system.default_ack)?;
    for (key, old, value) in running.changes(&new) {
        if Config::LIVE_SETTINGS.contains(&key.as_str()) {
            tracing::info!(setting = %key, old = %old, new = %value, "SIGHUP: applied {key}");
        } else {
            tracing::warn!(
                setting = %key,
                old = %old,
                new = %value,
                "SIGHUP: {key} changed in the file; it needs a restart to take effect (still {old})"
            );
        }
    }
    Ok(running.with_live_settings_of(&new))
}
