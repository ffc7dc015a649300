//! Mailbox throughput beside the fastest async channels, in one run: every policy
//! (metrics off and on) against kanal `bounded_async`, flume, async-channel, tachyonix,
//! crossfire `mpsc::bounded_async`, and tokio's mpsc (bounded and unbounded) and broadcast, SPSC and with 4 producers.
//!
//! Each measurement pushes `MESSAGES` `u64`s through a fresh channel on a 2-worker
//! tokio runtime: producers send as fast as they can and yield every 1024 messages
//! (so a producer and its consumer cannot starve each other on one worker, whatever
//! the channel does about tokio's cooperative budget); one consumer receives until
//! the channel ends. Every variant runs once per round, in an order rotated each
//! round, so the machine's drift hits all of them alike; the table gives medians over
//! the rounds, and ratios are taken within a round, then their median.
//!
//! Reported per variant: delivered and offered M msg/s, ns per offered message, and
//! the ratio to kanal, to tokio bounded and to tokio broadcast (lossless variants on delivered rate,
//! lossy ones on offered rate, with the delivered share).
//!
//! `cargo bench --bench mailbox` runs it (about 2 minutes with the defaults);
//! `cargo bench --bench mailbox -- spsc codel` keeps only variants whose name contains
//! every word given (`=spsc/sluicegate_block` keeps exactly that one). Environment: `MAILBOX_BENCH_MESSAGES` (default 5,000,000),
//! `MAILBOX_BENCH_ROUNDS` (default 3), `MAILBOX_BENCH_CAPACITY` (default 1024),
//! `MAILBOX_BENCH_RUNTIME=current_thread` (one thread instead of two workers),
//! `MAILBOX_BENCH_CODEL_TARGET_MS` (CoDel's target, default 5, its interval 20 times
//! that; under callgrind, where
//! everything runs some 50 times slower, 1000 keeps CoDel's dequeues quiet as they are
//! at full speed, so its instruction count repeats).

use std::time::{Duration, Instant};

use sluicegate::mailbox::{Builder, Meta, Policy};
use tokio::sync::{broadcast, mpsc};

/// What is measured.
#[derive(Clone, Debug)]
enum Variant {
    /// A sluicegate mailbox; `keys` > 0 sends each message keyed by `value % keys`.
    Policy {
        policy: Policy,
        metrics: bool,
        keys: u64,
    },
    /// A sluicegate mailbox whose consumer drains with `recv_many` (up to 64 a lock).
    RecvMany(Policy),
    Kanal,
    /// kanal with both sides charging tokio's cooperative budget once per operation,
    /// as tokio's mpsc and sluicegate do (kanal itself never yields to the scheduler).
    KanalCoop,
    Flume,
    AsyncChannel,
    /// tachyonix (one receiver, Vyukov ring, lock-free receiver waker).
    Tachyonix,
    /// crossfire v3 `mpsc::bounded_async` (modified crossbeam `ArrayQueue`).
    Crossfire,
    TokioBounded,
    TokioUnbounded,
    Broadcast,
}

impl Variant {
    fn name(&self) -> String {
        match self {
            Variant::Policy {
                policy,
                metrics,
                keys,
            } => {
                let mut s = format!("sluicegate_{}", policy.name());
                if *keys > 0 {
                    s.push_str(&format!("_keyed{keys}"));
                }
                if *metrics {
                    s.push_str("_metrics");
                }
                s
            }
            Variant::RecvMany(p) => format!("sluicegate_{}_recv_many64", p.name()),
            Variant::Kanal => "kanal_bounded_async".into(),
            Variant::KanalCoop => "kanal_bounded_async_coop".into(),
            Variant::Flume => "flume_bounded".into(),
            Variant::AsyncChannel => "async_channel_bounded".into(),
            Variant::Tachyonix => "tachyonix".into(),
            Variant::Crossfire => "crossfire_mpsc_bounded_async".into(),
            Variant::TokioBounded => "tokio_mpsc_bounded".into(),
            Variant::TokioUnbounded => "tokio_mpsc_unbounded".into(),
            Variant::Broadcast => "tokio_broadcast".into(),
        }
    }

    /// Whether the variant may lose messages by design (rated on offered messages).
    fn lossy(&self) -> bool {
        match self {
            Variant::Policy { policy, keys, .. } => !policy.never_drops() || *keys > 0,
            Variant::RecvMany(p) => !p.never_drops(),
            Variant::Broadcast => true,
            _ => false,
        }
    }
}

fn policies(capacity: usize) -> Vec<Policy> {
    // CoDel's target, with the RFC's interval of 20 targets (5 ms and 100 ms).
    let codel_target_ms = env_or("MAILBOX_BENCH_CODEL_TARGET_MS", 5).max(1);
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
            // Under valgrind the program runs some 50 times slower and a standing
            // queue passes 5 ms: raise the target there (see the module docs) so the
            // instruction count measures the path a wall-clock run takes.
            target: Duration::from_millis(codel_target_ms),
            interval: Duration::from_millis(20 * codel_target_ms),
        },
        Policy::Coalesce { capacity },
    ]
}

