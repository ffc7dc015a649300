//! A list's entries by id: a persistent (structurally shared) map whose clone is
//! O(1), shaped for how a list grows. Ids are handed out in increasing order, so
//! almost every write adds or changes one of the newest entries: those live in a
//! small chunk of their own (the tail, [`CHUNK`] ids wide) outside the tree, and
//! a write there copies that chunk (a few dozen pointers) instead of a tree path
//! of two dozen nodes. A full tail is sealed into a persistent red-black tree of
//! chunks by number (id / [`CHUNK`]), one tree insert per [`CHUNK`] ids; a write
//! to an older entry copies its chunk and that tree path.

use std::sync::Arc;

use rpds::RedBlackTreeMapSync;

use super::list::Entry;

/// Ids per chunk: entry `id` lives in chunk `id / CHUNK`.
pub(super) const CHUNK: u64 = 32;

/// One chunk: its number and its entries, in id order (never empty in the tree).
#[derive(Clone, Debug)]
struct Chunk {
    no: u64,
    entries: Vec<Arc<Entry>>,
}

impl Chunk {
    /// Where `id` is (`Ok`) or would go (`Err`) in this chunk.
    fn find(&self, id: u64) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&id, |e| e.id)
    }

    /// A copy of this chunk with `entry` put in (replacing the entry of its id).
    fn with(&self, entry: Arc<Entry>) -> Chunk {
        let mut entries = Vec::with_capacity(self.entries.len() + 1);
        match self.find(entry.id) {
            Ok(i) => {
                entries.extend_from_slice(&self.entries[..i]);
                entries.push(entry);
                entries.extend_from_slice(&self.entries[i + 1..]);
            }
            Err(i) => {
                entries.extend_from_slice(&self.entries[..i]);
                entries.push(entry);
                entries.extend_from_slice(&self.entries[i..]);
            }
        }
        Chunk {
            no: self.no,
            entries,
        }
    }

    /// A copy of this chunk without the entry at `i`.
    fn without(&self, i: usize) -> Chunk {
        let mut entries = Vec::with_capacity(self.entries.len() - 1);
        entries.extend_from_slice(&self.entries[..i]);
        entries.extend_from_slice(&self.entries[i + 1..]);
        Chunk {
            no: self.no,
            entries,
        }
    }
}

/// Entries by id. Every chunk in `sealed` has a number below the tail's.
#[derive(Clone)]
pub(super) struct Entries {
    /// Older chunks by number, none empty.
    sealed: RedBlackTreeMapSync<u64, Arc<Chunk>>,
    /// The newest chunk (may be empty after deletes); `None` before the first entry.
    tail: Option<Arc<Chunk>>,
    /// How many entries.
    len: usize,
}

impl Entries {
    /// No entries.
    pub(super) fn new() -> Self {
        Entries {
            sealed: RedBlackTreeMapSync::new_sync(),
            tail: None,
            len: 0,
        }
    }

    /// Entries from a sorted run of distinct ids (the caller checks both).
    pub(super) fn from_sorted(entries: impl IntoIterator<Item = Arc<Entry>>) -> Self {
        let mut out = Entries::new();
        let mut current: Option<Chunk> = None;
        for e in entries {
            let no = e.id / CHUNK;
            match &mut current {
                Some(c) if c.no == no => c.entries.push(e),
                _ => {
                    if let Some(done) = current.take() {
                        out.sealed.insert_mut(done.no, Arc::new(done));
                    }
                    current = Some(Chunk {
                        no,
                        entries: vec![e],
                    });
                }
            }
            out.len += 1;
        }
        out.tail = current.map(Arc::new);
        out
    }

    /// The chunk `no`, if it holds entries (or is the tail).
    fn chunk(&self, no: u64) -> Option<&Arc<Chunk>> {
        match &self.tail {
            Some(t) if t.no == no => Some(t),
            Some(t) if no > t.no => None,
            _ => self.sealed.get(&no),
        }
    }

    /// One entry.
    pub(super) fn get(&self, id: u64) -> Option<&Arc<Entry>> {
        let chunk = self.chunk(id / CHUNK)?;
        chunk.find(id).ok().map(|i| &chunk.entries[i])
    }

