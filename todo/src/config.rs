//! The configuration file: storage, acknowledgement, timeouts, the database pool
//! and one mailbox policy per role. A file is laid over the built-in defaults, and
//! its schema is the serde description of the types below; errors name key and value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::domain::AckMode;
pub use crate::storage::BackendKind;
use sluicegate::mailbox::Policy;
use sluicegate::runtime::Routing;

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
    /// `[limit]`: the adaptive concurrency limit at the HTTP edge (on by default).
    #[serde(default)]
    pub limit: LimitConfig,
    /// `[cluster]`: run as one node of a cluster sharing the PostgreSQL backend;
    /// absent: a single node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
}

/// `[cluster]`: this node's identity and the lease terms (the same on every node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id, unique in the cluster: 1 to 64 ASCII letters, digits, `.`,
    /// `_` or `-` (`serve --node-id` overrides it; one of the two is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Where the other nodes reach this one's HTTP API, e.g. `http://10.0.0.5:8080`
    /// (`serve --advertise` overrides it); default: `http://` and the address bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// Number of shards lists are grouped into (1 to 65536; every node and the
    /// database must agree).
    #[serde(default = "cluster_defaults::shards")]
    pub shards: u32,
    /// How long a shard lease lasts on the database's clock.
    #[serde(with = "humantime_serde", default = "cluster_defaults::ttl")]
    pub lease_ttl: Duration,
    /// How often a node renews its leases (and reads the shard table).
    #[serde(with = "humantime_serde", default = "cluster_defaults::renew")]
    pub renew_every: Duration,
    /// How long before its lease could expire a node stops serving a shard (at
    /// least 1 % of `lease_ttl`; see `cluster::lease`).
    #[serde(with = "humantime_serde", default = "cluster_defaults::margin")]
    pub lease_margin: Duration,
    /// Fault injection for tests and demonstrations: every store waits this long
    /// after taking its list's epoch and before it reaches the database, widening
    /// the window the fence closes. Default `0s`; never set it in production
    /// (only with cargo feature `fault-injection`; a config naming it is refused
    /// without it).
    #[cfg(feature = "fault-injection")]
    #[serde(with = "humantime_serde", default)]
    pub store_delay: Duration,
}

mod cluster_defaults {
    use std::time::Duration;

    use crate::cluster::{LeaseTerms, ShardMap};

    pub fn shards() -> u32 {
        ShardMap::DEFAULT_SHARDS
    }
    pub fn ttl() -> Duration {
        LeaseTerms::DEFAULT.ttl()
    }
    pub fn renew() -> Duration {
        LeaseTerms::DEFAULT.renew_every()
    }
    pub fn margin() -> Duration {
        LeaseTerms::DEFAULT.margin()
    }
}

/// Most shards a cluster may have.
pub const MAX_SHARDS: u32 = 65536;

impl ClusterConfig {
    /// The lease terms these settings describe (checked by [`Config::validate`]).
    pub fn terms(&self) -> Result<crate::cluster::LeaseTerms, crate::cluster::LeaseTermsError> {
        crate::cluster::LeaseTerms::new(self.lease_ttl, self.renew_every, self.lease_margin)
    }
}

/// Whether `id` is a valid node id (see [`ClusterConfig::node_id`]).
pub fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `[storage]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The backend ([`BackendKind`]: `sqlite`, `postgres`, `files`, `memory`).
    pub backend: BackendKind,
    /// Data directory (the CLI's `--data-dir` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The PostgreSQL connection URL (`backend = "postgres"` only), e.g.
    /// `postgres://user@127.0.0.1:5432/todo` or `host=/run/postgresql user=me dbname=todo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
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
    /// Cap on live list servers (`None`, in code only: no cap; a file that leaves it
    /// out keeps the built-in 100000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_live_servers: Option<usize>,
    /// How long a list keeps the receipt of a write sent with an
    /// `Idempotency-Key`: a repeat within it gets the first result and writes
    /// nothing (default 24 h).
    #[serde(with = "humantime_serde", default = "default_idempotency_window")]
    pub idempotency_window: Duration,
}

/// The built-in `system.idempotency_window`: 24 h, as Stripe's API keeps keys.
pub fn default_idempotency_window() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// `[database]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Number of workers (1 to 1024).
    #[serde(deserialize_with = "schema::workers")]
    pub workers: usize,
    /// Routed or direct (the runtime's [`Routing`], written `routed` or `direct`).
    #[serde(with = "schema::routing")]
    pub routing: Routing,
}

/// `[limit]`: the adaptive concurrency limit in front of the `/lists` handlers
/// (Gradient2, as in Netflix's concurrency-limits): it follows how latency moves
/// against its long-run average and refuses requests beyond the limit with a fast
/// `503` and `Retry-After`. Left out of a file: the built-in values below.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitConfig {
    /// Whether requests beyond the limit are refused (`false`: no limit).
    pub enabled: bool,
    /// The limit before any latency is seen.
    pub initial: usize,
    /// The limit never drops below this many requests in flight (so a closed-loop
    /// client with fewer connections is never refused).
    pub min: usize,
    /// Nor grows above this many.
    pub max: usize,
    /// Latency may grow to this many percent of its long-run average before the
    /// limit shrinks (Gradient2's tolerance, 150 = 1.5x).
    pub tolerance_percent: u32,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            enabled: true,
            initial: 256,
            min: 64,
            max: 4096,
            tolerance_percent: 150,
        }
    }
}

