//! Crash safety of `sluicegate serve` with durable acks: concurrent HTTP writes, SIGKILL at a
//! seeded random moment, restart on the same data dir, and every write answered `201` must be
//! there, on sqlite, files and a real PostgreSQL (`support::pg`). Every write carries an
//! `Idempotency-Key`; those in flight at the kill are repeated with it after the restart,
//! and each is then stored exactly once (a repeat of one committed before the kill gets the
//! first result). `SLUICEGATE_CRASH_ROUNDS=N`
//! runs more rounds, `SLUICEGATE_CRASH_SEED=S` replays one.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::support::serve::{all_entries, Serve};

/// Lists written in every round; one has a name that needs percent-encoding.
const LISTS: [&str; 4] = ["alice", "bob", "carol", "d/e f"];
/// Writer tasks per list.
const WRITERS_PER_LIST: usize = 3;
/// Rounds in the default run.
const DEFAULT_ROUNDS: usize = 20;

/// An entry as the API returns it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Entry {
    id: u64,
    date: String,
    title: String,
}

impl Entry {
    fn from_json(v: &Value) -> Entry {
        Entry {
            id: v["id"].as_u64().expect("id is a number"),
            date: v["date"].as_str().expect("date is a string").to_string(),
            title: v["title"].as_str().expect("title is a string").to_string(),
        }
    }
}

/// Copies the recommended policy set with `default_ack` switched to `durable`, on
/// `backend` (`None`: the file's own, the default backend) with `storage.url = url`
/// when given.
fn durable_config(dir: &Path, backend: Option<&str>, url: Option<&str>) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/coalesce.toml");
    let text = std::fs::read_to_string(&src).unwrap();
    let mut changed = text.replace("default_ack = \"applied\"", "default_ack = \"durable\"");
    if let Some(b) = backend {
        let mut lines: Vec<String> = changed.lines().map(str::to_string).collect();
        let line = lines
            .iter_mut()
            .find(|l| l.starts_with("backend = "))
            .expect("policies/coalesce.toml names a backend");
        *line = format!("backend = \"{b}\"");
        if let Some(url) = url {
            line.push_str(&format!("\nurl = \"{url}\""));
        }
        changed = lines.join("\n") + "\n";
    }
    assert_ne!(
        text, changed,
        "policies/coalesce.toml no longer sets default_ack = \"applied\""
    );
    let path = dir.join("durable.toml");
    std::fs::write(&path, changed).unwrap();
    path
}

/// `sluicegate serve` on `config` and `data_dir`, logging warnings and errors only.
fn start_server(config: &Path, data_dir: &Path) -> Serve {
    Serve::start_with_env(
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[("RUST_LOG", "warn")],
    )
}

fn list_url(base: &str, list: &str) -> String {
    let enc = percent_encoding::utf8_percent_encode(list, percent_encoding::NON_ALPHANUMERIC);
    format!("{base}/lists/{enc}/entries")
}

/// What a writer saw: writes answered 201, and the one it had in flight at the kill.
#[derive(Default)]
struct Outcomes {
    acked: Vec<(usize, Entry)>,
    in_flight: Vec<(usize, String, String)>,
    /// Any answer other than 201 (none is expected without faults).
    unexpected: Vec<String>,
}

async fn writer(client: Client, base: String, list: usize, tag: String, out: Arc<Mutex<Outcomes>>) {
    for n in 0u64.. {
        let date = format!("2026-{:02}-{:02}", 1 + n % 12, 1 + n % 28);
        let title = format!("{tag}-n{n}");
        // The title names the write: it is its idempotency key too.
        let resp = client
            .post(list_url(&base, LISTS[list]))
            .header("Idempotency-Key", &title)
            .json(&json!({"date": date, "title": title}))
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(_) => {
                out.lock().unwrap().in_flight.push((list, date, title));
                return;
            }
        };
        let status = resp.status();
        match resp.json::<Value>().await {
            Ok(body) if status == StatusCode::CREATED => {
                let e = Entry::from_json(&body);
                assert_eq!((&e.date, &e.title), (&date, &title), "201 echoes the write");
                out.lock().unwrap().acked.push((list, e));
            }
            Ok(body) => {
                out.lock()
                    .unwrap()
                    .unexpected
                    .push(format!("{status}: {body}"));
                return;
            }
            Err(_) => {
                // The connection died after the status line: not acknowledged.
                out.lock().unwrap().in_flight.push((list, date, title));
                return;
            }
        }
    }
}

/// Reads every list back (a list never written reads as empty); asserts each is
/// readable with unique ids.
async fn read_all(client: &Client, base: &str) -> Vec<Vec<Entry>> {
    let mut lists = Vec::new();
    for name in LISTS {
        let entries: Vec<Entry> = all_entries(client, &list_url(base, name))
            .await
            .unwrap_or_default()
            .iter()
            .map(Entry::from_json)
            .collect();
        let ids: HashSet<u64> = entries.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), entries.len(), "list {name:?} has duplicate ids");
        let titles: HashSet<&str> = entries.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(
            titles.len(),
            entries.len(),
            "a write of list {name:?} is stored twice"
        );
        lists.push(entries);
    }
    lists
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_loses_a_durably_acknowledged_write() {
    sigkill_rounds(None, None).await;
}

/// The same rounds on the book's store (one file per list), which the experiments
/// still compare against.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_loses_a_durably_acknowledged_write_on_files() {
    sigkill_rounds(Some("files"), None).await;
}

