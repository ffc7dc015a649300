//! Switching a live mailbox's policy under load: four producers are blocked on a
//! full `block` mailbox when a `Monitor` switches it to `drop_oldest`. The waiting
//! senders get in at once, the oldest messages make room and go to the eviction
//! handler, and every message is still accounted for: delivered or evicted,
//! exactly once. Prints the stats before the switch, right after it, and at the end.
//!
//!     cargo run --example live_policy

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluicegate::mailbox::{Builder, Eviction, Policy, Stats};

const PRODUCERS: u64 = 4;
const PER_PRODUCER: u64 = 250;
const CAPACITY: usize = 16;

fn show(when: &str, s: &Stats) {
    println!(
        "{when:<13} {:<28} sent {:>4}  delivered {:>3}  dropped_oldest {:>3}  depth {:>2}  \
         waiting_senders {}",
        s.policy.to_string(),
        s.sent,
        s.delivered,
        s.dropped_oldest,
        s.depth,
        s.waiting_senders
    );
    assert!(s.is_balanced(), "unbalanced: {s:?}");
}

// One thread: nothing runs between the switch and the snapshot taken after it.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Messages that leave the queue undelivered come back through this handler.
    let evicted = Arc::new(Mutex::new(Vec::new()));
    let sink = evicted.clone();
    let (tx, mut rx) = Builder::new(Policy::Block {
        capacity: CAPACITY,
        send_timeout: None,
    })
    .role("live_policy")
    .on_evict(move |msg: u64, why| {
        assert_eq!(why, Eviction::DroppedOldest);
        sink.lock().unwrap().push(msg);
    })
    .build()
    .expect("a valid policy");
    let monitor = rx.monitor();

    // Producers as fast as the policy lets them; each message is a unique id.
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let tx = tx.clone();
        producers.push(tokio::spawn(async move {
            for i in 0..PER_PRODUCER {
                tx.send(p * PER_PRODUCER + i)
                    .await
                    .expect("block and drop_oldest accept");
            }
        }));
    }
    drop(tx);

    // A slow consumer: one message per millisecond.
    let consumer = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(id) = rx.recv().await {
            got.push(id);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        got
    });

    // Wait (bounded) until the queue is full and every producer is parked on it.
    let mut waited = 0;
    while monitor.stats().waiting_senders < PRODUCERS as usize {
        waited += 1;
        assert!(waited < 2_000, "the producers never blocked");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let before = monitor.stats();
    show("under block", &before);
    assert_eq!((before.depth, before.dropped_oldest), (CAPACITY, 0));

    // A bad policy is refused and changes nothing.
    let bad = monitor.set_policy(Policy::DropOldest { capacity: 0 });
    let bad = bad.expect_err("capacity 0 is invalid");
    println!("set_policy(drop_oldest with capacity 0) refused: {bad}");
    assert_eq!(monitor.stats().policy, before.policy);

    // The switch: parked senders are let in, each evicting the oldest message.
    monitor
        .set_policy(Policy::DropOldest { capacity: CAPACITY })
        .expect("a valid policy");
    let after = monitor.stats();
    show("after switch", &after);
    assert_eq!(after.waiting_senders, 0, "nobody waits under drop_oldest");
    assert_eq!(
        after.sent,
        before.sent + PRODUCERS,
        "the parked sends got in"
    );
    assert_eq!(after.dropped_oldest, PRODUCERS, "each evicted the oldest");

    for p in producers {
        p.await.expect("a producer panicked");
    }
    let delivered = consumer.await.expect("the consumer panicked");
    let end = monitor.stats();
    show("at the end", &end);

    // Every message is accounted for: delivered or evicted, exactly once.
    let evicted = evicted.lock().unwrap();
    let mut seen: Vec<u64> = delivered.iter().chain(evicted.iter()).copied().collect();
    seen.sort_unstable();
    let all: Vec<u64> = (0..PRODUCERS * PER_PRODUCER).collect();
    assert_eq!(seen, all, "each message delivered or evicted, exactly once");
    assert_eq!(end.delivered, delivered.len() as u64);
    assert_eq!(end.dropped_oldest, evicted.len() as u64);
    println!(
        "{} messages: {} delivered + {} evicted as oldest, none lost",
        all.len(),
        delivered.len(),
        evicted.len()
    );
}
