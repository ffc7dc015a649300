//! A cluster of `sluicegate serve --node-id` processes on loopback sharing a real
//! PostgreSQL: durable writes through every node are readable through any node with
//! one activation per list; a `kill -9` of an owner moves its shards within the lease
//! and loses no durable write; a `kill -STOP`ped owner that wakes after its lease is
//! fenced (its stores write nothing, the data is what the new owner acknowledged);
//! PostgreSQL restarted under load gives clear 503s and loses nothing acknowledged.
//! Leases are short here (3 s) so failovers fit in a test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluicegate_todo::cluster::{ShardId, ShardMap};
use sluicegate_todo::domain::ListName;

use crate::support::eventually::{eventually, poll_until, PATIENCE};
use crate::support::prom::{find, parse_metrics};
use crate::support::serve::{all_entries, signal, try_all_entries, Serve};

pub(crate) const SHARDS: u32 = 32;

/// A config file for a node on PostgreSQL at `url`: durable acks, long idle timeout
/// (so activations count list servers), short leases, and `extra` appended.
pub(crate) fn config_file(dir: &Path, name: &str, url: &str, ttl: &str, extra: &str) -> PathBuf {
    let text = format!(
        "[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\n\
         [system]\ndefault_ack = \"durable\"\ncall_timeout = \"20s\"\nidle_timeout = \"10m\"\n\
         [cluster]\nshards = {SHARDS}\nlease_ttl = \"{ttl}\"\nrenew_every = \"1s\"\nlease_margin = \"500ms\"\n{extra}"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

pub(crate) fn start_node(dir: &Path, config: &Path, id: &str) -> Serve {
    let data = dir.join(format!("data-{id}"));
    Serve::start(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--node-id",
        id,
    ])
}

async fn view(c: &reqwest::Client, node: &Serve) -> Value {
    let resp = c
        .get(node.url("/cluster"))
        .send()
        .await
        .expect("GET /cluster");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("cluster JSON")
}

/// Waits until every node reports a settled table with `live` live members.
pub(crate) async fn settle(c: &reqwest::Client, nodes: &[&Serve], live: usize) {
    let settled = poll_until(async || {
        let mut ok = true;
        for n in nodes {
            let v = view(c, n).await;
            let alive = v["members"]
                .as_array()
                .map(|m| m.iter().filter(|m| m["live"] == true).count())
                .unwrap_or(0);
            ok &= v["settled"] == true && alive == live;
        }
        ok.then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "the cluster did not settle within {PATIENCE:?}"
    );
}

/// The owner of each shard by `node`'s table.
pub(crate) async fn owners(c: &reqwest::Client, node: &Serve) -> BTreeMap<u32, String> {
    let v = view(c, node).await;
    v["leases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| {
            Some((
                l["shard"].as_u64()? as u32,
                l["owner"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// `count` list names whose shard `owner` holds by `table`.
pub(crate) fn lists_owned_by(
    table: &BTreeMap<u32, String>,
    owner: &str,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    let map = ShardMap::new(SHARDS).unwrap();
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|n| {
            let ShardId(s) = map.shard_of(&ListName::new(n.as_str()).unwrap());
            table.get(&s).map(String::as_str) == Some(owner)
        })
        .take(count)
        .collect()
}

/// One durable add: status, the `x-sluicegate-node` that served it, the body.
async fn add(c: &reqwest::Client, node: &Serve, list: &str, title: &str) -> (u16, String, Value) {
    match c
        .post(node.url(&format!("/lists/{list}/entries")))
        .json(&json!({"date": "2026-12-02", "title": title}))
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let by = resp
                .headers()
                .get("x-sluicegate-node")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (status, by, resp.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, String::new(), json!({ "error": e.to_string() })),
    }
}

/// The titles in `list`, read through `node`, every page (a list past 1,000 entries
/// spans more than one).
async fn titles(c: &reqwest::Client, node: &Serve, list: &str) -> BTreeSet<String> {
    let url = node.url(&format!("/lists/{list}/entries"));
    let mut last = String::new();
    let titles = poll_until(async || match try_all_entries(c, &url).await {
        Ok(Some(entries)) => Some(
            entries
                .iter()
                .filter_map(|e| e["title"].as_str().map(str::to_string))
                .collect(),
        ),
        Ok(None) => {
            last = "404".into();
            None
        }
        Err(e) => {
            last = e;
            None
        }
    })
    .await;
    titles.unwrap_or_else(|| panic!("reading {list}: {last}"))
}

/// Sum of one counter over nodes.
async fn counter_sum(
    c: &reqwest::Client,
    nodes: &[&Serve],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let mut sum = 0.0;
    for n in nodes {
        let text = c
            .get(n.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (samples, _) = parse_metrics(&text);
        sum += find(&samples, name, labels)
            .iter()
            .map(|s| s.value)
            .sum::<f64>();
    }
    sum
}

/// A write acknowledged `201`: list, title, when.
type Acked = Vec<(String, String, Instant)>;
/// Writes refused: status and body.
type Refused = Vec<(u16, Value)>;

/// Durable writers, one per node given, cycling through `lists` until
/// [`Writers::finish`]; a writer whose node gives no answer at all panics.
struct Writers {
    stop: Arc<AtomicBool>,
    /// The lists with a write acknowledged so far.
    acked_lists: Arc<Mutex<BTreeSet<String>>>,
    tasks: Vec<tokio::task::JoinHandle<(Acked, Refused)>>,
}

impl Writers {
    fn start(c: &reqwest::Client, nodes: &[&Serve], lists: &[String]) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked_lists = Arc::new(Mutex::new(BTreeSet::new()));
        let tasks = nodes
            .iter()
            .enumerate()
            .map(|(k, node)| {
                let (c, url, lists, stop) = (c.clone(), node.url(""), lists.to_vec(), stop.clone());
                let acked_lists = acked_lists.clone();
                tokio::spawn(async move {
                    let (mut acked, mut refused) = (Vec::new(), Vec::new());
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let l = &lists[i % lists.len()];
                        let title = format!("k{k}-{i}");
                        i += 1;
                        let resp = c
                            .post(format!("{url}/lists/{l}/entries"))
                            .json(&json!({"date": "2026-12-02", "title": title}))
                            .send()
                            .await
                            .unwrap_or_else(|e| panic!("no answer from {url}: {e}"));
                        let status = resp.status().as_u16();
                        if status == 201 {
                            acked.push((l.clone(), title, Instant::now()));
                            acked_lists.lock().unwrap().insert(l.clone());
                        } else {
                            refused.push((status, resp.json().await.unwrap_or(Value::Null)));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    (acked, refused)
                })
            })
            .collect();
        Writers {
            stop,
            acked_lists,
            tasks,
        }
    }

    /// How many of the lists have had a write acknowledged so far.
    fn lists_acked(&self) -> usize {
        self.acked_lists.lock().unwrap().len()
    }

    /// Stops the writers; every write acknowledged and every refusal.
    async fn finish(self) -> (Acked, Refused) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut acked, mut refused) = (Vec::new(), Vec::new());
        for t in self.tasks {
            let (a, r) = t.await.expect("a writer panicked");
            acked.extend(a);
            refused.extend(r);
        }
        (acked, refused)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_serve_every_durable_write_through_any_node_with_one_server_per_list() {
    let db = crate::support::pg::fresh_db().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "node", &db.url, "3s", "");
    let nodes: Vec<Serve> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| start_node(dir.path(), &cfg, id))
        .collect();
    let c = reqwest::Client::new();
    let refs: Vec<&Serve> = nodes.iter().collect();
    settle(&c, &refs, 3).await;
    let table = owners(&c, &nodes[0]).await;
    let map = ShardMap::new(SHARDS).unwrap();

    let lists: Vec<String> = (0..24).map(|i| format!("shared-{i}")).collect();
    // Three writers at once, one per node, each writing every list.
    let mut tasks = Vec::new();
    for (k, node) in nodes.iter().enumerate() {
        let (c, url, lists) = (c.clone(), node.url(""), lists.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for round in 0..4 {
                for l in &lists {
                    let title = format!("w{k}-r{round}-{l}");
                    let resp = c
                        .post(format!("{url}/lists/{l}/entries"))
                        .json(&json!({"date": "2026-12-02", "title": title}))
                        .send()
                        .await
                        .expect("answer");
                    let status = resp.status().as_u16();
                    let by = resp
                        .headers()
                        .get("x-sluicegate-node")
                        .map(|v| v.to_str().unwrap().to_string());
                    let body: Value = resp.json().await.unwrap_or(Value::Null);
                    assert_eq!(status, 201, "a durable write through node {k}: {body}");
                    acked.push((l.clone(), title, by));
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), 3 * 4 * 24);
    // Each write was served by its list's owner, whichever node took it.
    for (l, _, by) in &acked {
        let shard = map.shard_of(&ListName::new(l.as_str()).unwrap()).0;
        assert_eq!(
            by.as_deref(),
            table.get(&shard).map(String::as_str),
            "list {l} served by its owner"
        );
    }
    // Every acknowledged write is readable through every node.
    for node in &nodes {
        for l in &lists {
            let want: BTreeSet<String> = acked
                .iter()
                .filter(|(x, _, _)| x == l)
                .map(|(_, t, _)| t.clone())
                .collect();
            assert_eq!(
                titles(&c, node, l).await,
                want,
                "list {l} through {}",
                node.addr
            );
        }
    }
    // Pages come back whole through every node: a forwarded answer keeps the owner's
    // `Link` header (the next page), so a reader following it gets every entry
    // whichever node it asks.
    for node in &nodes {
        for l in &lists[..3] {
            let url = node.url(&format!("/lists/{l}/entries?limit=5"));
            let paged: BTreeSet<String> = all_entries(&c, &url)
                .await
                .unwrap_or_default()
                .iter()
                .filter_map(|e| e["title"].as_str().map(str::to_string))
                .collect();
            assert_eq!(
                paged.len(),
                12,
                "pages of 5 of list {l} through {}",
                node.addr
            );
        }
    }
    // One activation per list in the whole cluster: never two servers of one list.
    let activations = counter_sum(&c, &refs, "sluicegate_cluster_activations_total", &[]).await;
    assert_eq!(
        activations,
        lists.len() as f64,
        "activations over all nodes"
    );
    let forwards = counter_sum(
        &c,
        &refs,
        "sluicegate_cluster_forwards_total",
        &[("outcome", "ok")],
    )
    .await;
    assert!(forwards > 0.0, "writes to non-owners were forwarded");
    for n in nodes {
        n.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_an_owner_moves_its_shards_within_the_lease_and_loses_no_durable_write() {
    let db = crate::support::pg::fresh_db().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "node", &db.url, "3s", "");
    let mut nodes: Vec<Serve> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| start_node(dir.path(), &cfg, id))
        .collect();
    let c = reqwest::Client::new();
    settle(&c, &nodes.iter().collect::<Vec<_>>(), 3).await;
    let table = owners(&c, &nodes[1]).await;
    let lists = lists_owned_by(&table, "n1", "victim", 8);

    // Writers through n2 and n3 (forwarded to n1 while it lives), until each list
    // has a write acknowledged.
    let writers = Writers::start(&c, &[&nodes[1], &nodes[2]], &lists);
    eventually("every victim list has an acknowledged write", || {
        writers.lists_acked() == lists.len()
    })
    .await;
    let killed_at = Instant::now();
    signal(nodes[0].pid(), "KILL");
    let _ = nodes[0].wait_exit();
    // Until every victim list takes a write again.
    let mut moved = BTreeMap::new();
    let all_moved = poll_until(async || {
        for l in &lists {
            if moved.contains_key(l) {
                continue;
            }
            let (status, by, _) = add(&c, &nodes[2], l, &format!("probe-{l}")).await;
            if status == 201 {
                assert_ne!(by, "n1");
                moved.insert(l.clone(), (killed_at.elapsed(), format!("probe-{l}")));
            }
        }
        (moved.len() == lists.len()).then_some(())
    })
    .await;
    assert!(
        all_moved.is_some(),
        "lists still unserved {PATIENCE:?} after the kill (served again: {:?})",
        moved.keys()
    );
    let failover = moved.values().map(|(d, _)| *d).max().unwrap();
    println!("failover: every list of the killed owner writable again {failover:?} after kill -9 (lease ttl 3 s, renew 1 s)");
    // The lease (3 s) plus one renewal period to notice, a tick to claim, and slack
    // for a loaded machine.
    assert!(
        failover < Duration::from_secs(15),
        "failover took {failover:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (acked, refused) = writers.finish().await;
    for (status, body) in &refused {
        assert!(
            matches!(status, 503 | 504),
            "only retryable refusals during failover: {status} {body}"
        );
    }
    assert!(
        acked.iter().any(|(_, _, at)| *at < killed_at),
        "writes were acknowledged before the kill"
    );
    for l in &lists {
        let have = titles(&c, &nodes[1], l).await;
        for (_, t, _) in acked.iter().filter(|(x, _, _)| x == l) {
            assert!(
                have.contains(t),
                "acknowledged write {t} of {l} lost after kill -9"
            );
        }
        assert!(have.contains(&moved[l].1));
    }
    for n in nodes.drain(1..) {
        n.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_paused_past_its_lease_is_fenced_when_it_wakes() {
    let db = crate::support::pg::fresh_db().await;
    let dir = tempfile::tempdir().unwrap();
    // n1 holds every store 3 s after taking its epoch: the pause lands in that window.
    // (1 s was too short on a loaded machine: the first list's store could finish
    // before the last list was activated and n1 paused, and be answered 201.)
    let slow = config_file(dir.path(), "slow", &db.url, "3s", "store_delay = \"3s\"\n");
    let cfg = config_file(dir.path(), "node", &db.url, "3s", "");
    let nodes = vec![
        start_node(dir.path(), &slow, "n1"),
        start_node(dir.path(), &cfg, "n2"),
        start_node(dir.path(), &cfg, "n3"),
    ];
    let c = reqwest::Client::new();
    settle(&c, &nodes.iter().collect::<Vec<_>>(), 3).await;
    let table = owners(&c, &nodes[1]).await;
    let lists = lists_owned_by(&table, "n1", "paused", 6);

    // One durable write per list sent to n1 itself; each waits in n1's store delay.
    let mut inflight = Vec::new();
    for l in &lists {
        let (c, url, l) = (c.clone(), nodes[0].url(""), l.clone());
        inflight.push(tokio::spawn(async move {
            let resp = c
                .post(format!("{url}/lists/{l}/entries"))
                .json(&json!({"date": "2026-12-02", "title": format!("stale-{l}")}))
                .send()
                .await
                .expect("n1 answers after waking");
            let status = resp.status().as_u16();
            (l, status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    // Once n1 has activated every list (each write's store now carries that epoch and
    // waits in the delay), n1 is paused.
    let activated = poll_until(async || {
        let n = counter_sum(
            &c,
            &[&nodes[0]],
            "sluicegate_cluster_activations_total",
            &[],
        )
        .await;
        (n >= lists.len() as f64).then_some(())
    })
    .await;
    assert!(activated.is_some(), "n1 never activated the lists");
    signal(nodes[0].pid(), "STOP");
    // Past n1's lease: another node takes the shards and writes each list.
    let mut written = BTreeMap::new();
    let all_written = poll_until(async || {
        for l in &lists {
            if written.contains_key(l) {
                continue;
            }
            let (status, by, body) = add(&c, &nodes[1], l, &format!("fresh-{l}")).await;
            if status == 201 {
                assert_ne!(by, "n1", "{body}");
                written.insert(l.clone(), by);
            }
        }
        (written.len() == lists.len()).then_some(())
    })
    .await;
    assert!(
        all_written.is_some(),
        "no takeover {PATIENCE:?} after the pause"
    );
    signal(nodes[0].pid(), "CONT");
    // The writes n1 held across the pause reach PostgreSQL with its old epoch: fenced.
    for t in inflight {
        let (l, status, body) = t.await.unwrap();
        assert_eq!(
            status, 503,
            "the woken owner's write of {l} must be refused: {body}"
        );
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains("fenced"),
            "the refusal says it was fenced: {body}"
        );
    }
    let fenced = counter_sum(
        &c,
        &[&nodes[0]],
        "sluicegate_cluster_fenced_writes_total",
        &[],
    )
    .await;
    assert!(
        fenced >= lists.len() as f64,
        "n1 counted {fenced} fenced writes"
    );
    // The data is exactly what the new owner acknowledged, through every node.
    for node in &nodes {
        for l in &lists {
            let want: BTreeSet<String> = [format!("fresh-{l}")].into();
            assert_eq!(titles(&c, node, l).await, want, "{l} through {}", node.addr);
        }
    }
    for n in nodes {
        n.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_gives_clear_refusals_and_loses_nothing_acknowledged() {
    // A server of this test's own, since it is stopped and started again.
    let mut pg = crate::support::pg::PgServer::start();
    crate::support::pg::execute(
        &pg.socket_url("postgres"),
        "CREATE DATABASE cluster_restart",
    )
    .await;
    let url = pg.tcp_url("cluster_restart");
    let dir = tempfile::tempdir().unwrap();
    // Leases longer than the outage, so the refusals come from storage itself.
    let cfg = config_file(dir.path(), "node", &url, "15s", "");
    let nodes = vec![
        start_node(dir.path(), &cfg, "n1"),
        start_node(dir.path(), &cfg, "n2"),
    ];
    let c = reqwest::Client::new();
    settle(&c, &nodes.iter().collect::<Vec<_>>(), 2).await;
    let lists: Vec<String> = (0..8).map(|i| format!("pg-{i}")).collect();

    let writers = Writers::start(&c, &[&nodes[0], &nodes[1]], &lists);
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start_again();
    // Until every list takes a write through each node again.
    let mut waiting: Vec<(&Serve, &String)> = nodes
        .iter()
        .flat_map(|node| lists.iter().map(move |l| (node, l)))
        .collect();
    let mut last = String::new();
    let recovered = poll_until(async || {
        let mut refused = Vec::new();
        for (node, l) in waiting.drain(..) {
            let (status, _, body) = add(&c, node, l, &format!("after-{l}")).await;
            if status != 201 {
                last = format!("{status} {body}");
                refused.push((node, l));
            }
        }
        waiting = refused;
        waiting.is_empty().then_some(())
    })
    .await;
    assert!(
        recovered.is_some(),
        "no recovery after PostgreSQL came back: {last}"
    );
    let (acked, refused) = writers.finish().await;
    let mut named_storage = 0;
    for (status, body) in &refused {
        assert!(
            matches!(status, 503 | 504),
            "only retryable refusals: {status} {body}"
        );
        let msg = body["error"].as_str().unwrap_or_default();
        if msg.contains("storage") && msg.contains("postgres") {
            named_storage += 1;
        }
    }
    assert!(
        named_storage > 0,
        "writes during the outage were refused naming storage"
    );
    for l in &lists {
        let have = titles(&c, &nodes[0], l).await;
        for (_, t, _) in acked.iter().filter(|(x, _, _)| x == l) {
            assert!(
                have.contains(t),
                "acknowledged write {t} of {l} lost across the restart"
            );
        }
        assert!(have.contains(&format!("after-{l}")));
    }
    for n in nodes {
        n.shutdown();
    }
}

#[test]
fn serve_as_a_node_without_postgres_exits_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = crate::support::serve::run(&[
        "serve",
        "--node-id",
        "n1",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cluster") && err.contains("backend = \"postgres\""),
        "{err}"
    );
    let example = crate::support::serve::repo_file("todo/examples/cluster.toml");
    let out = crate::support::serve::run(&[
        "serve",
        "--config",
        example.to_str().unwrap(),
        "--node-id",
        "bad id",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cluster.node_id") && err.contains("\"bad id\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_single_node_answers_get_cluster_with_a_json_404() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Serve::start(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let resp = reqwest::get(node.url("/cluster")).await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("single node"),
        "{body}"
    );
    node.shutdown();
}
