//! Starting the to-do system from a [`Config`]: the config's sections become the
//! todo layer's [`Settings`], and the backend the config names is opened in the
//! data directory; with a `[cluster]` section, a cluster [`Node`] is started too
//! and the system writes through its fence. This is the one place that knows
//! `config`, `storage`, `cluster` and `todo`, so none of those names the others above it.

use std::path::Path;
use std::sync::Arc;

use crate::cluster::{ClusterStore, FencedStorage, Node, NodeId, NodeSettings, ShardMap};
use crate::config::{Config, MailboxConfig};
use crate::domain::{Policies, Settings, StartSystemError, TodoSystem};
use crate::storage::{self, BackendKind, Storage, StorageError};

impl From<&Config> for Settings {
    fn from(config: &Config) -> Self {
        Settings {
            default_ack: config.system.default_ack,
            call_timeout: config.system.call_timeout,
            idle_timeout: config.system.idle_timeout,
            max_live_servers: config.system.max_live_servers,
            idempotency_window: config.system.idempotency_window,
            database_workers: config.database.workers,
            routing: config.database.routing,
            policies: Policies::from(&config.mailbox),
        }
    }
}

impl From<&MailboxConfig> for Policies {
    fn from(mailbox: &MailboxConfig) -> Self {
        Policies {
            todo_server: mailbox.todo_server.clone(),
            database: mailbox.database.clone(),
            database_worker: mailbox.database_worker.clone(),
        }
    }
}

/// The storage backend a config's `[storage] backend` names.
pub fn backend_kind(config: &Config) -> BackendKind {
    config.storage.backend
}

/// Opens the backend the config names: a local one in `data_dir` (created if
/// missing), PostgreSQL at `storage.url` with every operation bounded by half the
/// call timeout (see [`storage::open_postgres`]).
pub async fn open_storage(
    config: &Config,
    data_dir: &Path,
) -> Result<Arc<dyn Storage>, StorageError> {
    match backend_kind(config) {
        BackendKind::Postgres => {
            let url = config.storage.url.as_deref().unwrap_or_default();
            storage::open_postgres(url, config.system.call_timeout, config.database.workers).await
        }
        kind => storage::open(kind, data_dir),
    }
}

impl TodoSystem {
    /// Starts the system from a config, opening the configured backend in
    /// `data_dir` (see [`open_storage`]).
    pub async fn start(config: &Config, data_dir: &Path) -> Result<Self, StartSystemError> {
        let storage = open_storage(config, data_dir)
            .await
            .map_err(StartSystemError::Storage)?;
        Self::start_with_storage(config, storage).await
    }
}

/// A started cluster node: its to-do system (writing through the fence), the node
/// (leases, shard table) and the database that coordinates it.
pub struct StartedNode {
    /// The to-do system.
    pub system: TodoSystem,
    /// The node; its keeper is started by the caller ([`Node::spawn_keeper`]).
    pub node: Arc<Node>,
    /// The coordinating database.
    pub store: Arc<dyn ClusterStore>,
}

/// Why a cluster node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartNodeError {
    /// The `[cluster]` settings cannot be used as they are (the message names the key).
    #[error("cluster: {0}")]
    Config(String),
    /// The PostgreSQL backend could not be opened.
    #[error(transparent)]
    Storage(StorageError),
    /// The to-do system could not start.
    #[error(transparent)]
    System(#[from] StartSystemError),
}

/// Starts a cluster node from a config with a `[cluster]` section, serving on
/// `bound` (its advertised address unless `cluster.advertise` is set): opens
/// PostgreSQL, starts the to-do system on the fenced storage, and joins (one keeper
/// tick: heartbeat and first claims) before returning.
pub async fn start_node(
    config: &Config,
    bound: std::net::SocketAddr,
) -> Result<StartedNode, StartNodeError> {
    let bad = |m: &str| StartNodeError::Config(m.to_string());
    let Some(c) = &config.cluster else {
        return Err(bad("the config has no [cluster] section"));
    };
    let Some(id) = c.node_id.clone() else {
        return Err(bad(
            "cluster.node_id is not set: give `serve --node-id NAME` or set node_id in [cluster]",
        ));
    };
    let addr = match &c.advertise {
        Some(a) => a.clone(),
        None if bound.ip().is_unspecified() => {
            return Err(bad(&format!(
                "listening on {bound}, which peers cannot dial: give `serve --advertise http://HOST:PORT` or set cluster.advertise"
            )))
        }
        None => format!("http://{bound}"),
    };
    let terms = c
        .terms()
        .map_err(|e| StartNodeError::Config(e.to_string()))?;
    let shards = ShardMap::new(c.shards).ok_or_else(|| bad("cluster.shards must be at least 1"))?;
    let url = config.storage.url.as_deref().unwrap_or_default();
    let pg = storage::open_postgres_store(url, config.system.call_timeout, config.database.workers)
        .await
        .map_err(StartNodeError::Storage)?;
    let store: Arc<dyn ClusterStore> = pg;
    crate::cluster::metrics::describe();
    let node = Node::new(NodeSettings {
        id: NodeId(id),
        addr,
        shards,
        terms,
    });
    #[cfg(feature = "fault-injection")]
    let fenced = FencedStorage::new(store.clone(), node.clone(), c.store_delay);
    #[cfg(not(feature = "fault-injection"))]
    let fenced = FencedStorage::new(store.clone(), node.clone(), std::time::Duration::ZERO);
    let system = TodoSystem::start_with_storage(config, Arc::new(fenced)).await?;
    node.join(&store, &system).await;
    Ok(StartedNode {
        system,
        node,
        store,
    })
}
