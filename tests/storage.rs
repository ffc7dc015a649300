//! The storage backends through the `Storage` trait: one suite every backend
//! passes (files, sqlite, memory), then damage, crash leftovers and name encoding.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use sluicegate::storage::{self, BackendKind, FileStorage, Storage, StorageError};
use sluicegate::todo::{decode_path, encode_path, ListName, TodoList};

fn name(s: &str) -> ListName {
    ListName::new(s).unwrap()
}

fn list_with(titles: &[&str]) -> TodoList {
    let mut l = TodoList::new();
    let d = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    for t in titles {
        l.add_entry(d, t).unwrap();
    }
    l
}

/// Names that must be stored safely whatever the backend.
fn hostile_names() -> Vec<ListName> {
    [
        "bad/name".to_string(),
        "../x".to_string(),
        "..".to_string(),
        ".".to_string(),
        "CON".to_string(),
        "con".to_string(),
        "日本語".to_string(),
        "a\\b".to_string(),
        " ".to_string(),
        "x".repeat(256),
        "é".repeat(128),
    ]
    .into_iter()
    .map(|s| name(&s))
    .collect()
}

/// The suite every backend passes: missing list, store/load, overwrite, many lists.
async fn storage_suite(s: Arc<dyn Storage>) {
    let kind = s.kind();
    let a = name("a");
    assert_eq!(s.load(&a).await.unwrap(), None, "{kind}: missing list");
    assert_eq!(
        s.list_names().await.unwrap(),
        Vec::<ListName>::new(),
        "{kind}"
    );

    let v1 = list_with(&["one"]);
    s.store(&a, &v1).await.unwrap();
    assert_eq!(s.load(&a).await.unwrap(), Some(v1), "{kind}: read back");

    let mut v2 = list_with(&["one", "two", "three"]);
    v2.delete_entry(2).unwrap();
    s.store(&a, &v2).await.unwrap();
    let back = s.load(&a).await.unwrap().unwrap();
    assert_eq!(back, v2, "{kind}: overwrite");
    // The id counter is stored too: a deleted id is never handed out again.
    let mut back = back;
    let d = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    assert_eq!(back.add_entry(d, "four").unwrap().id, 4, "{kind}");

    let mut want: BTreeSet<ListName> = BTreeSet::from([a.clone()]);
    for (i, n) in hostile_names().into_iter().enumerate() {
        let titles: Vec<String> = (0..=i).map(|j| format!("entry {j} of {n}")).collect();
        let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
        s.store(&n, &list_with(&refs)).await.unwrap();
        want.insert(n);
    }
    let batch: Vec<(ListName, TodoList)> = (0..20)
        .map(|i| (name(&format!("batch-{i}")), list_with(&[&format!("b{i}")])))
        .collect();
    s.store_many(&batch).await.unwrap();
    want.extend(batch.iter().map(|(n, _)| n.clone()));

    let names: Vec<ListName> = s.list_names().await.unwrap();
    assert_eq!(
        names.iter().cloned().collect::<BTreeSet<_>>(),
        want,
        "{kind}: every stored name listed"
    );
    assert_eq!(names.len(), want.len(), "{kind}: no name listed twice");
    for (i, n) in hostile_names().iter().enumerate() {
        let l = s.load(n).await.unwrap().expect("stored list");
        assert_eq!(l.len(), i + 1, "{kind}: {n:?}");
        assert_eq!(
            l.all_entries()[0].title,
            format!("entry 0 of {n}"),
            "{kind}"
        );
    }
    for (n, l) in &batch {
        assert_eq!(s.load(n).await.unwrap().as_ref(), Some(l), "{kind}: {n}");
    }

    // A done flag is stored and read back.
    let mut flagged = list_with(&["x", "y"]);
    flagged
        .update_entry(
            2,
            sluicegate::todo::EntryUpdate {
                done: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    let f = name("flagged");
    s.store(&f, &flagged).await.unwrap();
    let back = s.load(&f).await.unwrap().unwrap();
    assert_eq!(back, flagged, "{kind}: done flag");
    assert!(back.get(2).unwrap().done && !back.get(1).unwrap().done);

    // Deleting a list: gone from loads and names, only that one; a second delete
    // and one of a list never stored find nothing.
    let hostile = hostile_names();
    for n in [&a, &hostile[1]] {
        assert!(s.delete_list(n).await.unwrap(), "{kind}: delete {n:?}");
        assert_eq!(s.load(n).await.unwrap(), None, "{kind}: deleted {n:?}");
        assert!(!s.delete_list(n).await.unwrap(), "{kind}: second delete");
    }
    assert!(!s.delete_list(&name("never-stored")).await.unwrap());
    let names: BTreeSet<ListName> = s.list_names().await.unwrap().into_iter().collect();
    want.remove(&a);
    want.remove(&hostile[1]);
    want.insert(f);
    assert_eq!(names, want, "{kind}: the others are kept");
    // The name can be stored again, afresh.
    s.store(&a, &list_with(&["new"])).await.unwrap();
    assert_eq!(s.load(&a).await.unwrap(), Some(list_with(&["new"])));
}

#[tokio::test]
async fn memory_backend_passes_the_storage_suite() {
    let dir = tempfile::tempdir().unwrap();
    storage_suite(storage::open(BackendKind::Memory, dir.path()).unwrap()).await;
}

#[tokio::test]
async fn files_backend_passes_the_storage_suite() {
    let dir = tempfile::tempdir().unwrap();
    storage_suite(storage::open(BackendKind::Files, dir.path()).unwrap()).await;
    assert_every_file_inside(dir.path());
}

#[tokio::test]
async fn sqlite_backend_passes_the_storage_suite() {
    let dir = tempfile::tempdir().unwrap();
    storage_suite(storage::open(BackendKind::Sqlite, dir.path()).unwrap()).await;
    assert_every_file_inside(dir.path());
}

/// What survives closing and reopening the backend on the same directory.
async fn survives_reopen(kind: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut want = Vec::new();
    {
        let s = storage::open(kind, dir.path()).unwrap();
        for (i, n) in hostile_names().into_iter().enumerate() {
            let l = list_with(&[&format!("t{i}")]);
            s.store(&n, &l).await.unwrap();
            want.push((n, l));
        }
    }
    let s = storage::open(kind, dir.path()).unwrap();
    for (n, l) in &want {
        assert_eq!(
            s.load(n).await.unwrap().as_ref(),
            Some(l),
            "{kind:?}: {n:?}"
        );
    }
    let mut names: Vec<ListName> = want.into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(s.list_names().await.unwrap(), names, "{kind:?}");
}

#[tokio::test]
async fn files_backend_keeps_lists_across_a_reopen() {
    survives_reopen(BackendKind::Files).await;
}

#[tokio::test]
async fn sqlite_backend_keeps_lists_across_a_reopen() {
    survives_reopen(BackendKind::Sqlite).await;
}

/// Every path below `root`, files and directories.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// Every file created anywhere in `root`'s parent is inside `root`: nothing
/// escaped through a name like `../x`.
fn assert_every_file_inside(root: &Path) {
    let root = root.canonicalize().unwrap();
    for p in walk(&root) {
        let c = p.canonicalize().unwrap();
        assert!(
            c.starts_with(&root),
            "{} is outside {}",
            c.display(),
            root.display()
        );
        let meta = std::fs::symlink_metadata(&p).unwrap();
        assert!(!meta.file_type().is_symlink(), "{}", p.display());
    }
}

#[tokio::test]
async fn files_backend_writes_only_inside_its_data_dir() {
    // The data dir is a subdirectory, so a name climbing out would land in `outer`.
    let outer = tempfile::tempdir().unwrap();
    let data = outer.path().join("data");
    let s = FileStorage::open(&data).unwrap();
    for n in hostile_names() {
        let p = s.path_of(&n);
        assert!(
            p.starts_with(data.join("lists")),
            "{n:?} -> {}",
            p.display()
        );
        s.store(&n, &list_with(&["x"])).await.unwrap();
    }
    let top: Vec<_> = std::fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, vec![std::ffi::OsString::from("data")]);
    assert_every_file_inside(&data);
    // One file per list, each decoding back to its name.
    let files: Vec<PathBuf> = walk(&data.join("lists"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(files.len(), hostile_names().len());
    let mut decoded: Vec<ListName> = files
        .iter()
        .map(|p| decode_path(p.strip_prefix(data.join("lists")).unwrap()).unwrap())
        .collect();
    decoded.sort();
    let mut want = hostile_names();
    want.sort();
    assert_eq!(decoded, want);
}

#[test]
fn name_encoding_is_reversible_and_case_safe() {
    let mut seen = std::collections::HashSet::new();
    for n in hostile_names() {
        let p = encode_path(&n);
        assert_eq!(decode_path(&p), Some(n.clone()), "{n:?}");
        // Distinct names never share a path, even on a case-insensitive disk.
        assert!(
            seen.insert(p.to_string_lossy().to_lowercase()),
            "{n:?} collides"
        );
    }
    assert_ne!(encode_path(&name("CON")), encode_path(&name("con")));
}

#[tokio::test]
async fn files_damaged_file_fails_only_its_list() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStorage::open(dir.path()).unwrap();
    let (good, bad, wrong, future, empty) = (
        name("good"),
        name("bad/list"),
        name("wrong"),
        name("future"),
        name("empty"),
    );
    for n in [&good, &bad, &wrong, &future, &empty] {
        s.store(n, &list_with(&["x", "y"])).await.unwrap();
    }
    // Truncated JSON, another list's document, an unknown format, an empty file.
    let text = std::fs::read_to_string(s.path_of(&bad)).unwrap();
    std::fs::write(s.path_of(&bad), &text[..text.len() / 2]).unwrap();
    std::fs::copy(s.path_of(&good), s.path_of(&wrong)).unwrap();
    let text = std::fs::read_to_string(s.path_of(&future)).unwrap();
    std::fs::write(
        s.path_of(&future),
        text.replace("\"format\":1", "\"format\":99"),
    )
    .unwrap();
    std::fs::write(s.path_of(&empty), b"").unwrap();

    for (n, detail) in [
        (&bad, "EOF"),
        (&wrong, "holds list \"good\""),
        (&future, "format 99"),
        (&empty, "EOF"),
    ] {
        let err = s.load(n).await.unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt { list, .. } if list == n),
            "{n}: {err:?}"
        );
        assert!(!err.is_transient(), "{n}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("\"{n}\"")) && msg.contains("damaged"),
            "{msg}"
        );
        assert!(msg.contains(detail), "{n}: {msg}");
    }
    assert_eq!(s.load(&good).await.unwrap(), Some(list_with(&["x", "y"])));
    assert_eq!(s.list_names().await.unwrap().len(), 5);
    // Storing again repairs the list.
    s.store(&bad, &list_with(&["fresh"])).await.unwrap();
    assert_eq!(s.load(&bad).await.unwrap(), Some(list_with(&["fresh"])));
}

