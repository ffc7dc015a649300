//! Concrete behaviour of each mailbox policy: what is delivered, what is lost,
//! and that the accounting identity holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluicegate::mailbox::{
    channel, Builder, Eviction, Meta, Policy, SendError, TryRecvError, TrySendError,
};
use tokio::time::Instant;

fn drain<T: Send + 'static>(rx: &mut sluicegate::mailbox::Receiver<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(m) = rx.try_recv() {
        out.push(m);
    }
    out
}

#[tokio::test]
async fn drop_oldest_keeps_exactly_the_newest_capacity_messages() {
    let evicted = Arc::new(Mutex::new(Vec::new()));
    let ev = evicted.clone();
    let (tx, mut rx) = Builder::new(Policy::DropOldest { capacity: 4 })
        .on_evict(move |m: u32, why| ev.lock().unwrap().push((m, why)))
        .build()
        .unwrap();
    for i in 0..10 {
        tx.send(i).await.unwrap();
    }
    assert_eq!(drain(&mut rx), vec![6, 7, 8, 9]);
    let ev = evicted.lock().unwrap().clone();
    assert_eq!(
        ev,
        (0..6)
            .map(|i| (i, Eviction::DroppedOldest))
            .collect::<Vec<_>>()
    );
    let s = rx.stats();
    assert_eq!((s.sent, s.dropped_oldest, s.delivered), (10, 6, 4));
    assert_eq!(s.peak_depth, 4);
    assert!(s.is_balanced());
}

#[tokio::test]
async fn drop_newest_keeps_exactly_the_oldest_capacity_messages() {
    let (tx, mut rx) = channel::<u32>(Policy::DropNewest { capacity: 4 });
    let mut refused = Vec::new();
    for i in 0..10 {
        if let Err(SendError::Rejected(m)) = tx.send(i).await {
            refused.push(m);
        }
    }
    assert!(matches!(tx.try_send(99), Err(TrySendError::Full(99))));
    assert_eq!(drain(&mut rx), vec![0, 1, 2, 3]);
    assert_eq!(refused, vec![4, 5, 6, 7, 8, 9]);
    let s = rx.stats();
    assert_eq!((s.sent, s.rejected, s.delivered), (11, 7, 4));
    assert!(s.is_balanced());
}

async fn eight_producers_lose_nothing(policy: Policy) {
    eight_producers_lose_nothing_with(policy, true, false).await;
}

