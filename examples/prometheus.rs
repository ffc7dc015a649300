//! Prometheus metrics of a mailbox and a server: installs the Prometheus recorder,
//! runs a small key-value server with some traffic (including a burst its
//! `drop_newest` mailbox refuses), publishes the batched counts with
//! `flush_all()`, and prints the rendered `sluicegate_mailbox*`, `sluicegate_call*`
//! and `sluicegate_cast*` lines. The counts in the scrape match the mailbox's `Stats`.
//!
//!     cargo run --example prometheus

use std::collections::HashMap;
use std::error::Error;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use sluicegate::mailbox::metrics::{flush_all, DEPTH, MESSAGES};
use sluicegate::mailbox::{self, Policy};
use sluicegate::runtime::metrics::{CALLS, CALL_DURATION, CAST_ERRORS};
use sluicegate::runtime::{self, start, CallError, ReplyTo, Server, Spec};

#[derive(Default)]
struct Kv(HashMap<String, u64>);

enum Call {
    Get(String, ReplyTo<Option<u64>>),
}

impl Server for Kv {
    type Call = Call;
    /// Put a value.
    type Cast = (String, u64);

    async fn handle_call(&mut self, Call::Get(key, reply): Call) {
        reply.send(self.0.get(&key).copied())
    }

    async fn handle_cast(&mut self, (key, value): (String, u64)) {
        self.0.insert(key, value);
    }
}

/// The value of the sample `name{...}` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

const T: Duration = Duration::from_secs(2);

// One thread, so the burst below runs while the server cannot take anything.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // Install the recorder before building mailboxes and servers: their metric
    // handles bind to the recorder installed when they are created.
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    mailbox::metrics::describe();
    runtime::metrics::describe();

    let policy = Policy::DropNewest { capacity: 8 };
    let kv = start(Spec::new("kv", policy, Kv::default)).await?;
    for i in 0..20 {
        let key = format!("key-{}", i % 4);
        kv.cast((key.clone(), i)).await?;
        kv.call(|r| Call::Get(key, r), T).await?;
    }

    // A burst of 50 casts without yielding: the mailbox takes 8 and refuses the rest,
    // and a call that arrives while it is full is refused too.
    let burst = |i| kv.try_cast(("burst".to_string(), i));
    let refused = (0..50).filter(|i| burst(*i).is_err()).count();
    let call = kv.call(|r| Call::Get("burst".into(), r), T).await;
    println!("burst: {refused} of 50 casts refused; a call meanwhile: {call:?}\n");
    assert_eq!((refused, call), (42, Err(CallError::Rejected)));
    // Let the server work through the burst, then read what it stored.
    while kv.stats().depth > 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(kv.call(|r| Call::Get("burst".into(), r), T).await?, Some(7));

    // A mailbox with a long-queue alert at depth 0 (the servers above set none): its
    // first message raises the alert, so the long-queue metrics show too.
    let (probe, _probe_rx) = mailbox::Builder::<u8>::new(Policy::Unbounded)
        .role("probe")
        .long_queue(0, Duration::ZERO)
        .build()?;
    probe.try_send(1).map_err(|e| e.to_string())?;

    // Counts are batched in each mailbox; publish them all before rendering.
    flush_all();
    let text = prometheus.render();
    let prefixes = ["sluicegate_mailbox", "sluicegate_call", "sluicegate_cast"];
    for line in text.lines() {
        if prefixes.iter().any(|p| line.starts_with(p)) {
            println!("{line}");
        }
    }

    // Every mailbox metric is there, and the runtime's call and cast metrics (the
    // others count restarts and registries, which this example does not use).
    let names = mailbox::metrics::ALL.into_iter();
    for name in names.chain([CALL_DURATION, CALLS, CAST_ERRORS]) {
        assert!(sample(&text, name, &[]).is_some(), "{name} missing");
    }

    // And after `flush_all` the counts are exact: they match the mailbox's Stats.
    let stats = kv.stats();
    let messages = |outcome: &str| {
        let outcome = format!("outcome=\"{outcome}\"");
        sample(&text, MESSAGES, &["mailbox=\"kv\"", &outcome])
    };
    assert_eq!(messages("delivered"), Some(stats.delivered as f64));
    assert_eq!(messages("rejected"), Some(stats.rejected as f64));
    let depth = sample(&text, DEPTH, &["mailbox=\"kv\""]);
    assert_eq!(depth, Some(0.0));
    let calls = |result: &str| {
        let result = format!("result=\"{result}\"");
        sample(&text, CALLS, &["role=\"kv\"", &result])
    };
    assert_eq!((calls("ok"), calls("rejected")), (Some(21.0), Some(1.0)));
    let cast_errors = sample(&text, CAST_ERRORS, &["error=\"rejected\""]);
    assert_eq!(cast_errors, Some(42.0));
    println!(
        "\nscrape matches Stats: delivered {}, rejected {}",
        stats.delivered, stats.rejected
    );
    Ok(())
}
