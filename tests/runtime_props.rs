//! Property: whatever mix of panics, slow handlers, timeouts and policies, every
//! call is answered by its timeout and the mailbox accounting stays balanced.

use std::time::Duration;

use proptest::prelude::*;
use sluicegate::mailbox::Policy;
use sluicegate::runtime::{Intensity, ReplyTo, Restart, Server, Spec, Supervisor};
use tokio::time::Instant;

struct Flaky;

#[derive(Clone, Debug)]
enum Op {
    Call {
        work_ms: u64,
        panic: bool,
        timeout_ms: u64,
    },
    Cast {
        panic: bool,
    },
    Advance(u64),
}

impl Server for Flaky {
    type Call = (u64, bool, ReplyTo<u64>);
    type Cast = bool;

    async fn handle_call(&mut self, (work_ms, panic, reply): Self::Call) {
        tokio::time::sleep(Duration::from_millis(work_ms)).await;
        if panic {
            panic!("injected");
        }
        reply.send(work_ms)
    }

    async fn handle_cast(&mut self, panic: bool) {
        if panic {
            panic!("injected");
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..50, prop::bool::weighted(0.15), 1u64..200)
            .prop_map(|(work_ms, panic, timeout_ms)| Op::Call { work_ms, panic, timeout_ms }),
        2 => prop::bool::weighted(0.1).prop_map(|panic| Op::Cast { panic }),
        1 => (0u64..100).prop_map(Op::Advance),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Unbounded),
        (1usize..6).prop_map(|capacity| Policy::DropNewest { capacity }),
        (1usize..6).prop_map(|capacity| Policy::DropOldest { capacity }),
        (1usize..6).prop_map(|capacity| Policy::Block {
            capacity,
            send_timeout: Some(Duration::from_millis(30))
        }),
        (1usize..6).prop_map(|capacity| Policy::Codel {
            capacity,
            target: Duration::from_millis(5),
            interval: Duration::from_millis(50)
        }),
        (1usize..6).prop_map(|capacity| Policy::Coalesce { capacity }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_call_is_answered_by_its_timeout_and_accounting_balances(
        policy in policy(),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let sup = Supervisor::new(Intensity { max_restarts: 1000, period: Duration::from_secs(1) });
            let server = sup
                .start(Spec::new("flaky", policy, || Flaky).restart(Restart::Permanent))
                .await
                .unwrap();
            let mut calls = Vec::new();
            for op in ops {
                match op {
                    Op::Call { work_ms, panic, timeout_ms } => {
                        let s = server.clone();
                        let timeout = Duration::from_millis(timeout_ms);
                        calls.push((timeout, tokio::spawn(async move {
                            let started = Instant::now();
                            let r = s.call(|r| (work_ms, panic, r), timeout).await;
                            (r, started.elapsed())
                        })));
                    }
                    Op::Cast { panic } => {
                        let s = server.clone();
                        tokio::spawn(async move { let _ = s.cast(panic).await; });
                    }
                    Op::Advance(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                }
                tokio::task::yield_now().await;
            }
            for (timeout, call) in calls {
                let (r, took) = call.await.expect("call task must not panic");
                assert!(took <= timeout, "call answered after {took:?} > timeout {timeout:?}: {r:?}");
                if let Ok(v) = r {
                    assert!(v < 50);
                }
            }
            // Let casts still in flight settle, then check the books.
            tokio::time::sleep(Duration::from_secs(10)).await;
            let stats = server.stats();
            assert!(stats.is_balanced(), "{stats:?}");
            assert_eq!(stats.waiting_senders, 0);
        });
    }
}
