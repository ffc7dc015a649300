//! Runtime metrics: call latency and errors, failed casts, crashes, restarts and
//! escalations per role, and live servers in registries.

use std::cell::Cell;

use tokio::time::Instant;

use super::error::{CallError, CastError};

/// Call latency, seconds, labelled by role: each call is timed and recorded with
/// probability 1 / [`CALL_LATENCY_SAMPLE_EVERY`], drawn per call.
pub const CALL_DURATION: &str = "sluicegate_call_duration_seconds";
/// Calls by result (`ok` or an error label).
pub const CALLS: &str = "sluicegate_calls_total";
/// Casts that were not accepted, by error.
pub const CAST_ERRORS: &str = "sluicegate_cast_errors_total";
/// Queued casts thrown away because their server crashed or stopped without draining.
pub const CASTS_CRASHED: &str = "sluicegate_casts_crashed_total";
/// Server restarts by the supervisor.
pub const RESTARTS: &str = "sluicegate_server_restarts_total";
/// Servers given up on after exceeding the restart intensity.
pub const ESCALATIONS: &str = "sluicegate_server_escalations_total";
/// Live servers in a registry.
pub const LIVE_SERVERS: &str = "sluicegate_registry_live_servers";
/// Servers started by a registry.
pub const SERVER_STARTS: &str = "sluicegate_registry_starts_total";

/// Every runtime metric, for documentation and dashboard checks.
pub const ALL: [&str; 8] = [
    CALL_DURATION,
    CALLS,
    CAST_ERRORS,
    CASTS_CRASHED,
    RESTARTS,
    ESCALATIONS,
    LIVE_SERVERS,
    SERVER_STARTS,
];

/// On average one call in this many has its latency recorded in [`CALL_DURATION`]
/// (the calls counter, [`CALLS`], counts every call). Timing a call costs a clock
/// read and a histogram update, a large share of a call's own cost.
///
/// Which calls are timed is drawn at random per call (a small per-thread
/// generator, xorshift), not every 16th call of a thread: a thread that calls two
/// roles in turn would otherwise time only one of them.
pub const CALL_LATENCY_SAMPLE_EVERY: u32 = 16;

thread_local! {
    /// The thread's sampling generator (xorshift64; any non-zero seed).
    static SAMPLE_STATE: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) };
}

/// Whether the call finishing now is one whose latency is recorded: true with
/// probability 1 / [`CALL_LATENCY_SAMPLE_EVERY`], independently of the calls before.
fn sampled() -> bool {
    SAMPLE_STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        // The top 32 bits, uniform: below 2^32 / CALL_LATENCY_SAMPLE_EVERY with
        // a chance of 1 in CALL_LATENCY_SAMPLE_EVERY (exactly, for a power of two).
        ((x >> 32) as u32) < u32::MAX / CALL_LATENCY_SAMPLE_EVERY + 1
    })
}

/// A server's call metrics, registered once when its handle is built, so a call
/// records through ready handles instead of looking its series up by name and
/// labels each time (errors, rare, still go through the registry).
pub(crate) struct CallMetrics {
    role: &'static str,
    duration: metrics::Histogram,
    ok: metrics::Counter,
}

impl CallMetrics {
    pub(crate) fn new(role: &'static str) -> Self {
        CallMetrics {
            role,
            duration: metrics::histogram!(CALL_DURATION, "role" => role),
            ok: metrics::counter!(CALLS, "role" => role, "result" => "ok"),
        }
    }

    /// The role the series are labelled with.
    pub(crate) fn role(&self) -> &'static str {
        self.role
    }

    /// Records one finished call, begun at `started`: its result, and its latency
    /// when the call is sampled ([`CALL_LATENCY_SAMPLE_EVERY`]).
    pub(crate) fn done(&self, started: Instant, err: Option<CallError>) {
        if sampled() {
            self.duration.record(started.elapsed().as_secs_f64());
        }
        match err {
            None => self.ok.increment(1),
            Some(e) => {
                metrics::counter!(CALLS, "role" => self.role, "result" => e.label()).increment(1)
            }
        }
    }
}

pub(crate) fn cast_failed(role: &'static str, err: CastError) {
    metrics::counter!(CAST_ERRORS, "role" => role, "error" => err.label()).increment(1);
}

pub(crate) fn casts_crashed(role: &'static str, n: u64) {
    metrics::counter!(CASTS_CRASHED, "role" => role).increment(n);
}

pub(crate) fn restarted(role: &'static str) {
    metrics::counter!(RESTARTS, "role" => role).increment(1);
}

pub(crate) fn escalated(role: &'static str) {
    metrics::counter!(ESCALATIONS, "role" => role).increment(1);
}

pub(crate) fn live_servers(role: &'static str, delta: f64) {
    metrics::gauge!(LIVE_SERVERS, "role" => role).increment(delta);
}

pub(crate) fn server_started(role: &'static str) {
    metrics::counter!(SERVER_STARTS, "role" => role).increment(1);
}

/// Registers descriptions (HELP lines) for every runtime metric.
pub fn describe() {
    metrics::describe_histogram!(
        CALL_DURATION,
        metrics::Unit::Seconds,
        "Call latency, sampled: each call with probability 1/16."
    );
    metrics::describe_counter!(CALLS, "Calls by result (ok or error).");
    metrics::describe_counter!(CAST_ERRORS, "Casts not accepted, by error.");
    metrics::describe_counter!(
        CASTS_CRASHED,
        "Queued casts thrown away when their server crashed."
    );
    metrics::describe_counter!(RESTARTS, "Server restarts.");
    metrics::describe_counter!(
        ESCALATIONS,
        "Servers given up on (restart intensity exceeded)."
    );
    metrics::describe_gauge!(LIVE_SERVERS, "Live servers in a registry.");
    metrics::describe_counter!(SERVER_STARTS, "Servers started by a registry.");
}
