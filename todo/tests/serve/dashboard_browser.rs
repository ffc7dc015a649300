//! Renders `/dashboard` of a real `sluicegate serve` under load in headless Chromium and
//! checks the DOM: every role shown, numbers that change between renders, the refusing
//! mailbox highlighted; saves a screenshot. Needs Debian's `chromium` (see
//! `scripts/test`); without it the test fails and names the package.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::support::eventually::{poll_until, poll_until_blocking, PATIENCE};
use crate::support::serve::Serve;

/// Mailbox roles the config below implies (direct routing: no `database` router).
const MAILBOX_ROLES: [&str; 2] = ["todo_server", "database_worker"];
/// Server roles the config below implies.
const SERVER_ROLES: [&str; 2] = ["todo_server", "database_worker"];

/// A to-do server mailbox of 2 that refuses when full: concurrent writers to one list
/// are bound to be refused.
const CONFIG: &str = r#"
[storage]
backend = "files"

[system]
default_ack = "applied"
call_timeout = "5s"
idle_timeout = "60s"

[database]
workers = 2
routing = "direct"

[mailbox.todo_server]
policy = "drop_newest"
capacity = 2

[mailbox.database]
policy = "block"
capacity = 64

[mailbox.database_worker]
policy = "block"
capacity = 4
"#;

/// The Chromium to run: `$SLUICEGATE_CHROMIUM`, else the first of the usual names on PATH.
fn chromium() -> PathBuf {
    let mut names: Vec<String> = std::env::var("SLUICEGATE_CHROMIUM").into_iter().collect();
    names.extend(["chromium", "chromium-browser", "google-chrome"].map(String::from));
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in &names {
        let p = Path::new(name);
        if p.is_absolute() && p.is_file() {
            return p.to_path_buf();
        }
        for dir in std::env::split_paths(&path) {
            let full = dir.join(name);
            if full.is_file() {
                return full;
            }
        }
    }
    panic!(
        "no Chromium found (tried $SLUICEGATE_CHROMIUM and {names:?} on PATH): this test needs the \
         Debian package `chromium`; install it with `apt-get install -y chromium` or \
         `scripts/test` (it installs the package), or set SLUICEGATE_CHROMIUM to a Chromium binary"
    );
}

/// Runs headless Chromium on `url` with `extra` arguments, giving the page `budget_ms`
/// of virtual time (timers run, network waits pause the clock); returns its stdout.
fn run_chromium(url: &str, extra: &[&str], budget_ms: u32) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1100,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .args(extra)
        .arg(url)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    if poll_until_blocking(|| child.try_wait().expect("try_wait")).is_none() {
        let _ = child.kill();
        panic!("chromium did not finish within {PATIENCE:?}");
    }
    let out = child.wait_with_output().expect("chromium output");
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The part of the DOM from the element whose attribute `kind` is `value` up to the next
/// element with that attribute or the first `end` after it.
fn segment<'a>(dom: &'a str, kind: &str, value: &str, end: &str) -> Option<&'a str> {
    let start = dom.find(&format!("{kind}=\"{value}\""))?;
    let tag_start = dom[..start].rfind('<')?;
    let rest = &dom[start..];
    let end = [format!("{kind}=\""), end.to_string()]
        .iter()
        .filter_map(|m| rest[1..].find(m.as_str()).map(|i| i + 1))
        .min()
        .unwrap_or(rest.len());
    Some(&dom[tag_start..start + end])
}

/// The text of the element with `data-field="field"` inside `seg`.
fn field(seg: &str, field: &str) -> Option<String> {
    let at = seg.find(&format!("data-field=\"{field}\""))?;
    let open_end = at + seg[at..].find('>')? + 1;
    let close = open_end + seg[open_end..].find('<')?;
    Some(seg[open_end..close].to_string())
}

/// The value of attribute `name` of the first element of `seg`.
fn first_attr(seg: &str, name: &str) -> Option<String> {
    let tag = &seg[..seg.find('>')?];
    let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
    Some(tag[at..at + tag[at..].find('"')?].to_string())
}

/// What one render shows, per role.
#[derive(Debug)]
struct Render {
    updates: u64,
    /// Mailbox role -> (delivered total, card classes).
    mailboxes: Vec<(String, u64, String)>,
    /// Server role -> total calls.
    servers: Vec<(String, u64)>,
    /// Total POST /lists/{list}/entries requests.
    posts: u64,
}

