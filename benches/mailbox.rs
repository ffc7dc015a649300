//! Mailbox throughput: SPSC and MPSC (4 producers) of `u64` through every policy,
//! beside `tokio::sync::mpsc` (bounded 1024 and unbounded) and `tokio::sync::broadcast`
//! (1024) in the same run, and every policy again with metrics into a Prometheus recorder.
//!
//! Each iteration pushes [`MESSAGES`] messages through a fresh channel on a 2-worker
//! tokio runtime: producers send as fast as they can (taking part in tokio's
//! cooperative budget, like a real server loop), one consumer receives until the
//! channel ends. Throughput counts messages *offered*; under drop_oldest, codel and
//! broadcast a fast producer makes the consumer miss some, which is the policy at work.
//! Capacity is 1024 for every bounded variant. Without `_metrics` a mailbox is built
//! with `metrics(false)`; with it, metrics go to the global Prometheus recorder that
//! `sluicegate serve` installs.
//!
//! `cargo bench --bench mailbox -- --list` lists the names: `spsc/<variant>`, `mpsc4/<variant>`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluicegate::mailbox::{Builder, Policy};
use tokio::sync::{broadcast, mpsc};

/// Messages offered per iteration, split evenly among the producers.
const MESSAGES: u64 = 16 * 1024;
/// Capacity of every bounded variant.
const CAPACITY: usize = 1024;

/// What is measured: a sluicegate policy (with or without metrics) or a tokio baseline.
#[derive(Clone)]
enum Variant {
    Policy { policy: Policy, metrics: bool },
    TokioBounded,
    TokioUnbounded,
    Broadcast,
}

impl Variant {
    fn name(&self) -> String {
        match self {
            Variant::Policy { policy, metrics } => {
                let base = format!("sluicegate_{}", policy.name());
                if *metrics {
                    format!("{base}_metrics")
                } else {
                    base
                }
            }
            Variant::TokioBounded => "tokio_mpsc_bounded".into(),
            Variant::TokioUnbounded => "tokio_mpsc_unbounded".into(),
            Variant::Broadcast => "tokio_broadcast".into(),
        }
    }
}

fn policies() -> Vec<Policy> {
    vec![
        Policy::Unbounded,
        Policy::DropNewest { capacity: CAPACITY },
        Policy::DropOldest { capacity: CAPACITY },
        Policy::Block {
            capacity: CAPACITY,
            send_timeout: None,
        },
        Policy::Codel {
            capacity: CAPACITY,
            target: Duration::from_millis(5),
            interval: Duration::from_millis(100),
        },
        Policy::Coalesce { capacity: CAPACITY },
    ]
}

fn variants() -> Vec<Variant> {
    let mut v = vec![
        Variant::TokioBounded,
        Variant::TokioUnbounded,
        Variant::Broadcast,
    ];
    for metrics in [false, true] {
        v.extend(
            policies()
                .into_iter()
                .map(|policy| Variant::Policy { policy, metrics }),
        );
    }
    v
}

/// Spawns a consumer that receives with `$recv` (yielding `Option<u64>`) until the end
/// and counts what it got.
macro_rules! consume {
    ($rx:ident, $recv:expr) => {
        tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(m) = $recv {
                std::hint::black_box(m);
                n += 1;
            }
            n
        })
    };
}

/// Spawns `$producers` tasks that each offer their share of [`MESSAGES`] with
/// `$send` (using `$tx` and the value `$v`), drops the original sender, waits for
/// the producers, and returns what `$consumer` received.
macro_rules! produce {
    ($tx:ident, $producers:expr, $consumer:expr, |$v:ident| $send:expr) => {{
        let per = MESSAGES / $producers;
        let mut tasks = Vec::new();
        for p in 0..$producers {
            let $tx = $tx.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    let $v = p * per + i;
                    $send;
                    tokio::task::consume_budget().await;
                }
            }));
        }
        drop($tx);
        for t in tasks {
            t.await.expect("producer");
        }
        $consumer.await.expect("consumer")
    }};
}

/// One iteration: `producers` tasks offer `MESSAGES` in all; one consumer drains.
/// Returns how many messages the consumer received.
async fn run(variant: &Variant, producers: u64) -> u64 {
    match variant {
        Variant::Policy { policy, metrics } => {
            let (tx, mut rx) = Builder::<u64>::new(policy.clone())
                .role("bench")
                .metrics(*metrics)
                .build()
                .expect("valid policy");
            let consumer = consume!(rx, rx.recv().await);
            // Refusals (drop_newest, codel at capacity) are the policy at work.
            produce!(tx, producers, consumer, |v| {
                let _ = tx.send(v).await;
            })
        }
        Variant::TokioBounded => {
            let (tx, mut rx) = mpsc::channel::<u64>(CAPACITY);
            let consumer = consume!(rx, rx.recv().await);
            produce!(tx, producers, consumer, |v| tx
                .send(v)
                .await
                .expect("receiver alive"))
        }
        Variant::TokioUnbounded => {
            let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
            let consumer = consume!(rx, rx.recv().await);
            produce!(tx, producers, consumer, |v| tx
                .send(v)
                .expect("receiver alive"))
        }
        Variant::Broadcast => {
            let (tx, mut rx) = broadcast::channel::<u64>(CAPACITY);
            // A lagging receiver skips what was overwritten, like drop_oldest.
            let consumer = consume!(
                rx,
                loop {
                    match rx.recv().await {
                        Ok(m) => break Some(m),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break None,
                    }
                }
            );
            // Only fails with no receiver, which cannot happen here.
            produce!(tx, producers, consumer, |v| {
                let _ = tx.send(v);
            })
        }
    }
}

fn throughput(c: &mut Criterion) {
    let _handle = sluicegate::service::install_prometheus().expect("prometheus recorder");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    for (group, producers) in [("spsc", 1u64), ("mpsc4", 4)] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(MESSAGES));
        for variant in variants() {
            g.bench_function(variant.name(), |b| {
                b.to_async(&rt).iter(|| run(&variant, producers))
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = throughput
}
criterion_main!(benches);
