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
    /// The PostgreSQL connection URL (`backend = "postgres"` only), e.g.
    /// `postgres://user@127.0.0.1:5432/todo` or `host=/run/postgresql user=me dbname=todo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Storage backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    /// One crash-safe JSON file per list, rewritten whole on every store (the book's design).
    Files,
    /// SQLite (WAL, synchronous = FULL), entries as rows, group commit; the default.
    Sqlite,
    /// Memory only.
    Memory,
    /// A PostgreSQL database at `storage.url`, entries as rows, group commit.
    Postgres,
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

    /// Parses and validates a config text. Every key is checked against the
    /// schema first, so a mistake is reported with its dotted key, its value and
    /// what is allowed (see [`check_schema`]).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: None,
            message: e.to_string(),
        };
        let table: toml::Table = text.parse().map_err(parse_error)?;
        check_schema(&table)?;
        let config: Config = toml::from_str(text).map_err(parse_error)?;
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
        match (self.storage.backend, &self.storage.url) {
            (StorageBackend::Postgres, None) => {
                return Err(invalid(
                    "storage.url",
                    "missing; backend \"postgres\" needs a connection URL, e.g. \
                     \"postgres://user@127.0.0.1:5432/todo\" or \"host=/run/postgresql dbname=todo\""
                        .into(),
                ))
            }
            (StorageBackend::Postgres, Some(url)) => {
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
            StorageBackend::Postgres => "postgres",
        };
        let _ = writeln!(s, "storage.backend = {b}");
        if let Some(url) = &self.storage.url {
            let secret = url
                .parse::<tokio_postgres::Config>()
                .is_ok_and(|c| c.get_password().is_some());
            if secret {
                let _ = writeln!(s, "storage.url = (set; not shown, it holds a password)");
            } else {
                let _ = writeln!(s, "storage.url = {url}");
            }
        }
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

/// The policies a mailbox section may name, with the parameters each takes
/// (`true`: required).
const POLICIES: [(&str, &[ParamSpec]); 6] = [
    ("unbounded", &[]),
    ("drop_newest", &[("capacity", Param::Capacity, true)]),
    ("drop_oldest", &[("capacity", Param::Capacity, true)]),
    (
        "block",
        &[
            ("capacity", Param::Capacity, true),
            ("send_timeout", Param::Duration, false),
        ],
    ),
    (
        "codel",
        &[
            ("capacity", Param::Capacity, true),
            ("target", Param::Duration, true),
            ("interval", Param::Duration, true),
        ],
    ),
    ("coalesce", &[("capacity", Param::Capacity, true)]),
];

/// The mailbox roles, each a required `[mailbox.<role>]` section.
const ROLES: [&str; 3] = ["todo_server", "database", "database_worker"];

/// A policy parameter: its key, kind and whether it is required.
type ParamSpec = (&'static str, Param, bool);

#[derive(Clone, Copy)]
enum Param {
    Capacity,
    Duration,
}

/// A value as written in TOML, shortened for messages.
fn shown(v: &toml::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn invalid(key: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        path: None,
        key: key.to_string(),
        message,
    }
}

fn dotted(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Refuses keys of `t` outside `allowed`; `context` ends the message.
fn only_keys(
    t: &toml::Table,
    prefix: &str,
    allowed: &[&str],
    context: &str,
) -> Result<(), ConfigError> {
    for key in t.keys() {
        if !allowed.contains(&key.as_str()) {
            let allowed = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(invalid(
                &dotted(prefix, key),
                format!("unknown key{context}; allowed keys: {allowed}"),
            ));
        }
    }
    Ok(())
}

fn section<'a>(
    t: &'a toml::Table,
    prefix: &str,
    key: &str,
) -> Result<&'a toml::Table, ConfigError> {
    let k = dotted(prefix, key);
    match t.get(key) {
        Some(toml::Value::Table(inner)) => Ok(inner),
        Some(v) => Err(invalid(
            &k,
            format!("{} is not a section; expected a [{k}] table", shown(v)),
        )),
        None => Err(invalid(&k, format!("missing; add a [{k}] section"))),
    }
}

fn missing(key: &str, what: &str) -> ConfigError {
    invalid(key, format!("missing; expected {what}"))
}

/// A string naming one of `allowed` (`what`: "a storage backend", ...).
fn one_of(
    t: &toml::Table,
    prefix: &str,
    key: &str,
    what: &str,
    allowed: &[&str],
) -> Result<(), ConfigError> {
    let k = dotted(prefix, key);
    let expected = format!("one of {}", allowed.join(", "));
    match t.get(key) {
        None => Err(missing(&k, &format!("{what}: {expected}"))),
        Some(toml::Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        Some(v) => Err(invalid(
            &k,
            format!(
                "{} is not a {what}; expected {expected} (a quoted string)",
                shown(v)
            ),
        )),
    }
}

const DURATION_HINT: &str = "a quoted number with a unit, e.g. \"250ms\", \"5s\", \"2m\"";

fn duration(t: &toml::Table, prefix: &str, key: &str, required: bool) -> Result<(), ConfigError> {
    let k = dotted(prefix, key);
    match t.get(key) {
        None if required => Err(missing(&k, &format!("a duration: {DURATION_HINT}"))),
        None => Ok(()),
        Some(toml::Value::String(s)) => humantime::parse_duration(s).map(|_| ()).map_err(|e| {
            invalid(
                &k,
                format!(
                    "\"{}\" is not a duration ({e}); expected {DURATION_HINT}",
                    s.chars().take(40).collect::<String>()
                ),
            )
        }),
        Some(v) => Err(invalid(
            &k,
            format!("{} is not a duration; expected {DURATION_HINT}", shown(v)),
        )),
    }
}

/// A whole number from `min` to `max`; `what` says what it counts.
fn count(
    t: &toml::Table,
    prefix: &str,
    key: &str,
    required: bool,
    min: i64,
    max: Option<i64>,
) -> Result<(), ConfigError> {
    let k = dotted(prefix, key);
    let range = match max {
        Some(max) => format!("a whole number from {min} to {max}"),
        None => format!("a whole number, at least {min}"),
    };
    match t.get(key) {
        None if required => Err(missing(&k, &range)),
        None => Ok(()),
        Some(toml::Value::Integer(n)) if *n >= min && max.is_none_or(|m| *n <= m) => Ok(()),
        Some(v @ toml::Value::Integer(_)) => Err(invalid(
            &k,
            format!("{} is out of range; expected {range}", shown(v)),
        )),
        Some(v) => Err(invalid(
            &k,
            format!("{} is not a whole number; expected {range}", shown(v)),
        )),
    }
}

/// Checks a parsed config file against the schema: every section present, no
/// unknown key, every value of the right kind. Each error names the dotted key,
/// the value and what is allowed. Ranges that code-built configs can also break
/// are checked again by [`Config::validate`].
pub fn check_schema(root: &toml::Table) -> Result<(), ConfigError> {
    only_keys(
        root,
        "",
        &["storage", "system", "database", "mailbox"],
        " at the top level",
    )?;

    let storage = section(root, "", "storage")?;
    only_keys(
        storage,
        "storage",
        &["backend", "data_dir", "url"],
        " in [storage]",
    )?;
    one_of(
        storage,
        "storage",
        "backend",
        "a storage backend",
        &["files", "sqlite", "memory", "postgres"],
    )?;
    if let Some(v) = storage.get("data_dir") {
        if !v.is_str() {
            return Err(invalid(
                "storage.data_dir",
                format!(
                    "{} is not a path; expected a quoted directory path, e.g. \"./data\"",
                    shown(v)
                ),
            ));
        }
    }

    if let Some(v) = storage.get("url") {
        if !v.is_str() {
            return Err(invalid(
                "storage.url",
                format!(
                    "{} is not a connection URL; expected a quoted string, e.g. \"postgres://user@127.0.0.1:5432/todo\"",
                    shown(v)
                ),
            ));
        }
    }

    let system = section(root, "", "system")?;
    only_keys(
        system,
        "system",
        &[
            "default_ack",
            "call_timeout",
            "idle_timeout",
            "max_live_servers",
        ],
        " in [system]",
    )?;
    one_of(
        system,
        "system",
        "default_ack",
        "an ack mode",
        &["none", "applied", "durable"],
    )?;
    duration(system, "system", "call_timeout", true)?;
    duration(system, "system", "idle_timeout", true)?;
    count(system, "system", "max_live_servers", false, 1, None)?;

    let database = section(root, "", "database")?;
    only_keys(
        database,
        "database",
        &["workers", "routing"],
        " in [database]",
    )?;
    count(database, "database", "workers", true, 1, Some(1024))?;
    one_of(
        database,
        "database",
        "routing",
        "a routing mode",
        &["routed", "direct"],
    )?;

    let mailbox = section(root, "", "mailbox")?;
    only_keys(
        mailbox,
        "mailbox",
        &ROLES,
        " in [mailbox]: it names no mailbox role",
    )?;
    let names: Vec<&str> = POLICIES.iter().map(|(n, _)| *n).collect();
    for role in ROLES {
        let prefix = format!("mailbox.{role}");
        let t = section(mailbox, "mailbox", role)?;
        one_of(t, &prefix, "policy", "a policy", &names)?;
        let policy = t.get("policy").and_then(|v| v.as_str()).unwrap_or_default();
        let Some((_, params)) = POLICIES.iter().find(|(n, _)| *n == policy) else {
            continue;
        };
        let mut allowed = vec!["policy"];
        allowed.extend(params.iter().map(|(p, _, _)| *p));
        let context = if params.is_empty() {
            format!(" for policy \"{policy}\", which takes no parameters")
        } else {
            format!(" for policy \"{policy}\"")
        };
        only_keys(t, &prefix, &allowed, &context)?;
        for (param, kind, required) in params.iter() {
            match kind {
                Param::Capacity => count(t, &prefix, param, *required, 1, None)?,
                Param::Duration => duration(t, &prefix, param, *required)?,
            }
        }
    }
    Ok(())
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