/// The same rounds on PostgreSQL: what it acknowledged as committed survives the
/// kill of the process that wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_loses_a_durably_acknowledged_write_on_postgres() {
    let db = crate::support::pg::fresh_db().await;
    sigkill_rounds(Some("postgres"), Some(&db.url)).await;
}

async fn sigkill_rounds(backend: Option<&str>, url: Option<&str>) {
    let rounds: usize = std::env::var("SLUICEGATE_CRASH_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("SLUICEGATE_CRASH_ROUNDS is a number"))
        .unwrap_or(DEFAULT_ROUNDS);
    let seed: u64 = std::env::var("SLUICEGATE_CRASH_SEED")
        .ok()
        .map(|v| v.parse().expect("SLUICEGATE_CRASH_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test: {rounds} rounds, seed {seed} (replay with SLUICEGATE_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let config = durable_config(tmp.path(), backend, url);
    let data = tmp.path().join("data");
    // What the servers killed so far wrote to stderr.
    let mut log = String::new();
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let started = Instant::now();
    // Every write ever acknowledged, per list: id -> entry.
    let mut acked: Vec<BTreeMap<u64, Entry>> = vec![BTreeMap::new(); LISTS.len()];
    let (mut checks, mut in_flight_found, mut in_flight_lost) = (0usize, 0usize, 0usize);
    let mut pending_in_flight: Vec<(usize, String, String)> = Vec::new();
    let mut server = start_server(&config, &data);

    for round in 0..=rounds {
        // Check what the previous round left: acknowledged writes all present.
        let lists = read_all(&client, &server.url("")).await;
        for (l, entries) in lists.iter().enumerate() {
            let present: HashSet<&Entry> = entries.iter().collect();
            for e in acked[l].values() {
                assert!(
                    present.contains(e),
                    "round {round} (seed {seed}): acknowledged write {e:?} missing from list {:?}; \
                     server stderr:\n{log}{}",
                    LISTS[l],
                    server.stderr_text()
                );
                checks += 1;
            }
        }
        // Each write in flight at the kill is repeated with its key: one that was
        // committed (whether or not its answer left) is answered from its receipt with
        // the first result and written no second time; one that was not is written now.
        for (l, date, title) in pending_in_flight.drain(..) {
            let found = lists[l].iter().find(|e| e.title == title && e.date == date);
            let resp = client
                .post(list_url(&server.url(""), LISTS[l]))
                .header("Idempotency-Key", &title)
                .json(&json!({"date": date, "title": title}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED, "repeat of {title}");
            let replayed = resp.headers().contains_key("idempotent-replayed");
            let e = Entry::from_json(&resp.json::<Value>().await.unwrap());
            match found {
                Some(stored) => {
                    in_flight_found += 1;
                    assert!(
                        replayed && e == *stored,
                        "round {round} (seed {seed}): {title} was stored before the kill; its \
                         repeat must get that result ({stored:?}), got {e:?} (replayed: {replayed})"
                    );
                }
                None => {
                    in_flight_lost += 1;
                    assert!(
                        !replayed,
                        "{title} was not stored, yet its repeat was replayed"
                    );
                }
            }
            // Durable now (stored before, or by its repeat): it must stay.
            acked[l].insert(e.id, e);
        }
        if round == rounds {
            break;
        }

        // Concurrent writes, then SIGKILL at a random moment.
        let out = Arc::new(Mutex::new(Outcomes::default()));
        let mut tasks = Vec::new();
        for l in 0..LISTS.len() {
            for w in 0..WRITERS_PER_LIST {
                tasks.push(tokio::spawn(writer(
                    client.clone(),
                    server.url(""),
                    l,
                    format!("r{round}-w{w}"),
                    out.clone(),
                )));
            }
        }
        let delay = Duration::from_millis(rng.gen_range(20..400));
        tokio::time::sleep(delay).await;
        server.kill();
        log.push_str(&server.stderr_text());
        log.push('\n');
        for t in tasks {
            t.await.unwrap();
        }
        let out = std::mem::take(&mut *out.lock().unwrap());
        assert!(
            out.unexpected.is_empty(),
            "round {round} (seed {seed}): unexpected answers: {:?}",
            out.unexpected
        );
        for (l, e) in out.acked {
            if let Some(old) = acked[l].insert(e.id, e.clone()) {
                panic!(
                    "round {round} (seed {seed}): id {} of list {:?} acknowledged twice: \
                     {old:?} and {e:?}",
                    e.id, LISTS[l]
                );
            }
        }
        pending_in_flight = out.in_flight;
        server = start_server(&config, &data);
    }
    server.kill();
    log.push_str(&server.stderr_text());
    assert!(
        !log.contains("panicked"),
        "the server panicked (seed {seed}):\n{log}"
    );

    let distinct: usize = acked.iter().map(|m| m.len()).sum();
    println!(
        "crash test: {rounds} rounds in {:.1} s; {distinct} acknowledged writes, \
         {checks} presence checks after restarts, all present; writes in flight at the kill, \
         each repeated with its key: {in_flight_found} stored before the kill (answered from \
         their receipts), {in_flight_lost} not (written by the repeat)",
        started.elapsed().as_secs_f64()
    );
    assert!(
        distinct > 0,
        "no write was acknowledged: the test checked nothing"
    );
}
