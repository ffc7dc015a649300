//! Published list states: every live list server keeps its latest applied list in
//! a cell here, which readers load atomically instead of sending the server a
//! message and waiting in its mailbox.
//!
//! The server publishes after loading its list in `init` and after every write it
//! applies, before it answers that write; so a read that loads the cell after a
//! write was acknowledged sees it (reads are linearizable per list and read your
//! writes). A server's cell goes when the server does (idle stop, eviction, crash,
//! giving up): a list with no cell is read through its server, which loads it as
//! before. Cells are keyed by the server's epoch, so a stopping server can never
//! remove the cell of the server that replaced it.
//!
//! Each published version is a [`Snapshot`]: the list, and its entries as JSON once
//! a reader has asked for them, made by the first such reader and shared by the
//! rest until the next publish replaces the snapshot. The JSON belongs to its
//! version, so it can never be staler than the list beside it; it costs memory
//! (about the size of the list's entries) for lists that are read, until their
//! next write or their server's stop.
//!
//! Reads through a cell are not messages, so they do not keep a server from its
//! idle stop: a list only read is loaded again once per `system.idle_timeout`.
//! Writes with ack `none` are applied in order but not waited for, so a read right
//! after one may not see it yet.

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use bytes::Bytes;
use dashmap::DashMap;

use super::{EntryQuery, JsonPage, ListName, TodoList};

/// The published lists of one to-do system (cheap to share).
#[derive(Default)]
pub struct Published {
    lists: DashMap<ListName, Arc<Cell>>,
}

/// One server's cell: its epoch and the list it last published.
struct Cell {
    epoch: u64,
    list: ArcSwap<Snapshot>,
}

/// One published version of a list.
pub struct Snapshot {
    list: TodoList,
    /// The JSON array of every entry, made on first use; boxed, so a version
    /// never read as a whole (every idle list's, until then) carries a pointer
    /// where `Bytes` takes four.
    entries_json: OnceLock<Box<Bytes>>,
}

impl Snapshot {
    fn new(list: TodoList) -> Self {
        Snapshot {
            list,
            entries_json: OnceLock::new(),
        }
    }

    /// The list as published.
    pub fn list(&self) -> &TodoList {
        &self.list
    }

    /// Every entry of this version as a JSON array ([`TodoList::all_entries_json`]),
    /// serialized by the first caller and shared (a reference count) after that.
    pub fn entries_json(&self) -> Bytes {
        Bytes::clone(
            self.entries_json
                .get_or_init(|| Box::new(self.list.all_entries_json())),
        )
    }

    /// The page `q` asks for as JSON, or `None` when the list does not exist: the
    /// same answer as `JsonPage::from(list.page(q))`. A query of the first `limit`
    /// entries without a filter, when the whole list fits, is answered with
    /// [`Snapshot::entries_json`], without cloning or serializing an entry.
    pub fn page_json(&self, q: &EntryQuery) -> Option<JsonPage> {
        if !self.list.exists() {
            return None;
        }
        if q.is_unfiltered() && self.list.len() <= q.limit {
            return Some(JsonPage {
                json: self.entries_json(),
                more: false,
                last_id: self.list.last_id(),
            });
        }
        Some(JsonPage::from(self.list.query(q)))
    }
}

impl Published {
    /// The latest applied version of `name`'s list from its live server; `None`
    /// when no server of the list is live (or it has not loaded its list yet).
    pub fn load(&self, name: &ListName) -> Option<Arc<Snapshot>> {
        let cell = self.lists.get(name)?.value().clone();
        Some(cell.list.load_full())
    }

    /// How many lists are published (live servers that have loaded their list).
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// Whether no list is published.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

/// A list server's handle on its cell; dropping it withdraws the cell (unless a
/// newer server of the same list has replaced it).
pub struct Publisher {
    to: Arc<Published>,
    name: ListName,
    epoch: u64,
    cell: Option<Arc<Cell>>,
}

impl Publisher {
    /// A publisher for the server of `name` with this `epoch` (unique per server
    /// instance); nothing is published until [`Publisher::publish`].
    pub fn new(to: Arc<Published>, name: ListName, epoch: u64) -> Self {
        Publisher {
            to,
            name,
            epoch,
            cell: None,
        }
    }

