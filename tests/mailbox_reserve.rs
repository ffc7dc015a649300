//! `reserve()` and its permits, per policy: what a reservation does with no room,
//! that a permit's send never waits and is never refused for room, that a dropped
//! permit or a dropped `reserve` future gives the place back and lets the next
//! waiter in, that waiting `send`s and `reserve`s are served in one FIFO, and that
//! the accounting counts a permit's message like any send and a permit not at all.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use sluicegate::mailbox::{channel, Builder, Eviction, Policy, ReserveError, SendError};

fn block(capacity: usize) -> Policy {
    Policy::Block {
        capacity,
        send_timeout: None,
    }
}

#[tokio::test]
async fn a_permit_holds_a_place_under_block_and_its_send_never_waits() {
    let (tx, mut rx) = channel::<u32>(block(2));
    let permit = tx.reserve().await.unwrap();
    tx.send(1).await.unwrap();
    // One queued + one held = full: a plain send waits, a reservation too.
    assert!(tx.send(2).now_or_never().is_none());
    assert_eq!(tx.try_reserve().err(), Some(ReserveError::Full));
    let st = rx.stats();
    assert_eq!((st.depth, st.reserved, st.sent), (1, 1, 1));
    permit.send(3).unwrap();
    let st = rx.stats();
    assert_eq!((st.depth, st.reserved, st.sent), (2, 0, 2));
    assert!(st.is_balanced());
    assert_eq!(rx.recv().await, Some(1));
    assert_eq!(rx.recv().await, Some(3));
}

#[tokio::test]
async fn drop_newest_and_codel_refuse_a_reservation_without_room_and_count_nothing() {
    for policy in [
        Policy::DropNewest { capacity: 1 },
        Policy::Codel {
            capacity: 1,
            target: Duration::from_millis(5),
            interval: Duration::from_millis(50),
        },
    ] {
        let (tx, rx) = channel::<u32>(policy.clone());
        let permit = tx.reserve().await.unwrap();
        // No waiting: Full at once, for reserve as for try_reserve, and a plain send
        // is refused because the place is held.
        assert_eq!(
            tx.reserve().await.err(),
            Some(ReserveError::Full),
            "{policy}"
        );
        assert_eq!(tx.try_reserve().err(), Some(ReserveError::Full), "{policy}");
        assert_eq!(tx.send(9).await, Err(SendError::Rejected(9)), "{policy}");
        let st = rx.stats();
        assert_eq!((st.sent, st.rejected, st.reserved), (1, 1, 1), "{policy}");
        permit.send(1).unwrap();
        let st = rx.stats();
        assert_eq!((st.sent, st.depth, st.reserved), (2, 1, 0), "{policy}");
        assert!(st.is_balanced(), "{policy}");
    }
}

#[tokio::test]
async fn drop_oldest_grants_every_reservation_and_evicts_only_when_the_message_is_sent() {
    let dead = Arc::new(Mutex::new(Vec::new()));
    let d = dead.clone();
    let (tx, mut rx) = Builder::new(Policy::DropOldest { capacity: 1 })
        .metrics(false)
        .on_evict(move |m: u32, why| d.lock().unwrap().push((m, why)))
        .build()
        .unwrap();
    tx.send(1).await.unwrap();
    let p1 = tx.reserve().await.unwrap();
    let p2 = tx.try_reserve().unwrap();
    assert_eq!(rx.stats().reserved, 2);
    // Reserving evicted nothing; dropping a permit costs nothing.
    drop(p2);
    assert!(dead.lock().unwrap().is_empty());
    assert_eq!(rx.stats().depth, 1);
    // Sending evicts the oldest, as any send under drop_oldest.
    p1.send(2).unwrap();
    assert_eq!(*dead.lock().unwrap(), vec![(1, Eviction::DroppedOldest)]);
    assert_eq!(rx.recv().await, Some(2));
    let st = rx.stats();
    assert_eq!(
        (st.sent, st.delivered, st.dropped_oldest, st.reserved),
        (2, 1, 1, 0)
    );
    assert!(st.is_balanced());
}

