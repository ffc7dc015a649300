//! Dead letters and long-queue alerts: a `drop_oldest` mailbox whose evicted
//! messages go to a dead-letter handler with their reason and key, and whose depth
//! raises a long-queue alert while a slow consumer falls behind, and a recovery once
//! it catches up. Asserts what it prints.
//!
//!     cargo run --example dead_letters

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluicegate::mailbox::{Builder, DeadLetter, Eviction, LongQueueKind, Meta, Policy};

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let dead = Arc::new(Mutex::new(Vec::new()));
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let (d, a) = (dead.clone(), alerts.clone());
    let (tx, mut rx) = Builder::new(Policy::DropOldest { capacity: 8 })
        .role("readings")
        .dead_letters(move |letter: DeadLetter<u32>| {
            println!(
                "dead letter: {} ({:?}, key {:?})",
                letter.message,
                letter.reason,
                letter.meta.key.as_ref().map(|k| k.as_str())
            );
            d.lock().unwrap().push((letter.message, letter.reason));
        })
        .log_dead_letters(Duration::from_secs(10))
        .long_queue(4, Duration::from_millis(100))
        .on_long_queue(move |ev| {
            println!(
                "long queue: {:?} at depth {} after {:?} above {}",
                ev.kind, ev.depth, ev.above_for, ev.threshold
            );
            a.lock().unwrap().push(ev.kind);
        })
        .build()
        .expect("valid policy");

    // A producer sends 12 readings, one every 20 ms; nobody reads for a while.
    for i in 0..12u32 {
        tx.send_with(i, Meta::keyed(format!("sensor-{}", i % 3)))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(20)).await;
    }
    // 8 fit: the 4 oldest were evicted, each reported once with its key.
    let evicted: Vec<u32> = dead.lock().unwrap().iter().map(|(m, _)| *m).collect();
    assert_eq!(evicted, [0, 1, 2, 3]);
    assert!(dead
        .lock()
        .unwrap()
        .iter()
        .all(|(_, why)| *why == Eviction::DroppedOldest));
    // Above 4 queued for more than 100 ms: one alert.
    assert_eq!(*alerts.lock().unwrap(), [LongQueueKind::Long]);

    // The consumer catches up: back to 4 queued, one recovery.
    while rx.len() > 4 {
        rx.recv().await.unwrap();
    }
    assert_eq!(
        *alerts.lock().unwrap(),
        [LongQueueKind::Long, LongQueueKind::Recovered]
    );

    // Dropping the receiver with 4 still queued: 4 more dead letters (discarded).
    let monitor = rx.monitor();
    drop(rx);
    assert_eq!(dead.lock().unwrap().len(), 8);
    let stats = monitor.stats();
    assert_eq!((stats.dropped_oldest, stats.discarded), (4, 4));
    assert!(stats.is_balanced());
    println!("every undelivered message reached the handler once: {stats:?}");
}
