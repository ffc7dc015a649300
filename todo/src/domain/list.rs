//! The pure to-do list: entries with id, date and title; no I/O, no concurrency.
//! Entries live in a persistent map, so a clone (a snapshot for storage) is O(1).

use chrono::NaiveDate;
use rpds::RedBlackTreeMapSync;
use serde::{Deserialize, Serialize};

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
    let shown: String = s.chars().take(40).collect();
    let well_formed = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !well_formed {
        return Err(TodoError::InvalidDate(format!(
            "\"{shown}\" is not a date in the form YYYY-MM-DD"
        )));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| TodoError::InvalidDate(format!("\"{shown}\" is not a day of the calendar")))
}

/// A to-do list. Ids start at 1 and are never reused, even after a delete.
///
/// Cloning is O(1): entries are held in a persistent (structurally shared) map,
/// so a write changes O(log n) nodes and a snapshot handed to storage shares the rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredList", into = "StoredList")]
pub struct TodoList {
    /// The id the next entry gets.
    next_id: u64,
    /// Entries by id (so id order is iteration order).
    entries: RedBlackTreeMapSync<u64, Entry>,
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
}

impl TryFrom<StoredList> for TodoList {
    type Error = String;

    fn try_from(s: StoredList) -> Result<Self, String> {
        TodoList::from_parts(s.next_id, s.entries)
    }
}

impl From<TodoList> for StoredList {
    fn from(l: TodoList) -> Self {
        StoredList {
            next_id: l.next_id,
            entries: l.entries.values().cloned().collect(),
        }
    }
}

impl TodoList {
    /// An empty list.
    pub fn new() -> Self {
        TodoList {
            next_id: 1,
            entries: RedBlackTreeMapSync::new_sync(),
        }
    }

    /// Rebuilds a stored list, checking it so damaged data cannot make ids reused:
    /// every id is in `1..next_id`, unique, and every title valid.
    pub fn from_parts(
        next_id: u64,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Self, String> {
        let mut map = RedBlackTreeMapSync::new_sync();
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
            map.insert_mut(e.id, e);
        }
        Ok(TodoList {
            next_id: next_id.max(1),
            entries: map,
        })
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
        self.entries.insert_mut(entry.id, entry.clone());
        Ok(entry)
    }

    /// The entries of one date, in id order.
    pub fn entries(&self, date: NaiveDate) -> Vec<Entry> {
        self.entries
            .values()
            .filter(|e| e.date == date)
            .cloned()
            .collect()
    }

    /// Every entry, in id order.
    pub fn all_entries(&self) -> Vec<Entry> {
        self.entries.values().cloned().collect()
    }

    /// One entry.
    pub fn get(&self, id: u64) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// Changes an entry's date, title and/or done flag; returns the updated entry.
    pub fn update_entry(&mut self, id: u64, update: EntryUpdate) -> Result<Entry, TodoError> {
        if let Some(t) = &update.title {
            validate_title(t)?;
        }
        let mut entry = self
            .entries
            .get(&id)
            .ok_or(TodoError::NotFound(id))?
            .clone();
        if let Some(d) = update.date {
            entry.date = d;
        }
        if let Some(t) = update.title {
            entry.title = t;
        }
        if let Some(done) = update.done {
            entry.done = done;
        }
        self.entries.insert_mut(id, entry.clone());
        Ok(entry)
    }

    /// Deletes an entry; returns it.
    pub fn delete_entry(&mut self, id: u64) -> Result<Entry, TodoError> {
        let entry = self
            .entries
            .get(&id)
            .ok_or(TodoError::NotFound(id))?
            .clone();
        self.entries.remove_mut(&id);
        Ok(entry)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.size()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