#[tokio::test]
async fn files_entry_ids_that_could_be_reused_are_damage() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStorage::open(dir.path()).unwrap();
    let n = name("ids");
    s.store(&n, &list_with(&["a", "b"])).await.unwrap();
    let text = std::fs::read_to_string(s.path_of(&n)).unwrap();
    // next_id says 3; lower it so entry 2 would be handed out again.
    std::fs::write(
        s.path_of(&n),
        text.replace("\"next_id\":3", "\"next_id\":2"),
    )
    .unwrap();
    let err = s.load(&n).await.unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[tokio::test]
async fn files_temp_files_left_by_a_crash_are_removed_and_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (a, long) = (name("a"), name(&"z".repeat(256)));
    {
        let s = FileStorage::open(dir.path()).unwrap();
        s.store(&a, &list_with(&["kept"])).await.unwrap();
        s.store(&long, &list_with(&["kept"])).await.unwrap();
        // What a crash between create and rename leaves: a temp file next to the
        // list's file (in its subdirectory for a long name), possibly half written.
        for n in [&a, &long] {
            let mut tmp = s.path_of(n).into_os_string();
            tmp.push(".4242-7.tmp");
            std::fs::write(&tmp, b"{\"format\":1,\"na").unwrap();
        }
        // A temp file of a list that was never renamed into place.
        let mut orphan = s.path_of(&name("never")).into_os_string();
        orphan.push(".1-1.tmp");
        std::fs::write(&orphan, b"{}").unwrap();
        // Temp files are not lists.
        assert_eq!(s.list_names().await.unwrap(), {
            let mut v = vec![a.clone(), long.clone()];
            v.sort();
            v
        });
    }
    let s = FileStorage::open(dir.path()).unwrap();
    let leftovers: Vec<PathBuf> = walk(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(s.load(&a).await.unwrap(), Some(list_with(&["kept"])));
    assert_eq!(s.load(&long).await.unwrap(), Some(list_with(&["kept"])));
    assert_eq!(s.load(&name("never")).await.unwrap(), None);
}