/// Most database workers a config may ask for.
pub const MAX_WORKERS: usize = 1024;

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
    pub const DEFAULT_TOML: &'static str = include_str!("../../policies/coalesce.toml");

    /// Parses the built-in default.
    pub fn builtin() -> Config {
        match Config::from_toml_str(Self::DEFAULT_TOML) {
            Ok(c) => c,
            // A unit test and CI keep the embedded file valid.
            Err(e) => unreachable!("the built-in config is invalid: {e}"),
        }
    }

    /// Parses and validates a config text, laid over the built-in default
    /// ([`Config::DEFAULT_TOML`]): a key the text leaves out keeps its built-in value,
    /// and a `[mailbox.<role>]` section replaces that role's policy whole (a
    /// policy's parameters belong to it). The schema is the serde description of
    /// these types (unknown keys refused); a mistake is reported with its dotted
    /// key, its value and what is allowed.
    ///
    /// ```
    /// use sluicegate_todo::config::{AckMode, Config};
    /// let c = Config::from_toml_str("[system]\ndefault_ack = \"durable\"").unwrap();
    /// assert_eq!(c.system.default_ack, AckMode::Durable);
    /// assert_eq!(c.database, Config::builtin().database);
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: None,
            message: e.to_string(),
        };
        let file: toml::Table = text.parse().map_err(parse_error)?;
        let mut table: toml::Table = Self::DEFAULT_TOML.parse().map_err(parse_error)?;
        schema::overlay(&mut table, file);
        let config = schema::deserialize(&table)?;
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
        let l = &self.limit;
        if l.min == 0 || l.min > l.initial || l.initial > l.max {
            return Err(invalid(
                "limit",
                format!(
                    "min = {}, initial = {}, max = {} is not allowed; expected 1 <= min <= initial <= max",
                    l.min, l.initial, l.max
                ),
            ));
        }
        if l.tolerance_percent < 100 {
            return Err(invalid(
                "limit.tolerance_percent",
                format!(
                    "{} is out of range; expected 100 or more (latency may grow to this many percent of its average)",
                    l.tolerance_percent
                ),
            ));
        }
        match (self.storage.backend, &self.storage.url) {
            (BackendKind::Postgres, None) => {
                return Err(invalid(
                    "storage.url",
                    "missing; backend \"postgres\" needs a connection URL, e.g. \
                     \"postgres://user@127.0.0.1:5432/todo\" or \"host=/run/postgresql dbname=todo\""
                        .into(),
                ))
            }
            (BackendKind::Postgres, Some(url)) => {
                if let Err(e) = url.parse::<tokio_postgres::Config>() {
                    return Err(invalid(
                        "storage.url",
                        format!(
                            "not a PostgreSQL connection URL ({e}); expected e.g. \
                             \"postgres://user@127.0.0.1:5432/todo\" or \"host=/run/postgresql dbname=todo\""
                        ),
                    ));
                }
            }
            (_, Some(_)) => {
                return Err(invalid(
                    "storage.url",
                    "is only used by backend \"postgres\"; remove it or set storage.backend = \"postgres\""
                        .into(),
                ))
            }
            (_, None) => {}
        }
        if let Some(cluster) = &self.cluster {
            if self.storage.backend != BackendKind::Postgres {
                return Err(invalid(
                    "cluster",
                    "a cluster needs storage.backend = \"postgres\" (its nodes share that database)".into(),
                ));
            }
            if let Some(id) = cluster.node_id.as_deref().filter(|id| !valid_node_id(id)) {
                return Err(invalid(
                    "cluster.node_id",
                    format!("\"{id}\" is not allowed; use 1 to 64 ASCII letters, digits, '.', '_' or '-'"),
                ));
            }
            if let Some(a) = cluster.advertise.as_deref() {
                if !(a.starts_with("http://") && a.len() > "http://".len()) {
                    return Err(invalid(
                        "cluster.advertise",
                        format!("\"{a}\" must be an http:// URL other nodes can reach, e.g. \"http://10.0.0.5:8080\""),
                    ));
                }
            }
            if !(1..=MAX_SHARDS).contains(&cluster.shards) {
                return Err(invalid(
                    "cluster.shards",
                    format!(
                        "{} is out of range; it must be from 1 to {MAX_SHARDS}",
                        cluster.shards
                    ),
                ));
            }
            if let Err(e) = cluster.terms() {
                let key = match e {
                    crate::cluster::LeaseTermsError::MarginTooSmall { .. } => {
                        "cluster.lease_margin"
                    }
                    crate::cluster::LeaseTermsError::RenewTooLate { .. } => "cluster.renew_every",
                };
                return Err(invalid(key, e.to_string()));
            }
        }
        if !(1..=MAX_WORKERS).contains(&self.database.workers) {
            return Err(invalid(
                "database.workers",
                format!(
                    "{} is out of range; it must be from 1 to {MAX_WORKERS}",
                    self.database.workers
                ),
            ));
        }
        for (key, d) in [
            ("system.call_timeout", self.system.call_timeout),
            ("system.idle_timeout", self.system.idle_timeout),
            ("system.idempotency_window", self.system.idempotency_window),
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
                "0 is not allowed; it must be at least 1".into(),
            ));
        }
        for (role, p) in self.policies() {
            if p.capacity() == Some(0) {
                return Err(invalid(
                    &format!("mailbox.{role}.capacity"),
                    format!(
                        "0 is not allowed for policy \"{}\"; it must be at least 1",
                        p.name()
                    ),
                ));
            }
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

    /// The settings a running `serve` applies on SIGHUP; every other one takes
    /// effect at the next start.
    pub const LIVE_SETTINGS: [&'static str; 4] = [
        "system.default_ack",
        "mailbox.todo_server",
        "mailbox.database",
        "mailbox.database_worker",
    ];

    /// Each setting whose value differs in `new`, as `(key, old, new)`, in the
    /// order of [`Config::effective_settings`].
    pub fn changes(&self, new: &Config) -> Vec<(String, String, String)> {
        let split = |line: &str| {
            line.split_once(" = ")
                .map(|(k, v)| (k.to_string(), v.to_string()))
        };
        let theirs: std::collections::HashMap<String, String> =
            new.effective_settings().lines().filter_map(split).collect();
        self.effective_settings()
            .lines()
            .filter_map(split)
            .filter_map(|(k, old)| {
                let new = theirs.get(&k)?;
                (new != &old).then(|| (k, old, new.clone()))
            })
            .collect()
    }

    /// `self` with the settings of `new` that can change live ([`Config::LIVE_SETTINGS`]):
    /// what a running `serve` runs after a reload.
    pub fn with_live_settings_of(&self, new: &Config) -> Config {
        let mut c = self.clone();
        c.system.default_ack = new.system.default_ack;
        c.mailbox = new.mailbox.clone();
        c
    }
}

