//! The configuration file: storage, acknowledgement, timeouts, the database pool
//! and one mailbox policy per role, validated with errors that name key and value.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::mailbox::Policy;

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where lists are stored.
    pub storage: StorageConfig,
    /// Acks, timeouts and list-server limits.
    pub system: SystemConfig,
    /// The database pool.
    pub database: DatabaseConfig,
    /// One mailbox policy per role.
    pub mailbox: MailboxConfig,
}

/// `[storage]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The backend.
    pub backend: StorageBackend,
    /// Data directory (the CLI's `--data-dir` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

/// Storage backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    /// One crash-safe JSON file per list.
    Files,
    /// SQLite (WAL), one row per list.
    Sqlite,
    /// Memory only.
    Memory,
}

/// When a write is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// The write is cast: answered as soon as it is queued (the book's behaviour).
    None,
    /// Answered once the list server applied it in memory; persisted afterwards.
    Applied,
    /// Answered once the list is stored and fsynced.
    Durable,
}

impl AckMode {
    /// The name used in config and `?ack=`.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::None => "none",
            AckMode::Applied => "applied",
            AckMode::Durable => "durable",
        }
    }
}

impl std::fmt::Display for AckMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AckMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(AckMode::None),
            "applied" => Ok(AckMode::Applied),
            "durable" => Ok(AckMode::Durable),
            other => Err(format!(
                "\"{}\" is not an ack mode; expected one of none, applied, durable",
                other.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// `[system]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// Ack used when a request names none.
    pub default_ack: AckMode,
    /// End-to-end timeout of every call.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// A list server with no traffic for this long stops.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Cap on live list servers (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_live_servers: Option<usize>,
}

/// How database requests reach a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Through one router process (the book's first design).
    Routed,
    /// Straight to the list's worker.
    Direct,
}

impl std::fmt::Display for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Routing::Routed => "routed",
            Routing::Direct => "direct",
        })
    }
}

/// `[database]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Number of workers (1 to 1024).
    pub workers: usize,
    /// Routed or direct.
    pub routing: Routing,
}

/// `[mailbox.*]`: one policy per role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    /// Each list server's mailbox.
    pub todo_server: Policy,
    /// The database router's mailbox (used when routing is `routed`).
    pub database: Policy,
    /// Each database worker's mailbox.
    pub database_worker: Policy,
}

/// A config that cannot be used; the message names the file, key, value and
/// what is allowed.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML does not match the schema (unknown key, wrong type, bad value).
    Parse {
        /// The file, if read from one.
        path: Option<PathBuf>,
        /// The parser's message (with line, column and key).
        message: String,
    },
    /// A value is out of range.
    Invalid {
        /// The file, if read from one.
        path: Option<PathBuf>,
        /// Dotted key, e.g. `mailbox.database_worker.capacity`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| format!("{}: ", p.display()))
                .unwrap_or_default()
        };
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            ConfigError::Parse { path, message } => {
                write!(f, "{}invalid config: {}", file(path), message.trim_end())
            }
            ConfigError::Invalid { path, key, message } => {
                write!(f, "{}invalid config: {key}: {message}", file(path))
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn with_path(self, p: &Path) -> Self {
        match self {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: Some(p.to_path_buf()),
                message,
            },
            ConfigError::Invalid { key, message, .. } => ConfigError::Invalid {
                path: Some(p.to_path_buf()),
                key,
                message,
            },
            e => e,
        }
    }
}

impl Config {
    /// The built-in default: `policies/coalesce.toml`, the recommended set.
    pub const DEFAULT_TOML: &'static str = include_str!("../policies/coalesce.toml");

    /// Parses the built-in default.
    pub fn builtin() -> Config {
        match Config::from_toml_str(Self::DEFAULT_TOML) {
            Ok(c) => c,
            // A unit test and CI keep the embedded file valid.
            Err(e) => unreachable!("the built-in config is invalid: {e}"),
        }
    }

    /// Parses and validates a config text.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: None,
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|e| e.with_path(path))
    }

    /// Checks ranges the schema cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: None,
            key: key.to_string(),
            message,
        };
        if !(1..=1024).contains(&self.database.workers) {
            return Err(invalid(
                "database.workers",
                format!(
                    "{} is out of range; it must be from 1 to 1024",
                    self.database.workers
                ),
            ));
        }
        for (key, d) in [
            ("system.call_timeout", self.system.call_timeout),
            ("system.idle_timeout", self.system.idle_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(
                    key,
                    "\"0s\" is not allowed; it must be above zero (e.g. \"5s\")".into(),
                ));
            }
        }
        if self.system.max_live_servers == Some(0) {
            return Err(invalid(
                "system.max_live_servers",
                "0 is not allowed; it must be at least 1 (or absent for no cap)".into(),
            ));
        }
        for (role, p) in self.policies() {
            p.validate()
                .map_err(|e| invalid(&format!("mailbox.{role}"), e.to_string()))?;
        }
        Ok(())
    }

    /// The policy of each role.
    pub fn policies(&self) -> [(&'static str, &Policy); 3] {
        [
            ("todo_server", &self.mailbox.todo_server),
            ("database", &self.mailbox.database),
            ("database_worker", &self.mailbox.database_worker),
        ]
    }

    /// The policy of a role by name.
    pub fn policy_for(&self, role: &str) -> Option<&Policy> {
        self.policies()
            .into_iter()
            .find(|(r, _)| *r == role)
            .map(|(_, p)| p)
    }

    /// One `key = value` line per setting, for `sluicegate check-config`.
    pub fn effective_settings(&self) -> String {
        let mut s = String::new();
        let b = match self.storage.backend {
            StorageBackend::Files => "files",
            StorageBackend::Sqlite => "sqlite",
            StorageBackend::Memory => "memory",
        };
        let _ = writeln!(s, "storage.backend = {b}");
        let _ = writeln!(
            s,
            "storage.data_dir = {}",
            self.storage
                .data_dir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "./data (default)".into())
        );
        let _ = writeln!(s, "system.default_ack = {}", self.system.default_ack);
        let _ = writeln!(
            s,
            "system.call_timeout = {}",
            humantime::format_duration(self.system.call_timeout)
        );
        let _ = writeln!(
            s,
            "system.idle_timeout = {}",
            humantime::format_duration(self.system.idle_timeout)
        );
        let _ = writeln!(
            s,
            "system.max_live_servers = {}",
            self.system
                .max_live_servers
                .map(|n| n.to_string())
                .unwrap_or_else(|| "none".into())
        );
        let _ = writeln!(s, "database.workers = {}", self.database.workers);
        let _ = writeln!(s, "database.routing = {}", self.database.routing);
        for (role, p) in self.policies() {
            let _ = writeln!(s, "mailbox.{role} = {p}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_config_parses() {
        let c = Config::builtin();
        assert_eq!(c.database.workers, 3);
        assert!(matches!(c.mailbox.database_worker, Policy::Coalesce { .. }));
    }
}
