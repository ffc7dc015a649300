//! The actor runtime on top of the mailbox: GenServer-like servers with call/cast,
//! one-for-one supervision, a registry of named servers, and keyed worker pools.
//!
//! A server's mailbox outlives each instance of its state: when a handler panics,
//! the waiting caller gets [`CallError::Panicked`], every queued call is answered
//! [`CallError::Stopped`], queued casts are counted, and the supervisor builds a
//! fresh state and runs `init` again behind the same handles.

mod behaviour;
mod call_timer;
mod control;
mod error;
mod handle;
pub mod metrics;
mod pool;
mod registry;
mod reply;
mod server;
mod spec;
mod supervisor;

pub use behaviour::{Envelope, ExitReason, Server};
pub use error::{BoxError, CallError, CastError, InitError, StartError};
pub use handle::ServerRef;
pub use pool::{KeyedPool, PoolSpec, Routed, Router, Routing};
pub use registry::{Registry, RegistryCallError, RegistryConfig};
pub use reply::{fail_call, ReplyTo};
pub use server::{start, task_size};
pub use spec::Spec;
pub use supervisor::{Intensity, Restart, Supervisor, SupervisorEvent};
