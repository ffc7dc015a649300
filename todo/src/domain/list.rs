//! The pure to-do list: entries with id, date and title; no I/O, no concurrency.
//! Entries live in a persistent map, so a clone (a snapshot for storage) is O(1).
//! The list also remembers, for a window, the receipts of the keyed writes it
//! applied (see [`super::receipt`]), so they are stored and loaded with it.

use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::sync::Arc;

use rpds::{RedBlackTreeMapSync, RedBlackTreeSetSync};

use super::entries::Entries;
use serde::{Deserialize, Serialize};

use super::receipt::{IdempotencyKey, Receipt};

/// Most characters a title may have.
pub const MAX_TITLE_CHARS: usize = 1024;

/// One to-do entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Assigned by the list: starts at 1, never reused.
    pub id: u64,
    /// The day it is due (`YYYY-MM-DD` in JSON).
    pub date: NaiveDate,
    /// What to do.
    pub title: String,
    /// Whether it is done; `false` for a new entry, and for data stored before
    /// entries had the flag.
    #[serde(default)]
    pub done: bool,
}

/// A change to an entry: what is `Some` changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryUpdate {
    /// New date.
    pub date: Option<NaiveDate>,
    /// New title.
    pub title: Option<String>,
    /// Done or not.
    pub done: Option<bool>,
}

impl EntryUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.date.is_none() && self.title.is_none() && self.done.is_none()
    }
}

/// Why a list operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TodoError {
    /// No entry with this id.
    NotFound(u64),
    /// The title breaks a rule (the message says which).
    InvalidTitle(String),
    /// The date is not a real `YYYY-MM-DD` date (the message names the value).
    InvalidDate(String),
}

impl std::fmt::Display for TodoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TodoError::NotFound(id) => write!(f, "no entry with id {id}"),
            TodoError::InvalidTitle(why) | TodoError::InvalidDate(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for TodoError {}

/// Checks a title: 1 to 1024 characters, no control characters.
pub fn validate_title(title: &str) -> Result<(), TodoError> {
    let chars = title.chars().count();
    if chars == 0 {
        return Err(TodoError::InvalidTitle(
            "title is empty; it must have 1 to 1024 characters".into(),
        ));
    }
    if chars > MAX_TITLE_CHARS {
        return Err(TodoError::InvalidTitle(format!(
            "title has {chars} characters; at most {MAX_TITLE_CHARS} are allowed"
        )));
    }
    if let Some((i, c)) = title.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(TodoError::InvalidTitle(format!(
            "title has a control character (U+{:04X}) at position {i}",
            c as u32
        )));
    }
    Ok(())
}

/// Parses a strict ISO 8601 calendar date `YYYY-MM-DD` that exists.
pub fn parse_date(s: &str) -> Result<NaiveDate, TodoError> {
    let shown = || s.chars().take(40).collect::<String>();
    let well_formed = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !well_formed {
        return Err(TodoError::InvalidDate(format!(
            "\"{}\" is not a date in the form YYYY-MM-DD",
            shown()
        )));
    }
    // Well formed: ten ASCII bytes, digits but for the two dashes.
    let number = |range: std::ops::Range<usize>| {
        s.as_bytes()[range]
            .iter()
            .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'))
    };
    let year = i32::try_from(number(0..4)).unwrap_or(i32::MAX);
    NaiveDate::from_ymd_opt(year, number(5..7), number(8..10)).ok_or_else(|| {
        TodoError::InvalidDate(format!("\"{}\" is not a day of the calendar", shown()))
    })
}

/// Which entries a read wants: filters that combine (all must hold), from the id
/// after `after` on, at most `limit` of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryQuery {
    /// Only this date.
    pub date: Option<NaiveDate>,
    /// From this date, inclusive.
    pub from: Option<NaiveDate>,
    /// To this date, inclusive.
    pub to: Option<NaiveDate>,
    /// Only entries done (`true`) or not done (`false`).
    pub done: Option<bool>,
    /// Only ids above this one.
    pub after: u64,
    /// At most this many (`usize::MAX`: all).
    pub limit: usize,
}

impl EntryQuery {
    /// Every entry (no filter, no limit).
    pub fn all() -> Self {
        EntryQuery {
            limit: usize::MAX,
            ..EntryQuery::default()
        }
    }