fn variants(capacity: usize) -> Vec<Variant> {
    let mut v = vec![
        Variant::Kanal,
        Variant::KanalCoop,
        Variant::TokioBounded,
        Variant::TokioUnbounded,
        Variant::Broadcast,
        Variant::Flume,
        Variant::AsyncChannel,
        Variant::Tachyonix,
        Variant::Crossfire,
    ];
    for metrics in [false, true] {
        for policy in policies(capacity) {
            v.push(Variant::Policy {
                policy,
                metrics,
                keys: 0,
            });
        }
        v.push(Variant::Policy {
            policy: Policy::Coalesce { capacity },
            metrics,
            keys: 64,
        });
    }
    v.push(Variant::RecvMany(Policy::Block {
        capacity,
        send_timeout: None,
    }));
    v.push(Variant::RecvMany(Policy::Unbounded));
    v
}

/// Producers yield to the scheduler once per this many messages.
const YIELD_EVERY: u64 = 1024;

/// Spawns a consumer that receives with `$recv` (an `Option<u64>`) until the end.
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

/// Spawns `$producers` tasks offering `$total` messages in all with `$send`, drops
/// the original sender, and returns what `$consumer` received.
macro_rules! produce {
    ($tx:ident $(, $extra:ident)*; $producers:expr, $total:expr, $consumer:expr, |$v:ident| $send:expr) => {{
        let per = $total / $producers;
        let mut tasks = Vec::new();
        for p in 0..$producers {
            let $tx = $tx.clone();
            $(let $extra = $extra.clone();)*
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    let $v = p * per + i;
                    $send;
                    if i % YIELD_EVERY == YIELD_EVERY - 1 {
                        tokio::task::yield_now().await;
                    }
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

/// One measurement: returns messages received and the time taken.
async fn run(variant: &Variant, producers: u64, total: u64, capacity: usize) -> (u64, Duration) {
    let started = Instant::now();
    let got = match variant {
        Variant::Policy {
            policy,
            metrics,
            keys,
        } => {
            let (tx, mut rx) = Builder::<u64>::new(policy.clone())
                .role("bench")
                .metrics(*metrics)
                .build()
                .expect("valid policy");
            let consumer = consume!(rx, rx.recv().await);
            let keys = *keys;
            if keys == 0 {
                // Refusals (drop_newest, codel at capacity) are the policy at work.
                produce!(tx; producers, total, consumer, |v| {
                    let _ = tx.send(v).await;
                })
            } else {
                let names: Vec<sluicegate::mailbox::Key> = (0..keys).map(Into::into).collect();
                let names = std::sync::Arc::new(names);
                produce!(tx, names; producers, total, consumer, |v| {
                    let key = names[(v % keys) as usize].clone();
                    let _ = tx
                        .send_with(
                            v,
                            Meta {
                                key: Some(key),
                                ..Meta::default()
                            },
                        )
                        .await;
                })
            }
        }
        Variant::RecvMany(policy) => {
            let (tx, mut rx) = Builder::<u64>::new(policy.clone())
                .role("bench")
                .metrics(false)
                .build()
                .expect("valid policy");
            let consumer = tokio::spawn(async move {
                let mut buf = Vec::with_capacity(64);
                let mut n = 0u64;
                while rx.recv_many(&mut buf, 64).await > 0 {
                    for m in buf.drain(..) {
                        std::hint::black_box(m);
                        n += 1;
                    }
                }
                n
            });
            produce!(tx; producers, total, consumer, |v| {
                let _ = tx.send(v).await;
            })
        }
        Variant::Kanal => {
            let (tx, rx) = kanal::bounded_async::<u64>(capacity);
            let consumer = consume!(rx, rx.recv().await.ok());
            produce!(tx; producers, total, consumer, |v| tx
                .send(v)
                .await
                .expect("receiver alive"))
        }
        Variant::KanalCoop => {
            let (tx, rx) = kanal::bounded_async::<u64>(capacity);
            let consumer = consume!(rx, {
                tokio::task::consume_budget().await;
                rx.recv().await.ok()
            });
            produce!(tx; producers, total, consumer, |v| {
                tokio::task::consume_budget().await;
                tx.send(v).await.expect("receiver alive")
            })
        }
        Variant::Flume => {
            let (tx, rx) = flume::bounded::<u64>(capacity);
            let consumer = consume!(rx, rx.recv_async().await.ok());
            produce!(tx; producers, total, consumer, |v| tx
                .send_async(v)
                .await
                .expect("receiver alive"))
        }
        Variant::AsyncChannel => {
            let (tx, rx) = async_channel::bounded::<u64>(capacity);
            let consumer = consume!(rx, rx.recv().await.ok());
            produce!(tx; producers, total, consumer, |v| tx
                .send(v)
                .await
                .expect("receiver alive"))
        }
        Variant::Tachyonix => {
            let (tx, mut rx) = tachyonix::channel::<u64>(capacity);
            let consumer = consume!(rx, rx.recv().await.ok());
            produce!(tx; producers, total, consumer, |v| tx
                .send(v)
                .await
                .expect("receiver alive"))
        }
        Variant::Crossfire => {
            let (tx, rx) = crossfire::mpsc::bounded_async::<u64>(capacity);
            let consumer = consume!(rx, rx.recv().await.ok());
            produce!(tx; producers, total, consumer, |v| tx
                .send(v)
                .await
                .expect("receiver alive"))
        }
        Variant::TokioBounded => {
            let (tx, mut rx) = mpsc::channel::<u64>(capacity);
            let consumer = consume!(rx, rx.recv().await);
            produce!(tx; producers, total, consumer, |v| tx
                .send(v)
                .await
                .expect("receiver alive"))
        }
        Variant::TokioUnbounded => {
            let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
            let consumer = consume!(rx, rx.recv().await);
            produce!(tx; producers, total, consumer, |v| tx
                .send(v)
                .expect("receiver alive"))
        }
        Variant::Broadcast => {
            let (tx, mut rx) = broadcast::channel::<u64>(capacity);
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
            produce!(tx; producers, total, consumer, |v| {
                let _ = tx.send(v);
            })
        }
    };
    (got, started.elapsed())
}

/// One result of one variant in one round.
#[derive(Clone, Copy)]
struct Sample {
    offered_per_s: f64,
    delivered_per_s: f64,
    delivered_share: f64,
}

impl Sample {
    /// The rate a variant is rated on: delivered for lossless, offered for lossy.
    fn rated(&self, lossy: bool) -> f64 {
        if lossy {
            self.offered_per_s
        } else {
            self.delivered_per_s
        }
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("{name}={v:?} is not a whole number; using {default}");
            default
        }),
        Err(_) => default,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; every other argument is a filter word.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let total = env_or("MAILBOX_BENCH_MESSAGES", 5_000_000);
    let rounds = env_or("MAILBOX_BENCH_ROUNDS", 3).max(1) as usize;
    let capacity = env_or("MAILBOX_BENCH_CAPACITY", 1024).max(1) as usize;

    // A real recorder, as a service has, so the metrics-on rows pay what they would.
    let _handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("prometheus recorder");
    // MAILBOX_BENCH_RUNTIME=current_thread puts both sides on one thread: no cache
    // line moves between cores, so what remains is each channel's own path length
    // (useful under valgrind's instruction counts, which a noisy machine cannot skew).
    let current_thread =
        std::env::var("MAILBOX_BENCH_RUNTIME").is_ok_and(|v| v == "current_thread");
    let rt = if current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    };

    let machine = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "mailbox bench: {total} u64 per measurement, capacity {capacity}, {rounds} rounds, \
         tokio {}, {machine} CPUs",
        if current_thread {
            "current-thread"
        } else {
            "multi-thread 2 workers"
        }
    );

    for (group, producers) in [("spsc", 1u64), ("mpsc4", 4)] {
        let all: Vec<Variant> = variants(capacity)
            .into_iter()
            .filter(|v| {
                let name = format!("{group}/{}", v.name());
                filters.iter().all(|f| match f.strip_prefix('=') {
                    Some(exact) => name == exact,
                    None => name.contains(f.as_str()),
                })
            })
            .collect();
        if all.is_empty() {
            continue;
        }
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); all.len()];
        let total = total / producers * producers;
        for round in 0..rounds {
            for k in 0..all.len() {
                let i = (k + round) % all.len();
                let (got, took) = rt.block_on(run(&all[i], producers, total, capacity));
                let secs = took.as_secs_f64();
                samples[i].push(Sample {
                    offered_per_s: total as f64 / secs,
                    delivered_per_s: got as f64 / secs,
                    delivered_share: got as f64 / total as f64,
                });
            }
        }
        let find = |name: &str| all.iter().position(|v| v.name() == name);
        let kanal = find("kanal_bounded_async");
        let tokio_b = find("tokio_mpsc_bounded");
        let bcast = find("tokio_broadcast");
        let ratio_to = |i: usize, base: Option<usize>| -> Option<f64> {
            let b = base?;
            let lossy = all[i].lossy();
            Some(median(
                (0..rounds)
                    .map(|r| samples[i][r].rated(lossy) / samples[b][r].rated(all[b].lossy()))
                    .collect(),
            ))
        };
        println!();
        println!("## {group} ({producers} producer(s))");
        println!(
            "| variant | delivered M/s | offered M/s | delivered share | ns/msg | x kanal | x tokio bounded | x broadcast |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (i, v) in all.iter().enumerate() {
            let s = &samples[i];
            let delivered = median(s.iter().map(|x| x.delivered_per_s).collect()) / 1e6;
            let offered = median(s.iter().map(|x| x.offered_per_s).collect()) / 1e6;
            let share = median(s.iter().map(|x| x.delivered_share).collect());
            let fmt_ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}"));
            println!(
                "| {}{} | {delivered:.1} | {offered:.1} | {:.0} % | {:.1} | {} | {} | {} |",
                v.name(),
                if v.lossy() { " (rated offered)" } else { "" },
                share * 100.0,
                1e3 / offered,
                fmt_ratio(ratio_to(i, kanal)),
                fmt_ratio(ratio_to(i, tokio_b)),
                fmt_ratio(ratio_to(i, bcast)),
            );
        }
    }
}
