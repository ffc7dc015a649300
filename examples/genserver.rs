//! A GenServer: a bank account with calls, casts and a typed domain error, a call
//! that times out, and a supervised restart after a panic behind the same handle.
//!
//!     cargo run --example genserver

use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluicegate::mailbox::Policy;
use sluicegate::runtime::{
    BoxError, CallError, ReplyTo, Restart, Server, Spec, Supervisor, SupervisorEvent,
};

/// The domain error of a withdrawal, returned to the caller as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InsufficientFunds {
    balance: u64,
    requested: u64,
}

impl fmt::Display for InsufficientFunds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} asked, {} held", self.requested, self.balance)
    }
}

impl Error for InsufficientFunds {}

/// Calls: each carries the handle its typed reply goes through.
enum Call {
    Balance(ReplyTo<u64>),
    Withdraw(u64, ReplyTo<Result<u64, InsufficientFunds>>),
    /// A slow report, taking this long.
    Audit(Duration, ReplyTo<u64>),
    /// A bug: the handler panics.
    Crash(ReplyTo<()>),
}

/// Casts: fire and forget.
enum Cast {
    Deposit(u64),
}

/// The account's state. `ledger` stands for durable storage that outlives a crash.
struct Account {
    balance: u64,
    ledger: Arc<AtomicU64>,
}

impl Server for Account {
    type Call = Call;
    type Cast = Cast;

    // Runs at start and again after every restart: reload the state from storage.
    async fn init(&mut self) -> Result<(), BoxError> {
        self.balance = self.ledger.load(Ordering::SeqCst);
        println!("  [account] init: balance {} loaded", self.balance);
        Ok(())
    }

    async fn handle_call(&mut self, call: Call) {
        match call {
            Call::Balance(reply) => reply.send(self.balance),
            Call::Withdraw(amount, reply) if amount > self.balance => {
                reply.send(Err(InsufficientFunds {
                    balance: self.balance,
                    requested: amount,
                }))
            }
            Call::Withdraw(amount, reply) => {
                self.balance -= amount;
                self.ledger.store(self.balance, Ordering::SeqCst);
                reply.send(Ok(self.balance))
            }
            Call::Audit(took, reply) => {
                tokio::time::sleep(took).await;
                reply.send(self.balance)
            }
            Call::Crash(_reply) => panic!("account server bug"),
        }
    }

    async fn handle_cast(&mut self, Cast::Deposit(amount): Cast) {
        self.balance += amount;
        self.ledger.store(self.balance, Ordering::SeqCst);
    }
}

const T: Duration = Duration::from_secs(2);

/// Prints the deliberate panic in one line; any other panic as usual.
fn quiet_expected_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        match info.payload().downcast_ref::<&str>() {
            Some(&"account server bug") => eprintln!("  [account] panicked (on purpose)"),
            _ => default(info),
        }
    }));
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    quiet_expected_panic();
    let ledger = Arc::new(AtomicU64::new(0));
    // The factory builds a fresh state on start and on every restart.
    let policy = Policy::DropNewest { capacity: 64 };
    let spec = Spec::new("account", policy, move || Account {
        balance: 0,
        ledger: ledger.clone(),
    })
    .restart(Restart::Permanent);
    let supervisor = Supervisor::default();
    let mut events = supervisor.subscribe();
    let account = supervisor.start(spec).await?;

    // Casts, then a call: one mailbox, so the call sees both deposits.
    account.cast(Cast::Deposit(100)).await?;
    account.cast(Cast::Deposit(50)).await?;
    let balance = account.call(Call::Balance, T).await?;
    println!("deposited 100 and 50: balance {balance}");
    assert_eq!(balance, 150);

    // A typed reply: `?` for the runtime's CallError, then the domain result.
    let left = account.call(|r| Call::Withdraw(30, r), T).await??;
    println!("withdrew 30: balance {left}");
    let refused = account.call(|r| Call::Withdraw(500, r), T).await?;
    let err = refused.expect_err("500 is more than the balance");
    println!("withdraw 500: insufficient funds, {err}");
    assert_eq!((err.balance, err.requested), (120, 500));

    // A call that takes longer than its caller waits ends in CallError::Timeout.
    let audit = |r| Call::Audit(Duration::from_millis(200), r);
    let slow = account.call(audit, Duration::from_millis(50)).await;
    println!("a 200 ms audit with a 50 ms timeout: {slow:?}");
    assert_eq!(slow, Err(CallError::Timeout));

    // A panic answers its caller, the supervisor restarts the server behind the
    // same handle, and `init` reloads the balance from the ledger.
    let crashed = account.call(Call::Crash, T).await;
    println!("a call that panics: {crashed:?}");
    assert_eq!(crashed, Err(CallError::Panicked));
    let event = tokio::time::timeout(T, events.recv()).await??;
    println!("supervisor: {event:?}");
    assert!(matches!(event, SupervisorEvent::Restarted { .. }));
    let balance = account.call(Call::Balance, T).await?;
    println!("same handle after the restart: balance {balance}");
    assert_eq!(balance, 120, "the restarted state reloaded the ledger");

    // Every message the mailbox took is accounted for, across the crash too.
    assert!(account.stats().is_balanced());
    account.stop(true).await;
    Ok(())
}
