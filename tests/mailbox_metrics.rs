//! Mailbox metrics as a Prometheus scrape sees them: batched on the hot path, yet
//! exact after `flush_all` (what `/metrics` calls before rendering).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use sluicegate::mailbox::{metrics::flush_all, Builder, Policy, Receiver, Sender};

mod support;
use support::prometheus_sample;

/// Builds a mailbox whose metric handles bind to `recorder` (a local one, so tests
/// running in parallel in this binary do not see each other's figures).
fn mailbox(recorder: &PrometheusRecorder, policy: Policy) -> (Sender<u64>, Receiver<u64>) {
    metrics::with_local_recorder(recorder, || {
        Builder::new(policy)
            .role("metrics_test")
            .build()
            .expect("valid policy")
    })
}

/// Asserts that the sample `name` with labels including `with` has `value`.
#[track_caller]
fn expect(text: &str, name: &str, with: &str, value: f64) {
    assert_eq!(
        prometheus_sample(text, name, with),
        Some(value),
        "{name} {with} in:\n{text}"
    );
}

#[tokio::test]
async fn counts_and_depth_are_exact_after_flush_all() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let (tx, mut rx) = mailbox(&recorder, Policy::DropOldest { capacity: 4 });
    for i in 0..10 {
        tx.send(i).await.unwrap();
    }
    // Fewer events than one batch: nothing is published until a flush.
    flush_all();
    let text = handle.render();
    expect(
        &text,
        "sluicegate_mailbox_messages_total",
        "outcome=\"dropped_oldest\"",
        6.0,
    );
    expect(
        &text,
        "sluicegate_mailbox_depth",
        "mailbox=\"metrics_test\"",
        4.0,
    );
    for _ in 0..4 {
        rx.recv().await.unwrap();
    }
    flush_all();
    let text = handle.render();
    expect(
        &text,
        "sluicegate_mailbox_messages_total",
        "outcome=\"delivered\"",
        4.0,
    );
    expect(
        &text,
        "sluicegate_mailbox_depth",
        "mailbox=\"metrics_test\"",
        0.0,
    );
}

#[tokio::test]
async fn many_batches_add_up_to_the_stats() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let (tx, mut rx) = mailbox(&recorder, Policy::DropNewest { capacity: 100 });
    let mut got = 0u64;
    for round in 0..37u64 {
        // Offer 150 (50 refused), then take 90: counts cross many batch boundaries.
        for i in 0..150 {
            let _ = tx.try_send(round * 1000 + i);
        }
        for _ in 0..90 {
            rx.try_recv().unwrap();
            got += 1;
        }
    }
    flush_all();
    let stats = rx.stats();
    let text = handle.render();
    assert_eq!(stats.delivered, got);
    expect(
        &text,
        "sluicegate_mailbox_messages_total",
        "outcome=\"delivered\"",
        stats.delivered as f64,
    );
    expect(
        &text,
        "sluicegate_mailbox_messages_total",
        "outcome=\"rejected\"",
        stats.rejected as f64,
    );
    expect(
        &text,
        "sluicegate_mailbox_depth",
        "mailbox=\"metrics_test\"",
        stats.depth as f64,
    );
    drop(tx);
    drop(rx);
    let text = handle.render();
    assert_eq!(
        prometheus_sample(&text, "sluicegate_mailboxes", "mailbox=\"metrics_test\""),
        Some(0.0),
        "a dropped mailbox leaves the live gauge: {text}"
    );
}

#[tokio::test]
async fn sojourn_is_sampled_one_in_sixteen_and_every_one_under_codel() {
    use sluicegate::mailbox::SOJOURN_SAMPLE_EVERY;
    // A backlog first (which gives `drop_newest` and `drop_oldest` their lock-free
    // ring), then one message at a time (through that ring): both halves sampled.
    let backlog = 64u64;
    let n = 10 * SOJOURN_SAMPLE_EVERY as u64;
    let sampled = (backlog + n) / SOJOURN_SAMPLE_EVERY as u64;
    for (policy, expected) in [
        (Policy::Unbounded, sampled),
        (Policy::DropOldest { capacity: 64 }, sampled),
        (Policy::DropNewest { capacity: 64 }, sampled),
        (
            Policy::Codel {
                capacity: 10_000,
                target: std::time::Duration::from_secs(1),
                interval: std::time::Duration::from_secs(10),
            },
            backlog + n,
        ),
    ] {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let (tx, mut rx) = mailbox(&recorder, policy);
        for i in 0..backlog {
            tx.send(i).await.unwrap();
        }
        for _ in 0..backlog {
            rx.recv().await.unwrap();
        }
        for i in 0..n {
            tx.send(i).await.unwrap();
            rx.recv().await.unwrap();
        }
        let text = handle.render();
        expect(
            &text,
            "sluicegate_mailbox_sojourn_seconds_count",
            "mailbox=\"metrics_test\"",
            expected as f64,
        );
    }
}