/// The name of a routing mode as the file writes it (`routed`, `direct`).
pub fn routing_name(routing: Routing) -> &'static str {
    schema::routing::name(routing)
}

/// A config enum's name as written in the file (`sqlite`, `applied`).
pub fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(e) => format!("?({e})"),
    }
}

mod effective;
mod schema;

#[cfg(test)]
mod tests {
    use super::*;

    const PG: &str =
        "[storage]\nbackend = \"postgres\"\nurl = \"host=/run/postgresql dbname=todo\"\n";

    fn cluster_error(text: &str) -> String {
        match Config::from_toml_str(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_cluster_section_takes_its_defaults_and_is_shown_by_check_config() {
        let c = Config::from_toml_str(&format!("{PG}[cluster]\nnode_id = \"n1\"\n")).unwrap();
        let cluster = c.cluster.as_ref().unwrap();
        assert_eq!(cluster.shards, 256);
        assert_eq!(
            cluster.terms().unwrap(),
            crate::cluster::LeaseTerms::DEFAULT
        );
        let shown = c.effective_settings();
        assert!(shown.contains("cluster.node_id = n1"), "{shown}");
        assert!(shown.contains("cluster.lease_ttl = 10s"), "{shown}");
        assert!(Config::builtin().cluster.is_none());
    }

    #[test]
    fn a_bad_cluster_section_is_refused_naming_its_key() {
        let e = cluster_error("[cluster]\nnode_id = \"n1\"\n");
        assert!(e.contains("cluster") && e.contains("postgres"), "{e}");
        let e = cluster_error(&format!("{PG}[cluster]\nnode_id = \"a b\"\n"));
        assert!(e.contains("cluster.node_id"), "{e}");
        let e = cluster_error(&format!(
            "{PG}[cluster]\nlease_ttl = \"10s\"\nlease_margin = \"10ms\"\n"
        ));
        assert!(
            e.contains("cluster.lease_margin") && e.contains("1 %"),
            "{e}"
        );
        let e = cluster_error(&format!("{PG}[cluster]\nrenew_every = \"9s\"\n"));
        assert!(e.contains("cluster.renew_every"), "{e}");
        let e = cluster_error(&format!("{PG}[cluster]\nshards = 0\n"));
        assert!(e.contains("cluster.shards"), "{e}");
        let e = cluster_error(&format!("{PG}[cluster]\nadvertise = \"10.0.0.5:80\"\n"));
        assert!(e.contains("cluster.advertise"), "{e}");
        let e = cluster_error(&format!("{PG}[cluster]\nleader = true\n"));
        assert!(e.contains("leader"), "{e}");
    }

    #[test]
    fn the_builtin_config_parses() {
        let c = Config::builtin();
        assert_eq!(c.database.workers, 3);
        assert!(matches!(c.mailbox.database_worker, Policy::Coalesce { .. }));
    }
}