    /// Whether the query has no filter and starts at the first entry: it asks for
    /// the first `limit` entries of the list.
    pub fn is_unfiltered(&self) -> bool {
        self.date.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.done.is_none()
            && self.after == 0
    }

    fn admits(&self, e: &Entry) -> bool {
        self.date.is_none_or(|d| e.date == d)
            && self.from.is_none_or(|f| e.date >= f)
            && self.to.is_none_or(|t| e.date <= t)
            && self.done.is_none_or(|d| e.done == d)
    }
}

/// One page of a read: the entries, in id order, and whether more follow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The entries.
    pub entries: Vec<Entry>,
    /// Whether entries past the last one also match (the next page starts after it).
    pub more: bool,
}

/// A page of a read as its JSON answer: the entries as a JSON array (as
/// `serde_json` writes a `Vec<Entry>`), whether more follow, and the last entry's id
/// (where the next page starts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonPage {
    /// The JSON array of the page's entries, in id order.
    pub json: bytes::Bytes,
    /// Whether entries past the last one also match.
    pub more: bool,
    /// The id of the page's last entry; `None` when the page is empty.
    pub last_id: Option<u64>,
}

impl From<Page> for JsonPage {
    fn from(page: Page) -> Self {
        JsonPage {
            json: entries_json(page.entries.iter()),
            more: page.more,
            last_id: page.entries.last().map(|e| e.id),
        }
    }
}

/// `entries` as a JSON array, byte for byte what `serde_json` writes for a
/// `Vec<Entry>` of them.
fn entries_json<'a>(entries: impl Iterator<Item = &'a Entry>) -> bytes::Bytes {
    struct Seq<I>(std::cell::Cell<Option<I>>);
    impl<'a, I: Iterator<Item = &'a Entry>> Serialize for Seq<I> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.take().into_iter().flatten())
        }
    }
    let mut out = Vec::with_capacity(128);
    // Writing plain structs of strings, numbers and dates into a Vec cannot fail.
    serde_json::to_writer(&mut out, &Seq(std::cell::Cell::new(Some(entries))))
        .expect("entries serialize to JSON");
    bytes::Bytes::from(out)
}

/// A to-do list. Ids start at 1 and are never reused, even after a delete.
///
/// Cloning is O(1): entries are held in a persistent (structurally shared) map
/// (the `entries` module), so a write copies a chunk of the newest entries' pointers (or, for
/// an older entry, its chunk and a tree path) and a snapshot handed to storage
/// shares the rest. Each entry is behind an `Arc`, so a copy copies no title.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredList", into = "StoredList")]
pub struct TodoList {
    /// The id the next entry gets.
    next_id: u64,
    /// Entries by id (so id order is iteration order).
    entries: Entries,
    /// Receipts of keyed writes applied within the window; `None` when there is
    /// none (never `Some` of none): most lists have none, and a list and each of
    /// its snapshots then carry a pointer where the two maps take 48 bytes.
    /// Shared between clones until one of them records or expires a receipt.
    receipts: Option<Arc<Receipts>>,
}

/// A list's receipts of keyed writes, by key and by time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Receipts {
    /// By key.
    by_key: RedBlackTreeMapSync<IdempotencyKey, Receipt>,
    /// The same receipts by (time applied, key), oldest first, for expiry.
    by_time: RedBlackTreeSetSync<(i64, IdempotencyKey)>,
}

impl Default for TodoList {
    fn default() -> Self {
        TodoList::new()
    }
}

/// The serialized shape; checked on the way in so a damaged file cannot make ids reused.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredList {
    next_id: u64,
    entries: Vec<Entry>,
    /// Absent in lists stored before receipts existed, and when there is none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    receipts: BTreeMap<IdempotencyKey, Receipt>,
}

impl TryFrom<StoredList> for TodoList {
    type Error = String;

    fn try_from(s: StoredList) -> Result<Self, String> {
        Ok(TodoList::from_parts(s.next_id, s.entries)?.with_receipts(s.receipts))
    }
}

impl From<TodoList> for StoredList {
    fn from(l: TodoList) -> Self {
        StoredList {
            next_id: l.next_id,
            entries: l.entries.values().map(|e| Entry::clone(e)).collect(),
            receipts: l.receipts().map(|(k, r)| (k.clone(), r.clone())).collect(),
        }
    }
}

