//! The `sluicegate` command as a user runs it: `serve`'s listening line and health,
//! `check-config` on good and bad files, argument errors, and SIGHUP policy reloads.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sluicegate_todo::config::Config;

use crate::support::eventually::poll_until;
use crate::support::prom::{find, parse_metrics, Sample};
use crate::support::serve::{all_entries, get_json, repo_file, run, Serve};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn metrics(s: &Serve) -> Vec<Sample> {
    let body = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_metrics(&body).0
}

/// Polls `/metrics` until `pred` holds; panics with the last scrape after `PATIENCE`.
async fn wait_for_metrics(s: &Serve, what: &str, pred: impl Fn(&[Sample]) -> bool) {
    let mut last = Vec::new();
    let shown = poll_until(async || {
        last = metrics(s).await;
        pred(&last).then_some(())
    })
    .await;
    assert!(
        shown.is_some(),
        "/metrics never showed {what}; last scrape: {last:#?}"
    );
}

#[tokio::test]
async fn serve_prints_one_listening_line_with_the_real_port_and_answers_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = Serve::start(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(s.first_line, format!("listening on http://{}", s.addr));
    assert_eq!(s.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(s.addr.port(), 0, "the line must carry the bound port");

    let resp = reqwest::get(s.url("/healthz")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(data.is_dir(), "--data-dir is created");

    s.signal("TERM");
    let status = s.wait_exit();
    assert!(
        status.success(),
        "exit status {status}: {}",
        s.stderr_text()
    );
    assert_eq!(
        s.stdout_rest(),
        Vec::<String>::new(),
        "stdout carries only the listening line"
    );
}

#[tokio::test]
async fn serve_with_the_book_config_runs_its_policies() {
    let dir = tempfile::tempdir().unwrap();
    let book = repo_file("policies/book.toml");
    let mut s = Serve::start(&[
        "--config",
        book.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    let c = reqwest::Client::new();
    // The book acknowledges writes as casts: 202, then visible to a read once the
    // list server has applied it (docs/guarantees.md: not necessarily the read right
    // after the 202), so the read is repeated for a while.
    let resp = c
        .post(s.url("/lists/alice/entries"))
        .json(&json!({"date": "2026-11-23", "title": "Dentist"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let mut entries = Value::Null;
    for _ in 0..100 {
        entries = get_json(&c, &s.url("/lists/alice/entries")).await.1;
        if entries[0]["title"] == "Dentist" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        entries[0]["title"], "Dentist",
        "the cast is applied within 5 s"
    );
    // The book routes database requests through one unbounded router mailbox.
    let samples = metrics(&s).await;
    let router = find(
        &samples,
        "sluicegate_mailboxes",
        &[("mailbox", "database"), ("policy", "unbounded")],
    );
    assert_eq!(router.len(), 1, "{samples:#?}");
    assert_eq!(router[0].value, 1.0);

    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
}

#[test]
fn check_config_accepts_every_shipped_policy_and_prints_its_settings() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo_file("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let out = run(&["check-config", path.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            text(&out.stderr)
        );
        assert!(stdout.starts_with(&format!("{}: ok\n", path.display())));
        let config = Config::load(&path).unwrap();
        for (role, policy) in config.policies() {
            let line = format!("mailbox.{role} = {policy}\n");
            assert!(stdout.contains(&line), "{line:?} missing from:\n{stdout}");
        }
        for key in [
            "storage.backend",
            "storage.data_dir",
            "system.default_ack",
            "system.call_timeout",
            "system.idle_timeout",
            "database.workers",
            "database.routing",
        ] {
            assert!(
                stdout.contains(&format!("\n{key} = ")),
                "{key} missing:\n{stdout}"
            );
        }
    }
    assert!(seen >= 6, "policies/ should hold the six shipped configs");
}

#[test]
fn check_config_prints_the_values_of_the_file() {
    let out = run(&[
        "check-config",
        repo_file("policies/coalesce.toml").to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    for line in [
        "system.default_ack = applied",
        "database.routing = direct",
        "mailbox.todo_server = drop_newest(capacity=1024)",
        "mailbox.database_worker = coalesce(capacity=4096)",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing:\n{stdout}"
        );
    }
}

/// Issue 14, problem 7, as a user meets it: a file holding only what it changes is
/// valid (the rest is the built-in default), and a typo in it names the key, not
/// a missing section.
#[test]
fn check_config_takes_a_file_of_one_change_and_names_a_typo_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, "[system]\ndefault_ack = \"durable\"\n").unwrap();
    let out = run(&["check-config", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for line in [
        "system.default_ack = durable",
        "storage.backend = sqlite",
        "mailbox.todo_server = drop_newest(capacity=1024)",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing:\n{stdout}"
        );
    }
    std::fs::write(&path, "[system]\ndefault_ak = \"durable\"\n").unwrap();
    let out = run(&["check-config", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("system.default_ak"), "{stderr}");
    assert!(!stderr.contains("storage"), "{stderr}");
}

/// A copy of policies/coalesce.toml with one substitution, in a temp dir.
fn edited_config(dir: &std::path::Path, from: &str, to: &str) -> std::path::PathBuf {
    let original = std::fs::read_to_string(repo_file("policies/coalesce.toml")).unwrap();
    assert!(original.contains(from), "{from:?} not in coalesce.toml");
    let path = dir.join("edited.toml");
    std::fs::write(&path, original.replacen(from, to, 1)).unwrap();
    path
}

fn assert_rejected(path: &std::path::Path, names: &[&str]) {
    let out = run(&["check-config", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "accepted a bad file: {stderr}");
    assert!(
        !text(&out.stdout).contains(": ok"),
        "a rejected file is not reported ok"
    );
    for name in names {
        assert!(
            stderr.contains(name),
            "stderr should name {name:?}:\n{stderr}"
        );
    }
}

#[test]
fn check_config_rejects_an_unknown_key_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_config(dir.path(), "[system]\n", "[system]\nbogus_knob = 3\n");
    assert_rejected(&path, &["bogus_knob", "edited.toml"]);
}

#[test]
fn check_config_rejects_a_bad_value_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_config(dir.path(), "capacity = 1024", "capacity = 0");
    assert_rejected(&path, &["mailbox.todo_server", "capacity"]);
    let path = edited_config(
        dir.path(),
        "call_timeout = \"5s\"",
        "call_timeout = \"soon\"",
    );
    assert_rejected(&path, &["call_timeout", "soon"]);
    let path = edited_config(dir.path(), "workers = 3", "workers = 0");
    assert_rejected(&path, &["database.workers"]);
}

#[test]
fn check_config_rejects_a_missing_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-config.toml");
    assert_rejected(&path, &["no-such-config.toml"]);
}

#[test]
fn an_unknown_subcommand_fails_with_a_message() {
    let out = run(&["frobnicate"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("frobnicate"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_listen_address_fails_with_a_message() {
    let out = run(&["serve", "--listen", "not-an-address"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--listen"), "{stderr}");
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn serve_listens_on_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Serve::start(&[
        "--listen",
        "localhost:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(s.addr.ip().is_loopback(), "{}", s.first_line);
    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
}

#[test]
fn a_listen_address_without_a_port_or_with_an_unknown_host_fails_with_a_message() {
    for bad in ["localhost", "localhost:99999", "no-such-host.invalid:8080"] {
        let out = run(&["serve", "--listen", bad]);
        assert!(!out.status.success(), "{bad}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("--listen"), "{bad}: {stderr}");
        assert!(stderr.contains(bad), "{bad}: {stderr}");
        assert!(text(&out.stdout).is_empty());
    }
}

#[test]
fn serve_on_a_taken_port_fails_with_a_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "serve",
        "--listen",
        &addr,
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(
        !text(&out.stdout).contains("listening on"),
        "no listening line when nothing listens"
    );
}

#[test]
fn serve_with_a_bad_config_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_config(dir.path(), "capacity = 1024", "capacity = -1");
    let out = run(&[
        "serve",
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("edited.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn sighup_reloads_the_policies_and_the_service_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let config = edited_config(dir.path(), "", "");
    let mut s = Serve::start(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    let c = reqwest::Client::new();
    let resp = c
        .post(s.url("/lists/bob/entries"))
        .json(&json!({"date": "2026-11-23", "title": "Before reload"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let workers = Config::load(&config).unwrap().database.workers as f64;
    let samples = metrics(&s).await;
    let before = find(
        &samples,
        "sluicegate_mailbox_capacity",
        &[("mailbox", "database_worker"), ("policy", "coalesce")],
    );
    assert_eq!(before.len(), 1, "{samples:#?}");
    assert_eq!(before[0].value, 4096.0);

    // Rewrite the file: other policies for list servers and database workers.
    let original = std::fs::read_to_string(&config).unwrap();
    let rewritten = original
        .replace(
            "[mailbox.database_worker]\npolicy = \"coalesce\"\ncapacity = 4096",
            "[mailbox.database_worker]\npolicy = \"drop_oldest\"\ncapacity = 77",
        )
        .replace(
            "[mailbox.todo_server]\npolicy = \"drop_newest\"\ncapacity = 1024",
            "[mailbox.todo_server]\npolicy = \"drop_newest\"\ncapacity = 33",
        );
    assert_ne!(rewritten, original, "the substitution must change the file");
    std::fs::write(&config, rewritten).unwrap();
    s.signal("HUP");

    wait_for_metrics(&s, "the reloaded database_worker policy", |m| {
        let cap = find(
            m,
            "sluicegate_mailbox_capacity",
            &[("mailbox", "database_worker"), ("policy", "drop_oldest")],
        );
        let live = find(
            m,
            "sluicegate_mailboxes",
            &[("mailbox", "database_worker"), ("policy", "drop_oldest")],
        );
        cap.len() == 1 && cap[0].value == 77.0 && live.len() == 1 && live[0].value == workers
    })
    .await;
    let samples = metrics(&s).await;
    let old = find(
        &samples,
        "sluicegate_mailboxes",
        &[("mailbox", "database_worker"), ("policy", "coalesce")],
    );
    assert!(
        old.iter().all(|s| s.value == 0.0),
        "no live mailbox keeps the old policy: {old:#?}"
    );
    // The live list server took its new capacity too.
    let lists = find(
        &samples,
        "sluicegate_mailbox_capacity",
        &[("mailbox", "todo_server"), ("policy", "drop_newest")],
    );
    assert_eq!(lists.len(), 1, "{samples:#?}");
    assert_eq!(lists[0].value, 33.0);
    assert!(
        s.wait_for_stderr("mailbox policies reloaded", 1),
        "{}",
        s.stderr_text()
    );

    // Still serving, and nothing accepted before the reload is lost.
    let resp = c
        .post(s.url("/lists/bob/entries"))
        .json(&json!({"date": "2026-11-24", "title": "After reload"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let entries: Value = c
        .get(s.url("/lists/bob/entries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let titles: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Before reload", "After reload"]);

    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
}

/// Issue 14, problem 6: SIGHUP applies `default_ack` live, names at `warn` each
/// changed setting that needs a restart (and applies none of them), and the old
/// `policy` label's series are no longer exported (a real process, a real signal,
/// real scrapes).
#[tokio::test]
async fn sighup_applies_default_ack_names_restart_settings_and_drops_stale_series() {
    let dir = tempfile::tempdir().unwrap();
    let config = edited_config(dir.path(), "", "");
    let mut s = Serve::start(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    let c = reqwest::Client::new();
    let post = |title: &'static str| {
        c.post(s.url("/lists/bob/entries"))
            .json(&json!({"date": "2026-11-23", "title": title}))
            .send()
    };
    assert_eq!(post("before").await.unwrap().status(), StatusCode::CREATED);
    let samples = metrics(&s).await;
    let todo = |m: &[Sample], policy: &str| {
        find(
            m,
            "sluicegate_mailbox_capacity",
            &[("mailbox", "todo_server"), ("policy", policy)],
        )
        .len()
    };
    assert_eq!(todo(&samples, "drop_newest"), 1, "{samples:#?}");

    let original = std::fs::read_to_string(&config).unwrap();
    let rewritten = original
        .replace("default_ack = \"applied\"", "default_ack = \"none\"")
        .replace("workers = 3", "workers = 2")
        .replace(
            "[mailbox.todo_server]\npolicy = \"drop_newest\"\ncapacity = 1024",
            "[mailbox.todo_server]\npolicy = \"block\"\ncapacity = 8",
        );
    assert_eq!(
        rewritten.matches("none").count(),
        1 + original.matches("none").count()
    );
    assert!(rewritten.contains("workers = 2") && rewritten.contains("\"block\""));
    std::fs::write(&config, rewritten).unwrap();
    s.signal("HUP");
    assert!(
        s.wait_for_stderr("mailbox policies reloaded", 1),
        "{}",
        s.stderr_text()
    );

    // The setting that needs a restart is named, at warn, and not applied.
    let stderr = s.stderr_text();
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("restart"))
        .collect();
    assert!(
        warned.iter().any(|l| l.contains("database.workers")),
        "no warning names database.workers:\n{stderr}"
    );
    assert!(
        !warned
            .iter()
            .any(|l| l.contains("default_ack") || l.contains("mailbox.")),
        "a live setting was reported as needing a restart:\n{stderr}"
    );
    let samples = metrics(&s).await;
    let workers = find(
        &samples,
        "sluicegate_mailboxes",
        &[("mailbox", "database_worker")],
    );
    assert_eq!(
        workers.iter().map(|w| w.value).sum::<f64>(),
        3.0,
        "still 3 workers until a restart"
    );
    // default_ack is live: a write naming no ack is now cast (202).
    assert_eq!(post("after").await.unwrap().status(), StatusCode::ACCEPTED);
    // The old policy label's series are gone; the new one's are there.
    assert_eq!(todo(&samples, "drop_newest"), 0, "stale series exported");
    assert_eq!(todo(&samples, "block"), 1, "{samples:#?}");
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !text
            .lines()
            .any(|l| l.contains("mailbox=\"todo_server\"") && l.contains("policy=\"drop_newest\"")),
        "{text}"
    );

    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
}

#[tokio::test]
async fn sighup_with_a_broken_file_keeps_the_policies_and_serving() {
    let dir = tempfile::tempdir().unwrap();
    let config = edited_config(dir.path(), "", "");
    let mut s = Serve::start(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    std::fs::write(&config, "[mailbox.database_worker]\npolicy = \"lifo\"\n").unwrap();
    s.signal("HUP");
    assert!(s.wait_for_stderr("reload failed", 1), "{}", s.stderr_text());
    let samples = metrics(&s).await;
    let live = find(
        &samples,
        "sluicegate_mailboxes",
        &[("mailbox", "database_worker"), ("policy", "coalesce")],
    );
    assert_eq!(live.len(), 1);
    assert!(live[0].value >= 1.0, "the old policy stays: {samples:#?}");
    assert_eq!(
        reqwest::get(s.url("/healthz")).await.unwrap().status(),
        StatusCode::OK
    );
    assert!(s.is_running());
    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
}

#[tokio::test]
async fn sighup_without_a_config_file_does_not_stop_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Serve::start(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    s.signal("HUP");
    assert!(
        s.wait_for_stderr("nothing to reload", 1),
        "{}",
        s.stderr_text()
    );
    assert!(s.is_running(), "SIGHUP must not end the process");
    assert_eq!(
        reqwest::get(s.url("/healthz")).await.unwrap().status(),
        StatusCode::OK
    );
    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_under_write_load_lose_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = edited_config(dir.path(), "", "");
    let original = std::fs::read_to_string(&config).unwrap();
    // The same roles with other policies, roomy enough that nothing is refused.
    let other = original
        .replace(
            "[mailbox.database_worker]\npolicy = \"coalesce\"\ncapacity = 4096",
            "[mailbox.database_worker]\npolicy = \"unbounded\"",
        )
        .replace(
            "[mailbox.todo_server]\npolicy = \"drop_newest\"\ncapacity = 1024",
            "[mailbox.todo_server]\npolicy = \"unbounded\"",
        );
    assert_ne!(other, original);
    let mut s = Serve::start(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    let base = s.url("");
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let base = base.clone();
            tokio::spawn(async move {
                let c = reqwest::Client::new();
                let mut acked = Vec::new();
                for n in 0..150 {
                    let list = format!("reload-{}", n % 4);
                    let title = format!("w{w} n{n}");
                    let resp = c
                        .post(format!("{base}/lists/{list}/entries?ack=applied"))
                        .json(&json!({"date": "2026-11-27", "title": title}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), StatusCode::CREATED, "{title}");
                    let id = resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
                    acked.push((list, id, title));
                }
                acked
            })
        })
        .collect();
    for round in 1..=6 {
        let text = if round % 2 == 1 { &other } else { &original };
        std::fs::write(&config, text).unwrap();
        s.signal("HUP");
        assert!(
            s.wait_for_stderr("mailbox policies reloaded", round),
            "{}",
            s.stderr_text()
        );
    }
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert_eq!(acked.len(), 8 * 150);
    let c = reqwest::Client::new();
    let mut found = std::collections::BTreeSet::new();
    for i in 0..4 {
        let list = format!("reload-{i}");
        let entries: Vec<Value> = c
            .get(s.url(&format!("/lists/{list}/entries")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for e in entries {
            found.insert((
                list.clone(),
                e["id"].as_u64().unwrap(),
                e["title"].as_str().unwrap().to_string(),
            ));
        }
    }
    let missing: Vec<_> = acked.iter().filter(|a| !found.contains(*a)).collect();
    assert!(missing.is_empty(), "lost across reloads: {missing:?}");
    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_against_a_running_serve_reports_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Serve::start(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    let target = s.url("");
    let out = tokio::task::spawn_blocking(move || {
        run(&[
            "load",
            "--target",
            &target,
            "--rate",
            "100",
            "--duration",
            "1s",
            "--lists",
            "5",
        ])
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("requests: 100 "), "{stdout}");
    // Writes answer 201 and reads 200, or 404 for a list no write reached yet;
    // nothing else at this rate.
    let statuses = stdout
        .lines()
        .find_map(|l| l.strip_prefix("statuses:"))
        .expect("a statuses line");
    let total: u64 = statuses
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            assert!(
                matches!(k, "200" | "201" | "404"),
                "unexpected status {kv} in {stdout}"
            );
            v.parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(total, 100, "{stdout}");
    // The accepted line counts exactly the 2xx answers.
    let ok: u64 = statuses
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.starts_with('2'))
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum();
    assert!(
        stdout.contains(&format!("accepted (2xx): {ok} ")),
        "{stdout}"
    );
    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
}

#[test]
fn load_refuses_a_bad_rate() {
    let out = run(&[
        "load",
        "--target",
        "http://127.0.0.1:9",
        "--rate",
        "0",
        "--duration",
        "1s",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--rate"),
        "{}",
        text(&out.stderr)
    );
}

/// A local port nothing listens on (bound, then released).
fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

#[test]
fn load_exits_non_zero_when_requests_fail_and_counts_the_reasons() {
    let target = closed_port_url();
    let args = [
        "load",
        "--target",
        target.as_str(),
        "--rate",
        "20",
        "--duration",
        "1s",
    ];
    let out = run(&args);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("failures: 20 of 20 (100.0 %)"), "{stdout}");
    assert!(stdout.contains("  connect: 20  e.g. "), "{stdout}");
    assert!(stderr.contains("--max-failure-share 0.01"), "{stderr}");
    // A share that allows every failure: the same run passes.
    let mut lenient = args.to_vec();
    lenient.extend(["--max-failure-share", "1"]);
    let out = run(&lenient);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("  connect: 20"));
}

#[test]
fn load_refuses_arguments_that_make_no_run() {
    let target = closed_port_url();
    for (flag, value) in [
        ("--lists", "0"),
        ("--duration", "0s"),
        ("--max-failure-share", "1.5"),
        ("--prefix", "bad\u{1}"),
    ] {
        let out = run(&["load", "--target", &target, flag, value]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
        assert!(!text(&out.stdout).contains("requests:"), "{flag}: it ran");
    }
}

#[test]
fn load_help_says_it_writes_prefixed_lists_into_the_target() {
    let out = run(&["load", "--help"]);
    let help = text(&out.stdout);
    assert!(help.contains("--prefix"), "{help}");
    assert!(help.contains("real lists in the target's data"), "{help}");
    assert!(help.contains("[default: load-]"), "{help}");
    assert!(help.contains("--max-failure-share"), "{help}");
    assert!(help.contains("[default: 0.01]"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_writes_only_lists_with_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Serve::start(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    let target = s.url("");
    let out = tokio::task::spawn_blocking(move || {
        run(&[
            "load",
            "--target",
            &target,
            "--rate",
            "40",
            "--duration",
            "1s",
            "--lists",
            "2",
            "--write-pct",
            "100",
            "--prefix",
            "mine/",
        ])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut written = 0;
    for list in ["mine%2F0", "mine%2F1", "load-0", "load-1"] {
        // A list the run did not write does not exist: 0 entries.
        let n = all_entries(
            &reqwest::Client::new(),
            &s.url(&format!("/lists/{list}/entries")),
        )
        .await
        .map_or(0, |e| e.len());
        if list.starts_with("load-") {
            assert_eq!(n, 0, "{list}");
        }
        written += n;
    }
    assert_eq!(written, 40);
    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
}
