//! The PostgreSQL backend's SQL: the text of every statement, qualified with the
//! configured schema, and the mapping of entries to the column arrays a batch
//! sends through `unnest`.

use chrono::NaiveDate;

use super::cluster;
use crate::domain::{Entry, IdempotencyKey, Receipt};

/// The SQL text of every statement, qualified with the schema.
pub(super) struct Sql {
    pub(super) create: String,
    pub(super) load: String,
    pub(super) names: String,
    pub(super) existing: String,
    pub(super) upsert_lists: String,
    pub(super) delete_all_entries: String,
    pub(super) delete_entries: String,
    pub(super) upsert_entries: String,
    pub(super) delete_list: String,
    pub(super) check_fences: String,
    pub(super) fences_of: String,
    pub(super) load_receipts: String,
    pub(super) upsert_receipts: String,
    pub(super) delete_receipts: String,
    pub(super) delete_all_receipts: String,
    pub(super) purge_receipts: String,
}

impl Sql {
    pub(super) fn new(s: &str) -> Sql {
        Sql {
            create: format!(
                "CREATE SCHEMA IF NOT EXISTS {s};
                 CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL);
                 CREATE TABLE IF NOT EXISTS {s}.lists (name text PRIMARY KEY, next_id bigint NOT NULL);
                 CREATE TABLE IF NOT EXISTS {s}.entries (
                     list text NOT NULL REFERENCES {s}.lists (name) ON DELETE CASCADE,
                     {},
                     PRIMARY KEY (list, id));
                 ALTER TABLE {s}.entries ADD COLUMN IF NOT EXISTS done boolean NOT NULL DEFAULT false;
                 CREATE TABLE IF NOT EXISTS {s}.receipts (
                     list text NOT NULL REFERENCES {s}.lists (name) ON DELETE CASCADE,
                     key text NOT NULL, request text NOT NULL, entry text NOT NULL,
                     at_ms bigint NOT NULL,
                     PRIMARY KEY (list, key));
                 CREATE INDEX IF NOT EXISTS receipts_at ON {s}.receipts (at_ms);
                 INSERT INTO {s}.meta (key, value) VALUES ('schema', '1') ON CONFLICT (key) DO NOTHING;
                 {}",
                EntryColumns::DEFINITION,
                cluster::CREATE.replace("{s}", s)
            ),
            load: format!(
                "SELECT l.next_id, {} FROM {s}.lists l LEFT JOIN {s}.entries e ON e.list = l.name
                 WHERE l.name = $1 ORDER BY e.id",
                EntryColumns::SELECT
            ),
            names: format!("SELECT name FROM {s}.lists"),
            existing: format!("SELECT name FROM {s}.lists WHERE name = ANY($1)"),
            upsert_lists: format!(
                "INSERT INTO {s}.lists (name, next_id) SELECT * FROM unnest($1::text[], $2::bigint[])
                 ON CONFLICT (name) DO UPDATE SET next_id = excluded.next_id"
            ),
            delete_all_entries: format!("DELETE FROM {s}.entries WHERE list = ANY($1)"),
            delete_entries: format!(
                "DELETE FROM {s}.entries e USING unnest($1::text[], $2::bigint[]) AS d(list, id)
                 WHERE e.list = d.list AND e.id = d.id"
            ),
            delete_list: format!("DELETE FROM {s}.lists WHERE name = $1"),
            check_fences: format!(
                "SELECT f.list FROM {s}.fences f
                 JOIN unnest($1::text[], $2::bigint[]) AS u(list, fence)
                   ON f.list = u.list AND f.fence = u.fence
                 FOR SHARE OF f"
            ),
            fences_of: format!("SELECT list, fence FROM {s}.fences WHERE list = ANY($1)"),
            load_receipts: format!(
                "SELECT key, request, entry, at_ms FROM {s}.receipts WHERE list = $1"
            ),
            upsert_receipts: format!(
                "INSERT INTO {s}.receipts (list, key, request, entry, at_ms)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
                 ON CONFLICT (list, key) DO UPDATE
                 SET request = excluded.request, entry = excluded.entry, at_ms = excluded.at_ms"
            ),
            delete_receipts: format!(
                "DELETE FROM {s}.receipts r USING unnest($1::text[], $2::text[]) AS d(list, key)
                 WHERE r.list = d.list AND r.key = d.key"
            ),
            delete_all_receipts: format!("DELETE FROM {s}.receipts WHERE list = ANY($1)"),
            purge_receipts: format!("DELETE FROM {s}.receipts WHERE at_ms < $1"),
            upsert_entries: format!(
                "INSERT INTO {s}.entries (list, {}) SELECT * FROM unnest($1::text[], {})
                 ON CONFLICT (list, id) DO UPDATE SET {}",
                EntryColumns::NAMES,
                EntryColumns::ARRAY_PARAMS,
                EntryColumns::UPDATE
            ),
        }
    }
}