impl Render {
    /// Whether every number of this render is smaller in `stats` (`/api/stats`, from
    /// which the page draws): each mailbox role's delivered total, the to-do server's
    /// calls and the POST count.
    fn grown_in(&self, stats: &Value) -> bool {
        let total = |m: &Value| {
            m.as_object()
                .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
        };
        let of_role = |kind: &str, role: &str| {
            stats[kind]
                .as_array()
                .and_then(|all| all.iter().find(|x| x["role"] == role))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let mailboxes = self.mailboxes.iter().all(|(role, delivered, _)| {
            of_role("mailboxes", role)["totals"]["delivered"]
                .as_u64()
                .unwrap_or(0)
                > *delivered
        });
        let (role, calls) = &self.servers[0];
        let todo_calls = total(&of_role("servers", role)["calls"]) > *calls;
        let posts: u64 = stats["http"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["method"] == "POST" && r["route"] == "/lists/{list}/entries")
            .map(|r| total(&r["statuses"]))
            .sum();
        mailboxes && todo_calls && posts > self.posts
    }
}

fn number(text: Option<String>, what: &str, dom: &str) -> u64 {
    let text = text.unwrap_or_else(|| panic!("{what} not in the rendered DOM:\n{dom}"));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{what} is {text:?}, not a number ({e})"))
}

fn render(url: &str) -> Render {
    let dom = run_chromium(url, &["--dump-dom"], 3500);
    let updates = number(field(&dom, "updates"), "the update counter", &dom);
    let mailboxes = MAILBOX_ROLES
        .iter()
        .map(|role| {
            let seg = segment(&dom, "data-role", role, "</section>")
                .unwrap_or_else(|| panic!("no card for mailbox role {role}:\n{dom}"));
            let delivered = number(field(seg, "delivered-total"), "delivered total", &dom);
            let policy = field(seg, "policy").unwrap_or_default();
            assert!(
                policy == "drop_newest" || policy == "block",
                "{role}: policy {policy:?}"
            );
            let class = first_attr(seg, "class").unwrap_or_default();
            (role.to_string(), delivered, class)
        })
        .collect();
    let servers = SERVER_ROLES
        .iter()
        .map(|role| {
            let seg = segment(&dom, "data-server-role", role, "</tr>")
                .unwrap_or_else(|| panic!("no row for server role {role}:\n{dom}"));
            let calls_at = seg.find("data-field=\"calls\"").expect("calls cell");
            let total = first_attr(&seg[seg[..calls_at].rfind('<').unwrap()..], "data-total");
            (role.to_string(), number(total, "calls total", &dom))
        })
        .collect();
    let post = segment(&dom, "data-route", "POST /lists/{list}/entries", "</tr>")
        .unwrap_or_else(|| panic!("no HTTP row for POST /lists/{{list}}/entries:\n{dom}"));
    let statuses = field(post, "statuses").unwrap_or_default();
    let posts = statuses
        .split(", ")
        .filter_map(|s| s.split(": ").nth(1)?.split(' ').next()?.parse::<u64>().ok())
        .sum();
    Render {
        updates,
        mailboxes,
        servers,
        posts,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_renders_every_role_with_live_numbers_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("small.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let data = dir.path().join("data");
    let serve = Serve::start(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);

    // Load: writers to one list, more than its mailbox of 2 holds, until the end.
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::new();
    let mut writers = Vec::new();
    for w in 0..12 {
        let (client, stop, url) = (
            client.clone(),
            stop.clone(),
            serve.url("/lists/busy/entries"),
        );
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = serde_json::json!({"date": "2026-12-01", "title": format!("w{w} #{n}")});
                let _ = client.post(&url).json(&body).send().await;
                n += 1;
            }
        }));
    }

    // The API's own view first: the to-do server mailbox refuses under this load.
    let mut stats = Value::Null;
    let refusing = poll_until(async || {
        stats = client
            .get(serve.url("/api/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let todo = stats["mailboxes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "todo_server");
        todo.is_some_and(|m| m["refusing"] == true).then_some(())
    })
    .await;
    assert!(refusing.is_some(), "todo_server never refused: {stats}");

    let url = serve.url("/dashboard");
    let first = tokio::task::spawn_blocking({
        let url = url.clone();
        move || render(&url)
    })
    .await
    .unwrap();
    // Until `/api/stats`, which the page draws, has every number of the first render
    // grown: the second render then reads larger ones.
    let mut stats = Value::Null;
    let grown = poll_until(async || {
        stats = client
            .get(serve.url("/api/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        first.grown_in(&stats).then_some(())
    })
    .await;
    assert!(
        grown.is_some(),
        "/api/stats never grew past the first render {first:?}: {stats}"
    );
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let second = tokio::task::spawn_blocking({
        let (url, shot) = (url.clone(), shot.clone());
        move || {
            let r = render(&url);
            run_chromium(&url, &[&format!("--screenshot={}", shot.display())], 3500);
            r
        }
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    // 3.5 s of page time with a poll a second: the first poll and at least two more.
    for r in [&first, &second] {
        assert!(
            r.updates >= 3,
            "the page polled {} times in 3.5 s",
            r.updates
        );
    }
    for ((role, before, _), (_, after, class)) in first.mailboxes.iter().zip(&second.mailboxes) {
        assert!(
            after > before,
            "{role}: delivered total did not grow between renders ({before} -> {after})"
        );
        if role == "todo_server" {
            assert!(
                class.split(' ').any(|c| c == "refusing"),
                "the refusing todo_server mailbox is not highlighted (class {class:?})"
            );
        }
    }
    let (_, calls_before) = &first.servers[0];
    let (_, calls_after) = &second.servers[0];
    assert!(
        calls_after > calls_before,
        "todo_server calls did not grow ({calls_before} -> {calls_after})"
    );
    assert!(
        second.posts > first.posts,
        "POST count did not grow ({} -> {})",
        first.posts,
        second.posts
    );

    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot {} is not a plausible PNG ({} bytes)",
        shot.display(),
        png.len()
    );
    eprintln!("dashboard screenshot: {}", shot.display());
}