impl TodoList {
    /// An empty list.
    pub fn new() -> Self {
        TodoList {
            next_id: 1,
            entries: Entries::new(),
            receipts: None,
        }
    }

    /// Rebuilds a stored list, checking it so damaged data cannot make ids reused:
    /// every id is in `1..next_id`, unique, and every title valid.
    pub fn from_parts(
        next_id: u64,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for e in entries {
            if e.id == 0 || e.id >= next_id {
                return Err(format!(
                    "entry id {} is out of range (next_id is {next_id})",
                    e.id
                ));
            }
            validate_title(&e.title).map_err(|err| format!("entry {}: {err}", e.id))?;
            if map.contains_key(&e.id) {
                return Err("duplicate entry id".into());
            }
            map.insert(e.id, Arc::new(e));
        }
        Ok(TodoList {
            next_id: next_id.max(1),
            entries: Entries::from_sorted(map.into_values()),
            ..TodoList::new()
        })
    }

    /// This list with `receipts` recorded (a stored list's, read back).
    pub fn with_receipts(
        mut self,
        receipts: impl IntoIterator<Item = (IdempotencyKey, Receipt)>,
    ) -> Self {
        for (key, receipt) in receipts {
            self.record_receipt(key, receipt);
        }
        self
    }

    /// The receipt of the keyed write `key`, if the list applied one in the window.
    pub fn receipt(&self, key: &IdempotencyKey) -> Option<&Receipt> {
        self.receipts.as_ref()?.by_key.get(key)
    }

    /// Records what the keyed write `key` did (replacing an older receipt of the key).
    pub fn record_receipt(&mut self, key: IdempotencyKey, receipt: Receipt) {
        let receipts = self.receipts.get_or_insert_with(|| {
            Arc::new(Receipts {
                by_key: RedBlackTreeMapSync::new_sync(),
                by_time: RedBlackTreeSetSync::new_sync(),
            })
        });
        let receipts = Arc::make_mut(receipts);
        if let Some(old) = receipts.by_key.get(&key) {
            receipts.by_time.remove_mut(&(old.at_ms, key.clone()));
        }
        receipts.by_time.insert_mut((receipt.at_ms, key.clone()));
        receipts.by_key.insert_mut(key, receipt);
    }

    /// Forgets every receipt applied before `before_ms` (milliseconds since the
    /// Unix epoch); returns their keys, oldest first. O(log n) per receipt dropped.
    pub fn expire_receipts(&mut self, before_ms: i64) -> Vec<IdempotencyKey> {
        let mut gone = Vec::new();
        let Some(shared) = self.receipts.as_mut() else {
            return gone;
        };
        // Nothing to expire: the receipts stay shared with the list's snapshots.
        if shared
            .by_time
            .first()
            .is_none_or(|(at, _)| *at >= before_ms)
        {
            return gone;
        }
        let receipts = Arc::make_mut(shared);
        while let Some((at, key)) = receipts.by_time.first().cloned() {
            if at >= before_ms {
                break;
            }
            receipts.by_time.remove_mut(&(at, key.clone()));
            receipts.by_key.remove_mut(&key);
            gone.push(key);
        }
        if receipts.by_key.is_empty() {
            self.receipts = None;
        }
        gone
    }

    /// Every receipt, by key.
    pub fn receipts(&self) -> impl Iterator<Item = (&IdempotencyKey, &Receipt)> {
        self.receipts.iter().flat_map(|r| r.by_key.iter())
    }

    /// Whether the list exists: an entry was ever added to it (ids are never
    /// reused, so it stays so after its entries are deleted) since it was created
    /// or last deleted as a whole.
    pub fn exists(&self) -> bool {
        self.next_id > 1
    }

    /// The id the next added entry gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Adds an entry and returns it with its new id.
    pub fn add_entry(&mut self, date: NaiveDate, title: &str) -> Result<Entry, TodoError> {
        validate_title(title)?;
        let entry = Entry {
            id: self.next_id,
            date,
            title: title.to_string(),
            done: false,
        };
        self.next_id += 1;
        self.entries.insert(Arc::new(entry.clone()));
        Ok(entry)
    }

