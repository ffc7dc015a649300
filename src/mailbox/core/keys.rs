//! The coalesce index: each key queued under `coalesce` and the sequence number of
//! the slot that carries it. A `HashMap` is 48 bytes even empty; this index is one
//! pointer until the first keyed message is queued under `coalesce`, so a mailbox
//! that never coalesces (most actors' mailboxes) pays 8 bytes for it. Once made, the
//! map stays, with its capacity, as a `HashMap` would.

use std::collections::HashMap;

use super::Key;

/// Key -> sequence number of the queued slot with that key.
#[derive(Default)]
#[allow(clippy::box_collection)] // the point: one pointer, not 48 bytes, until used
pub(super) struct KeyIndex(Option<Box<HashMap<Key, u64>>>);

impl KeyIndex {
    pub(super) fn get(&self, key: &Key) -> Option<&u64> {
        self.0.as_ref()?.get(key)
    }

    pub(super) fn contains_key(&self, key: &Key) -> bool {
        self.0.as_ref().is_some_and(|m| m.contains_key(key))
    }

    pub(super) fn insert(&mut self, key: Key, seq: u64) {
        self.0.get_or_insert_with(Box::default).insert(key, seq);
    }

    pub(super) fn remove(&mut self, key: &Key) {
        if let Some(m) = &mut self.0 {
            m.remove(key);
        }
    }

    /// For the invariants' check (debug builds).
    #[cfg(debug_assertions)]
    pub(super) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|m| m.is_empty())
    }

    pub(super) fn clear(&mut self) {
        if let Some(m) = &mut self.0 {
            m.clear();
        }
    }

    /// For the invariants' check (debug builds).
    #[cfg(debug_assertions)]
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Key, &u64)> {
        self.0.iter().flat_map(|m| m.iter())
    }
}
