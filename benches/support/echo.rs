//! The echo server that `benches/runtime.rs` and `examples/call_profile.rs` measure
//! call round trips against: it answers each call with its request and ignores casts
//! (included by both with `#[path]`, so the two measure the same server).

use sluicegate::runtime::{ReplyTo, Server};

/// Answers every call with its request; casts are only looked at.
pub struct Echo;

impl Server for Echo {
    type Call = u64;
    type Reply = u64;
    type Cast = u64;

    async fn handle_call(&mut self, n: u64, reply: ReplyTo<u64>) {
        reply.send(n)
    }

    async fn handle_cast(&mut self, n: u64) {
        std::hint::black_box(n);
    }
}
