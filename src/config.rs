//! The configuration file: storage, acknowledgement, timeouts, the database pool
//! and one mailbox policy per role. A file is laid over the built-in defaults, and
//! its schema is the serde description of the types below; errors name key and value.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::mailbox::Policy;
use crate::runtime::Routing;
pub use crate::storage::BackendKind;

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
    /// The backend ([`BackendKind`]: `files`, `sqlite`, `memory`).
    pub backend: BackendKind,
    /// Data directory (the CLI's `--data-dir` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
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
    /// Cap on live list servers (`None`, in code only: no cap; a file that leaves it
    /// out keeps the built-in 100000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_live_servers: Option<usize>,
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
    pub const DEFAULT_TOML: &'static str = include_str!("../policies/coalesce.toml");

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
    /// use sluicegate::config::{AckMode, Config};
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

    /// One `key = value` line per setting, for `sluicegate check-config`.
    pub fn effective_settings(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "storage.backend = {}", name_of(&self.storage.backend));
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
        let _ = writeln!(
            s,
            "database.routing = {}",
            routing_name(self.database.routing)
        );
        for (role, p) in self.policies() {
            let _ = writeln!(s, "mailbox.{role} = {p}");
        }
        s
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

/// Reading a config table into [`Config`]: the overlay on the built-in table, and
/// serde's errors (with the dotted key from `serde_path_to_error`) in plain words.
mod schema {
    use serde::de::{self, Deserializer, Visitor};
    use serde::{Deserialize, Serializer};
    use serde_value::{DeserializerError, Unexpected, ValueDeserializer};

    use super::{Config, ConfigError, Routing, MAX_WORKERS};
    use crate::mailbox::Policy;

    /// Lays `file` over `base`: a section's keys replace the base's one by one, and
    /// a `[mailbox.<role>]` section replaces the role's table whole. Anything that
    /// is not a table where the base has one replaces it (and is refused by serde).
    pub(super) fn overlay(base: &mut toml::Table, file: toml::Table) {
        for (key, value) in file {
            match (base.get_mut(&key), value) {
                // One level deep: `[system]` keys one by one, `[mailbox]` roles whole.
                (Some(toml::Value::Table(b)), toml::Value::Table(f)) => b.extend(f),
                (_, value) => {
                    base.insert(key, value);
                }
            }
        }
    }