#[tokio::test]
async fn unbounded_grants_every_reservation() {
    let (tx, mut rx) = channel::<u32>(Policy::Unbounded);
    let permits: Vec<_> = (0..100).map(|_| tx.try_reserve().unwrap()).collect();
    assert_eq!(rx.stats().reserved, 100);
    for (i, p) in permits.into_iter().enumerate() {
        p.send(i as u32).unwrap();
    }
    for i in 0..100 {
        assert_eq!(rx.recv().await, Some(i));
    }
    assert!(rx.stats().is_balanced());
}

#[tokio::test]
async fn a_dropped_permit_lets_the_first_waiting_sender_in() {
    let (tx, mut rx) = channel::<u32>(block(1));
    let permit = tx.reserve().await.unwrap();
    let tx2 = tx.clone();
    let waiter = tokio::spawn(async move { tx2.send(5).await });
    tokio::task::yield_now().await;
    assert_eq!(rx.stats().waiting_senders, 1);
    drop(permit);
    waiter.await.unwrap().unwrap();
    assert_eq!(rx.recv().await, Some(5));
    let st = rx.stats();
    assert_eq!(
        (st.sent, st.delivered, st.reserved, st.waiting_senders),
        (1, 1, 0, 0)
    );
}

#[tokio::test]
async fn a_dropped_reserve_future_leaves_the_fifo_and_blocks_nobody() {
    let (tx, mut rx) = channel::<u32>(block(1));
    tx.send(0).await.unwrap();
    // A reservation waits, then its future is dropped.
    assert!(tx.reserve().now_or_never().is_none());
    assert_eq!(
        rx.stats().waiting_senders,
        0,
        "the dropped reservation left the FIFO"
    );
    let tx2 = tx.clone();
    let waiter = tokio::spawn(async move { tx2.send(1).await });
    tokio::task::yield_now().await;
    assert_eq!(rx.recv().await, Some(0));
    waiter.await.unwrap().unwrap();
    assert_eq!(rx.recv().await, Some(1));
    let st = rx.stats();
    assert_eq!((st.sent, st.reserved, st.waiting_senders), (2, 0, 0));
    assert!(st.is_balanced());
}

#[tokio::test]
async fn a_reserve_future_granted_then_dropped_gives_its_place_to_the_next_waiter() {
    let (tx, mut rx) = channel::<u32>(block(1));
    tx.send(0).await.unwrap();
    let mut reserving = Box::pin(tx.reserve());
    assert!((&mut reserving).now_or_never().is_none());
    let tx2 = tx.clone();
    let waiter = tokio::spawn(async move { tx2.send(1).await });
    tokio::task::yield_now().await;
    // The receiver frees the place: it goes to the reservation (first in the FIFO)...
    assert_eq!(rx.recv().await, Some(0));
    assert_eq!(rx.stats().reserved, 1);
    // ...whose future is dropped before it is polled again: the place moves on.
    drop(reserving);
    waiter.await.unwrap().unwrap();
    assert_eq!(rx.recv().await, Some(1));
    let st = rx.stats();
    assert_eq!((st.sent, st.delivered, st.reserved), (2, 2, 0));
}

#[tokio::test]
async fn waiting_sends_and_reserves_are_served_in_one_fifo() {
    let (tx, mut rx) = channel::<u32>(block(1));
    tx.send(0).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 1..=6u32 {
        let tx = tx.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let permit = tx.reserve().await.unwrap();
                order.lock().unwrap().push(i);
                permit.send(i).unwrap();
            } else {
                tx.send(i).await.unwrap();
                order.lock().unwrap().push(i);
            }
        }));
        // Each parks before the next arrives.
        tokio::task::yield_now().await;
    }
    assert_eq!(rx.stats().waiting_senders, 6);
    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(rx.recv().await.unwrap());
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(*order.lock().unwrap(), vec![1, 2, 3, 4, 5, 6]);
    assert!(rx.stats().is_balanced());
}

