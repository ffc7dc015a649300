//! The echo server that `benches/runtime.rs` and `examples/call_profile.rs` measure
//! call round trips against: it answers each call with its request and ignores casts
//! (included by both with `#[path]`, so the two measure the same server).

use sluicegate::runtime::{ReplyTo, Server};

/// The one call: a number and where to send it back.
pub struct EchoCall(pub u64, pub ReplyTo<u64>);

/// Answers every call with its request; casts are only looked at.
pub struct Echo;

impl Server for Echo {
    type Call = EchoCall;
    type Cast = u64;

    async fn handle_call(&mut self, EchoCall(n, reply): EchoCall) {
        reply.send(n)
    }

    async fn handle_cast(&mut self, n: u64) {
        std::hint::black_box(n);
    }
}
