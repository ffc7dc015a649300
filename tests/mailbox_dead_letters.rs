//! Dead letters: each way a message can leave a mailbox undelivered, checked for the
//! handler getting it exactly once with its reason and metadata, and each way it can
//! be handed back instead, checked for the handler *not* getting it; then the
//! rate-limited log. (`tests/mailbox_model.rs` checks the same under random
//! operations for every policy.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluicegate::mailbox::{
    Builder, DeadLetter, Eviction, Key, Meta, Policy, Receiver, SendError, Sender, TrySendError,
};
use tokio::time::Instant;

mod support;
use support::Lines;

type Log = Arc<Mutex<Vec<(u32, Eviction, Option<Key>, Option<Instant>)>>>;

fn mailbox(policy: Policy, metrics: bool) -> (Sender<u32>, Receiver<u32>, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let (tx, rx) = Builder::new(policy)
        .metrics(metrics)
        .role("dead_letter_test")
        .dead_letters(move |d: DeadLetter<u32>| {
            assert_eq!(d.role, "dead_letter_test");
            l.lock()
                .unwrap()
                .push((d.message, d.reason, d.meta.key, d.meta.deadline));
        })
        .build()
        .unwrap();
    (tx, rx, log)
}

fn taken(log: &Log) -> Vec<(u32, Eviction, Option<Key>, Option<Instant>)> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test]
async fn drop_oldest_reports_each_evicted_message_once_on_the_ring_and_the_core() {
    // Metrics off: the lock-free ring; metrics on: the locked core.
    for metrics in [false, true] {
        let (tx, mut rx, log) = mailbox(Policy::DropOldest { capacity: 2 }, metrics);
        for i in 0..5 {
            tx.send(i).await.unwrap();
        }
        let got = taken(&log);
        assert_eq!(
            got,
            (0..3)
                .map(|i| (i, Eviction::DroppedOldest, None, None))
                .collect::<Vec<_>>(),
            "metrics {metrics}"
        );
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.stats().dropped_oldest, 3);
    }
}

#[tokio::test(start_paused = true)]
async fn expired_and_coalesced_messages_carry_their_key_and_deadline() {
    let (tx, mut rx, log) = mailbox(Policy::Coalesce { capacity: 4 }, true);
    let deadline = Instant::now() + Duration::from_millis(10);
    tx.send_with(1, Meta::keyed("a").with_deadline(deadline))
        .await
        .unwrap();
    tx.send_with(2, Meta::keyed("b")).await.unwrap();
    // 3 replaces 2 (same key): 2 is a dead letter, with the key it was sent with.
    tx.send_with(3, Meta::keyed("b")).await.unwrap();
    assert_eq!(
        taken(&log),
        vec![(2, Eviction::Coalesced, Some(Key::from("b")), None)]
    );
    tokio::time::advance(Duration::from_millis(20)).await;
    assert_eq!(rx.recv().await, Some(3));
    assert_eq!(
        taken(&log),
        vec![(1, Eviction::Expired, Some(Key::from("a")), Some(deadline))]
    );
    let s = rx.stats();
    assert_eq!((s.coalesced, s.expired, s.delivered), (1, 1, 1));
    assert!(s.is_balanced());
}

#[tokio::test(start_paused = true)]
async fn codel_sheds_go_to_the_handler() {
    let (tx, mut rx, log) = mailbox(
        Policy::Codel {
            target: Duration::from_millis(5),
            interval: Duration::from_millis(50),
            capacity: 1000,
        },
        false,
    );
    let mut delivered = 0u64;
    for round in 0..40u32 {
        for i in 0..10 {
            tx.send(round * 10 + i).await.unwrap();
        }
        tokio::time::advance(Duration::from_millis(10)).await;
        if rx.recv().await.is_some() {
            delivered += 1;
        }
    }
    let dead = taken(&log);
    assert!(!dead.is_empty(), "a standing queue is shed");
    assert!(dead.iter().all(|d| d.1 == Eviction::Shed));
    let s = rx.stats();
    assert_eq!(s.shed, dead.len() as u64);
    assert_eq!(s.delivered, delivered);
    assert!(s.is_balanced());
}