#[tokio::test(start_paused = true)]
async fn reserve_waits_at_most_its_timeout_and_the_policys() {
    let (tx, _rx) = channel::<u32>(Policy::Block {
        capacity: 1,
        send_timeout: Some(Duration::from_millis(50)),
    });
    let _held = tx.reserve().await.unwrap();
    let t0 = tokio::time::Instant::now();
    assert_eq!(
        tx.reserve_timeout(Duration::from_millis(10)).await.err(),
        Some(ReserveError::Timeout)
    );
    assert_eq!(t0.elapsed(), Duration::from_millis(10));
    assert_eq!(tx.reserve().await.err(), Some(ReserveError::Timeout));
    assert_eq!(t0.elapsed(), Duration::from_millis(60));
    let st = tx.stats();
    assert_eq!((st.sent, st.timed_out, st.waiting_senders), (0, 0, 0));
}

#[tokio::test]
async fn a_permit_after_close_hands_its_message_back_and_a_waiting_reserve_is_closed() {
    let (tx, mut rx) = channel::<u32>(block(1));
    let permit = tx.reserve().await.unwrap();
    let tx2 = tx.clone();
    let waiting = tokio::spawn(async move { tx2.reserve().await.map(drop) });
    tokio::task::yield_now().await;
    rx.close();
    assert_eq!(waiting.await.unwrap(), Err(ReserveError::Closed));
    assert_eq!(permit.send(1), Err(SendError::Closed(1)));
    assert_eq!(tx.reserve().await.err(), Some(ReserveError::Closed));
    let st = rx.stats();
    assert_eq!((st.sent, st.closed, st.reserved), (1, 1, 0));
}

#[tokio::test]
async fn under_coalesce_a_permits_keyed_message_replaces_and_never_overtakes_a_waiting_one() {
    use sluicegate::mailbox::Meta;
    let (tx, mut rx) = channel::<&str>(Policy::Coalesce { capacity: 2 });
    tx.send("x").await.unwrap();
    let permit = tx.reserve().await.unwrap();
    // Full (one queued, one held): a keyed send with no queued key waits, and a
    // plain one behind it.
    let tx2 = tx.clone();
    let keyed = tokio::spawn(async move { tx2.send_with("k-mid", Meta::keyed("k")).await });
    tokio::task::yield_now().await;
    let tx3 = tx.clone();
    let plain = tokio::spawn(async move { tx3.send("plain").await });
    tokio::task::yield_now().await;
    assert_eq!(rx.stats().waiting_senders, 2);
    // The permit's "k-new" lets the older "k-mid" land first, through the permit's
    // place, then replaces it: the newest content wins and nothing overtakes.
    permit.send_with("k-new", Meta::keyed("k")).unwrap();
    keyed.await.unwrap().unwrap();
    let st = rx.stats();
    assert_eq!((st.depth, st.waiting_senders, st.coalesced), (2, 1, 1));
    assert_eq!(rx.recv().await, Some("x"));
    plain.await.unwrap().unwrap();
    assert_eq!(rx.recv().await, Some("k-new"));
    assert_eq!(rx.recv().await, Some("plain"));
    let st = rx.stats();
    assert_eq!((st.sent, st.coalesced, st.delivered), (4, 1, 3));
    assert!(st.is_balanced());
}

#[tokio::test]
async fn an_owned_permit_moves_into_another_task() {
    let (tx, mut rx) = channel::<String>(Policy::DropNewest { capacity: 1 });
    let permit = tx.clone().reserve_owned().await.unwrap();
    let task = tokio::spawn(async move { permit.send("from a task".into()).map(drop) });
    task.await.unwrap().unwrap();
    assert_eq!(rx.recv().await.as_deref(), Some("from a task"));
    let released = tx.clone().reserve_owned().await.unwrap().release();
    assert!(released.try_reserve().is_ok());
}
