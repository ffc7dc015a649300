//! Several nodes sharing one PostgreSQL (issue #13, in progress): the pure rules of
//! the protocol that keeps one writer per list. No I/O lives here; the PostgreSQL
//! statements that will carry these rules must do exactly what these functions do.
//!
//! - [`shard`]: which shard a list belongs to, and which live node should own it.
//! - [`lease`]: what the coordinator grants (a shard lease with an epoch bumped on
//!   every takeover) and how long a node may serve a shard it holds, on its own
//!   monotonic clock, with a safety margin.
//! - [`fence`]: the check in every store of a list that refuses a write carrying an
//!   older epoch than the list has seen, so a paused ex-owner cannot overwrite what
//!   the new owner wrote. Leases alone cannot promise that (a process can be paused
//!   between checking its lease and writing); the fence does, whatever the clocks do.
//!
//! `tests/cluster_protocol.rs` runs nodes with drifting clocks, pauses and lost
//! renewals against these rules on a virtual clock and checks that no list ever has
//! two committing owners.

pub mod fence;
pub mod fenced;
pub mod lease;
pub mod metrics;
pub mod node;
pub mod port;
pub mod shard;

pub use fence::{FenceRecord, Fenced};
pub use fenced::FencedStorage;
pub use lease::{Epoch, HeldLease, LeaseRecord, LeaseTerms, LeaseTermsError, NodeTime};
pub use node::{ClusterView, Node, NodeSettings, Route};
pub use port::{ClusterStore, LeaseRow, MemberRow};
pub use shard::{NodeId, ShardId, ShardMap};
