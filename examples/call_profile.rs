//! Call round trips on one thread, for path-length profiles that a noisy machine
//! cannot skew: `valgrind --tool=callgrind` at two counts, the difference divided by
//! the calls, gives instructions per call (README "The runtime").
//!
//! `cargo run --release --example call_profile -- <server|raw|raw_timeout> <calls>`

use std::time::Duration;

use sluicegate::mailbox::Policy;
use sluicegate::runtime::{start, Spec};
use tokio::sync::{mpsc, oneshot};

#[path = "../benches/support/echo.rs"]
mod echo;
use echo::{Echo, EchoCall};

const TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "server".into());
    let calls: u64 = match args.next().map(|s| s.parse()) {
        None => 100_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("call_profile: <calls> must be a whole number: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move {
        match mode.as_str() {
            "server" => {
                let policy = Policy::Block {
                    capacity: 1024,
                    send_timeout: None,
                };
                let server = start(Spec::new("profile", policy, || Echo))
                    .await
                    .expect("the echo server starts");
                for i in 0..calls {
                    std::hint::black_box(
                        server
                            .call(|r| EchoCall(i, r), TIMEOUT)
                            .await
                            .expect("a reply"),
                    );
                }
            }
            "raw" | "raw_timeout" => {
                let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(1024);
                tokio::spawn(async move {
                    while let Some((n, reply)) = rx.recv().await {
                        let _ = reply.send(n);
                    }
                });
                let timed = mode == "raw_timeout";
                for i in 0..calls {
                    let (otx, orx) = oneshot::channel();
                    tx.send((i, otx)).await.expect("the echo task runs");
                    let r = if timed {
                        tokio::time::timeout(TIMEOUT, orx).await.expect("in time")
                    } else {
                        orx.await
                    };
                    std::hint::black_box(r.expect("a reply"));
                }
            }
            other => {
                eprintln!("call_profile: unknown mode {other:?}: server, raw or raw_timeout");
                std::process::exit(2);
            }
        }
    });
}
