//! Cancel safety of `send` and `recv` under every policy: a timer races each send and
//! each receive in `tokio::select!`, so futures are dropped at every await point they
//! reach (parked senders included). Afterwards no accepted message is lost or
//! duplicated: every message the receiver got or the dead-letter handler was handed is
//! seen exactly once, every send that returned `Ok` is among them (or merged away by
//! coalesce), and the mailbox's accounting says the same.
//! The same race with `reserve`: reservations dropped by the timer, and permits
//! dropped unused, give every place back (nothing held, nobody waiting at the end).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluicegate::mailbox::{Builder, Eviction, Meta, Policy};

const SENDERS: u64 = 4;
const PER_SENDER: u64 = 300;

fn policies() -> Vec<Policy> {
    vec![
        Policy::Unbounded,
        Policy::DropNewest { capacity: 4 },
        Policy::DropOldest { capacity: 4 },
        Policy::Block {
            capacity: 4,
            send_timeout: None,
        },
        Policy::Block {
            capacity: 4,
            send_timeout: Some(Duration::from_micros(300)),
        },
        Policy::Codel {
            capacity: 4,
            target: Duration::from_micros(200),
            interval: Duration::from_millis(1),
        },
        Policy::Coalesce { capacity: 4 },
    ]
}

/// Runs the race under `policy`; `keyed` sends each message with one of 3 keys.
/// With `expect_cancels`, the run must have dropped both send and recv futures
/// (true under paused time, where a waiting side always loses to the timer).
async fn race(policy: Policy, keyed: bool, expect_cancels: bool) {
    let evicted: Arc<Mutex<Vec<(u64, Eviction)>>> = Arc::default();
    let ev = evicted.clone();
    let (tx, mut rx) = Builder::<u64>::new(policy.clone())
        .metrics(false)
        .on_evict(move |m, why| ev.lock().unwrap().push((m, why)))
        .build()
        .unwrap();
    let mut producers = Vec::new();
    for p in 0..SENDERS {
        let tx = tx.clone();
        producers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut cancelled = 0u64;
            for i in 0..PER_SENDER {
                let v = p * PER_SENDER + i;
                let meta = if keyed {
                    Meta::keyed(v % 3)
                } else {
                    Meta::default()
                };
                // A timer of 0-3 paused-time ticks races the send; on loss the send
                // future is dropped wherever it was (often parked, under block).
                tokio::select! {
                    r = tx.send_with(v, meta) => match r {
                        Ok(()) => acked.push(v),
                        Err(e) => {
                            assert_eq!(e.into_inner(), v, "a refused send hands back its own message")
                        }
                    },
                    () = tokio::time::sleep(Duration::from_micros(100 * (i % 4))) => cancelled += 1,
                }
            }
            (acked, cancelled)
        }));
    }
    drop(tx);
    let mut got = Vec::new();
    let mut recv_cancelled = 0u64;
    let mut ended = false;
    let mut round = 0u64;
    while !ended {
        round += 1;
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => got.push(m),
                None => ended = true,
            },
            () = tokio::time::sleep(Duration::from_micros(50 * (round % 3))) => recv_cancelled += 1,
        }
    }
    let mut acked = Vec::new();
    let mut send_cancelled = 0;
    for p in producers {
        let (a, c) = p.await.unwrap();
        acked.extend(a);
        send_cancelled += c;
    }
    // The race really dropped futures on both sides (the timer won some rounds).
    if expect_cancels {
        assert!(
            send_cancelled > 0 && recv_cancelled > 0,
            "{policy}: sends cancelled {send_cancelled}, receives cancelled {recv_cancelled}"
        );
    }
    let evicted = evicted.lock().unwrap().clone();

    let mut seen = HashSet::new();
    for m in got.iter().chain(evicted.iter().map(|(m, _)| m)) {
        assert!(seen.insert(*m), "{policy}: message {m} came out twice");
    }
    for m in &acked {
        assert!(
            seen.contains(m),
            "{policy}: message {m} was accepted (send returned Ok) but never delivered or evicted"
        );
    }
    let s = rx.stats();
    assert!(s.is_balanced(), "{policy}: {s:?}");
    assert_eq!(s.depth, 0, "{policy}");
    assert_eq!(s.delivered, got.len() as u64, "{policy}: delivered count");
    let accepted = s.sent - s.rejected - s.timed_out - s.closed;
    assert_eq!(
        accepted,
        seen.len() as u64,
        "{policy}: every accepted message came out once ({s:?})"
    );
    assert!(acked.len() as u64 <= accepted, "{policy}");
}