#[tokio::test]
async fn files_foreign_files_are_not_lists() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStorage::open(dir.path()).unwrap();
    s.store(&name("real"), &list_with(&["x"])).await.unwrap();
    let lists = dir.path().join("lists");
    for f in ["notes.txt", "x.json", "L61.json", "l6.json", "l61.JSON"] {
        std::fs::write(lists.join(f), b"{}").unwrap();
    }
    assert_eq!(s.list_names().await.unwrap(), vec![name("real")]);
}

#[tokio::test]
async fn sqlite_damaged_row_fails_only_its_list() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    s.store(&name("good"), &list_with(&["x"])).await.unwrap();
    s.store(&name("bad"), &list_with(&["x"])).await.unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join("sluicegate.sqlite3")).unwrap();
        c.execute("UPDATE lists SET body = x'7b7b' WHERE name = 'bad'", [])
            .unwrap();
    }
    let err = s.load(&name("bad")).await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { list, .. } if list.as_str() == "bad"),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"bad\""), "{err}");
    assert_eq!(
        s.load(&name("good")).await.unwrap(),
        Some(list_with(&["x"]))
    );
}

/// Entries touched between two versions of a list, as the list server records them.
fn change_between(old: &TodoList, new: &TodoList) -> storage::Change {
    let mut c = storage::Change::default();
    let ids: BTreeSet<u64> = old
        .all_entries()
        .iter()
        .chain(new.all_entries().iter())
        .map(|e| e.id)
        .collect();
    for id in ids {
        if old.get(id) != new.get(id) {
            c.touch(new, id);
        }
    }
    c
}