/// Eight producers, 2,000 messages each, delivered exactly once and in order per
/// producer. `metrics` off lets plain messages take the lock-free ring where the
/// policy has one (none of the lossless ones yet); `mixed` gives every 7th message of odd
/// producers a far deadline, which locks the gate and moves the ring's messages
/// into the core while the others push.
async fn eight_producers_lose_nothing_with(policy: Policy, metrics: bool, mixed: bool) {
    let (tx, mut rx) = Builder::<(u32, u32)>::new(policy)
        .metrics(metrics)
        .build()
        .unwrap();
    const PER: u32 = 2_000;
    let far = Instant::now() + Duration::from_secs(3600);
    let mut tasks = Vec::new();
    for p in 0..8 {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER {
                let meta = if mixed && p % 2 == 1 && i % 7 == 0 {
                    Meta::default().with_deadline(far)
                } else {
                    Meta::default()
                };
                tx.send_with((p, i), meta).await.unwrap();
            }
        }));
    }
    drop(tx);
    let mut next: HashMap<u32, u32> = HashMap::new();
    let mut total = 0;
    while let Some((p, i)) = rx.recv().await {
        let want = next.entry(p).or_insert(0);
        assert_eq!(i, *want, "producer {p} out of order");
        *want += 1;
        total += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(total, 8 * PER);
    let s = rx.stats();
    assert_eq!((s.sent, s.delivered), (8 * PER as u64, 8 * PER as u64));
    assert!(s.is_balanced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_loses_nothing_with_eight_producers() {
    eight_producers_lose_nothing(Policy::Block {
        capacity: 16,
        send_timeout: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossless_policies_lose_nothing_with_metrics_off_plain_or_mixed_with_deadlines() {
    for policy in [
        Policy::Unbounded,
        Policy::Block {
            capacity: 16,
            send_timeout: None,
        },
        Policy::Coalesce { capacity: 16 },
    ] {
        eight_producers_lose_nothing_with(policy.clone(), false, false).await;
        eight_producers_lose_nothing_with(policy, false, true).await;
    }
}

#[test]
fn a_snapshot_under_load_never_shows_an_outcome_that_did_not_happen() {
    // Two producer threads and a consumer thread on the lock-free path; a monitor
    // takes snapshots meanwhile. Each snapshot's `sent` is at most the sends
    // completed when it was read plus those in flight (one per producer), its
    // `delivered` at most the receives completed plus the one in flight, and the
    // identity holds exactly once everything has stopped.
    use std::sync::atomic::{AtomicU64, Ordering};
    const PER: u64 = 20_000;
    for policy in [
        Policy::Unbounded,
        Policy::DropNewest { capacity: 64 },
        Policy::DropOldest { capacity: 64 },
        Policy::Block {
            capacity: 64,
            send_timeout: None,
        },
    ] {
        let (tx, mut rx) = Builder::<u64>::new(policy.clone())
            .metrics(false)
            .build()
            .unwrap();
        let monitor = tx.monitor();
        let sent = Arc::new(AtomicU64::new(0));
        let got = Arc::new(AtomicU64::new(0));
        let producers: Vec<_> = (0..2)
            .map(|_| {
                let tx = tx.clone();
                let sent = sent.clone();
                let policy = policy.clone();
                std::thread::spawn(move || {
                    for i in 0..PER {
                        // Every offer counts as sent, refused or not; a full
                        // `block` mailbox refuses `try_send`: offer again.
                        let mut m = i;
                        loop {
                            let res = tx.try_send(m);
                            sent.fetch_add(1, Ordering::SeqCst);
                            match res {
                                Err(TrySendError::Full(back)) if policy.never_drops() => {
                                    m = back;
                                    std::thread::yield_now();
                                }
                                _ => break,
                            }
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let g = got.clone();
        let consumer = std::thread::spawn(move || loop {
            match rx.try_recv() {
                Ok(_) => {
                    g.fetch_add(1, Ordering::SeqCst);
                }
                Err(TryRecvError::Empty) => std::thread::yield_now(),
                Err(_) => break rx,
            }
        });
        loop {
            let done = producers.iter().all(|p| p.is_finished());
            let st = monitor.stats();
            let sent_after = sent.load(Ordering::SeqCst);
            let got_after = got.load(Ordering::SeqCst);
            assert!(
                st.sent <= sent_after + 2,
                "{policy}: {st:?} after {sent_after} sends"
            );
            assert!(
                st.delivered <= got_after + 1,
                "{policy}: {st:?} after {got_after} receives"
            );
            if done {
                break;
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        let rx = consumer.join().unwrap();
        let st = rx.stats();
        assert!(st.is_balanced(), "{policy}: {st:?}");
        assert_eq!(st.sent, sent.load(Ordering::SeqCst), "{policy}: {st:?}");
        assert_eq!(st.delivered, got.load(Ordering::SeqCst), "{policy}: {st:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_loses_nothing_with_eight_producers() {
    eight_producers_lose_nothing(Policy::Unbounded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesce_without_keys_loses_nothing_with_eight_producers() {
    eight_producers_lose_nothing(Policy::Coalesce { capacity: 16 }).await;
}

#[tokio::test]
async fn coalesce_keeps_one_message_per_key_with_the_newest_content() {
    let merged = Arc::new(Mutex::new(Vec::new()));
    let mg = merged.clone();
    let (tx, mut rx) = Builder::new(Policy::Coalesce { capacity: 8 })
        .on_coalesce(move |old: (String, u32), new: &mut (String, u32)| {
            mg.lock().unwrap().push((old.1, new.1));
        })
        .build()
        .unwrap();
    for v in 0..5u32 {
        for key in ["a", "b", "c"] {
            tx.send_with((key.to_string(), v), Meta::keyed(key))
                .await
                .unwrap();
        }
    }
    assert_eq!(
        drain(&mut rx),
        vec![("a".into(), 4), ("b".into(), 4), ("c".into(), 4)]
    );
    assert_eq!(merged.lock().unwrap().len(), 12);
    let s = rx.stats();
    assert_eq!((s.sent, s.coalesced, s.delivered), (15, 12, 3));
    assert!(s.is_balanced());
}

#[tokio::test(start_paused = true)]
async fn coalesce_waits_like_block_when_full_of_distinct_keys() {
    let (tx, mut rx) = channel::<u32>(Policy::Coalesce { capacity: 2 });
    tx.send_with(1, Meta::keyed("a")).await.unwrap();
    tx.send_with(2, Meta::keyed("b")).await.unwrap();
    let err = tx
        .send_timeout_with(3, Meta::keyed("c"), Duration::from_millis(10))
        .await;
    assert!(matches!(err, Err(SendError::Timeout(3))));
    // Same key still coalesces while full.
    tx.send_with(20, Meta::keyed("b")).await.unwrap();
    let tx2 = tx.clone();
    let waiter = tokio::spawn(async move { tx2.send_with(30, Meta::keyed("c")).await });
    tokio::task::yield_now().await;
    assert_eq!(rx.stats().waiting_senders, 1);
    assert_eq!(rx.recv().await, Some(1));
    waiter.await.unwrap().unwrap();
    assert_eq!(drain(&mut rx), vec![20, 30]);
    let s = rx.stats();
    assert_eq!((s.timed_out, s.coalesced), (1, 1));
    assert!(s.is_balanced());
}

#[tokio::test(start_paused = true)]
async fn block_send_timeout_hands_the_message_back() {
    let (tx, rx) = channel::<u32>(Policy::Block {
        capacity: 1,
        send_timeout: Some(Duration::from_millis(50)),
    });
    tx.send(1).await.unwrap();
    let start = Instant::now();
    assert!(matches!(tx.send(2).await, Err(SendError::Timeout(2))));
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert!(matches!(
        tx.send_timeout(3, Duration::from_millis(5)).await,
        Err(SendError::Timeout(3))
    ));
    assert_eq!(start.elapsed(), Duration::from_millis(55));
    let s = rx.stats();
    assert_eq!((s.sent, s.timed_out, s.depth), (3, 2, 1));
    assert!(s.is_balanced());
}

#[tokio::test(start_paused = true)]
async fn block_serves_waiting_senders_in_fifo_order() {
    let (tx, mut rx) = channel::<u32>(Policy::Block {
        capacity: 1,
        send_timeout: None,
    });
    tx.send(0).await.unwrap();
    let mut handles = Vec::new();
    for i in 1..=5 {
        let tx = tx.clone();
        handles.push(tokio::spawn(async move { tx.send(i).await }));
        tokio::task::yield_now().await;
    }
    // A newcomer with try_send may not jump the queue of waiters.
    assert!(matches!(tx.try_send(99), Err(TrySendError::Full(99))));
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(rx.recv().await.unwrap());
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    for h in handles {
        h.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn waiting_sender_is_woken_when_the_mailbox_closes() {
    let (tx, mut rx) = channel::<u32>(Policy::Block {
        capacity: 1,
        send_timeout: None,
    });
    tx.send(1).await.unwrap();
    let tx2 = tx.clone();
    let waiter = tokio::spawn(async move { tx2.send(2).await });
    tokio::task::yield_now().await;
    rx.close();
    assert!(matches!(waiter.await.unwrap(), Err(SendError::Closed(2))));
    assert!(matches!(tx.send(3).await, Err(SendError::Closed(3))));
    // What was accepted before close still drains.
    assert_eq!(rx.recv().await, Some(1));
    assert_eq!(rx.recv().await, None);
    let s = rx.stats();
    assert_eq!((s.closed, s.delivered), (2, 1));
    assert!(s.is_balanced());
}

#[tokio::test]
async fn receiver_drains_after_all_senders_drop_then_sees_the_end() {
    let (tx, mut rx) = channel::<u32>(Policy::Unbounded);
    for i in 0..3 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    assert_eq!(rx.recv().await, Some(0));
    assert_eq!(rx.recv().await, Some(1));
    assert_eq!(rx.recv().await, Some(2));
    assert_eq!(rx.recv().await, None);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[tokio::test]
async fn dropping_the_receiver_closes_and_counts_what_was_left() {
    let (tx, rx) = channel::<u32>(Policy::DropNewest { capacity: 8 });
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    let monitor = tx.monitor();
    drop(rx);
    assert!(matches!(tx.send(3).await, Err(SendError::Closed(3))));
    let s = monitor.stats();
    assert_eq!((s.sent, s.discarded, s.closed, s.depth), (3, 2, 1, 0));
    assert!(s.is_balanced());
}

#[tokio::test(start_paused = true)]
async fn expired_messages_are_never_delivered() {
    let evicted = Arc::new(Mutex::new(Vec::new()));
    let ev = evicted.clone();
    let (tx, mut rx) = Builder::new(Policy::DropNewest { capacity: 4 })
        .on_evict(move |m: u32, why| ev.lock().unwrap().push((m, why)))
        .build()
        .unwrap();
    let now = Instant::now();
    tx.send_with(
        1,
        Meta::default().with_deadline(now + Duration::from_millis(10)),
    )
    .await
    .unwrap();
    tx.send_with(
        2,
        Meta::default().with_deadline(now + Duration::from_secs(10)),
    )
    .await
    .unwrap();
    tx.send(3).await.unwrap();
    tokio::time::advance(Duration::from_millis(20)).await;
    assert_eq!(drain(&mut rx), vec![2, 3]);
    assert_eq!(*evicted.lock().unwrap(), vec![(1, Eviction::Expired)]);
    let s = rx.stats();
    assert_eq!((s.expired, s.delivered), (1, 2));
    assert!(s.is_balanced());
}

#[tokio::test(start_paused = true)]
async fn a_full_mailbox_purges_expired_messages_before_refusing() {
    let (tx, mut rx) = channel::<u32>(Policy::DropNewest { capacity: 2 });
    let soon = Instant::now() + Duration::from_millis(5);
    tx.send_with(1, Meta::default().with_deadline(soon))
        .await
        .unwrap();
    tx.send(2).await.unwrap();
    tokio::time::advance(Duration::from_millis(10)).await;
    tx.send(3).await.unwrap();
    assert_eq!(drain(&mut rx), vec![2, 3]);
    assert_eq!(rx.stats().expired, 1);
}

const TARGET: Duration = Duration::from_millis(5);
const INTERVAL: Duration = Duration::from_millis(100);

fn codel() -> Policy {
    Policy::Codel {
        capacity: 10_000,
        target: TARGET,
        interval: INTERVAL,
    }
}

#[tokio::test(start_paused = true)]
async fn codel_sheds_nothing_for_a_burst_that_drains_within_interval() {
    let (tx, mut rx) = channel::<u32>(codel());
    for i in 0..50 {
        tx.send(i).await.unwrap();
    }
    // Consumer takes 1 ms a message: the burst is gone in 50 ms < interval.
    let mut got = Vec::new();
    for _ in 0..50 {
        tokio::time::advance(Duration::from_millis(1)).await;
        got.push(rx.recv().await.unwrap());
    }
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    assert_eq!(rx.stats().shed, 0);
}

#[tokio::test(start_paused = true)]
async fn codel_sheds_a_standing_queue() {
    let shed = Arc::new(Mutex::new(0u32));
    let sh = shed.clone();
    let (tx, mut rx) = Builder::new(codel())
        .on_evict(move |_m: u32, why| {
            assert_eq!(why, Eviction::Shed);
            *sh.lock().unwrap() += 1;
        })
        .build()
        .unwrap();
    // Arrivals at 2 per ms, service at 1 per ms: the queue stands and grows.
    let mut next = 0;
    let mut delivered = 0;
    for _ in 0..1000 {
        for _ in 0..2 {
            tx.send(next).await.unwrap();
            next += 1;
        }
        tokio::time::advance(Duration::from_millis(1)).await;
        if rx.recv().await.is_some() {
            delivered += 1;
        }
    }
    let s = rx.stats();
    assert!(s.shed > 0, "a standing queue must be shed");
    assert_eq!(s.shed, *shed.lock().unwrap() as u64);
    assert_eq!(s.delivered, delivered);
    assert!(s.is_balanced());
    // After load stops and the queue drains fast, shedding stops.
    let shed_before = s.shed;
    while rx.try_recv().is_ok() {}
    tx.send(1).await.unwrap();
    assert_eq!(rx.recv().await, Some(1));
    assert_eq!(rx.stats().shed, shed_before);
}

#[tokio::test]
async fn shrinking_drop_oldest_evicts_the_oldest_and_counts_them() {
    let (tx, mut rx) = channel::<u32>(Policy::DropOldest { capacity: 8 });
    for i in 0..8 {
        tx.send(i).await.unwrap();
    }
    rx.set_policy(Policy::DropOldest { capacity: 3 }).unwrap();
    assert_eq!(drain(&mut rx), vec![5, 6, 7]);
    let s = rx.stats();
    assert_eq!(s.dropped_oldest, 5);
    assert!(s.is_balanced());
}

#[tokio::test]
async fn switching_to_block_keeps_everything_accepted() {
    let (tx, mut rx) = channel::<u32>(Policy::Unbounded);
    for i in 0..8 {
        tx.send(i).await.unwrap();
    }
    rx.set_policy(Policy::Block {
        capacity: 2,
        send_timeout: None,
    })
    .unwrap();
    assert!(matches!(tx.try_send(8), Err(TrySendError::Full(8))));
    assert_eq!(drain(&mut rx), (0..8).collect::<Vec<_>>());
    assert!(rx.stats().is_balanced());
    assert!(rx
        .set_policy(Policy::Block {
            capacity: 0,
            send_timeout: None
        })
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn growing_a_block_mailbox_lets_waiting_senders_in() {
    let (tx, mut rx) = channel::<u32>(Policy::Block {
        capacity: 1,
        send_timeout: None,
    });
    tx.send(0).await.unwrap();
    let tx2 = tx.clone();
    let waiter = tokio::spawn(async move { tx2.send(1).await });
    tokio::task::yield_now().await;
    rx.set_policy(Policy::Block {
        capacity: 4,
        send_timeout: None,
    })
    .unwrap();
    waiter.await.unwrap().unwrap();
    assert_eq!(drain(&mut rx), vec![0, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_let_in_after_expiry_is_received_at_once() {
    // Regression: the queue held only an expired message and a sender waited; the
    // receiver must get the waiter's message, not sleep on a non-empty queue.
    let (tx, mut rx) = channel::<u32>(Policy::Block {
        capacity: 1,
        send_timeout: None,
    });
    let soon = Instant::now() + Duration::from_millis(5);
    tx.send_with(1, Meta::default().with_deadline(soon))
        .await
        .unwrap();
    let tx2 = tx.clone();
    let waiter = tokio::spawn(async move { tx2.send(2).await });
    tokio::task::yield_now().await;
    tokio::time::advance(Duration::from_millis(10)).await;
    assert_eq!(rx.try_recv(), Ok(2));
    waiter.await.unwrap().unwrap();
    let s = rx.stats();
    assert_eq!((s.expired, s.delivered), (1, 1));
    assert!(s.is_balanced());
}

#[tokio::test(start_paused = true)]
async fn coalesce_newcomer_never_overtakes_a_waiting_sender_with_the_same_key() {
    // Regression (found by the model test): a keyed newcomer used to replace the queued
    // message with its key while an older send with the same key was still waiting, so
    // the older content was delivered after the newer one.
    let (tx, mut rx) = channel::<u32>(Policy::Coalesce { capacity: 1 });
    tx.send(0).await.unwrap();
    let mut waiters = Vec::new();
    for (msg, key) in [(1, Some("k")), (2, None), (3, Some("k"))] {
        let tx = tx.clone();
        let meta = Meta {
            key: key.map(Into::into),
            ..Meta::default()
        };
        waiters.push(tokio::spawn(async move { tx.send_with(msg, meta).await }));
        tokio::task::yield_now().await;
    }
    assert_eq!(rx.recv().await, Some(0)); // 1 ("k") moves in; 2 and 3 ("k") still wait
    assert_eq!(rx.stats().waiting_senders, 2);
    let tx4 = tx.clone();
    waiters.push(tokio::spawn(async move {
        tx4.send_with(4, Meta::keyed("k")).await
    }));
    tokio::task::yield_now().await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(rx.recv().await.unwrap());
    }
    // 4 queues behind 3 and then replaces it: the newest "k" content is delivered last.
    assert_eq!(got, vec![1, 2, 4]);
    for w in waiters {
        w.await.unwrap().unwrap();
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let s = rx.stats();
    assert_eq!((s.sent, s.delivered, s.coalesced), (5, 4, 1));
    assert!(s.is_balanced());
}

#[tokio::test(start_paused = true)]
async fn coalescing_onto_an_expired_message_counts_it_as_expired_not_merged() {
    // Regression (found by the model test): a keyed message replaced a queued message
    // whose deadline had passed, counting it as coalesced and merging it into the new
    // one (so the runtime would answer a caller that had given up), instead of expiring it.
    let evicted = Arc::new(Mutex::new(Vec::new()));
    let merged = Arc::new(Mutex::new(Vec::new()));
    let (ev, mg) = (evicted.clone(), merged.clone());
    let (tx, mut rx) = Builder::new(Policy::Coalesce { capacity: 4 })
        .on_evict(move |m: u32, why| ev.lock().unwrap().push((m, why)))
        .on_coalesce(move |old, new: &mut u32| mg.lock().unwrap().push((old, *new)))
        .build()
        .unwrap();
    let soon = Instant::now() + Duration::from_millis(5);
    tx.send_with(1, Meta::keyed("k").with_deadline(soon))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_millis(10)).await;
    tx.send_with(2, Meta::keyed("k")).await.unwrap();
    assert_eq!(*evicted.lock().unwrap(), vec![(1, Eviction::Expired)]);
    assert!(merged.lock().unwrap().is_empty());
    assert_eq!(drain(&mut rx), vec![2]);
    let s = rx.stats();
    assert_eq!((s.sent, s.expired, s.coalesced, s.delivered), (2, 1, 0, 1));
    assert!(s.is_balanced());
}

#[test]
fn never_drops_names_exactly_the_lossless_policies() {
    use std::time::Duration;
    let ms = Duration::from_millis;
    assert!(Policy::Unbounded.never_drops());
    assert!(Policy::Coalesce { capacity: 4 }.never_drops());
    assert!(Policy::Block {
        capacity: 4,
        send_timeout: None
    }
    .never_drops());
    assert!(!Policy::Block {
        capacity: 4,
        send_timeout: Some(ms(5))
    }
    .never_drops());
    assert!(!Policy::DropNewest { capacity: 4 }.never_drops());
    assert!(!Policy::DropOldest { capacity: 4 }.never_drops());
    assert!(!Policy::Codel {
        capacity: 4,
        target: ms(5),
        interval: ms(100)
    }
    .never_drops());
}

#[tokio::test(start_paused = true)]
async fn recv_many_takes_up_to_the_limit_in_order_and_lets_waiting_senders_in() {
    let (tx, mut rx) = channel::<u32>(Policy::Block {
        capacity: 3,
        send_timeout: None,
    });
    for i in 0..3 {
        tx.send(i).await.unwrap();
    }
    // Two more senders wait for space.
    let tx2 = tx.clone();
    let waiter = tokio::spawn(async move {
        tx2.send(3).await.unwrap();
        tx2.send(4).await.unwrap();
    });
    tokio::task::yield_now().await;
    let mut buf = Vec::new();
    assert_eq!(rx.recv_many(&mut buf, 2).await, 2);
    assert_eq!(buf, vec![0, 1]);
    waiter.await.unwrap();
    assert_eq!(rx.recv_many(&mut buf, 10).await, 3);
    assert_eq!(buf, vec![0, 1, 2, 3, 4]);
    assert_eq!(rx.recv_many(&mut buf, 0).await, 0);
    drop(tx);
    assert_eq!(rx.recv_many(&mut buf, 10).await, 0, "ended");
    let s = rx.stats();
    assert_eq!((s.sent, s.delivered, s.depth), (5, 5, 0));
    assert!(s.is_balanced());
}

#[tokio::test(start_paused = true)]
async fn a_deadline_already_past_when_the_mailbox_was_built_expires_the_message() {
    let past = Instant::now();
    tokio::time::advance(Duration::from_millis(5)).await;
    let (tx, mut rx) = channel::<u32>(Policy::Unbounded);
    tx.send_with(1, Meta::default().with_deadline(past))
        .await
        .unwrap();
    tx.send_with(
        2,
        Meta::default().with_deadline(Instant::now() + Duration::from_millis(1)),
    )
    .await
    .unwrap();
    assert_eq!(rx.try_recv().ok(), Some(2));
    let s = rx.stats();
    assert_eq!((s.expired, s.delivered), (1, 1));
    assert!(s.is_balanced());
}

/// A receiver left pending by an earlier poll is woken by the next push after a
/// `try_recv` in between reopened the lock-free ring's gate (a lost wake-up the
/// model test found: the waker was registered with the locked core only).
#[test]
fn a_pending_receiver_is_woken_after_a_try_recv_reopens_the_ring() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Wake, Waker};
    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (tx, mut rx) = Builder::<u32>::new(Policy::DropNewest { capacity: 4 })
        .metrics(false)
        .build()
        .unwrap();
    // A capacity the ring was not built for locks its gate.
    rx.set_policy(Policy::DropNewest { capacity: 1 }).unwrap();
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    assert!(rx.poll_recv(&mut Context::from_waker(&waker)).is_pending());
    rx.set_policy(Policy::DropNewest { capacity: 4 }).unwrap();
    // Finds nothing, and opens the gate again.
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.try_send(1).unwrap();
    assert!(
        flag.0.load(Ordering::SeqCst),
        "the pending receiver was not woken"
    );
    assert_eq!(rx.try_recv(), Ok(1));
}

/// Every policy, with a capacity no test loop reaches (or 1 where a full mailbox still
/// answers at once).
fn always_ready_policies(capacity: usize) -> Vec<Policy> {
    vec![
        Policy::Unbounded,
        Policy::DropNewest { capacity },
        Policy::DropOldest { capacity },
        Policy::Block {
            capacity,
            send_timeout: None,
        },
        Policy::Codel {
            capacity,
            target: Duration::from_secs(60),
            interval: Duration::from_secs(60),
        },
        Policy::Coalesce { capacity },
    ]
}

/// Runs `$op` (an expression that awaits) until a task spawned just before has
/// run, on a one-thread runtime: `$op` always completes at once, so the spawned task
/// runs only if the loop yields to the scheduler.
macro_rules! until_other_task_runs {
    ($what:expr, $op:expr) => {{
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        tokio::spawn(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
        let mut ops = 0;
        while !ran.load(std::sync::atomic::Ordering::SeqCst) {
            $op;
            ops += 1;
            assert!(
                ops < 50_000,
                "{}: the loop never yielded to the scheduler",
                $what
            );
        }
    }};
}

#[tokio::test(flavor = "current_thread")]
async fn busy_loops_take_part_in_the_cooperative_budget() {
    // A sender that always finds room (or, full under `drop_newest`, is refused at
    // once), a receiver that always finds a message, and both in turn: each loop
    // yields, so another task on the same thread gets to run.
    let big = 200_000;
    for policy in always_ready_policies(big).into_iter().chain([
        Policy::DropNewest { capacity: 1 },
        Policy::DropOldest { capacity: 1 },
    ]) {
        let (tx, _rx) = channel::<u64>(policy.clone());
        until_other_task_runs!(format!("send under {policy}"), {
            let _ = tx.send(1).await;
        });
    }
    for policy in always_ready_policies(big) {
        let (tx, mut rx) = channel::<u64>(policy.clone());
        for i in 0..60_000 {
            tx.try_send(i).unwrap();
        }
        until_other_task_runs!(format!("recv under {policy}"), {
            assert!(rx.recv().await.is_some());
        });
    }
    for policy in always_ready_policies(big) {
        let (tx, mut rx) = channel::<u64>(policy.clone());
        until_other_task_runs!(format!("send and recv under {policy}"), {
            tx.send(1).await.unwrap();
            assert_eq!(rx.recv().await, Some(1));
        });
    }
}
