//! Graceful shutdown of the real binary: SIGTERM lets in-flight requests finish,
//! the process exits 0, and every write acknowledged `applied` is on disk after it.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::support::eventually::{poll_until_blocking, PATIENCE};
use crate::support::serve::{all_entries, Serve};

const LISTS: usize = 8;

fn serve_on(data: &Path) -> Serve {
    Serve::start(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ])
}

/// `(list, id, title)` of every acknowledged write.
type Acked = BTreeSet<(String, u64, String)>;

/// One POST with `ack=applied`; `Some` with the entry on 201, `None` when the
/// connection failed (not acknowledged); panics on any other status.
async fn add(c: &Client, base: &str, list: &str, title: &str) -> Option<(String, u64, String)> {
    let resp = c
        .post(format!("{base}/lists/{list}/entries?ack=applied"))
        .json(&json!({"date": "2026-11-27", "title": title}))
        .send()
        .await
        .ok()?;
    let status = resp.status();
    let body: Value = resp.json().await.ok()?;
    assert_eq!(status, StatusCode::CREATED, "{title}: {body}");
    assert_eq!(body["title"], title);
    Some((
        list.to_string(),
        body["id"].as_u64().unwrap(),
        title.to_string(),
    ))
}

/// Starts the binary again on `data` and reads every list back.
async fn read_back(data: &Path) -> Acked {
    let mut s = serve_on(data);
    let c = Client::new();
    let mut found = Acked::new();
    for i in 0..LISTS {
        let list = format!("list-{i}");
        // A list no write reached does not exist: empty.
        let entries = all_entries(&c, &s.url(&format!("/lists/{list}/entries")))
            .await
            .unwrap_or_default();
        for e in entries {
            found.insert((
                list.clone(),
                e["id"].as_u64().unwrap(),
                e["title"].as_str().unwrap().to_string(),
            ));
        }
    }
    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
    found
}