#[tokio::test(start_paused = true)]
async fn dropped_send_and_recv_futures_never_lose_or_duplicate_under_every_policy() {
    for policy in policies() {
        // Parking policies see their waiting senders cancelled; the others resolve
        // every send at once, so only their receives race the timer.
        race(policy, false, false).await;
    }
    race(
        Policy::Block {
            capacity: 4,
            send_timeout: None,
        },
        false,
        true,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropped_keyed_sends_under_coalesce_never_lose_or_duplicate() {
    race(Policy::Coalesce { capacity: 4 }, true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_races_across_threads_keep_every_accepted_message() {
    for policy in policies() {
        race(policy, false, false).await;
    }
}

/// Each producer reserves with a timer racing the reservation; a granted permit is
/// dropped unused one time in three (a producer cancelled while it builds), sent
/// otherwise. Every sent message comes out exactly once, and at the end no place is
/// held and nobody waits: dropped reservations and permits gave every place back.
async fn reserve_race(policy: Policy) {
    let evicted: Arc<Mutex<Vec<u64>>> = Arc::default();
    let ev = evicted.clone();
    let (tx, mut rx) = Builder::<u64>::new(policy.clone())
        .metrics(false)
        .on_evict(move |m, _| ev.lock().unwrap().push(m))
        .build()
        .unwrap();
    let mut producers = Vec::new();
    for p in 0..SENDERS {
        let tx = tx.clone();
        producers.push(tokio::spawn(async move {
            let (mut sent, mut dropped, mut cancelled) = (Vec::new(), 0u64, 0u64);
            for i in 0..PER_SENDER {
                let v = p * PER_SENDER + i;
                tokio::select! {
                    r = tx.reserve() => {
                        if let Ok(permit) = r {
                            if i % 3 == 0 {
                                drop(permit);
                                dropped += 1;
                            } else {
                                permit.send(v).unwrap();
                                sent.push(v);
                            }
                        }
                    }
                    () = tokio::time::sleep(Duration::from_micros(100 * (i % 4))) => cancelled += 1,
                }
            }
            (sent, dropped, cancelled)
        }));
    }
    drop(tx);
    let mut got = Vec::new();
    while let Some(m) = rx.recv().await {
        got.push(m);
    }
    let (mut sent, mut dropped) = (Vec::new(), 0);
    for p in producers {
        let (s, d, _) = p.await.unwrap();
        sent.extend(s);
        dropped += d;
    }
    assert!(dropped > 0, "{policy}: no permit was dropped unused");
    let mut out: Vec<u64> = got
        .iter()
        .copied()
        .chain(evicted.lock().unwrap().iter().copied())
        .collect();
    out.sort_unstable();
    sent.sort_unstable();
    assert_eq!(
        out, sent,
        "{policy}: every sent message came out exactly once"
    );
    let s = rx.stats();
    assert!(s.is_balanced(), "{policy}: {s:?}");
    assert_eq!(
        (s.sent, s.reserved, s.waiting_senders),
        (sent.len() as u64, 0, 0),
        "{policy}"
    );
}

#[tokio::test(start_paused = true)]
async fn dropped_reserve_futures_and_permits_give_every_place_back_under_every_policy() {
    for policy in policies() {
        reserve_race(policy).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_races_across_threads_give_every_place_back() {
    for policy in policies() {
        reserve_race(policy).await;
    }
}
