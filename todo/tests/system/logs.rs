//! What `serve` logs, read from a real process's stderr: refused requests at most
//! one line per second per (route, reason) with counts that add up, a damaged list
//! at error once (and answered 500 without `Retry-After`), and the startup summary.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::eventually::poll_until;
use crate::support::serve::Serve;

/// `key=value` of a text log line (values without spaces or quoted).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    if let Some(q) = rest.strip_prefix('"') {
        return q.split('"').next();
    }
    rest.split_whitespace().next()
}

const TIGHT: &str = r#"
[storage]
backend = "files"

[system]
default_ack = "applied"
call_timeout = "5s"
idle_timeout = "60s"

[database]
workers = 1
routing = "direct"

[mailbox.todo_server]
policy = "drop_newest"
capacity = 1

[mailbox.database]
policy = "drop_newest"
capacity = 1

[mailbox.database_worker]
policy = "drop_newest"
capacity = 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_log_at_most_one_line_per_second_per_route_and_reason_with_counts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tight.toml");
    std::fs::write(&config, TIGHT).unwrap();
    let data = dir.path().join("data");
    let mut s = Serve::start(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let client = reqwest::Client::new();
    let started = Instant::now();
    let statuses: Vec<StatusCode> = futures::stream::iter(0..600)
        .map(|i| {
            let (client, url) = (client.clone(), s.url("/lists/hot/entries?ack=durable"));
            async move {
                client
                    .post(url)
                    .json(&json!({"date": "2026-12-02", "title": format!("t{i}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let refused = statuses.iter().filter(|s| s.is_server_error()).count() as u64;
    assert!(
        refused > 0,
        "a capacity-1 mailbox refused nothing: {statuses:?}"
    );
    // Every pending count is written within a second or so.
    let (mut lines, mut logged) = (Vec::new(), 0);
    poll_until(async || {
        lines = s
            .stderr_text()
            .lines()
            .filter(|l| l.contains("refused; last:"))
            .map(str::to_string)
            .collect::<Vec<_>>();
        logged = lines
            .iter()
            .map(|l| field(l, "count").unwrap().parse::<u64>().unwrap())
            .sum();
        (logged >= refused).then_some(())
    })
    .await;
    assert_eq!(logged, refused, "counts in the log: {lines:#?}");
    let seconds = started.elapsed().as_secs() + 1;
    let mut per_key: BTreeMap<(String, String), u64> = BTreeMap::new();
    for l in &lines {
        assert!(l.contains(" WARN "), "{l}");
        assert_eq!(field(l, "route"), Some("/lists/{list}/entries"), "{l}");
        assert_eq!(field(l, "list"), Some("hot"), "{l}");
        let key = (
            field(l, "route").unwrap().to_string(),
            field(l, "reason").unwrap().to_string(),
        );
        *per_key.entry(key).or_default() += 1;
    }
    for (key, n) in &per_key {
        assert!(
            *n <= seconds + 1,
            "{key:?} logged {n} lines in {seconds} s: {lines:#?}"
        );
    }
    let stderr = s.stderr_text();
    assert!(
        !stderr.contains("on_failure"),
        "tower-http still logs each 5xx"
    );
    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_list_answers_500_without_retry_after_and_logs_at_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let name = sluicegate_todo::domain::ListName::new("broken").unwrap();
    let file = data
        .join("lists")
        .join(sluicegate_todo::domain::encode_path(&name));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"{ not a list").unwrap();
    // The files backend reads each list when its server starts (the SQLite default
    // would refuse to import a damaged file at open instead).
    let default = std::fs::read_to_string(crate::support::serve::repo_file("policies/block.toml"))
        .unwrap()
        .replace("backend = \"sqlite\"", "backend = \"files\"");
    assert!(default.contains("backend = \"files\""), "{default}");
    let config = dir.path().join("files.toml");
    std::fs::write(&config, default).unwrap();
    let mut s = Serve::start(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let resp = client
            .get(s.url("/lists/broken/entries"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(resp.headers().get("retry-after").is_none());
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("damaged"),
            "{body}"
        );
    }
    // Other lists are served ("fine" was never written: a 404 naming it).
    let ok = client
        .get(s.url("/lists/fine/entries"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no list named \"fine\""),
        "{body}"
    );
    assert!(s.wait_for_stderr("is damaged", 1));
    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
    let stderr = s.stderr_text();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" ERROR ") && l.contains("damaged"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("list=\"broken\""), "{}", errors[0]);
}

#[test]
fn startup_logs_one_summary_line_of_the_effective_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = crate::support::serve::repo_file("policies/block.toml");
    let mut s = Serve::start(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(s.wait_for_stderr("serving", 1));
    let stderr = s.stderr_text();
    let line = stderr.lines().find(|l| l.contains("serving")).unwrap();
    assert!(
        line.contains(&format!("config={}", config.display())),
        "{line}"
    );
    assert!(
        line.contains(&format!("data_dir={}", data.display())),
        "{line}"
    );
    assert!(line.contains("backend=sqlite"), "{line}");
    assert!(line.contains("default_ack=applied"), "{line}");
    assert!(line.contains("todo_server=block(capacity=256"), "{line}");
    assert!(line.contains(&format!("listen={}", s.addr)), "{line}");
    s.signal("TERM");
    assert!(s.wait_exit().success());
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Serve::start(&[
        "--log-format",
        "json",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(s.wait_for_stderr("serving", 1));
    s.signal("TERM");
    assert!(s.wait_exit().success());
    let stderr = s.stderr_text();
    let mut n = 0;
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        n += 1;
    }
    assert!(n >= 2, "{stderr}");
    assert!(stderr.contains("\"default_ack\":\"applied\""), "{stderr}");
}
