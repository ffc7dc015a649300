//! Lanes: the control lane survives every policy's overload (drop_oldest,
//! drop_newest, coalesce, block, expiry, CoDel) and comes first; priorities are
//! delivered highest first and FIFO among equals; `drop_oldest` evicts the oldest of
//! the lowest priority; the accounting counts every lane.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluicegate::mailbox::{
    channel, Builder, Eviction, Lane, Meta, Policy, SendError, TrySendError,
};

fn on(lane: Lane) -> Meta {
    Meta::default().with_lane(lane)
}

/// Overloads a mailbox of `policy` (capacity 2) with normal traffic around two
/// control messages, then checks that both control messages come first, in order,
/// and that no control message was dropped, refused or coalesced.
async fn control_survives(policy: Policy, keyed: bool) {
    let dead = Arc::new(Mutex::new(Vec::new()));
    let d = dead.clone();
    let (tx, mut rx) = Builder::new(policy.clone())
        .metrics(false)
        .on_evict(move |m: u32, why| d.lock().unwrap().push((m, why)))
        .build()
        .unwrap();
    let meta = |v: u32| {
        let m = if keyed {
            Meta::keyed("k")
        } else {
            Meta::default()
        };
        m.with_deadline(tokio::time::Instant::now() + Duration::from_millis(v.into()))
    };
    for v in 1..=3 {
        let _ = tx.try_send_with(v, meta(v));
    }
    tx.try_send_control(1000).unwrap();
    for v in 4..=6 {
        let _ = tx.try_send_with(v, meta(v));
    }
    // A keyed control message is not coalesced, and its deadline is not applied.
    tx.try_send_with(1001, meta(1).with_lane(Lane::Control))
        .unwrap();
    for v in 7..=9 {
        let _ = tx.try_send_with(v, meta(v));
    }
    tokio::time::advance(Duration::from_millis(100)).await;
    let st = rx.stats();
    assert_eq!(st.control_depth, 2, "{policy}: {st:?}");
    assert_eq!(rx.recv().await, Some(1000), "{policy}");
    assert_eq!(rx.recv().await, Some(1001), "{policy}");
    assert!(
        dead.lock().unwrap().iter().all(|(m, _)| *m < 1000),
        "{policy}: a control message was a dead letter: {:?}",
        dead.lock().unwrap()
    );
    let st = rx.stats();
    assert!(st.is_balanced(), "{policy}: {st:?}");
    assert_eq!(st.control_depth, 0);
}

#[tokio::test(start_paused = true)]
async fn control_messages_survive_every_policys_overload_and_expiry_and_come_first() {
    for policy in [
        Policy::DropOldest { capacity: 2 },
        Policy::DropNewest { capacity: 2 },
        Policy::Block {
            capacity: 2,
            send_timeout: None,
        },
        Policy::Codel {
            capacity: 2,
            target: Duration::from_millis(1),
            interval: Duration::from_millis(1),
        },
        Policy::Unbounded,
    ] {
        control_survives(policy, false).await;
    }
    control_survives(Policy::Coalesce { capacity: 2 }, true).await;
}

#[tokio::test(start_paused = true)]
async fn codel_sheds_a_standing_queue_but_never_a_control_message() {
    let (tx, mut rx) = Builder::new(Policy::Codel {
        capacity: 100,
        target: Duration::from_millis(1),
        interval: Duration::from_millis(1),
    })
    .metrics(false)
    .build()
    .unwrap();
    for v in 0..20u32 {
        tx.send(v).await.unwrap();
        if v % 5 == 0 {
            tx.try_send_control(1000 + v).unwrap();
        }
    }
    tokio::time::advance(Duration::from_millis(50)).await;
    let mut got = Vec::new();
    while let Ok(m) = rx.try_recv() {
        got.push(m);
        tokio::time::advance(Duration::from_millis(5)).await;
    }
    assert_eq!(&got[..4], &[1000, 1005, 1010, 1015]);
    let st = rx.stats();
    assert!(st.shed > 0, "the standing queue was shed: {st:?}");
    assert!(st.is_balanced());
}

#[tokio::test]
async fn control_messages_never_wait_and_do_not_take_a_place() {
    let (tx, mut rx) = channel::<u32>(Policy::Block {
        capacity: 1,
        send_timeout: None,
    });
    tx.send(1).await.unwrap();
    for c in 0..10 {
        tx.send_with(100 + c, Meta::control()).await.unwrap();
    }
    let st = rx.stats();
    assert_eq!((st.depth, st.control_depth), (11, 10));
    // The normal lane is still exactly full.
    assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
    for c in 0..10 {
        assert_eq!(rx.recv().await, Some(100 + c));
    }
    assert_eq!(rx.recv().await, Some(1));
}