fn assert_all_found(acked: &Acked, found: &Acked) {
    let missing: Vec<_> = acked.difference(found).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes missing after restart, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_acknowledged_before_sigterm_is_on_disk_after_exit() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = serve_on(dir.path());
    let c = Client::new();
    let base = s.url("");
    let acked: Acked = futures::stream::iter(0..400)
        .map(|i| {
            let (c, base) = (c.clone(), base.clone());
            async move {
                add(
                    &c,
                    &base,
                    &format!("list-{}", i % LISTS),
                    &format!("write {i}"),
                )
                .await
                .expect("the service is up: every write is answered")
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(acked.len(), 400);

    s.signal("TERM");
    let status = s.wait_exit();
    assert!(
        status.success(),
        "exit status {status}: {}",
        s.stderr_text()
    );
    assert!(s.stderr_text().contains("shutdown complete"));

    assert_all_found(&acked, &read_back(dir.path()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_acknowledged_while_sigterm_arrives_are_all_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = serve_on(dir.path());
    let base = s.url("");
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel();
    // 16 writers, each on its own connection, until the service stops answering
    // (bounded by 2000 writes each).
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (base, ack_tx) = (base.clone(), ack_tx.clone());
            tokio::spawn(async move {
                let c = Client::new();
                let mut mine = Acked::new();
                for n in 0..2000 {
                    let list = format!("list-{}", (w + n) % LISTS);
                    match add(&c, &base, &list, &format!("w{w} n{n}")).await {
                        Some(entry) => {
                            let _ = ack_tx.send(());
                            mine.insert(entry);
                        }
                        None => break,
                    }
                }
                mine
            })
        })
        .collect();
    drop(ack_tx);
    // Signal once writes are flowing.
    for _ in 0..200 {
        ack_rx.recv().await.expect("writers are writing");
    }
    s.signal("TERM");
    let mut acked = Acked::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    let status = s.wait_exit();
    assert!(
        status.success(),
        "exit status {status}: {}",
        s.stderr_text()
    );
    assert!(acked.len() >= 200);

    assert_all_found(&acked, &read_back(dir.path()).await);
}

/// Waits until a new connection to `addr` is refused: the listener is closed.
fn wait_until_refused(addr: SocketAddr) -> bool {
    poll_until_blocking(|| {
        TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .is_err()
            .then_some(())
    })
    .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_at_sigterm_completes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Serve::start_with_env(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[("RUST_LOG", "info,sluicegate_todo::service::edge=debug")],
    );
    let addr = s.addr;
    let body = json!({"date": "2026-11-27", "title": "in flight"}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let started = "started processing request";
    let handle = tokio::task::spawn_blocking({
        let first = first.to_string();
        let body_len = body.len();
        move || {
            let mut conn = TcpStream::connect(addr).unwrap();
            conn.set_read_timeout(Some(PATIENCE)).unwrap();
            // Headers and half the body: the handler is now waiting for the rest.
            write!(
                conn,
                "POST /lists/list-0/entries?ack=applied HTTP/1.1\r\nhost: {addr}\r\n\
                 content-type: application/json\r\ncontent-length: {body_len}\r\n\r\n{first}"
            )
            .unwrap();
            conn.flush().unwrap();
            conn
        }
    });
    let mut conn = handle.await.unwrap();
    assert!(s.wait_for_stderr(started, 1), "{}", s.stderr_text());

    s.signal("TERM");
    assert!(
        wait_until_refused(addr),
        "the service kept accepting after SIGTERM"
    );
    assert!(s.is_running(), "exited with a request in flight");

    // Now finish the request: it is answered in full.
    conn.write_all(rest.as_bytes()).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "in-flight request got: {response:?}"
    );
    let entry: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(entry["title"], "in flight");

    let status = s.wait_exit();
    assert!(
        status.success(),
        "exit status {status}: {}",
        s.stderr_text()
    );
    let found = read_back(dir.path()).await;
    let expected: Acked = [(
        "list-0".to_string(),
        entry["id"].as_u64().unwrap(),
        "in flight".to_string(),
    )]
    .into();
    assert_all_found(&expected, &found);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_shuts_down_like_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = serve_on(dir.path());
    let c = Client::new();
    let entry = add(&c, &s.url(""), "list-3", "before ctrl-c")
        .await
        .expect("answered");
    s.signal("INT");
    let status = s.wait_exit();
    assert!(
        status.success(),
        "exit status {status}: {}",
        s.stderr_text()
    );
    assert_all_found(&[entry].into(), &read_back(dir.path()).await);
}

/// The queues of the IPv4 TCP connection from `local` to `remote` as Linux lists them
/// in `/proc/net/tcp`: bytes sent and not yet acknowledged by the peer, and bytes
/// received and not yet read by the process; `None` when there is no such connection.
fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    // An address as the kernel prints it: the IPv4 address as a number in host byte
    // order, then the port, both in hex.
    let hex = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => format!("{:08X}:{:04X}", u32::from_ne_bytes(ip.octets()), a.port()),
        IpAddr::V6(ip) => panic!("{ip}: only IPv4 is looked up"),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        // sl local_address rem_address st tx_queue:rx_queue ...
        let fields: Vec<&str> = line.split_whitespace().collect();
        if *fields.get(1)? != local || *fields.get(2)? != remote {
            return None;
        }
        let (tx, rx) = fields.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_does_not_hold_back_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    // A short call timeout keeps the grace period (request timeout + 1 s) short.
    let shipped =
        std::fs::read_to_string(crate::support::serve::repo_file("policies/coalesce.toml"))
            .unwrap();
    assert!(shipped.contains("call_timeout = \"5s\""));
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        shipped.replace("call_timeout = \"5s\"", "call_timeout = \"500ms\""),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut s = Serve::start(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let entry = add(&Client::new(), &s.url(""), "list-1", "before the stall")
        .await
        .expect("answered");
    // Half a request head, never finished.
    let mut stalled = TcpStream::connect(s.addr).unwrap();
    write!(stalled, "GET /healthz HTTP/1.1\r\nhost: x\r\n").unwrap();
    stalled.flush().unwrap();
    // Until the server has accepted it and read what there is: nothing of it is left
    // unacknowledged on our side, nothing unread on the server's.
    let (client, server) = (stalled.local_addr().unwrap(), s.addr);
    let read = poll_until_blocking(|| {
        let unacknowledged = tcp_queues(client, server)?.0;
        let unread = tcp_queues(server, client)?.1;
        (unacknowledged == 0 && unread == 0).then_some(())
    });
    assert!(read.is_some(), "the server never read the stalled request");

    s.signal("TERM");
    let status = s.wait_exit();
    assert!(
        status.success(),
        "exit status {status}: {}",
        s.stderr_text()
    );
    assert!(s.stderr_text().contains("shutdown complete"));
    drop(stalled);
    assert_all_found(&[entry].into(), &read_back(&data).await);
}