#[tokio::test]
async fn a_shrink_under_drop_newest_reports_the_newest_as_rejected() {
    let (tx, rx, log) = mailbox(Policy::Unbounded, false);
    for i in 0..5 {
        tx.send(i).await.unwrap();
    }
    rx.set_policy(Policy::DropNewest { capacity: 2 }).unwrap();
    let mut got = taken(&log);
    got.sort_by_key(|d| d.0);
    assert_eq!(
        got,
        (2..5)
            .map(|i| (i, Eviction::Rejected, None, None))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn messages_handed_back_are_not_dead_letters() {
    let (tx, mut rx, log) = mailbox(Policy::DropNewest { capacity: 1 }, false);
    tx.send(1).await.unwrap();
    assert_eq!(tx.send(2).await, Err(SendError::Rejected(2)));
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!(rx.discard_queued(), vec![1]);
    rx.close();
    assert_eq!(tx.try_send(4), Err(TrySendError::Closed(4)));
    assert_eq!(
        tx.send_timeout(5, Duration::from_millis(1)).await,
        Err(SendError::Closed(5))
    );
    assert!(taken(&log).is_empty());
    let s = rx.stats();
    assert_eq!((s.rejected, s.discarded, s.closed), (2, 1, 2));
    assert!(s.is_balanced());
}

#[tokio::test]
async fn a_block_send_timeout_is_handed_back_not_a_dead_letter() {
    let (tx, _rx, log) = mailbox(
        Policy::Block {
            capacity: 1,
            send_timeout: None,
        },
        false,
    );
    tx.send(1).await.unwrap();
    assert_eq!(
        tx.send_timeout(2, Duration::from_millis(5)).await,
        Err(SendError::Timeout(2))
    );
    assert!(taken(&log).is_empty());
}

#[tokio::test]
async fn messages_queued_when_the_receiver_drops_are_dead_letters() {
    for policy in [
        Policy::Unbounded,
        Policy::DropNewest { capacity: 8 },
        Policy::DropOldest { capacity: 8 },
        Policy::Block {
            capacity: 8,
            send_timeout: None,
        },
    ] {
        let (tx, rx, log) = mailbox(policy.clone(), false);
        for i in 0..3 {
            tx.send(i).await.unwrap();
        }
        let monitor = rx.monitor();
        drop(rx);
        assert_eq!(
            taken(&log),
            (0..3)
                .map(|i| (i, Eviction::Discarded, None, None))
                .collect::<Vec<_>>(),
            "{policy:?}"
        );
        let s = monitor.stats();
        assert_eq!(s.discarded, 3);
        assert!(s.is_balanced());
    }
}

#[tokio::test]
async fn a_waiting_send_refused_then_abandoned_is_a_dead_letter() {
    // A parked `block` send is refused by a switch to drop_newest; its future is
    // dropped before it reads the refusal, so nobody takes the message back.
    let (tx, rx, log) = mailbox(
        Policy::Block {
            capacity: 1,
            send_timeout: None,
        },
        false,
    );
    tx.send(1).await.unwrap();
    let waiting = {
        let tx = tx.clone();
        let mut fut = Box::pin(async move { tx.send(2).await });
        assert!(futures::poll!(fut.as_mut()).is_pending());
        fut
    };
    rx.set_policy(Policy::DropNewest { capacity: 1 }).unwrap();
    drop(waiting);
    assert_eq!(taken(&log), vec![(2, Eviction::Rejected, None, None)]);
    // The same when the mailbox closes under a waiting send.
    let mut rx = rx;
    rx.set_policy(Policy::Block {
        capacity: 1,
        send_timeout: None,
    })
    .unwrap();
    let waiting = {
        let tx = tx.clone();
        let mut fut = Box::pin(async move { tx.send(3).await });
        assert!(futures::poll!(fut.as_mut()).is_pending());
        fut
    };
    rx.close();
    drop(waiting);
    assert_eq!(taken(&log), vec![(3, Eviction::Closed, None, None)]);
    let s = rx.stats();
    assert_eq!((s.rejected, s.closed), (1, 1));
    assert!(s.is_balanced());
}

#[tokio::test]
async fn on_evict_is_the_dead_letter_handler_without_metadata() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let (tx, rx) = Builder::new(Policy::DropOldest { capacity: 1 })
        .on_evict(move |m: u32, why| g.lock().unwrap().push((m, why)))
        .build()
        .unwrap();
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    drop(rx);
    assert_eq!(
        *got.lock().unwrap(),
        vec![(1, Eviction::DroppedOldest), (2, Eviction::Discarded)]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dead_letters_are_logged_at_most_once_per_interval() {
    let lines = Lines::default();
    let _guard = lines.install();
    let (tx, _rx) = Builder::new(Policy::DropOldest { capacity: 1 })
        .log_dead_letters(Duration::from_secs(1))
        .build()
        .unwrap();
    // 10 dead letters at one instant: one line.
    for i in 0..11u32 {
        tx.send(i).await.unwrap();
    }
    let suppressed = |lines: &Lines| -> Vec<u64> {
        lines
            .at(tracing::Level::WARN)
            .iter()
            .map(|l| l.fields["suppressed"])
            .collect()
    };
    assert_eq!(suppressed(&lines), vec![0]);
    // Still within the interval: none.
    tokio::time::advance(Duration::from_millis(500)).await;
    tx.send(11).await.unwrap();
    assert_eq!(suppressed(&lines).len(), 1);
    // Past it: one line, saying how many were left out (9 + 1).
    tokio::time::advance(Duration::from_millis(600)).await;
    tx.send(12).await.unwrap();
    assert_eq!(suppressed(&lines), vec![0, 10]);
}
