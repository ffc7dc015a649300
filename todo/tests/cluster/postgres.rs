//! `sluicegate serve` on PostgreSQL while the database comes and goes: started with
//! PostgreSQL down, a durable write is answered `503` naming storage (never a hang,
//! never a panic), and once the database is up the same request succeeds; the same
//! when the database stops under a running server. Needs a private server it can
//! stop (`crate::support::pg::PgServer`), so it never uses `SLUICEGATE_TEST_PG_URL`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::eventually::{poll_until, PATIENCE};
use crate::support::serve::{repo_file, Serve};

/// `policies/coalesce.toml` on PostgreSQL at `url`, every write acknowledged durable.
fn config(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_file("policies/coalesce.toml")).unwrap();
    let changed = text
        .replace(
            "backend = \"sqlite\"",
            &format!("backend = \"postgres\"\nurl = \"{url}\""),
        )
        .replace("default_ack = \"applied\"", "default_ack = \"durable\"");
    assert!(changed.contains("postgres") && changed.contains("\"durable\""));
    let path = dir.join("pg.toml");
    std::fs::write(&path, changed).unwrap();
    path
}

/// One durable add: the status, `Retry-After` and the JSON body.
async fn add(client: &reqwest::Client, serve: &Serve, title: &str) -> (u16, bool, Value) {
    let resp = client
        .post(serve.url("/lists/bob/entries"))
        .json(&json!({"date": "2026-12-02", "title": title}))
        .send()
        .await
        .expect("the server answers");
    let status = resp.status().as_u16();
    let retry = resp.headers().contains_key("retry-after");
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

/// Asserts that a durable write fails as a storage failure, quickly, with the
/// outcome the server knows: `503` not applied (the list could not be loaded), or
/// `504` unknown (applied in memory, its store failed; it is stored once the
/// database is back).
async fn refused_naming_storage(
    client: &reqwest::Client,
    serve: &Serve,
    title: &str,
    want: (u16, &str),
) {
    let started = Instant::now();
    let (status, retry, body) = add(client, serve, title).await;
    assert_eq!(
        (status, body["outcome"].as_str().unwrap_or_default()),
        want,
        "{body}"
    );
    assert_eq!(retry, status == 503, "Retry-After on a 503 only: {body}");
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("storage") && msg.contains("postgres"),
        "the error names storage and postgres: {body}"
    );
    // Within the call timeout (5 s in policies/coalesce.toml) and a margin.
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
}

/// Retries a durable write until it is answered 201 (the database is back).
async fn succeeds_once_up(client: &reqwest::Client, serve: &Serve, title: &str) -> Value {
    let mut last = Value::Null;
    let body = poll_until(async || {
        let (status, _, body) = add(client, serve, title).await;
        if status == 201 {
            return Some(body);
        }
        assert!(
            matches!(status, 503 | 504),
            "only storage refusals while recovering: {status} {body}"
        );
        last = body;
        None
    })
    .await;
    body.unwrap_or_else(|| panic!("no recovery within {PATIENCE:?}: {last}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_writes_fail_naming_storage_and_their_outcome_while_postgres_is_down() {
    let mut pg = tokio::task::spawn_blocking(crate::support::pg::PgServer::start)
        .await
        .unwrap();
    crate::support::pg::execute(&pg.socket_url("postgres"), "CREATE DATABASE todo").await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &pg.tcp_url("todo"));
    let data = tmp.path().join("data");
    let serve = Serve::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();

    // Started with the database down: the list cannot be loaded, nothing is applied.
    refused_naming_storage(&client, &serve, "while down", (503, "not_applied")).await;
    let mut pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    let first = succeeds_once_up(&client, &serve, "after start").await;
    assert_eq!(first["title"], "after start");

    // Down under a running server, then up again.
    pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    // The list is live: the write is applied, its store fails, its outcome is unknown.
    refused_naming_storage(&client, &serve, "down again", (504, "unknown")).await;
    let _pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    let second = succeeds_once_up(&client, &serve, "after restart").await;

    // Both acknowledged writes are there, the unknown one was stored after all (with
    // the list's next store), and the one not applied was not.
    let resp = client
        .get(serve.url("/lists/bob/entries"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let entries: Value = resp.json().await.unwrap();
    let titles: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert!(
        titles.contains(&"after start") && titles.contains(&"after restart"),
        "{titles:?}"
    );
    assert!(!titles.contains(&"while down"), "{titles:?}");
    assert!(titles.contains(&"down again"), "{titles:?}");
    assert_eq!(second["title"], "after restart");
    assert!(
        !serve.stderr_text().contains("panicked"),
        "{}",
        serve.stderr_text()
    );
}