/// The row mapping of an entry, in one place: the columns, how an [`Entry`] becomes
/// a row of them (as one array per column, for `unnest`) and how a row becomes an
/// [`Entry`]. A new field is one edit here.
#[derive(Default)]
pub(super) struct EntryColumns<'a> {
    pub(super) list: Vec<&'a str>,
    pub(super) id: Vec<i64>,
    pub(super) date: Vec<NaiveDate>,
    pub(super) title: Vec<&'a str>,
    pub(super) done: Vec<bool>,
}

impl<'a> EntryColumns<'a> {
    /// Column definitions besides `list`.
    const DEFINITION: &'static str =
        "id bigint NOT NULL, date date NOT NULL, title text NOT NULL, done boolean NOT NULL DEFAULT false";
    /// Column names besides `list`.
    const NAMES: &'static str = "id, date, title, done";
    /// The `unnest` arguments after `$1::text[]` (the list names).
    const ARRAY_PARAMS: &'static str = "$2::bigint[], $3::date[], $4::text[], $5::boolean[]";
    /// The upsert's `SET` clause.
    const UPDATE: &'static str =
        "date = excluded.date, title = excluded.title, done = excluded.done";
    /// The columns as selected from `entries e`; [`Self::from_row`] reads them.
    const SELECT: &'static str = "e.id, e.date, e.title, e.done";

    pub(super) fn push(&mut self, list: &'a str, e: &'a Entry) -> Result<(), String> {
        self.list.push(list);
        self.id.push(db_id(e.id)?);
        self.date.push(e.date);
        self.title.push(&e.title);
        self.done.push(e.done);
        Ok(())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(super) fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 5] {
        [&self.list, &self.id, &self.date, &self.title, &self.done]
    }

    /// The entry in the columns from `at` on (`None`: the list has no entries: the
    /// left join's NULLs).
    pub(super) fn from_row(row: &tokio_postgres::Row, at: usize) -> Result<Option<Entry>, String> {
        let err = |e: tokio_postgres::Error| e.to_string();
        let Some(id) = row.try_get::<_, Option<i64>>(at).map_err(err)? else {
            return Ok(None);
        };
        let id = u64::try_from(id).map_err(|_| format!("entry id {id} is negative"))?;
        Ok(Some(Entry {
            id,
            date: row.try_get(at + 1).map_err(err)?,
            title: row.try_get(at + 2).map_err(err)?,
            done: row.try_get(at + 3).map_err(err)?,
        }))
    }
}

/// Receipts of keyed writes as one array per column of `receipts`, for `unnest`
/// (the entry as its JSON text).
#[derive(Default)]
pub(super) struct ReceiptColumns<'a> {
    pub(super) list: Vec<&'a str>,
    pub(super) key: Vec<&'a str>,
    pub(super) request: Vec<&'a str>,
    pub(super) entry: Vec<String>,
    pub(super) at_ms: Vec<i64>,
}

impl<'a> ReceiptColumns<'a> {
    pub(super) fn push(&mut self, list: &'a str, key: &'a IdempotencyKey, r: &'a Receipt) {
        self.list.push(list);
        self.key.push(key.as_str());
        self.request.push(&r.request);
        self.entry
            .push(serde_json::to_string(&r.entry).unwrap_or_default());
        self.at_ms.push(r.at_ms);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(super) fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 5] {
        [
            &self.list,
            &self.key,
            &self.request,
            &self.entry,
            &self.at_ms,
        ]
    }

    /// A receipt from a row of `load_receipts`.
    pub(super) fn from_row(row: &tokio_postgres::Row) -> Result<(IdempotencyKey, Receipt), String> {
        let err = |e: tokio_postgres::Error| e.to_string();
        let key: String = row.try_get(0).map_err(err)?;
        let key = IdempotencyKey::new(key).map_err(|e| format!("receipt key: {e}"))?;
        let entry: String = row.try_get(2).map_err(err)?;
        let entry = serde_json::from_str(&entry).map_err(|e| format!("receipt {key}: {e}"))?;
        Ok((
            key,
            Receipt {
                request: row.try_get(1).map_err(err)?,
                entry,
                at_ms: row.try_get(3).map_err(err)?,
            },
        ))
    }
}

/// An id as PostgreSQL's `bigint`.
pub(super) fn db_id(id: u64) -> Result<i64, String> {
    i64::try_from(id).map_err(|_| format!("id {id} does not fit PostgreSQL's bigint"))
}