    /// The database's worker count: a whole number from 1 to [`MAX_WORKERS`].
    pub(super) fn workers<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        struct Workers;
        impl Visitor<'_> for Workers {
            type Value = usize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a whole number from 1 to {MAX_WORKERS}")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
                match usize::try_from(v) {
                    Ok(n) => self.visit_u64(n as u64),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
                usize::try_from(v)
                    .ok()
                    .filter(|n| (1..=MAX_WORKERS).contains(n))
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
        }
        d.deserialize_u64(Workers)
    }

    /// [`Routing`] by its name in the file (`routed`, `direct`).
    pub(super) mod routing {
        use super::*;

        const NAMES: &[&str] = &["routed", "direct"];

        /// The name of a routing mode as the file writes it.
        pub(in crate::config) fn name(r: Routing) -> &'static str {
            match r {
                Routing::Routed => "routed",
                Routing::Direct => "direct",
            }
        }

        pub(in crate::config) fn serialize<S: Serializer>(
            r: &Routing,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.serialize_str(name(*r))
        }

        pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Routing, D::Error> {
            let s = String::deserialize(d)?;
            match s.as_str() {
                "routed" => Ok(Routing::Routed),
                "direct" => Ok(Routing::Direct),
                other => Err(de::Error::unknown_variant(other, NAMES)),
            }
        }
    }

    const DURATION_HINT: &str = "a quoted number with a unit, e.g. \"250ms\", \"5s\", \"2m\"";

    /// What serde's `expected` text (a type's visitor) means in a config file.
    fn plain(expected: &str) -> String {
        match expected {
            // Every count in the file (capacities, max_live_servers) must be at least 1.
            "usize" | "u64" | "u32" => "a whole number, at least 1".into(),
            "a duration" => DURATION_HINT.into(),
            "path string" => "a quoted directory path, e.g. \"./data\"".into(),
            "a string" | "string" => "a quoted string".into(),
            e if e.starts_with("enum ") => "a quoted name".into(),
            other => other.into(),
        }
    }

    /// The noun of [`plain`] for "... is not {noun}".
    fn noun(expected: &str) -> String {
        match expected {
            "usize" | "u64" | "u32" => "a whole number".into(),
            "a duration" => "a duration".into(),
            "path string" => "a path".into(),
            e if e.starts_with("a whole number") => "a whole number".into(),
            e if e.starts_with("enum ") => "a name".into(),
            e => plain(e),
        }
    }

    /// The TOML value at a dotted path, shortened for messages.
    fn shown(root: &toml::Table, path: &[String]) -> String {
        let mut v: Option<&toml::Value> = None;
        let mut table = Some(root);
        for key in path {
            v = table.and_then(|t| t.get(key));
            table = v.and_then(|v| v.as_table());
        }
        let s = v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
        if s.chars().count() > 60 {
            format!("{}...", s.chars().take(60).collect::<String>())
        } else {
            s
        }
    }

    fn invalid(path: &[String], message: String) -> ConfigError {
        ConfigError::Invalid {
            path: None,
            key: path.join("."),
            message,
        }
    }

    /// Deserializes the (overlaid) table; an error names its dotted key.
    pub(super) fn deserialize(table: &toml::Table) -> Result<Config, ConfigError> {
        let value = serde_value::to_value(table).map_err(|e| ConfigError::Parse {
            path: None,
            message: e.to_string(),
        })?;
        let config: Config =
            serde_path_to_error::deserialize(ValueDeserializer::<DeserializerError>::new(value))
                .map_err(|e| {
                    let path: Vec<String> = e
                        .path()
                        .iter()
                        .filter_map(|s| match s {
                            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                            _ => None,
                        })
                        .collect();
                    explain(table, path, e.into_inner())
                })?;
        check_ignored_parameters(table, &config)?;
        Ok(config)
    }

    /// The `[mailbox.<role>]` table, if `path` is inside one.
    fn policy_section<'a>(
        root: &'a toml::Table,
        path: &[String],
    ) -> Option<(&'a str, &'a toml::Table)> {
        match path {
            [m, role, ..] if m == "mailbox" => {
                let t = root.get("mailbox")?.get(role)?.as_table()?;
                let name = t.get("policy").and_then(|p| p.as_str()).unwrap_or("?");
                Some((name, t))
            }
            _ => None,
        }
    }

    /// Deserializes a [`Policy`] from `policy = <name>` plus the given entries.
    fn probe(name: &str, entries: &[(&String, &toml::Value)]) -> Option<DeserializerError> {
        let mut t = toml::Table::new();
        t.insert("policy".into(), toml::Value::String(name.into()));
        for (k, v) in entries {
            t.insert((*k).clone(), (*v).clone());
        }
        let value = serde_value::to_value(&t).ok()?;
        Policy::deserialize(ValueDeserializer::<DeserializerError>::new(value)).err()
    }

    /// Turns a serde error at `path` into one naming the dotted key, the value and
    /// what is allowed.
    ///
    /// A policy is an internally tagged enum, which serde reads through a buffer, so
    /// an error about one of its parameters comes without the parameter's key: the
    /// key is found by reading the policy with one parameter at a time.
    fn explain(root: &toml::Table, mut path: Vec<String>, err: DeserializerError) -> ConfigError {
        // The path of an unknown key ends with the key itself, or (inside a policy) not.
        if let DeserializerError::UnknownField(field, _) = &err {
            if path.last() == Some(field) {
                path.pop();
            }
        }
        let section = policy_section(root, &path);
        if let (Some((name, table)), 2) = (section, path.len()) {
            let culprit = match &err {
                DeserializerError::InvalidType(..)
                | DeserializerError::InvalidValue(..)
                | DeserializerError::Custom(_) => table.iter().find(|(k, v)| {
                    *k != "policy"
                        && !matches!(
                            probe(name, &[(k, v)]),
                            None | Some(DeserializerError::MissingField(_))
                        )
                }),
                _ => None,
            };
            if let Some((k, _)) = culprit {
                path.push(k.clone());
            }
        }
        match err {
            DeserializerError::UnknownField(field, allowed) => {
                let mut allowed: Vec<&str> = allowed.to_vec();
                let context = match (path.as_slice(), section) {
                    ([], _) => " at the top level".to_string(),
                    ([m], _) if m == "mailbox" => " in [mailbox]: it names no mailbox role".into(),
                    (_, Some((name, _))) => {
                        allowed.insert(0, "policy");
                        if allowed.len() == 1 {
                            format!(" for policy \"{name}\", which takes no parameters")
                        } else {
                            format!(" for policy \"{name}\"")
                        }
                    }
                    (p, _) => format!(" in [{}]", p.join(".")),
                };
                path.push(field);
                let allowed = if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                };
                invalid(
                    &path,
                    format!("unknown key{context}; allowed keys: {allowed}"),
                )
            }
            DeserializerError::UnknownVariant(value, allowed) => {
                if section.is_some() && path.len() == 2 {
                    path.push("policy".into());
                }
                invalid(
                    &path,
                    format!(
                        "\"{}\" is not allowed; expected one of {} (a quoted string)",
                        value.chars().take(40).collect::<String>(),
                        allowed.join(", ")
                    ),
                )
            }
            DeserializerError::MissingField(field) => {
                let what = match section {
                    Some(_) if field == "policy" => match probe("", &[]) {
                        Some(DeserializerError::UnknownVariant(_, names)) => {
                            format!("a policy: one of {}", names.join(", "))
                        }
                        _ => "a policy".into(),
                    },
                    Some((name, _)) => {
                        let key = field.to_string();
                        match probe(name, &[(&key, &toml::Value::Boolean(true))]) {
                            Some(DeserializerError::InvalidType(_, e)) => {
                                let (noun, plain) = (noun(&e), plain(&e));
                                if plain.starts_with(&noun) {
                                    plain
                                } else {
                                    format!("{noun}: {plain}")
                                }
                            }
                            _ => "a value".into(),
                        }
                    }
                    None => "a value".into(),
                };
                path.push(field.into());
                invalid(&path, format!("missing; expected {what}"))
            }
            DeserializerError::InvalidType(unexpected, expected) => {
                let value = shown(root, &path);
                let message = match unexpected {
                    _ if expected.starts_with("struct ") => {
                        format!(
                            "{value} is not a section; expected a [{}] table",
                            path.join(".")
                        )
                    }
                    _ => format!(
                        "{value} is not {}; expected {}",
                        noun(&expected),
                        plain(&expected)
                    ),
                };
                invalid(&path, message)
            }
            DeserializerError::InvalidValue(unexpected, expected) => {
                let value = shown(root, &path);
                let why = match (&unexpected, expected.as_str()) {
                    (Unexpected::Signed(_) | Unexpected::Unsigned(_), _) => {
                        "is out of range".to_string()
                    }
                    (_, e) => format!("is not {}", noun(e)),
                };
                invalid(
                    &path,
                    format!("{value} {why}; expected {}", plain(&expected)),
                )
            }
            other => invalid(&path, other.to_string()),
        }
    }

    /// serde skips every key beside the tag of a policy without parameters
    /// (`unbounded`), even with `deny_unknown_fields`: a key of a role's table
    /// that the policy read does not write back was ignored, and is refused here.
    fn check_ignored_parameters(root: &toml::Table, config: &Config) -> Result<(), ConfigError> {
        let Some(mailbox) = root.get("mailbox").and_then(|m| m.as_table()) else {
            return Ok(());
        };
        for (role, policy) in config.policies() {
            let Some(table) = mailbox.get(role).and_then(|t| t.as_table()) else {
                continue;
            };
            let written = toml::Value::try_from(policy).ok();
            let written = written.as_ref().and_then(|w| w.as_table());
            for key in table.keys() {
                if written.is_some_and(|w| !w.contains_key(key)) && key != "policy" {
                    let allowed: Vec<&str> = written
                        .map(|w| w.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let takes = if allowed.len() <= 1 {
                        ", which takes no parameters"
                    } else {
                        ""
                    };
                    return Err(ConfigError::Invalid {
                        path: None,
                        key: format!("mailbox.{role}.{key}"),
                        message: format!(
                            "unknown key for policy \"{}\"{takes}; allowed keys: {}",
                            policy.name(),
                            allowed.join(", ")
                        ),
                    });
                }
            }
        }
        Ok(())
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
