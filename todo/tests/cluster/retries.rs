//! Writes repeated until they are known: clients that repeat every answer that is
//! not a 2xx with the same `Idempotency-Key` store each logical write exactly once,
//! through every node, while the owner of their lists is frozen with SIGSTOP past
//! its lease and thawed (forwarded and direct writes in flight); and without keys,
//! no write answered "not applied" is stored.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::{config_file, lists_owned_by, owners, settle, start_node};
use crate::support::eventually::{poll_until, PATIENCE};
use crate::support::serve::{signal, try_all_entries, Serve};

/// What one logical write came to.
#[derive(Debug)]
struct Logical {
    list: String,
    title: String,
    /// The final answer's status (0: no answer), and its `outcome` if it failed.
    status: u16,
    outcome: Option<String>,
    /// How many times it was sent.
    sends: u32,
}

/// One send: the status (0 when the connection failed or timed out) and the body.
async fn send(
    c: &reqwest::Client,
    url: &str,
    list: &str,
    title: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = c
        .post(format!("{url}/lists/{list}/entries"))
        .json(&json!({"date": "2026-12-03", "title": title}));
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// A writer through `url`, writing titles `{tag}-{i}` to `lists` in turn until
/// `stop`. With keys, each logical write is repeated with its key until it is
/// answered 201 (or `PATIENCE` passes); without, it is sent once.
fn writer(
    c: reqwest::Client,
    url: String,
    lists: Vec<String>,
    tag: String,
    keyed: bool,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Logical>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let list = lists[i % lists.len()].clone();
            let title = format!("{tag}-{i}");
            i += 1;
            let key = keyed.then(|| format!("key-{title}"));
            let give_up = Instant::now() + PATIENCE;
            let mut sends = 0;
            let (status, body) = loop {
                sends += 1;
                let (status, body) = send(&c, &url, &list, &title, key.as_deref()).await;
                let repeat = keyed && status != 201 && Instant::now() < give_up;
                if !repeat {
                    break (status, body);
                }
                assert!(
                    !(400..500).contains(&status),
                    "a keyed repeat of {title} was refused as bad input: {status} {body}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let outcome = body["outcome"].as_str().map(str::to_string);
            out.push(Logical {
                list,
                title,
                status,
                outcome,
                sends,
            });
            if status != 201 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        out
    })
}

/// Every title stored in `list`, read through `node`, duplicates kept, every page
/// (a list past 1,000 entries spans more than one).
async fn stored_titles(c: &reqwest::Client, node: &Serve, list: &str) -> Vec<String> {
    let url = node.url(&format!("/lists/{list}/entries"));
    let read = poll_until(async || try_all_entries(c, &url).await.ok().flatten()).await;
    read.unwrap_or_else(|| panic!("{list} could not be read through {}", node.addr))
        .iter()
        .filter_map(|e| e["title"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_repeats_store_every_write_exactly_once_across_a_frozen_owner() {
    let db = crate::support::pg::fresh_db().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "node", &db.url, "3s", "");
    let nodes = [
        start_node(dir.path(), &cfg, "n1"),
        start_node(dir.path(), &cfg, "n2"),
    ];
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(8))
        .build()
        .unwrap();
    settle(&c, &nodes.iter().collect::<Vec<_>>(), 2).await;
    let table = owners(&c, &nodes[1]).await;
    let lists = lists_owned_by(&table, "n1", "frozen", 4);

    // A request forwarded too many times is refused, certainly not applied.
    let resp = c
        .post(nodes[1].url(&format!("/lists/{}/entries", lists[0])))
        .header("x-sluicegate-hops", "2")
        .json(&json!({"date": "2026-12-03", "title": "bounced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 421);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["outcome"], "not_applied", "{body}");

    // Keyed writers straight to the owner and forwarded through n2, and unkeyed ones.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for keyed in [true, false] {
            let tag = format!("n{}-{}", n + 1, if keyed { "k" } else { "u" });
            tasks.push((
                keyed,
                writer(
                    c.clone(),
                    node.url(""),
                    lists.clone(),
                    tag,
                    keyed,
                    stop.clone(),
                ),
            ));
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    signal(nodes[0].pid(), "STOP");
    // Past n1's lease n2 takes its shards: a write through n2 is then served by n2.
    let took_over = poll_until(async || {
        let resp = c
            .post(nodes[1].url(&format!("/lists/{}/entries", lists[0])))
            .header("Idempotency-Key", "probe")
            .json(&json!({"date": "2026-12-03", "title": "probe"}))
            .send()
            .await
            .ok()?;
        let by = resp
            .headers()
            .get("x-sluicegate-node")?
            .to_str()
            .ok()?
            .to_string();
        (resp.status() == 201 && by == "n2").then_some(())
    })
    .await;
    assert!(took_over.is_some(), "n2 never took over n1's lists");
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(nodes[0].pid(), "CONT");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);

    let mut keyed_writes = Vec::new();
    let mut unkeyed_writes = Vec::new();
    for (keyed, t) in tasks {
        let done = t.await.expect("a writer panicked");
        if keyed {
            keyed_writes.extend(done);
        } else {
            unkeyed_writes.extend(done);
        }
    }
    let repeated = keyed_writes.iter().filter(|w| w.sends > 1).count();
    println!(
        "keyed: {} logical writes, {repeated} repeated; unkeyed: {}",
        keyed_writes.len(),
        unkeyed_writes.len()
    );
    // Through every node, the same data: each keyed write exactly once.
    for node in &nodes {
        let mut count: BTreeMap<(String, String), usize> = BTreeMap::new();
        for l in &lists {
            for t in stored_titles(&c, node, l).await {
                *count.entry((l.clone(), t)).or_default() += 1;
            }
        }
        for w in &keyed_writes {
            let n = count
                .get(&(w.list.clone(), w.title.clone()))
                .copied()
                .unwrap_or(0);
            assert_eq!(
                w.status, 201,
                "keyed write {w:?} was never answered 201 within {PATIENCE:?}"
            );
            assert_eq!(
                n, 1,
                "keyed write {w:?} is stored {n} times (read through {})",
                node.addr
            );
        }
        assert!(
            !count.keys().any(|(_, t)| t == "bounced"),
            "the refused request was stored"
        );
        for w in &unkeyed_writes {
            let n = count
                .get(&(w.list.clone(), w.title.clone()))
                .copied()
                .unwrap_or(0);
            assert!(n <= 1, "unkeyed write {w:?} stored {n} times");
            match (w.status, w.outcome.as_deref()) {
                (201, _) => assert_eq!(n, 1, "acknowledged write {w:?} is missing"),
                (_, Some("not_applied")) => {
                    assert_eq!(n, 0, "{w:?} was answered not applied, yet it is stored")
                }
                _ => {}
            }
        }
    }
    assert!(
        keyed_writes.iter().any(|w| w.sends > 1),
        "no keyed write had to be repeated: the freeze did not reach a write in flight"
    );
    for n in nodes {
        n.shutdown();
    }
}
