//! Idempotency: the key a client sends with a write so it can repeat the write
//! safely, and the receipt a list keeps of each keyed write it applied.
//!
//! A receipt lives in the list's own state ([`super::TodoList`]) and goes to storage in
//! the same change, and so the same transaction, as the write's effect: after a
//! crash, a restart or a failover the key and its effect are both stored or both
//! absent. A repeat of the write with the same key finds the receipt and gets the
//! first result back instead of applying the write again; the same key with
//! another request is refused. Receipts are kept for a window (default 24 h, see
//! [`super::Settings::idempotency_window`]) and dropped with the list's next keyed
//! write after it.
//!
//! Memory: a receipt holds the key (at most 255 bytes), the SHA-256 fingerprint of
//! the request (64 hex digits), the resulting entry and a timestamp, in two persistent maps (by
//! key, by time): by its fields and two tree nodes, about 0.5 KB plus the title and
//! twice the key per keyed write in the window (an estimate, not a measurement).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::server::Write;
use super::Entry;

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// A client's idempotency key: 1 to 255 visible ASCII characters (`!` to `~`).
/// Keys are per list: the same key on two lists names two writes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

/// Why a text is not an idempotency key (the message says what is wrong).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidKey(String);

impl IdempotencyKey {
    /// Checks `key`.
    ///
    /// # Errors
    ///
    /// [`InvalidKey`] naming the rule it breaks: empty, longer than
    /// [`MAX_KEY_BYTES`], or a character outside `!`..=`~` (and where).
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidKey> {
        let key = key.into();
        if key.is_empty() {
            return Err(InvalidKey(
                "the key is empty; it must have 1 to 255 characters".into(),
            ));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(InvalidKey(format!(
                "the key has {} bytes; at most {MAX_KEY_BYTES} are allowed",
                key.len()
            )));
        }
        if let Some((i, c)) = key.char_indices().find(|(_, c)| !matches!(c, '!'..='~')) {
            return Err(InvalidKey(format!(
                "the key has a character (U+{:04X}) at byte {i} that is not visible ASCII",
                c as u32
            )));
        }
        Ok(IdempotencyKey(key))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = InvalidKey;
    fn try_from(s: String) -> Result<Self, InvalidKey> {
        IdempotencyKey::new(s)
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> String {
        k.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a keyed write did, kept with its list so a repeat gets it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The request's fingerprint ([`fingerprint`]): a repeat must match it.
    pub request: String,
    /// The write's result: the entry added or changed, or the entry deleted.
    pub entry: Entry,
    /// When it was applied, in milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// The fingerprint of a write: hex SHA-256 of its canonical form (operation,
/// entry id, and every field it sets), so two requests match exactly when they
/// ask for the same effect. The ack mode is not part of it: repeating a write
/// with a stronger ack asks for the same effect.
pub fn fingerprint(write: &Write) -> String {
    let canonical = match write {
        Write::Add { date, title } => {
            serde_json::json!({ "op": "add", "date": date, "title": title })
        }
        Write::Update { id, update } => serde_json::json!({
            "op": "update", "id": id, "date": update.date, "title": update.title,
            "done": update.done,
        }),
        Write::Delete { id } => serde_json::json!({ "op": "delete", "id": id }),
    };
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds since the Unix epoch now (the receipts' clock).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EntryUpdate;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::new("a").is_ok());
        assert!(IdempotencyKey::new("8e03978e-40d5-43e8-bc93-6894a57f9324").is_ok());
        assert!(IdempotencyKey::new("x".repeat(255)).is_ok());
        assert!(IdempotencyKey::new("").is_err());
        assert!(IdempotencyKey::new("x".repeat(256)).is_err());
        let e = IdempotencyKey::new("a b").unwrap_err();
        assert!(e.to_string().contains("at byte 1"), "{e}");
        assert!(IdempotencyKey::new("é").is_err());
    }

    #[test]
    fn fingerprints_match_exactly_when_the_effect_asked_for_is_the_same() {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let add = |t: &str| Write::Add {
            date: d,
            title: t.into(),
        };
        assert_eq!(fingerprint(&add("a")), fingerprint(&add("a")));
        assert_ne!(fingerprint(&add("a")), fingerprint(&add("b")));
        assert_ne!(
            fingerprint(&Write::Delete { id: 1 }),
            fingerprint(&Write::Delete { id: 2 })
        );
        let done = Write::Update {
            id: 1,
            update: EntryUpdate {
                done: Some(true),
                ..EntryUpdate::default()
            },
        };
        let not_done = Write::Update {
            id: 1,
            update: EntryUpdate {
                done: Some(false),
                ..EntryUpdate::default()
            },
        };
        assert_ne!(fingerprint(&done), fingerprint(&not_done));
        assert_eq!(fingerprint(&done).len(), 64);
    }
}