#[tokio::test]
async fn a_closed_mailbox_refuses_control_messages_and_a_dropped_receiver_makes_them_dead_letters()
{
    let dead = Arc::new(Mutex::new(Vec::new()));
    let d = dead.clone();
    let (tx, rx) = Builder::new(Policy::DropOldest { capacity: 1 })
        .dead_letters(move |l| d.lock().unwrap().push((l.message, l.reason, l.meta.lane)))
        .build()
        .unwrap();
    tx.try_send_control(1).unwrap();
    drop(rx);
    assert_eq!(
        *dead.lock().unwrap(),
        vec![(1, Eviction::Discarded, Lane::Control)]
    );
    assert_eq!(tx.try_send_control(2), Err(TrySendError::Closed(2)));
    let (tx, mut rx) = channel::<u32>(Policy::Unbounded);
    tx.try_send_control(3).unwrap();
    rx.close();
    assert_eq!(
        tx.send_with(4, Meta::control()).await,
        Err(SendError::Closed(4))
    );
    assert_eq!(rx.recv().await, Some(3));
}

#[tokio::test]
async fn priorities_are_delivered_highest_first_and_fifo_among_equals() {
    let (tx, mut rx) = channel::<(Lane, u32)>(Policy::Unbounded);
    let lanes = [Lane::Low, Lane::Normal, Lane::High, Lane::Control];
    for i in 0..12u32 {
        let lane = lanes[(i * 7 % 4) as usize];
        tx.send_with((lane, i), on(lane)).await.unwrap();
    }
    let mut got = Vec::new();
    while let Ok(m) = rx.try_recv() {
        got.push(m);
    }
    let mut want = got.clone();
    // Stable sort by lane rank: FIFO among equals.
    let rank = |l: Lane| lanes.iter().position(|x| *x == l).unwrap();
    want.sort_by_key(|(l, _)| std::cmp::Reverse(rank(*l)));
    assert_eq!(got, want);
    for lane in lanes {
        let ids: Vec<u32> = got.iter().filter(|m| m.0 == lane).map(|m| m.1).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{lane:?}: {ids:?}");
    }
}

#[tokio::test]
async fn drop_oldest_evicts_the_oldest_of_the_lowest_priority_counting_the_newcomer() {
    let dead = Arc::new(Mutex::new(Vec::new()));
    let d = dead.clone();
    let (tx, mut rx) = Builder::new(Policy::DropOldest { capacity: 3 })
        .on_evict(move |m: &str, why| d.lock().unwrap().push((m, why)))
        .build()
        .unwrap();
    tx.send_with("high", on(Lane::High)).await.unwrap();
    tx.send("n1").await.unwrap();
    tx.send_with("low", on(Lane::Low)).await.unwrap();
    // Full: the Low message goes first, then the oldest Normal one.
    tx.send("n2").await.unwrap();
    tx.send("n3").await.unwrap();
    // Only High and Normal queued: a Low newcomer is itself the lowest.
    tx.send_with("low2", on(Lane::Low)).await.unwrap();
    assert_eq!(
        *dead.lock().unwrap(),
        vec![
            ("low", Eviction::DroppedOldest),
            ("n1", Eviction::DroppedOldest),
            ("low2", Eviction::DroppedOldest)
        ]
    );
    assert_eq!(rx.recv().await, Some("high"));
    assert_eq!(rx.recv().await, Some("n2"));
    assert_eq!(rx.recv().await, Some("n3"));
    let st = rx.stats();
    assert_eq!((st.sent, st.dropped_oldest, st.delivered), (6, 3, 3));
    assert!(st.is_balanced());
}

#[tokio::test]
async fn priorities_share_the_capacity_and_do_not_buy_room() {
    let (tx, mut rx) = channel::<u32>(Policy::DropNewest { capacity: 2 });
    tx.send_with(1, on(Lane::Low)).await.unwrap();
    tx.send_with(2, on(Lane::Normal)).await.unwrap();
    assert_eq!(
        tx.send_with(3, on(Lane::High)).await,
        Err(SendError::Rejected(3))
    );
    assert_eq!(rx.recv().await, Some(2));
    tx.send_with(3, on(Lane::High)).await.unwrap();
    assert_eq!(rx.recv().await, Some(3));
    assert_eq!(rx.recv().await, Some(1));
}

#[tokio::test]
async fn the_lock_free_ring_hands_over_to_the_lanes_in_order() {
    // drop_oldest without metrics uses the lock-free ring for plain messages; a
    // control or High message moves what the ring holds into the core first.
    let (tx, mut rx) = Builder::new(Policy::DropOldest { capacity: 8 })
        .metrics(false)
        .build()
        .unwrap();
    for round in 0..3u32 {
        for v in 0..3 {
            tx.send(round * 10 + v).await.unwrap();
        }
        tx.send_with(round * 10 + 5, on(Lane::High)).await.unwrap();
        tx.try_send_control(round * 10 + 9).unwrap();
        let mut got = Vec::new();
        while let Ok(m) = rx.try_recv() {
            got.push(m);
        }
        let b = round * 10;
        assert_eq!(got, vec![b + 9, b + 5, b, b + 1, b + 2]);
    }
    assert!(rx.stats().is_balanced());
}
