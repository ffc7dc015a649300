//! Reading a config table into [`Config`]: the overlay on the built-in table, and
//! serde's errors (with the dotted key from `serde_path_to_error`) in plain words.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};
use serde_value::{DeserializerError, Unexpected, ValueDeserializer};

use super::{Config, ConfigError, Routing, MAX_WORKERS};
use sluicegate::mailbox::Policy;

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
