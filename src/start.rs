//! Starting the to-do system from a [`Config`]: the config's sections become the
//! todo layer's [`Settings`], and the backend the config names is opened in the
//! data directory. This is the one place that knows all three of `config`,
//! `storage` and `todo`, so `todo` itself names neither of the layers above it.

use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, MailboxConfig};
use crate::storage::{self, BackendKind, Storage, StorageError};
use crate::todo::{Policies, Settings, StartSystemError, TodoSystem};

impl From<&Config> for Settings {
    fn from(config: &Config) -> Self {
        Settings {
            default_ack: config.system.default_ack,
            call_timeout: config.system.call_timeout,
            idle_timeout: config.system.idle_timeout,
            max_live_servers: config.system.max_live_servers,
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