    /// Makes `list` what readers of this list load from now on (an O(1) snapshot).
    pub fn publish(&mut self, list: &TodoList) {
        let snapshot = Arc::new(Snapshot::new(list.clone()));
        match &self.cell {
            Some(cell) => cell.list.store(snapshot),
            None => {
                let cell = Arc::new(Cell {
                    epoch: self.epoch,
                    list: ArcSwap::new(snapshot),
                });
                self.to.lists.insert(self.name.clone(), cell.clone());
                self.cell = Some(cell);
            }
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.cell.is_some() {
            let epoch = self.epoch;
            self.to
                .lists
                .remove_if(&self.name, |_, cell| cell.epoch == epoch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn name(s: &str) -> ListName {
        ListName::new(s).unwrap()
    }

    /// How many entries readers of `list` load.
    fn entries_of(published: &Published, list: &str) -> usize {
        published.load(&name(list)).unwrap().list().len()
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()
    }

    #[test]
    fn nothing_is_published_before_the_first_publish() {
        let published = Arc::new(Published::default());
        let _p = Publisher::new(published.clone(), name("a"), 1);
        assert!(published.load(&name("a")).is_none());
    }

    #[test]
    fn a_published_list_is_what_readers_load_until_the_next_publish() {
        let published = Arc::new(Published::default());
        let mut p = Publisher::new(published.clone(), name("a"), 1);
        let mut list = TodoList::new();
        list.add_entry(date(), "one").unwrap();
        p.publish(&list);
        list.add_entry(date(), "two").unwrap();
        assert_eq!(entries_of(&published, "a"), 1);
        p.publish(&list);
        assert_eq!(entries_of(&published, "a"), 2);
    }

    #[test]
    fn a_json_page_is_the_json_of_the_page_whether_shared_or_made() {
        let published = Arc::new(Published::default());
        let mut p = Publisher::new(published.clone(), name("a"), 1);
        p.publish(&TodoList::new());
        let q = |date, after, limit| EntryQuery {
            date,
            after,
            limit,
            ..EntryQuery::default()
        };
        // A list never written does not exist: no page, as `TodoList::page` says.
        assert_eq!(
            published
                .load(&name("a"))
                .unwrap()
                .page_json(&q(None, 0, 9)),
            None
        );
        let mut list = TodoList::new();
        let other = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        for i in 0..5 {
            let day = if i % 2 == 0 { date() } else { other };
            list.add_entry(day, &format!("t\"{i}")).unwrap();
        }
        list.delete_entry(2).unwrap();
        p.publish(&list);
        let snapshot = published.load(&name("a")).unwrap();
        for query in [
            q(None, 0, 1000),
            q(None, 0, 4),
            q(None, 0, 3),
            q(None, 1, 1000),
            q(Some(date()), 0, 1000),
            q(Some(other), 0, 1),
        ] {
            let expected = JsonPage::from(list.page(&query).unwrap());
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&expected.json).unwrap(),
                serde_json::to_value(list.query(&query).entries).unwrap()
            );
            assert_eq!(snapshot.page_json(&query), Some(expected), "{query:?}");
        }
    }

    #[test]
    fn a_versions_json_is_made_once_and_a_new_version_has_its_own() {
        let published = Arc::new(Published::default());
        let mut p = Publisher::new(published.clone(), name("a"), 1);
        let mut list = TodoList::new();
        list.add_entry(date(), "one").unwrap();
        p.publish(&list);
        let first = published.load(&name("a")).unwrap().entries_json();
        let again = published.load(&name("a")).unwrap().entries_json();
        assert_eq!(
            first.as_ptr(),
            again.as_ptr(),
            "shared, not serialized again"
        );
        list.add_entry(date(), "two").unwrap();
        p.publish(&list);
        let second = published.load(&name("a")).unwrap().entries_json();
        assert_eq!(second, list.all_entries_json());
        assert_eq!(
            serde_json::from_slice::<Vec<crate::domain::Entry>>(&second).unwrap(),
            list.all_entries()
        );
    }

    #[test]
    fn dropping_the_publisher_withdraws_its_cell() {
        let published = Arc::new(Published::default());
        let mut p = Publisher::new(published.clone(), name("a"), 1);
        p.publish(&TodoList::new());
        drop(p);
        assert!(published.load(&name("a")).is_none());
        assert!(published.is_empty());
    }

    #[test]
    fn an_old_server_stopping_late_leaves_its_successors_cell() {
        let published = Arc::new(Published::default());
        let mut old = Publisher::new(published.clone(), name("a"), 1);
        old.publish(&TodoList::new());
        let mut new = Publisher::new(published.clone(), name("a"), 2);
        let mut list = TodoList::new();
        list.add_entry(date(), "new").unwrap();
        new.publish(&list);
        drop(old);
        assert_eq!(entries_of(&published, "a"), 1);
        assert_eq!(published.len(), 1);
    }
}
