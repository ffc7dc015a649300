//! What the to-do system needs to be told: when a write is acknowledged
//! ([`AckMode`]), timeouts, limits, the database pool's shape and one mailbox
//! policy per role ([`Policies`]), all in [`Settings`]. The todo layer's own types:
//! `crate::config` reads them from a file, and code can build them directly.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use sluicegate::mailbox::Policy;
use sluicegate::runtime::Routing;

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

/// A string that names no ack mode; the message quotes (at most 40 characters
/// of) it and lists the ones there are.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not an ack mode; expected one of none, applied, durable")]
pub struct InvalidAckMode(String);

impl FromStr for AckMode {
    type Err = InvalidAckMode;
    fn from_str(s: &str) -> Result<Self, InvalidAckMode> {
        match s {
            "none" => Ok(AckMode::None),
            "applied" => Ok(AckMode::Applied),
            "durable" => Ok(AckMode::Durable),
            other => Err(InvalidAckMode(other.chars().take(40).collect())),
        }
    }
}

/// One mailbox policy per role of the to-do system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policies {
    /// Each list server's mailbox.
    pub todo_server: Policy,
    /// The database router's mailbox (used when routing is [`Routing::Routed`]).
    pub database: Policy,
    /// Each database worker's mailbox.
    pub database_worker: Policy,
}

impl Policies {
    /// Checks every policy (see [`Policy::validate`]).
    pub fn validate(&self) -> Result<(), sluicegate::mailbox::InvalidPolicy> {
        for p in [&self.todo_server, &self.database, &self.database_worker] {
            p.validate()?;
        }
        Ok(())
    }
}

/// Everything [`TodoSystem`](super::TodoSystem) is started with besides its storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Ack used when a request names none.
    pub default_ack: AckMode,
    /// End-to-end timeout of every call.
    pub call_timeout: Duration,
    /// A list server with no traffic for this long stops.
    pub idle_timeout: Duration,
    /// Cap on live list servers (`None`: no cap).
    pub max_live_servers: Option<usize>,
    /// How long a list keeps the receipt of a keyed write (see [`super::receipt`]).
    pub idempotency_window: Duration,
    /// Number of database workers.
    pub database_workers: usize,
    /// How database requests reach a worker.
    pub routing: Routing,
    /// One mailbox policy per role.
    pub policies: Policies,
}