    /// Puts `entry` in (replacing the entry of its id).
    pub(super) fn insert(&mut self, entry: Arc<Entry>) {
        let no = entry.id / CHUNK;
        let had = self.get(entry.id).is_some();
        match &self.tail {
            Some(t) if t.no == no => self.tail = Some(Arc::new(t.with(entry))),
            Some(t) if t.no > no => {
                let chunk = match self.sealed.get(&no) {
                    Some(c) => c.with(entry),
                    None => Chunk {
                        no,
                        entries: vec![entry],
                    },
                };
                self.sealed.insert_mut(no, Arc::new(chunk));
            }
            _ => {
                // A newer chunk: the tail (unless empty) is sealed as it is.
                if let Some(old) = self.tail.take().filter(|t| !t.entries.is_empty()) {
                    self.sealed.insert_mut(old.no, old);
                }
                self.tail = Some(Arc::new(Chunk {
                    no,
                    entries: vec![entry],
                }));
            }
        }
        if !had {
            self.len += 1;
        }
    }

    /// Takes the entry `id` out; whether it was there.
    pub(super) fn remove(&mut self, id: u64) -> bool {
        let no = id / CHUNK;
        let Some(chunk) = self.chunk(no) else {
            return false;
        };
        let Ok(i) = chunk.find(id) else {
            return false;
        };
        let rest = chunk.without(i);
        if self.tail.as_ref().is_some_and(|t| t.no == no) {
            self.tail = Some(Arc::new(rest));
        } else if rest.entries.is_empty() {
            self.sealed.remove_mut(&no);
        } else {
            self.sealed.insert_mut(no, Arc::new(rest));
        }
        self.len -= 1;
        true
    }

    /// The entries with ids from `start` on, in id order.
    pub(super) fn from(&self, start: u64) -> impl Iterator<Item = &Arc<Entry>> {
        self.sealed
            .range(start / CHUNK..)
            .map(|(_, c)| c)
            .chain(self.tail.iter())
            .flat_map(|c| c.entries.iter())
            .skip_while(move |e| e.id < start)
    }

    /// Every entry, in id order.
    pub(super) fn values(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.from(0)
    }

    /// The entry with the highest id.
    pub(super) fn last(&self) -> Option<&Arc<Entry>> {
        self.tail
            .as_ref()
            .and_then(|t| t.entries.last())
            .or_else(|| self.sealed.last().and_then(|(_, c)| c.entries.last()))
    }

    /// How many entries.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

/// Equal when they hold equal entries, however they are chunked.
impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.values().eq(other.values())
    }
}

impl Eq for Entries {}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.values().map(|e| (e.id, &**e)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn entry(id: u64, tag: u8) -> Arc<Entry> {
        Arc::new(Entry {
            id,
            date: chrono::NaiveDate::from_ymd_opt(2026, 12, 5).unwrap(),
            title: format!("t{tag}"),
            done: false,
        })
    }

    /// Checks every read of `e` against the model `m`.
    fn same(e: &Entries, m: &BTreeMap<u64, Arc<Entry>>) {
        assert_eq!(e.len(), m.len());
        assert!(e.values().eq(m.values()));
        assert_eq!(e.last(), m.values().next_back());
        for start in [0, 1, 31, 32, 33, 64, 100, 1000] {
            assert!(
                e.from(start).eq(m.range(start..).map(|(_, v)| v)),
                "from {start}"
            );
        }
        for id in 0..300 {
            assert_eq!(e.get(id), m.get(&id), "id {id}");
        }
        let rebuilt = Entries::from_sorted(m.values().cloned());
        assert_eq!(&rebuilt, e);
    }

    proptest! {
        /// Any run of inserts (mostly new high ids, as a list adds) and removes
        /// reads as a sorted map would, and a clone taken along the way keeps
        /// what it held.
        #[test]
        fn entries_read_as_a_sorted_map_and_clones_keep_their_version(
            ops in proptest::collection::vec((0u8..4, 0u64..300, any::<u8>()), 0..400),
        ) {
            let (mut e, mut m) = (Entries::new(), BTreeMap::new());
            let mut next = 1;
            let mut snapshots = Vec::new();
            for (i, (op, id, tag)) in ops.into_iter().enumerate() {
                match op {
                    0 | 1 => {
                        e.insert(entry(next, tag));
                        m.insert(next, entry(next, tag));
                        next += 1;
                    }
                    2 => {
                        e.insert(entry(id, tag));
                        m.insert(id, entry(id, tag));
                    }
                    _ => prop_assert_eq!(e.remove(id), m.remove(&id).is_some()),
                }
                if i % 7 == 0 {
                    snapshots.push((e.clone(), m.clone()));
                }
            }
            same(&e, &m);
            for (e, m) in &snapshots {
                same(e, m);
            }
        }
    }
}