    /// The entries of one date, in id order.
    pub fn entries(&self, date: NaiveDate) -> Vec<Entry> {
        self.entries
            .values()
            .filter(|e| e.date == date)
            .map(|e| Entry::clone(e))
            .collect()
    }

    /// The entries `q` asks for, in id order: it visits ids after `q.after` only
    /// and stops at the first match past `q.limit`, cloning only what it returns.
    pub fn query(&self, q: &EntryQuery) -> Page {
        let mut entries = Vec::new();
        let mut more = false;
        let start = q.after.saturating_add(1);
        if q.after == u64::MAX {
            return Page::default();
        }
        for e in self.entries.from(start) {
            if !q.admits(e) {
                continue;
            }
            if entries.len() == q.limit {
                more = true;
                break;
            }
            entries.push(Entry::clone(e));
        }
        Page { entries, more }
    }

    /// The page `q` asks for, or `None` when the list does not exist
    /// ([`TodoList::exists`]): what a read of the list answers.
    pub fn page(&self, q: &EntryQuery) -> Option<Page> {
        self.exists().then(|| self.query(q))
    }

    /// Every entry, in id order, as a JSON array: the bytes of
    /// `JsonPage::from(page)` for a page of every entry, without cloning one.
    pub fn all_entries_json(&self) -> bytes::Bytes {
        entries_json(self.entries.values().map(|e| &**e))
    }

    /// The id of the last entry (the highest), if any.
    pub fn last_id(&self) -> Option<u64> {
        self.entries.last().map(|e| e.id)
    }

    /// Every entry, in id order.
    pub fn all_entries(&self) -> Vec<Entry> {
        self.entries.values().map(|e| Entry::clone(e)).collect()
    }

    /// One entry.
    pub fn get(&self, id: u64) -> Option<&Entry> {
        self.entries.get(id).map(|e| &**e)
    }

    /// Changes an entry's date, title and/or done flag; returns the updated entry.
    pub fn update_entry(&mut self, id: u64, update: EntryUpdate) -> Result<Entry, TodoError> {
        if let Some(t) = &update.title {
            validate_title(t)?;
        }
        let mut entry = Entry::clone(self.entries.get(id).ok_or(TodoError::NotFound(id))?);
        if let Some(d) = update.date {
            entry.date = d;
        }
        if let Some(t) = update.title {
            entry.title = t;
        }
        if let Some(done) = update.done {
            entry.done = done;
        }
        self.entries.insert(Arc::new(entry.clone()));
        Ok(entry)
    }