/// The lock-free ring (`drop_newest` and `drop_oldest` with metrics on) counts
/// deliveries, refusals and evictions in its own atomics, one set per stripe of
/// producer threads, and folds them into the published counters: with four
/// producer threads refusing or evicting all the while, the counters equal the
/// stats after a flush, and the accounting balances.
#[test]
fn the_rings_counts_from_many_threads_are_exact_after_flush_all() {
    const PER_PRODUCER: u64 = 5_000;
    for policy in [
        Policy::DropNewest { capacity: 8 },
        Policy::DropOldest { capacity: 8 },
    ] {
        let name = policy.name();
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let (tx, mut rx) = mailbox(&recorder, policy);
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        // Refused when full under drop_newest: the policy at work.
                        let _ = tx.try_send(p * PER_PRODUCER + i);
                    }
                })
            })
            .collect();
        drop(tx);
        let mut got = 0u64;
        loop {
            match rx.try_recv() {
                Ok(_) => got += 1,
                Err(sluicegate::mailbox::TryRecvError::Empty) => std::thread::yield_now(),
                Err(_) => break,
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        flush_all();
        let stats = rx.stats();
        assert!(stats.is_balanced(), "{name}: {stats:?}");
        assert_eq!(stats.sent, 4 * PER_PRODUCER, "{name}");
        assert_eq!(stats.delivered, got, "{name}");
        let text = handle.render();
        for (outcome, n) in [
            ("delivered", stats.delivered),
            ("rejected", stats.rejected),
            ("dropped_oldest", stats.dropped_oldest),
        ] {
            let with = format!("policy=\"{name}\",outcome=\"{outcome}\"");
            let seen =
                prometheus_sample(&text, "sluicegate_mailbox_messages_total", &with).unwrap_or(0.0);
            assert_eq!(seen, n as f64, "{name} {outcome} in:\n{text}");
        }
    }
}

/// Mailboxes of one role and policy share their registered series (one set per
/// recorder, role and policy); their counts and depths still add up exactly, and a
/// dropped one takes only its own share out of the gauges.
#[tokio::test]
async fn mailboxes_sharing_their_series_still_count_exactly() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let policy = Policy::DropNewest { capacity: 8 };
    let (tx_a, mut rx_a) = mailbox(&recorder, policy.clone());
    let (tx_b, rx_b) = mailbox(&recorder, policy);
    for i in 0..12 {
        let _ = tx_a.try_send(i);
    }
    for i in 0..3 {
        tx_b.try_send(i).unwrap();
    }
    for _ in 0..5 {
        rx_a.try_recv().unwrap();
    }
    flush_all();
    let text = handle.render();
    let (a, b) = (rx_a.stats(), rx_b.stats());
    assert_eq!((a.rejected, b.rejected, a.delivered), (4, 0, 5));
    expect(
        &text,
        "sluicegate_mailbox_messages_total",
        "outcome=\"rejected\"",
        4.0,
    );
    expect(
        &text,
        "sluicegate_mailbox_messages_total",
        "outcome=\"delivered\"",
        5.0,
    );
    expect(
        &text,
        "sluicegate_mailbox_depth",
        "mailbox=\"metrics_test\"",
        6.0,
    );
    expect(
        &text,
        "sluicegate_mailboxes",
        "mailbox=\"metrics_test\"",
        2.0,
    );
    drop((tx_b, rx_b));
    let text = handle.render();
    expect(
        &text,
        "sluicegate_mailboxes",
        "mailbox=\"metrics_test\"",
        1.0,
    );
    expect(
        &text,
        "sluicegate_mailbox_depth",
        "mailbox=\"metrics_test\"",
        3.0,
    );
    drop((tx_a, rx_a));
}

