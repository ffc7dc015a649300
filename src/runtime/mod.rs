//! The actor runtime on top of the mailbox: GenServer-like servers with call/cast,
//! one-for-one supervision, a registry of named servers, and keyed worker pools.
//!
//! A server's mailbox outlives each instance of its state: when a handler panics,
//! the waiting caller gets [`CallError::Panicked`], every queued call is answered
//! [`CallError::Stopped`], queued casts are counted, and the supervisor builds a
//! fresh state and runs `init` again behind the same handles.

mod error;
pub mod metrics;
mod pool;
mod registry;
mod server;
mod supervisor;

pub use error::{BoxError, CallError, CastError, StartError};
pub use pool::{worker_index, KeyedPool, PoolSpec, Routed, Router, Routing, StableHasher};
pub use registry::{Registry, RegistryCallError, RegistryConfig};
pub use server::{
    start, Envelope, ExitHook, ExitReason, IdleHook, ReplyTo, Server, ServerRef, Spec,
};
pub use supervisor::{Intensity, Restart, Supervisor, SupervisorEvent};