#[tokio::test]
async fn sqlite_stores_a_change_as_rows_and_reads_back_the_whole_list() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    let n = name("rows");
    let v1 = list_with(&["a", "b", "c"]);
    s.store(&n, &v1).await.unwrap();
    let mut v2 = v1.clone();
    let d = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
    v2.delete_entry(2).unwrap();
    v2.update_entry(
        3,
        sluicegate::todo::EntryUpdate {
            date: Some(d),
            title: Some("c2".into()),
            done: Some(true),
        },
    )
    .unwrap();
    v2.add_entry(d, "d").unwrap();
    let change = change_between(&v1, &v2);
    assert_eq!(change.entries.len(), 3);
    let results = s
        .store_batch(&[storage::ListWrite {
            name: n.clone(),
            list: v2.clone(),
            change: Some(change),
        }])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(s.load(&n).await.unwrap(), Some(v2.clone()));
    // Entries are rows: the change touched three of them.
    let c = rusqlite::Connection::open(dir.path().join("sluicegate.sqlite3")).unwrap();
    let rows: i64 = c
        .query_row(
            "SELECT count(*) FROM entries WHERE list = 'rows'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 3);
    // Reopened, the id counter survives: a deleted id is never handed out again.
    drop(s);
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    let mut back = s.load(&n).await.unwrap().unwrap();
    assert_eq!(back.add_entry(d, "e").unwrap().id, 5);
}

#[tokio::test]
async fn sqlite_commits_many_lists_in_one_batch_each_answered() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    let writes: Vec<storage::ListWrite> = (0..50)
        .map(|i| storage::ListWrite {
            name: name(&format!("l{i}")),
            list: list_with(&[&format!("t{i}")]),
            change: None,
        })
        .collect();
    let results = s.store_batch(&writes).await;
    assert_eq!(results.len(), 50);
    assert!(results.iter().all(Result::is_ok));
    for w in &writes {
        assert_eq!(s.load(&w.name).await.unwrap().as_ref(), Some(&w.list));
    }
}

#[tokio::test]
async fn sqlite_reads_lists_in_the_earlier_one_row_format_and_converts_them_on_write() {
    let dir = tempfile::tempdir().unwrap();
    let n = name("old");
    let old = list_with(&["x", "y"]);
    {
        // The schema and row 821fe1d's sqlite backend wrote: the whole list as JSON.
        let c = rusqlite::Connection::open(dir.path().join("sluicegate.sqlite3")).unwrap();
        c.execute(
            "CREATE TABLE lists (name TEXT PRIMARY KEY, format INTEGER NOT NULL, body BLOB NOT NULL)",
            [],
        )
        .unwrap();
        let body = serde_json::json!({"format": 1, "name": "old", "list": old});
        c.execute(
            "INSERT INTO lists (name, format, body) VALUES ('old', 1, ?1)",
            [serde_json::to_vec(&body).unwrap()],
        )
        .unwrap();
    }
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    assert_eq!(s.load(&n).await.unwrap(), Some(old.clone()));
    // A change against a list not yet in rows is written whole.
    let mut new = old.clone();
    new.add_entry(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(), "z")
        .unwrap();
    let change = change_between(&old, &new);
    let r = s
        .store_batch(&[storage::ListWrite {
            name: n.clone(),
            list: new.clone(),
            change: Some(change),
        }])
        .await;
    assert!(r[0].is_ok(), "{r:?}");
    assert_eq!(s.load(&n).await.unwrap(), Some(new));
}