/// The Prometheus counters are fed from the mailbox's exact counts in deltas: read
/// straight from the recorder (no `flush_all`), each outcome's counter is at most
/// its `Stats` count and less than one batch
/// ([`FLUSH_EVERY`](sluicegate::mailbox::metrics::FLUSH_EVERY)) behind it, even after
/// hundreds of messages of that outcome since the last publication by a snapshot;
/// right after a `Stats` snapshot every counter and the depth gauge equal the
/// snapshot. A count lost, repeated or left unpublished fails one of the three.
#[tokio::test]
async fn counters_lag_by_less_than_a_batch_and_equal_the_stats_after_a_snapshot() {
    use metrics_exporter_prometheus::PrometheusHandle;
    use sluicegate::mailbox::metrics::FLUSH_EVERY;
    use sluicegate::mailbox::{Meta, Outcome, Stats};

    /// Each outcome's counter and the depth gauge of `policy` in a fresh scrape.
    fn scraped(handle: &PrometheusHandle, policy: &str) -> (Vec<u64>, f64) {
        let text = handle.render();
        let counters = Outcome::ALL
            .iter()
            .map(|o| {
                let with = format!("policy=\"{policy}\",outcome=\"{}\"", o.label());
                let v = prometheus_sample(&text, "sluicegate_mailbox_messages_total", &with);
                v.unwrap_or(0.0) as u64
            })
            .collect();
        let with = format!("policy=\"{policy}\"");
        let depth = prometheus_sample(&text, "sluicegate_mailbox_depth", &with).unwrap_or(0.0);
        (counters, depth)
    }

    /// The lag before a snapshot, then the snapshot, then exact figures after it.
    fn check(handle: &PrometheusHandle, policy: &str, rx: &Receiver<u64>) -> Stats {
        let (before, _) = scraped(handle, policy);
        let stats = rx.stats();
        for (o, &seen) in Outcome::ALL.iter().zip(&before) {
            let exact = stats.get(*o);
            assert!(
                seen <= exact && exact - seen < u64::from(FLUSH_EVERY),
                "{policy} {}: recorder {seen}, stats {exact}",
                o.label()
            );
        }
        let (after, depth) = scraped(handle, policy);
        let exact: Vec<u64> = Outcome::ALL.iter().map(|o| stats.get(*o)).collect();
        assert_eq!(after, exact, "{policy}: counters after a snapshot");
        assert_eq!(
            depth, stats.depth as f64,
            "{policy}: depth after a snapshot"
        );
        stats
    }

    for policy in [
        Policy::DropNewest { capacity: 8 },
        Policy::DropOldest { capacity: 8 },
        Policy::Coalesce { capacity: 8 },
    ] {
        let name = policy.name();
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let (tx, mut rx) = metrics::with_local_recorder(&recorder, || {
            Builder::new(policy)
                .role("lag_test")
                .build()
                .expect("valid policy")
        });
        // A fixed pseudo-random walk of sends (plain, keyed, already expired) and
        // receives, with a snapshot every 400 operations only: in between, the
        // busier outcomes gain well over one batch, so only the publications on
        // the way keep the recorder within one.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut last: Option<Stats> = None;
        for i in 0..2000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            match seed % 11 {
                0..=4 => _ = tx.try_send(i),
                5 | 6 => _ = tx.try_send_with(i, Meta::keyed(seed % 3)),
                7 => {
                    let past = Meta::default().with_deadline(tokio::time::Instant::now());
                    _ = tx.try_send_with(i, past);
                }
                _ => _ = rx.try_recv(),
            }
            if i % 400 == 399 {
                let stats = check(&handle, name, &rx);
                if let Some(last) = last.replace(stats.clone()) {
                    // Enough happened in between to need a publication on the way.
                    assert!(stats.delivered - last.delivered > u64::from(FLUSH_EVERY));
                }
            }
        }
        rx.discard_queued();
        rx.close();
        for i in 0..70 {
            assert!(tx.try_send(i).is_err());
        }
        let stats = check(&handle, name, &rx);
        assert!(stats.is_balanced(), "{stats:?}");
        // The walk took every outcome it is meant to through batch boundaries.
        assert!(stats.closed == 70 && stats.expired > 0, "{stats:?}");
        match name {
            "drop_oldest" => assert!(stats.dropped_oldest > 64, "{stats:?}"),
            "coalesce" => assert!(stats.coalesced > 64 && stats.rejected > 64, "{stats:?}"),
            _ => assert!(stats.rejected > 64, "{stats:?}"),
        }
    }
}
