//! Two real `serve` processes on one `--data-dir`: the second exits non-zero at
//! once naming the directory and the holder's pid; the first keeps serving and
//! keeps every write; the lock is released when the holder exits (even by SIGKILL).

use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::eventually::{poll_until_blocking, PATIENCE};
use crate::support::serve::Serve;

/// Runs `sluicegate <args>` to its end; fails the test if it is still running after
/// [`PATIENCE`] (a second server that started serving instead of refusing).
fn run_to_end(args: &[&str]) -> Output {
    let mut child = Command::new(crate::support::serve::bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluicegate");
    if poll_until_blocking(|| child.try_wait().expect("try_wait")).is_none() {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "sluicegate {args:?} still running after {PATIENCE:?}; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    child.wait_with_output().unwrap()
}

async fn add(s: &Serve, title: &str) -> StatusCode {
    reqwest::Client::new()
        .post(s.url("/lists/bob/entries?ack=durable"))
        .json(&json!({"date": "2026-12-02", "title": title}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn titles(s: &Serve) -> Vec<String> {
    let v: Value = reqwest::get(s.url("/lists/bob/entries"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_the_same_data_dir_exits_at_once_and_the_first_is_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap().to_string();
    let mut first = Serve::start(&["--listen", "127.0.0.1:0", "--data-dir", &data_arg]);
    assert_eq!(add(&first, "from the first").await, StatusCode::CREATED);

    let d2 = data_arg.clone();
    let second = tokio::task::spawn_blocking(move || {
        run_to_end(&["serve", "--listen", "127.0.0.1:0", "--data-dir", &d2])
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "second serve: {stderr}");
    assert!(stderr.contains(&data_arg), "names the directory: {stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.pid())),
        "names the holder's pid {}: {stderr}",
        first.pid()
    );
    assert!(
        !String::from_utf8_lossy(&second.stdout).contains("listening on"),
        "the second never listens"
    );

    // The first still serves, writes, and holds what it wrote.
    assert!(first.is_running());
    assert_eq!(add(&first, "after the refusal").await, StatusCode::CREATED);
    assert_eq!(
        titles(&first).await,
        ["from the first", "after the refusal"]
    );
    first.signal("TERM");
    assert!(first.wait_exit().success(), "{}", first.stderr_text());

    // Released at exit: a new server takes the directory and finds both writes.
    let mut third = Serve::start(&["--listen", "127.0.0.1:0", "--data-dir", &data_arg]);
    assert_eq!(
        titles(&third).await,
        ["from the first", "after the refusal"]
    );
    third.signal("KILL");
    third.wait_exit();
    // SIGKILL releases it too (the OS drops the lock with the process).
    let mut fourth = Serve::start(&["--listen", "127.0.0.1:0", "--data-dir", &data_arg]);
    assert_eq!(titles(&fourth).await.len(), 2);
    fourth.signal("TERM");
    assert!(fourth.wait_exit().success(), "{}", fourth.stderr_text());
}

#[test]
fn the_crash_writer_takes_the_lock_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap().to_string();
    let mut holder = Serve::start(&["--listen", "127.0.0.1:0", "--data-dir", &data_arg]);
    let policy = crate::support::serve::repo_file("policies/coalesce.toml");
    let out = run_to_end(&[
        "experiment-writer",
        "--policy",
        policy.to_str().unwrap(),
        "--data-dir",
        &data_arg,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", holder.pid())),
        "{stderr}"
    );
    holder.signal("TERM");
    assert!(holder.wait_exit().success());
}