    /// Deletes an entry; returns it.
    pub fn delete_entry(&mut self, id: u64) -> Result<Entry, TodoError> {
        let entry = Entry::clone(self.entries.get(id).ok_or(TodoError::NotFound(id))?);
        self.entries.remove(id);
        Ok(entry)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    #[test]
    fn ids_start_at_one_and_are_never_reused() {
        let mut l = TodoList::new();
        assert_eq!(l.add_entry(d("2026-11-23"), "a").unwrap().id, 1);
        assert_eq!(l.add_entry(d("2026-11-23"), "b").unwrap().id, 2);
        l.delete_entry(2).unwrap();
        assert_eq!(l.add_entry(d("2026-11-23"), "c").unwrap().id, 3);
    }

    #[test]
    fn dates_are_read_as_chrono_reads_them() {
        for y in ["0000", "0001", "1900", "2000", "2024", "2026", "9999"] {
            for m in 0..=13 {
                for d in 0..=32 {
                    let s = format!("{y}-{m:02}-{d:02}");
                    let chrono = NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok();
                    assert_eq!(parse_date(&s).ok(), chrono, "{s}");
                }
            }
        }
    }

    #[test]
    fn dates_must_exist_and_be_strict() {
        assert!(parse_date("2026-02-28").is_ok());
        assert!(parse_date("2024-02-29").is_ok());
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-1-01",
            "26-01-01",
            "",
            "2026-01-01T00",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn titles_are_one_to_1024_chars_without_controls() {
        assert!(validate_title("x").is_ok());
        assert!(validate_title(&"é".repeat(1024)).is_ok());
        assert!(validate_title("").is_err());
        assert!(validate_title(&"x".repeat(1025)).is_err());
        assert!(validate_title("a\u{0}b").is_err());
    }

    #[test]
    fn entries_stored_without_the_done_flag_read_as_not_done() {
        let old = r#"{"next_id":2,"entries":[{"id":1,"date":"2026-01-01","title":"x"}]}"#;
        let l: TodoList = serde_json::from_str(old).unwrap();
        assert!(!l.get(1).unwrap().done);
        let mut l2 = l.clone();
        let e = l2
            .update_entry(
                1,
                EntryUpdate {
                    done: Some(true),
                    ..EntryUpdate::default()
                },
            )
            .unwrap();
        assert!(e.done);
        let back: TodoList = serde_json::from_str(&serde_json::to_string(&l2).unwrap()).unwrap();
        assert!(back.get(1).unwrap().done);
    }

    fn receipt(at_ms: i64, id: u64) -> Receipt {
        Receipt {
            request: format!("r{id}"),
            entry: Entry {
                id,
                date: d("2026-12-03"),
                title: "t".into(),
                done: false,
            },
            at_ms,
        }
    }

    #[test]
    fn receipts_expire_oldest_first_and_survive_a_round_trip() {
        let key = |k: &str| IdempotencyKey::new(k).unwrap();
        let mut l = TodoList::new();
        l.add_entry(d("2026-12-03"), "t").unwrap();
        l.record_receipt(key("b"), receipt(20, 1));
        l.record_receipt(key("a"), receipt(10, 1));
        l.record_receipt(key("c"), receipt(30, 1));
        // Recording a key again replaces its receipt (and its place in time).
        l.record_receipt(key("a"), receipt(40, 1));
        let back: TodoList = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
        assert_eq!(l.expire_receipts(30), vec![key("b")]);
        assert!(l.receipt(&key("b")).is_none());
        assert_eq!(l.receipt(&key("a")).unwrap().at_ms, 40);
        assert_eq!(l.expire_receipts(41), vec![key("c"), key("a")]);
        assert_eq!(l.receipts().count(), 0);
    }

    #[test]
    fn a_query_filters_pages_after_an_id_and_says_whether_more_follow() {
        let mut l = TodoList::new();
        for i in 0..10u32 {
            let e = l
                .add_entry(d(&format!("2026-12-{:02}", 1 + i % 3)), "t")
                .unwrap();
            if i % 2 == 0 {
                l.update_entry(
                    e.id,
                    EntryUpdate {
                        done: Some(true),
                        ..EntryUpdate::default()
                    },
                )
                .unwrap();
            }
        }
        let ids = |p: &Page| p.entries.iter().map(|e| e.id).collect::<Vec<_>>();
        let all = l.query(&EntryQuery::all());
        assert_eq!(ids(&all), (1..=10).collect::<Vec<_>>());
        assert!(!all.more);
        let q = EntryQuery {
            date: Some(d("2026-12-01")),
            limit: 2,
            ..EntryQuery::default()
        };
        let p = l.query(&q);
        assert_eq!((ids(&p), p.more), (vec![1, 4], true));
        let p = l.query(&EntryQuery {
            after: 4,
            ..q.clone()
        });
        assert_eq!((ids(&p), p.more), (vec![7, 10], false));
        let p = l.query(&EntryQuery {
            done: Some(false),
            from: Some(d("2026-12-02")),
            ..EntryQuery::all()
        });
        assert_eq!(ids(&p), vec![2, 6, 8]);
        // Exactly `limit` matches left: no further page.
        let p = l.query(&EntryQuery {
            after: 8,
            limit: 2,
            ..EntryQuery::default()
        });
        assert_eq!((ids(&p), p.more), (vec![9, 10], false));
    }

    #[test]
    fn a_list_exists_once_written_even_when_emptied() {
        let mut l = TodoList::new();
        assert!(!l.exists());
        l.add_entry(d("2026-12-03"), "t").unwrap();
        l.delete_entry(1).unwrap();
        assert!(l.exists());
    }

    #[test]
    fn a_damaged_list_cannot_reuse_ids() {
        let bad = r#"{"next_id":2,"entries":[{"id":5,"date":"2026-01-01","title":"x"}]}"#;
        assert!(serde_json::from_str::<TodoList>(bad).is_err());
        let mut l = TodoList::new();
        l.add_entry(d("2026-01-01"), "x").unwrap();
        let back: TodoList = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
    }
}
