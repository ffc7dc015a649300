//! Runtime benches: call round trip against a raw tokio mpsc + oneshot round trip
//! in the same run, with 1 and 64 clients as tasks inside the runtime, cast throughput, and a keyed pool routed vs direct under 64
//! concurrent clients. Multi-thread tokio runtime with 2 workers throughout.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluicegate::mailbox::Policy;
use sluicegate::runtime::{start, KeyedPool, PoolSpec, Routing, Spec, Supervisor};
use tokio::sync::{mpsc, oneshot};

#[path = "support/echo.rs"]
mod echo;
use echo::{Echo, EchoCall};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `iters` round trips spread over `clients` tasks spawned inside the runtime
/// (so neither side sits on criterion's `block_on` thread) and returns the time taken.
async fn inside_runtime<F, Fut>(iters: u64, clients: u64, one: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = std::time::Instant::now();
    let per = iters.div_ceil(clients);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let one = one.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                one().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

fn call_round_trip(c: &mut Criterion) {
    let rt = rt();
    for clients in [1u64, 64] {
        let mut g = c.benchmark_group(format!("call_round_trip_{clients}_clients"));
        g.throughput(Throughput::Elements(1));
        // Baseline: what a hand-written actor costs: mpsc of (request, oneshot reply).
        let raw = rt.block_on(async {
            let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(1024);
            tokio::spawn(async move {
                while let Some((n, reply)) = rx.recv().await {
                    let _ = reply.send(n);
                }
            });
            tx
        });
        g.bench_function("raw_mpsc_oneshot", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let raw = raw.clone();
                inside_runtime(iters, clients, move || {
                    let raw = raw.clone();
                    async move {
                        let (otx, orx) = oneshot::channel();
                        raw.send((1, otx)).await.unwrap();
                        std::hint::black_box(orx.await.unwrap());
                    }
                })
            })
        });
        // The same with the caller's timeout as a tokio timer, as `call` has.
        g.bench_function("raw_mpsc_oneshot_timeout", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let raw = raw.clone();
                inside_runtime(iters, clients, move || {
                    let raw = raw.clone();
                    async move {
                        let (otx, orx) = oneshot::channel();
                        raw.send((1, otx)).await.unwrap();
                        let r = tokio::time::timeout(TIMEOUT, orx).await;
                        std::hint::black_box(r.unwrap().unwrap());
                    }
                })
            })
        });
        for policy in [
            Policy::Unbounded,
            Policy::Block {
                capacity: 1024,
                send_timeout: None,
            },
            Policy::DropNewest { capacity: 1024 },
        ] {
            let name = policy.name();
            let server = rt
                .block_on(start(Spec::new("bench", policy, || Echo)))
                .unwrap();
            g.bench_function(BenchmarkId::new("server_call", name), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let server = server.clone();
                    inside_runtime(iters, clients, move || {
                        let server = server.clone();
                        async move {
                            std::hint::black_box(
                                server.call(|r| EchoCall(1, r), TIMEOUT).await.unwrap(),
                            );
                        }
                    })
                })
            });
        }
        g.finish();
    }
}

fn cast_throughput(c: &mut Criterion) {
    let rt = rt();
    let mut g = c.benchmark_group("cast_throughput");
    const N: u64 = 10_000;
    g.throughput(Throughput::Elements(N));
    for policy in [
        Policy::Unbounded,
        Policy::Block {
            capacity: 1024,
            send_timeout: None,
        },
    ] {
        let name = policy.name();
        let server = rt
            .block_on(start(Spec::new("bench", policy, || Echo)))
            .unwrap();
        g.bench_function(BenchmarkId::new("server_cast", name), |b| {
            b.to_async(&rt).iter(|| async {
                for i in 0..N {
                    server.cast(i).await.unwrap();
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                // A call behind the casts: returns once they are all handled.
                server.call(|r| EchoCall(0, r), TIMEOUT).await.unwrap()
            })
        });
    }
    g.finish();
}

fn pool_routed_vs_direct(c: &mut Criterion) {
    let rt = rt();
    let mut g = c.benchmark_group("pool_64_clients");
    const CLIENTS: usize = 64;
    const PER_CLIENT: usize = 50;
    g.throughput(Throughput::Elements((CLIENTS * PER_CLIENT) as u64));
    for routing in [Routing::Routed, Routing::Direct] {
        let pool = rt
            .block_on(KeyedPool::start(
                PoolSpec {
                    worker_role: "bench_worker",
                    router_role: "bench_router",
                    workers: 3,
                    routing,
                    worker_policy: Policy::Unbounded,
                    router_policy: Policy::Unbounded,
                },
                &Supervisor::default(),
                |_| Echo,
            ))
            .unwrap();
        let label = match routing {
            Routing::Routed => "routed",
            Routing::Direct => "direct",
        };
        g.bench_function(BenchmarkId::new("calls", label), |b| {
            b.to_async(&rt).iter(|| {
                let pool = pool.clone();
                async move {
                    let mut tasks = Vec::with_capacity(CLIENTS);
                    for client in 0..CLIENTS {
                        let pool = pool.clone();
                        tasks.push(tokio::spawn(async move {
                            let key = format!("list-{client}");
                            for i in 0..PER_CLIENT {
                                pool.call(&key, |r| EchoCall(i as u64, r), TIMEOUT)
                                    .await
                                    .unwrap();
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = call_round_trip, cast_throughput, pool_routed_vs_direct
}
criterion_main!(benches);
