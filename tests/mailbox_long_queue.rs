//! Long-queue alerts (OTP's `long_message_queue`): edge-triggered, once when the
//! depth has stayed above the threshold for the set time and once when it recovers;
//! as a callback, a log line and metrics. Paused time throughout: nothing here
//! depends on the machine's speed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use sluicegate::mailbox::{
    metrics, Builder, LongQueueEvent, LongQueueKind, Policy, Receiver, Sender,
};

mod support;
use support::Lines;

type Events = Arc<Mutex<Vec<LongQueueEvent>>>;

fn mailbox(
    policy: Policy,
    threshold: usize,
    at_least: Duration,
) -> (Sender<u32>, Receiver<u32>, Events) {
    let events: Events = Arc::default();
    let e = events.clone();
    let (tx, rx) = Builder::new(policy)
        .role("long_queue_test")
        .metrics(false)
        .long_queue(threshold, at_least)
        .on_long_queue(move |ev| e.lock().unwrap().push(ev))
        .build()
        .unwrap();
    (tx, rx, events)
}

fn kinds(events: &Events) -> Vec<(LongQueueKind, usize, Duration)> {
    events
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.kind, e.depth, e.above_for))
        .collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn an_alert_fires_once_after_the_depth_stays_above_and_recovers_once() {
    let (tx, mut rx, events) = mailbox(Policy::Unbounded, 2, ms(1000));
    for i in 0..3 {
        tx.send(i).await.unwrap();
    }
    // Above 2 since now: not yet long.
    tokio::time::advance(ms(500)).await;
    tx.send(3).await.unwrap();
    assert!(kinds(&events).is_empty());
    tokio::time::advance(ms(600)).await;
    tx.send(4).await.unwrap();
    assert_eq!(kinds(&events), vec![(LongQueueKind::Long, 5, ms(1100))]);
    // Still long: no second alert.
    for i in 5..20 {
        tx.send(i).await.unwrap();
    }
    tokio::time::advance(ms(5000)).await;
    let _ = rx.stats();
    assert_eq!(kinds(&events).len(), 1);
    // Down to 3 queued: still above. Down to 2: recovered, once.
    while rx.len() > 3 {
        rx.recv().await.unwrap();
    }
    assert_eq!(kinds(&events).len(), 1);
    rx.recv().await.unwrap();
    rx.recv().await.unwrap();
    assert_eq!(
        kinds(&events)[1..],
        [(LongQueueKind::Recovered, 2, ms(6100))]
    );
    let ev = events.lock().unwrap()[1].clone();
    assert_eq!((ev.role, ev.threshold), ("long_queue_test", 2));
    // A second episode raises a second alert.
    for i in 0..5 {
        tx.send(i).await.unwrap();
    }
    tokio::time::advance(ms(1000)).await;
    let _ = tx.stats();
    assert_eq!(kinds(&events)[2..], [(LongQueueKind::Long, 6, ms(1000))]);
}

#[tokio::test(start_paused = true)]
async fn a_dip_to_the_threshold_starts_the_wait_over() {
    let (tx, mut rx, events) = mailbox(Policy::Unbounded, 1, ms(1000));
    tx.send(0).await.unwrap();
    tx.send(1).await.unwrap();
    tokio::time::advance(ms(800)).await;
    rx.recv().await.unwrap(); // 1 queued: at the threshold
    tx.send(2).await.unwrap(); // above again, from now
    tokio::time::advance(ms(800)).await;
    let _ = rx.stats();
    assert!(kinds(&events).is_empty(), "{:?}", kinds(&events));
    tokio::time::advance(ms(200)).await;
    let _ = rx.stats();
    assert_eq!(kinds(&events), vec![(LongQueueKind::Long, 2, ms(1000))]);
}

#[tokio::test(start_paused = true)]
async fn zero_duration_alerts_at_the_crossing_and_the_receivers_drop_recovers() {
    // drop_oldest with metrics off would use the lock-free ring: an alert turns it off,
    // so every send is seen.
    let (tx, rx, events) = mailbox(Policy::DropOldest { capacity: 8 }, 3, Duration::ZERO);
    for i in 0..4 {
        tx.send(i).await.unwrap();
    }
    assert_eq!(
        kinds(&events),
        vec![(LongQueueKind::Long, 4, Duration::ZERO)]
    );
    tokio::time::advance(ms(50)).await;
    drop(rx);
    assert_eq!(kinds(&events)[1..], [(LongQueueKind::Recovered, 0, ms(50))]);
}

#[tokio::test(start_paused = true)]
async fn each_event_is_logged_and_counted_in_metrics() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let lines = Lines::default();
    let _guard = lines.install();
    let (tx, mut rx, _events) = mailbox(Policy::Unbounded, 1, ms(100));
    let gauge = |text: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(metrics::LONG_QUEUES) && l.contains("long_queue_test"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let events = |text: &str, event: &str| -> Option<f64> {
        text.lines()
            .find(|l| {
                l.starts_with(metrics::LONG_QUEUE_EVENTS)
                    && l.contains(&format!("event=\"{event}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    // The events are recorded where they happen, here on this thread: a local
    // recorder keeps them apart from other tests.
    ::metrics::with_local_recorder(&recorder, || {
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
    });
    tokio::time::advance(ms(100)).await;
    ::metrics::with_local_recorder(&recorder, || tx.try_send(3).unwrap());
    let text = handle.render();
    assert_eq!(gauge(&text), Some(1.0), "{text}");
    assert_eq!(events(&text, "long"), Some(1.0), "{text}");
    let warn = lines.at(tracing::Level::WARN);
    assert_eq!(warn.len(), 1);
    assert_eq!(
        (
            warn[0].fields["depth"],
            warn[0].fields["threshold"],
            warn[0].fields["above_for_ms"]
        ),
        (3, 1, 100)
    );
    ::metrics::with_local_recorder(&recorder, || {
        rx.try_recv().unwrap();
        rx.try_recv().unwrap();
    });
    let text = handle.render();
    assert_eq!(gauge(&text), Some(0.0), "{text}");
    assert_eq!(events(&text, "recovered"), Some(1.0), "{text}");
    assert_eq!(lines.at(tracing::Level::INFO).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn without_an_alert_nothing_is_reported() {
    let lines = Lines::default();
    let _guard = lines.install();
    let (tx, _rx) = Builder::new(Policy::Unbounded).build().unwrap();
    for i in 0..1000u32 {
        tx.send(i).await.unwrap();
    }
    tokio::time::advance(ms(10_000)).await;
    let _ = tx.stats();
    assert!(lines.0.lock().unwrap().is_empty());
}
