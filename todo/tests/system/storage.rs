//! The storage backends through the `Storage` trait: one suite every backend
//! passes (files, sqlite, postgres, memory), then damage, crash leftovers, name
//! encoding, and group commit on a real PostgreSQL (`support::pg`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use sluicegate_todo::domain::{decode_path, encode_path, ListName, TodoList};
use sluicegate_todo::storage::{
    self, BackendKind, FileStorage, PostgresOptions, PostgresStorage, Storage, StorageError,
};

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
            sluicegate_todo::domain::EntryUpdate {
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

    receipts_suite(s.as_ref()).await;
}

/// Receipts of keyed writes: stored and read back with their list, whole or as a
/// change (recorded and expired) in the same write, gone with a deleted list, and
/// purged by age where the backend keeps them in rows.
async fn receipts_suite(s: &dyn Storage) {
    use sluicegate_todo::domain::{IdempotencyKey, Receipt};
    use sluicegate_todo::storage::{Change, ListWrite};
    let kind = s.kind();
    let key = |k: &str| IdempotencyKey::new(k).unwrap();
    let receipt = |list: &TodoList, id: u64, at_ms: i64| Receipt {
        request: format!("fingerprint-{id}"),
        entry: list.get(id).unwrap().clone(),
        at_ms,
    };
    let r = name("receipts");
    let mut l = list_with(&["a", "b"]);
    let (old, new) = (receipt(&l, 1, 1_000), receipt(&l, 2, 9_000));
    l.record_receipt(key("old"), old.clone());
    l.record_receipt(key("new"), new.clone());
    s.store(&r, &l).await.unwrap();
    assert_eq!(
        s.load(&r).await.unwrap().as_ref(),
        Some(&l),
        "{kind}: whole"
    );
    // A change: one receipt recorded, one expired, with an entry, in one write.
    let mut l2 = l.clone();
    let d = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
    let c = l2.add_entry(d, "c").unwrap();
    let third = receipt(&l2, c.id, 5_000);
    l2.record_receipt(key("third"), third.clone());
    l2.expire_receipts(2_000);
    let mut change = Change::default();
    change.touch(&l2, c.id);
    change.touch_receipt(&l2, &key("third"));
    change.touch_receipt(&l2, &key("old"));
    let results = s
        .store_batch(&[ListWrite {
            name: r.clone(),
            list: l2.clone(),
            change: Some(change),
        }])
        .await;
    assert!(results.iter().all(Result::is_ok), "{kind}: {results:?}");
    let back = s.load(&r).await.unwrap().unwrap();
    assert_eq!(back, l2, "{kind}: change");
    assert!(
        back.receipt(&key("old")).is_none(),
        "{kind}: expired receipt gone"
    );
    assert_eq!(back.receipt(&key("third")), Some(&third), "{kind}");
    // Purged by age: backends with a receipts table drop them now; the others keep
    // them in the list's document until its next write (documented).
    let purged = s.purge_receipts(6_000).await.unwrap();
    let back = s.load(&r).await.unwrap().unwrap();
    if matches!(kind, "sqlite" | "postgres") {
        assert_eq!(purged, 1, "{kind}: the receipt of 5 000 ms");
        assert!(back.receipt(&key("third")).is_none(), "{kind}");
        assert_eq!(
            back.receipt(&key("new")),
            Some(&new),
            "{kind}: younger kept"
        );
        assert_eq!(back.len(), 3, "{kind}: entries untouched");
    } else {
        assert_eq!((purged, back), (0, l2.clone()), "{kind}");
    }
    // A deleted list takes its receipts with it.
    assert!(s.delete_list(&r).await.unwrap());
    s.store(&r, &list_with(&["again"])).await.unwrap();
    let back = s.load(&r).await.unwrap().unwrap();
    assert_eq!(
        back.receipts().count(),
        0,
        "{kind}: no receipt of the old list"
    );
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

/// What survives closing and reopening a local backend on the same directory.
async fn survives_reopen(kind: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    survives_reopen_with(async || storage::open(kind, dir.path()).unwrap()).await;
}

/// What survives closing and reopening a backend: `open` opens it on the same data.
async fn survives_reopen_with(open: impl AsyncFn() -> Arc<dyn Storage>) {
    let mut want = Vec::new();
    let kind = {
        let s = open().await;
        for (i, n) in hostile_names().into_iter().enumerate() {
            let l = list_with(&[&format!("t{i}")]);
            s.store(&n, &l).await.unwrap();
            want.push((n, l));
        }
        s.kind()
    };
    let s = open().await;
    for (n, l) in &want {
        assert_eq!(s.load(n).await.unwrap().as_ref(), Some(l), "{kind}: {n:?}");
    }
    let mut names: Vec<ListName> = want.into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(s.list_names().await.unwrap(), names, "{kind}");
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

/// A change stored through `store_batch` reads back as the whole list; entries are
/// rows (`rows` counts the stored rows of list "rows"); reopened with `open`, the id
/// counter survives.
async fn stores_a_change_as_rows(
    open: impl AsyncFn() -> Arc<dyn Storage>,
    rows: impl AsyncFn() -> i64,
) {
    let s = open().await;
    let n = name("rows");
    let v1 = list_with(&["a", "b", "c"]);
    s.store(&n, &v1).await.unwrap();
    let mut v2 = v1.clone();
    let d = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
    v2.delete_entry(2).unwrap();
    v2.update_entry(
        3,
        sluicegate_todo::domain::EntryUpdate {
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
    assert_eq!(rows().await, 3);
    // Reopened, the id counter survives: a deleted id is never handed out again.
    drop(s);
    let s = open().await;
    let mut back = s.load(&n).await.unwrap().unwrap();
    assert_eq!(back.add_entry(d, "e").unwrap().id, 5);
}

#[tokio::test]
async fn sqlite_stores_a_change_as_rows_and_reads_back_the_whole_list() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sluicegate.sqlite3");
    stores_a_change_as_rows(
        async || storage::open(BackendKind::Sqlite, dir.path()).unwrap(),
        async || {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.query_row(
                "SELECT count(*) FROM entries WHERE list = 'rows'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        },
    )
    .await;
}

/// A change that only adds leaves the header row as it was (one page fewer per
/// add); the next id is still right after a reopen, and a later delete of the
/// largest id writes the header so that id is never handed out again.
#[tokio::test]
async fn sqlite_adds_leave_the_header_alone_and_the_next_id_survives() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sluicegate.sqlite3");
    let body = || -> Vec<u8> {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row("SELECT body FROM lists WHERE name = 'h'", [], |r| r.get(0))
            .unwrap()
    };
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    let n = name("h");
    let v1 = list_with(&["a"]);
    s.store(&n, &v1).await.unwrap();
    let header = body();
    let write = |old: &TodoList, new: &TodoList| storage::ListWrite {
        name: n.clone(),
        list: new.clone(),
        change: Some(change_between(old, new)),
    };
    let mut v2 = v1.clone();
    let d = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
    v2.add_entry(d, "b").unwrap();
    v2.add_entry(d, "c").unwrap();
    assert!(s.store_batch(&[write(&v1, &v2)]).await[0].is_ok());
    assert_eq!(body(), header, "an add does not rewrite the header");
    drop(s);
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    assert_eq!(s.load(&n).await.unwrap(), Some(v2.clone()));
    // Deleting the largest id (3) must not let it be handed out again.
    let mut v3 = v2.clone();
    v3.delete_entry(3).unwrap();
    assert!(s.store_batch(&[write(&v2, &v3)]).await[0].is_ok());
    assert_ne!(body(), header, "a delete writes the header");
    drop(s);
    let s = storage::open(BackendKind::Sqlite, dir.path()).unwrap();
    let mut back = s.load(&n).await.unwrap().unwrap();
    assert_eq!(back, v3);
    assert_eq!(back.add_entry(d, "d").unwrap().id, 4);
}

/// 50 lists in one `store_batch`: 50 answers, every list stored.
async fn commits_many_lists_in_one_batch(s: Arc<dyn Storage>) -> Vec<storage::ListWrite> {
    let writes: Vec<storage::ListWrite> = (0..50)
        .map(|i| storage::ListWrite {
            name: name(&format!("l{i}")),
            list: list_with(&[&format!("t{i}")]),
            change: None,
        })
        .collect();
    let results = s.store_batch(&writes).await;
    assert_eq!(results.len(), 50);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for w in &writes {
        assert_eq!(s.load(&w.name).await.unwrap().as_ref(), Some(&w.list));
    }
    writes
}

#[tokio::test]
async fn sqlite_commits_many_lists_in_one_batch_each_answered() {
    let dir = tempfile::tempdir().unwrap();
    commits_many_lists_in_one_batch(storage::open(BackendKind::Sqlite, dir.path()).unwrap()).await;
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
        sluicegate_todo::domain::EntryUpdate {
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

// PostgreSQL: the same cases on a real server (`support::pg`), then group commit,
// damage and an unreachable database.

async fn open_pg(url: &str) -> Arc<dyn Storage> {
    Arc::new(pg(url).await)
}

async fn pg(url: &str) -> PostgresStorage {
    PostgresStorage::open(url, PostgresOptions::default())
        .await
        .unwrap()
}

/// Runs `sql` on `url` and returns the first column of the first row as text.
async fn pg_query_one(url: &str, sql: &str) -> String {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let row = client.query_one(sql, &[]).await.unwrap();
    let v: String = row.get(0);
    drop(client);
    let _ = task.await;
    v
}

#[tokio::test]
async fn postgres_backend_passes_the_storage_suite() {
    let db = crate::support::pg::fresh_db().await;
    storage_suite(open_pg(&db.url).await).await;
}

#[tokio::test]
async fn postgres_backend_keeps_lists_across_a_reopen() {
    let db = crate::support::pg::fresh_db().await;
    survives_reopen_with(async || open_pg(&db.url).await).await;
}

#[tokio::test]
async fn postgres_stores_a_change_as_rows_and_reads_back_the_whole_list() {
    let db = crate::support::pg::fresh_db().await;
    stores_a_change_as_rows(
        async || open_pg(&db.url).await,
        async || {
            pg_query_one(
                &db.url,
                "SELECT count(*)::text FROM sluicegate.entries WHERE list = 'rows'",
            )
            .await
            .parse()
            .unwrap()
        },
    )
    .await;
}

#[tokio::test]
async fn postgres_commits_many_lists_in_one_transaction_each_answered() {
    let db = crate::support::pg::fresh_db().await;
    let writes = commits_many_lists_in_one_batch(open_pg(&db.url).await).await;
    // Rows written by one transaction carry its id in `xmin`: one batch, one transaction.
    let txs = pg_query_one(
        &db.url,
        "SELECT count(DISTINCT xmin::text)::text FROM sluicegate.lists",
    )
    .await;
    assert_eq!(txs, "1", "50 lists of one batch in {txs} transactions");
    let lists = pg_query_one(&db.url, "SELECT count(*)::text FROM sluicegate.lists").await;
    assert_eq!(lists, writes.len().to_string());
}

#[tokio::test]
async fn postgres_a_failed_batch_leaves_no_list_half_written() {
    let db = crate::support::pg::fresh_db().await;
    let s = open_pg(&db.url).await;
    let d = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
    // Version 1 of every list, stored.
    let v1: Vec<storage::ListWrite> = (0..10)
        .map(|i| storage::ListWrite {
            name: name(&format!("l{i}")),
            list: list_with(&["one", "two"]),
            change: None,
        })
        .collect();
    assert!(s.store_batch(&v1).await.iter().all(Result::is_ok));
    // Version 2: three more entries each, as changes; list l5's last entry holds a NUL,
    // which PostgreSQL's text refuses, after its first two new rows were sent.
    let v2: Vec<storage::ListWrite> = v1
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut list = w.list.clone();
            for t in ["three", "four", "five"] {
                list.add_entry(d, t).unwrap();
            }
            let mut change = change_between(&w.list, &list);
            if i == 5 {
                let bad = change.entries.get_mut(&5).unwrap().as_mut().unwrap();
                bad.title = "fi\0ve".into();
            }
            storage::ListWrite {
                name: w.name.clone(),
                list,
                change: Some(change),
            }
        })
        .collect();
    let results = s.store_batch(&v2).await;
    assert_eq!(results.len(), 10);
    for (i, r) in results.iter().enumerate() {
        if i == 5 {
            let err = r.as_ref().unwrap_err();
            assert!(
                matches!(err, StorageError::Postgres { list: Some(l), .. } if l.as_str() == "l5"),
                "{err:?}"
            );
            assert!(err.to_string().contains("\"l5\""), "{err}");
            assert!(err.is_transient());
        } else {
            assert!(r.is_ok(), "l{i}: {r:?}");
        }
    }
    // The bad list is exactly version 1 (none of its new rows, its old counter);
    // every other list is exactly version 2.
    for (i, (w1, w2)) in v1.iter().zip(&v2).enumerate() {
        let back = s.load(&w1.name).await.unwrap().unwrap();
        if i == 5 {
            assert_eq!(back, w1.list, "l5 was half written");
        } else {
            assert_eq!(back, w2.list, "l{i}");
        }
    }
}

#[tokio::test]
async fn postgres_damaged_rows_fail_only_their_list() {
    let db = crate::support::pg::fresh_db().await;
    let s = open_pg(&db.url).await;
    s.store(&name("good"), &list_with(&["x", "y"]))
        .await
        .unwrap();
    s.store(&name("bad"), &list_with(&["x", "y"]))
        .await
        .unwrap();
    // next_id 2 would hand out entry 2's id again.
    crate::support::pg::execute(
        &db.url,
        "UPDATE sluicegate.lists SET next_id = 2 WHERE name = 'bad'",
    )
    .await;
    let err = s.load(&name("bad")).await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { list, .. } if list.as_str() == "bad"),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"bad\""), "{err}");
    assert_eq!(
        s.load(&name("good")).await.unwrap(),
        Some(list_with(&["x", "y"]))
    );
}

#[tokio::test]
async fn postgres_opening_twice_at_once_creates_the_schema_once() {
    let db = crate::support::pg::fresh_db().await;
    let (a, b) = tokio::join!(pg(&db.url), pg(&db.url));
    a.store(&name("x"), &list_with(&["1"])).await.unwrap();
    assert_eq!(b.list_names().await.unwrap(), vec![name("x")]);
    let version = pg_query_one(
        &db.url,
        "SELECT value FROM sluicegate.meta WHERE key = 'schema'",
    )
    .await;
    assert_eq!(version, "1");
}

#[tokio::test]
async fn postgres_unix_socket_urls_work() {
    let db = crate::support::pg::fresh_db().await;
    let s = open_pg(&db.url).await;
    s.store(&name("x"), &list_with(&["1"])).await.unwrap();
    if std::env::var(crate::support::pg::URL_VAR).is_ok() {
        return; // the server's socket is not ours to know
    }
    // The same database through the key-value form and the socket directory.
    let server = crate::support::pg::PgServer::start();
    let url = server.socket_url("postgres");
    let s = open_pg(&url).await;
    s.store(&name("sock"), &list_with(&["1"])).await.unwrap();
    assert_eq!(s.list_names().await.unwrap(), vec![name("sock")]);
}

/// A server that accepts connections and never answers: every operation fails
/// within the configured timeout, naming the list and PostgreSQL.
#[tokio::test(start_paused = true)]
async fn postgres_that_never_answers_fails_within_the_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let options = PostgresOptions {
        timeout: std::time::Duration::from_secs(2),
        connect_timeout: std::time::Duration::from_secs(1),
        ..PostgresOptions::default()
    };
    let started = tokio::time::Instant::now();
    let s = PostgresStorage::open(&format!("postgres://u@127.0.0.1:{port}/db"), options)
        .await
        .expect("opens although the database does not answer");
    assert!(started.elapsed() <= std::time::Duration::from_secs(2));
    let started = tokio::time::Instant::now();
    let err = s.load(&name("x")).await.unwrap_err();
    assert!(started.elapsed() <= std::time::Duration::from_secs(2));
    let msg = err.to_string();
    assert!(msg.contains("postgres") && msg.contains("\"x\""), "{msg}");
    let results = s
        .store_batch(&[storage::ListWrite {
            name: name("y"),
            list: list_with(&["1"]),
            change: None,
        }])
        .await;
    let msg = results[0].as_ref().unwrap_err().to_string();
    assert!(msg.contains("postgres") && msg.contains("\"y\""), "{msg}");
    assert!(started.elapsed() <= std::time::Duration::from_secs(4));
}

/// Nothing listens: a clear error at once, and a bad URL fails the open.
#[tokio::test]
async fn postgres_down_or_misnamed_gives_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = pg(&format!("postgres://u@127.0.0.1:{port}/db")).await;
    let err = s.load(&name("x")).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("postgres storage error for list \"x\"") && msg.contains("refused"),
        "{msg}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps the source"
    );
    let err = match PostgresStorage::open("postgres://u@h:notaport/db", PostgresOptions::default())
        .await
    {
        Ok(_) => panic!("opened a bad URL"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("bad connection URL"), "{err}");
}
