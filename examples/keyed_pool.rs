//! A `KeyedPool` of 3 workers, routed and direct: each key always reaches the same
//! worker. Prints which worker served each key, how many requests each worker
//! handled in each routing mode, and the mailbox stats of the router.
//!
//!     cargo run --example keyed_pool

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use sluicegate::mailbox::Policy;
use sluicegate::runtime::{KeyedPool, PoolSpec, ReplyTo, Routing, Server, Supervisor};

/// A worker that serves keys and counts what it handled.
struct Worker {
    index: usize,
    handled: u64,
}

enum Call {
    /// Serve a key; answers with the index of the worker that did.
    Serve(String, ReplyTo<usize>),
    /// How many requests (calls and casts) this worker handled.
    Handled(ReplyTo<u64>),
}

impl Server for Worker {
    type Call = Call;
    /// A cast for a key: served too, with no answer.
    type Cast = String;

    async fn handle_call(&mut self, call: Call) {
        match call {
            Call::Serve(_key, reply) => {
                self.handled += 1;
                reply.send(self.index)
            }
            Call::Handled(reply) => reply.send(self.handled),
        }
    }

    async fn handle_cast(&mut self, _key: String) {
        self.handled += 1;
    }
}

const KEYS: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];
const ROUNDS: usize = 5;
const T: Duration = Duration::from_secs(2);

/// Runs `ROUNDS` rounds of one call and one cast per key, all keys at once, and
/// returns which worker served each key.
async fn run(routing: Routing) -> BTreeMap<&'static str, usize> {
    let block = |capacity| Policy::Block {
        capacity,
        send_timeout: None,
    };
    let spec = PoolSpec {
        worker_role: "worker",
        router_role: "router",
        workers: 3,
        routing,
        worker_policy: block(16),
        // A small router mailbox: callers wait for room when it is full.
        router_policy: block(4),
    };
    let make = |index| Worker { index, handled: 0 };
    let pool = KeyedPool::start(spec, &Supervisor::default(), make).await;
    let pool = pool.expect("the pool starts");

    let mut served_by = BTreeMap::new();
    for round in 0..ROUNDS {
        // A cast per key, then a call per key. A key's requests travel in order
        // (one router, one worker), so once a call is answered, the casts sent
        // before it have been handled.
        for key in KEYS {
            pool.cast(key, key.into()).await.expect("a cast");
        }
        // Every key's call at once, so requests queue in the router (when routed).
        let calls = KEYS.map(|key| pool.call(key, move |r| Call::Serve(key.into(), r), T));
        for (key, worker) in KEYS.into_iter().zip(join_all(calls).await) {
            let worker = worker.expect("the call is answered");
            let first = *served_by.entry(key).or_insert(worker);
            assert_eq!(worker, first, "{key} moved in round {round}");
            // "Give me a worker" names the same one.
            assert_eq!(pool.worker_for(key).id(), pool.workers()[worker].id());
        }
    }

    // What each worker handled: a call and a cast per round for each of its keys.
    let mut counts = Vec::new();
    for (i, worker) in pool.workers().iter().enumerate() {
        let handled = worker.call(Call::Handled, T).await.expect("a count");
        let keys = served_by.values().filter(|w| **w == i).count() as u64;
        assert_eq!(handled, keys * 2 * ROUNDS as u64, "worker {i}");
        counts.push(handled);
    }
    println!("{routing:?}: requests per worker {counts:?}");

    if let Some(router) = pool.router() {
        let s = router.stats();
        println!(
            "  router mailbox: sent {} delivered {} depth {} peak_depth {} (capacity 4)",
            s.sent, s.delivered, s.depth, s.peak_depth
        );
        assert!(s.is_balanced());
        let requests = 2 * KEYS.len() * ROUNDS;
        assert_eq!(s.delivered, requests as u64, "all through the router");
    }
    pool.stop(true).await;
    served_by
}

#[tokio::main]
async fn main() {
    let routed = run(Routing::Routed).await;
    let direct = run(Routing::Direct).await;

    println!("\n{:<8} {:>6} {:>6}", "key", "routed", "direct");
    for key in KEYS {
        println!("{key:<8} {:>6} {:>6}", routed[key], direct[key]);
    }
    // The worker of a key is a stable hash of the key: the same in both modes.
    assert_eq!(routed, direct, "each key has the same worker in both modes");
    let used: BTreeSet<_> = routed.values().collect();
    assert!(used.len() > 1, "the keys are spread over the workers");
}