/// Issue 14's done flag on a database written before it: the `entries` table
/// without a `done` column gets one (default 0) when the backend opens it.
#[tokio::test]
async fn sqlite_adds_the_done_column_to_an_older_database_and_reads_its_entries_as_not_done() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The schema of the rows format before the done flag (557119f).
        let c = rusqlite::Connection::open(dir.path().join("sluicegate.sqlite3")).unwrap();
        c.execute_batch(
            "CREATE TABLE lists (name TEXT PRIMARY KEY, format INTEGER NOT NULL, body BLOB NOT NULL);
             CREATE TABLE entries (
                 list TEXT NOT NULL, id INTEGER NOT NULL, date TEXT NOT NULL, title TEXT NOT NULL,
                 PRIMARY KEY (list, id)) WITHOUT ROWID;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO lists VALUES ('old', 2, CAST('{\"next_id\":3}' AS BLOB));
             INSERT INTO entries VALUES ('old', 1, '2026-01-01', 'a'), ('old', 2, '2026-01-02', 'b');",
        )
        .unwrap();
    }
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    let n = name("old");
    let old = s.load(&n).await.unwrap().expect("the old list");
    assert_eq!(old.len(), 2);
    assert!(old.all_entries().iter().all(|e| !e.done));
    // A change to the flag is stored as a row update and read back.
    let mut new = old.clone();
    new.update_entry(
        2,
        sluicegate::todo::EntryUpdate {
            done: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    let r = s
        .store_batch(&[storage::ListWrite {
            name: n.clone(),
            list: new.clone(),
            change: Some(change_between(&old, &new)),
        }])
        .await;
    assert!(r[0].is_ok(), "{r:?}");
    drop(s);
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    assert_eq!(s.load(&n).await.unwrap(), Some(new));
}

/// The files format reads entries written before the done flag as not done.
#[tokio::test]
async fn files_reads_entries_stored_without_the_done_flag_as_not_done() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStorage::open(dir.path()).unwrap();
    let n = name("old");
    let body = r#"{"format":1,"name":"old","list":{"next_id":2,"entries":[{"id":1,"date":"2026-01-01","title":"a"}]}}"#;
    std::fs::write(s.path_of(&n), body).unwrap();
    let l = s.load(&n).await.unwrap().unwrap();
    assert_eq!(l.all_entries()[0].title, "a");
    assert!(!l.all_entries()[0].done);
}

#[tokio::test]
async fn sqlite_imports_a_files_data_dir_once_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut want = Vec::new();
    {
        let files = storage::open(BackendKind::Files, dir.path()).unwrap();
        for (i, n) in hostile_names().into_iter().enumerate() {
            let titles: Vec<String> = (0..=i).map(|j| format!("t{j}")).collect();
            let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
            let mut l = list_with(&refs);
            l.delete_entry(1).unwrap();
            files.store(&n, &l).await.unwrap();
            want.push((n, l));
        }
    }
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    let mut names: Vec<ListName> = want.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    assert_eq!(s.list_names().await.unwrap(), names);
    for (n, l) in &want {
        assert_eq!(s.load(n).await.unwrap().as_ref(), Some(l), "{n:?}");
    }
    // Written through sqlite after the import, a list is not overwritten by the
    // files at the next open; the files themselves are left in place.
    let (first, _) = &want[0];
    let newer = list_with(&["newer"]);
    s.store(first, &newer).await.unwrap();
    drop(s);
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    assert_eq!(s.load(first).await.unwrap(), Some(newer));
    let files = storage::open(BackendKind::Files, dir.path()).unwrap();
    assert_eq!(files.list_names().await.unwrap(), names);
}

#[tokio::test]
async fn sqlite_refuses_to_open_over_a_damaged_files_list_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FileStorage::open(dir.path()).unwrap();
    fs.store(&name("good"), &list_with(&["x"])).await.unwrap();
    fs.store(&name("bad"), &list_with(&["x"])).await.unwrap();
    std::fs::write(fs.path_of(&name("bad")), b"{{").unwrap();
    let err = match storage::open(BackendKind::Sqlite, dir.path()) {
        Ok(_) => panic!("opened over a damaged list"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, StorageError::Corrupt { list, .. } if list.as_str() == "bad"),
        "{err:?}"
    );
    // Repaired, the next open imports both.
    std::fs::remove_file(fs.path_of(&name("bad"))).unwrap();
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    assert_eq!(s.list_names().await.unwrap(), vec![name("good")]);
}
