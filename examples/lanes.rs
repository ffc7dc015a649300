//! Lanes and permits: a worker's `drop_oldest` mailbox under a flood keeps its stop
//! request (control lane) and delivers it first, ahead of urgent (`High`) work and the
//! flood; and a producer reserves a place in a `block` mailbox before it builds an
//! expensive message, so that cancelling it loses nothing and blocks nobody.
//! Asserts what it prints (exits non-zero otherwise).
//!
//!     cargo run --example lanes

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluicegate::mailbox::{channel, Builder, Eviction, Lane, Meta, Policy};

#[derive(Debug, PartialEq)]
enum Job {
    Work(u32),
    Urgent(&'static str),
    Stop,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    control_lane_survives_a_flood().await;
    reserve_before_building().await;
    println!("ok");
}

async fn control_lane_survives_a_flood() {
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let d = dropped.clone();
    let (tx, mut rx) = Builder::new(Policy::DropOldest { capacity: 4 })
        .role("worker")
        .on_evict(move |job: Job, why| d.lock().unwrap().push((job, why)))
        .build()
        .expect("valid policy");
    for i in 0..10 {
        tx.send(Job::Work(i)).await.unwrap();
        if i == 2 {
            // Sent early: a plain drop_oldest mailbox would evict it with the flood.
            tx.try_send_control(Job::Stop).unwrap();
        }
        if i == 5 {
            tx.send_with(Job::Urgent("flush"), Meta::default().with_lane(Lane::High))
                .await
                .unwrap();
        }
    }
    let stats = rx.stats();
    println!(
        "after the flood: depth {} ({} on the control lane), {} dropped",
        stats.depth, stats.control_depth, stats.dropped_oldest
    );
    let mut got = Vec::new();
    while let Ok(job) = rx.try_recv() {
        got.push(job);
    }
    println!("delivered in order: {got:?}");
    // Control first, then High, then the newest normal work that fit.
    assert_eq!(got[0], Job::Stop);
    assert_eq!(got[1], Job::Urgent("flush"));
    assert_eq!(&got[2..], &[Job::Work(7), Job::Work(8), Job::Work(9)]);
    let dropped = dropped.lock().unwrap();
    assert!(dropped
        .iter()
        .all(|(job, why)| matches!(job, Job::Work(_)) && *why == Eviction::DroppedOldest));
    assert_eq!(dropped.len(), 7);
    assert!(rx.stats().is_balanced());
}

async fn reserve_before_building() {
    let (tx, mut rx) = channel::<String>(Policy::Block {
        capacity: 1,
        send_timeout: None,
    });
    // A producer holds the only place while it builds its message; it is cancelled
    // before it sends. Its place comes back: the next producer gets in.
    let slow = tokio::spawn({
        let tx = tx.clone();
        async move {
            let permit = tx.reserve().await.unwrap();
            tokio::time::sleep(Duration::from_secs(3600)).await; // building...
            permit.send("never sent".to_string()).unwrap();
        }
    });
    tokio::task::yield_now().await;
    assert_eq!(rx.stats().reserved, 1);
    let fast = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send("sent after the place came back".to_string()).await }
    });
    tokio::task::yield_now().await;
    assert_eq!(rx.stats().waiting_senders, 1, "the place is held");
    slow.abort();
    assert!(slow.await.unwrap_err().is_cancelled());
    fast.await.unwrap().unwrap();
    let got = rx.recv().await.unwrap();
    println!("after the cancelled reservation: {got:?}");
    assert_eq!(got, "sent after the place came back");
    let stats = rx.stats();
    // The cancelled producer's permit was never a message: nothing to account for.
    assert_eq!((stats.sent, stats.delivered, stats.reserved), (1, 1, 0));
    assert!(stats.is_balanced());
}
