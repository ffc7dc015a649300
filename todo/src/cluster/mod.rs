//! Several nodes sharing one PostgreSQL: one live server per list cluster-wide.
//! The rules first, pure and tested on a virtual clock; then the node that runs them.
//!
//! - [`shard`]: which shard a list belongs to, and which live node should own it.
//! - [`lease`]: what the coordinator grants (a shard lease with an epoch bumped on
//!   every takeover) and how long a node may serve a shard it holds, on its own
//!   monotonic clock, with a safety margin.
//! - [`fence`]: the check in every store of a list that refuses a write carrying an
//!   older epoch than the list has seen, so a paused ex-owner cannot overwrite what
//!   the new owner wrote. Leases alone cannot promise that (a process can be paused
//!   between checking its lease and writing); the fence does, whatever the clocks do.
//! - [`port`]: what a node needs from the coordinating database ([`ClusterStore`]);
//!   `crate::storage`'s PostgreSQL backend implements each rule as one statement.
//! - [`node`]: a member: leases held, the shard table for routing, and the keeper task
//!   (heartbeat, renew, claim, hand off, stop the servers of shards it lost).
//! - [`fenced`]: the to-do domain's storage port on a node: loads activate a list at
//!   its shard's epoch, stores carry it.
//! - [`metrics`]: the cluster's Prometheus names.
//!
//! `todo/tests/cluster/cluster_protocol.rs` runs nodes with drifting clocks, pauses and lost
//! renewals against the rules on a virtual clock and checks that no list ever has two
//! committing owners; `todo/tests/cluster/cluster.rs` runs real node processes on PostgreSQL.

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
