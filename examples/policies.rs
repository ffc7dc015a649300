//! The six overflow policies under the same overload: a producer that sends 10,000
//! messages ten times faster than its consumer takes them, into mailboxes of
//! capacity 64. Prints each mailbox's `Stats` as a table and checks that every
//! message is accounted for (`Stats::is_balanced`).
//!
//! Tokio's clock is paused, so the run is deterministic and quick: when every task
//! sleeps, virtual time jumps ahead instead of waiting.
//!
//!     cargo run --example policies

use std::time::Duration;

use sluicegate::mailbox::{channel, Meta, Policy, Stats};
use tokio::time::Instant;

/// Messages the producer sends.
const MESSAGES: u64 = 10_000;
/// Each millisecond the producer sends this many messages...
const BURST: u64 = 100;
/// ...and the consumer handles at most this many: a tenth of the rate.
const BATCH: usize = 10;
const TICK: Duration = Duration::from_millis(1);

/// Runs one producer and one slow consumer over a mailbox with `policy`; returns
/// the final stats and how long the producer took to get rid of its messages.
async fn overload(policy: Policy) -> (Stats, Duration) {
    let keyed = matches!(policy, Policy::Coalesce { .. });
    let (tx, mut rx) = channel::<u64>(policy);

    // The slow consumer: up to `BATCH` messages per tick until every sender is gone.
    let consumer = tokio::spawn(async move {
        let (mut received, mut batch) = (0, Vec::with_capacity(BATCH));
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            received += batch.len() as u64;
            batch.clear(); // "handled"
            tokio::time::sleep(TICK).await;
        }
        (received, rx.stats())
    });

    // The fast producer. A refused message (`drop_newest`, `codel` at capacity) is
    // an `Err` that hands it back to us; we count it and move on.
    let started = Instant::now();
    let mut refused = 0;
    for i in 0..MESSAGES {
        let sent = if keyed {
            // Only the latest update per key matters: 16 keys, e.g. 16 sensors.
            tx.send_with(i, Meta::keyed(i % 16)).await
        } else {
            tx.send(i).await
        };
        if sent.is_err() {
            refused += 1;
        }
        if i % BURST == BURST - 1 {
            tokio::time::sleep(TICK).await;
        }
    }
    let producer_took = started.elapsed();
    drop(tx);

    let (received, stats) = consumer.await.expect("the consumer task panicked");
    assert_eq!(received, stats.delivered, "delivered = what recv returned");
    let counted = stats.rejected + stats.timed_out;
    assert_eq!(refused, counted, "every refusal is counted");
    (stats, producer_took)
}

/// A table column: a `Stats` field's name and how to read it.
type Column = (&'static str, fn(&Stats) -> u64);

/// The columns shown, in table order.
const COLUMNS: [Column; 12] = [
    ("sent", |s| s.sent),
    ("delivered", |s| s.delivered),
    ("rejected", |s| s.rejected),
    ("timed_out", |s| s.timed_out),
    ("dropped_oldest", |s| s.dropped_oldest),
    ("shed", |s| s.shed),
    ("coalesced", |s| s.coalesced),
    ("expired", |s| s.expired),
    ("closed", |s| s.closed),
    ("discarded", |s| s.discarded),
    ("depth", |s| s.depth as u64),
    ("peak_depth", |s| s.peak_depth as u64),
];

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let policies = [
        Policy::Unbounded,
        Policy::DropNewest { capacity: 64 },
        Policy::DropOldest { capacity: 64 },
        Policy::Block {
            capacity: 64,
            send_timeout: None,
        },
        Policy::Codel {
            capacity: 64,
            target: Duration::from_millis(2),
            interval: Duration::from_millis(20),
        },
        Policy::Coalesce { capacity: 64 },
    ];

    println!("{MESSAGES} messages, {BURST} per ms; the consumer takes {BATCH} per ms\n");
    print!("{:<12}", "policy");
    for (name, _) in COLUMNS {
        print!(" {name:>w$}", w = name.len().max(6));
    }
    println!(" {:>9}", "producer");
    for policy in policies {
        let (s, took) = overload(policy.clone()).await;
        print!("{:<12}", policy.name());
        for (name, field) in COLUMNS {
            print!(" {:>w$}", field(&s), w = name.len().max(6));
        }
        println!(" {:>7}ms", took.as_millis());

        // The accounting identity: every message sent ended in exactly one outcome.
        assert!(s.is_balanced(), "{policy}: unbalanced stats {s:?}");
        assert_eq!(s.sent, MESSAGES, "{policy}: every send resolved");
        assert_eq!(s.depth, 0, "{policy}: drained");

        // What each policy did with the overload.
        let lost = s.sent - s.delivered;
        match policy {
            Policy::Unbounded => {
                assert_eq!(lost, 0, "unbounded delivers everything");
                assert!(s.peak_depth > 64, "unbounded lets the backlog grow");
            }
            Policy::DropNewest { .. } => assert_eq!(s.rejected, lost, "drop_newest refuses"),
            Policy::DropOldest { .. } => assert_eq!(s.dropped_oldest, lost, "drop_oldest evicts"),
            Policy::Block { .. } => {
                assert_eq!(lost, 0, "block delivers everything");
                // Virtual time: the producer waited for the consumer.
                assert!(took >= TICK * 900, "block slows the producer down");
            }
            Policy::Codel { .. } => {
                assert!(s.shed > 0, "codel sheds from a standing queue: {s:?}");
                assert_eq!(s.shed + s.rejected, lost);
            }
            Policy::Coalesce { .. } => {
                assert_eq!(s.coalesced, lost, "coalesce merges per key");
                assert!(s.peak_depth <= 16, "one queued message per key");
            }
            // `Policy` is non-exhaustive; this example lists the six there are.
            _ => unreachable!("{policy} is not in the list above"),
        }
        if let Some(capacity) = policy.capacity() {
            assert!(s.peak_depth <= capacity, "{policy}: over capacity");
        }
    }
    println!("\nevery mailbox balanced: sent = delivered + every other outcome + depth");
}
