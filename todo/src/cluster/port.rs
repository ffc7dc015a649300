//! The cluster's port: what a node needs from the database that coordinates it
//! (`ClusterStore`): membership rows, shard leases, and list loads and stores that
//! carry a fencing epoch. `crate::storage`'s PostgreSQL backend implements it.

use std::time::Duration;

use async_trait::async_trait;

use super::lease::Epoch;
use super::shard::{NodeId, ShardId};
use crate::domain::port::{ListWrite, Storage, StorageError};
use crate::domain::{ListName, TodoList};

/// One member as the coordinator records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRow {
    /// The node's id.
    pub node: NodeId,
    /// Where other nodes reach its HTTP API (`http://host:port`).
    pub addr: String,
    /// Time since its last heartbeat, on the coordinator's clock.
    pub heartbeat_age: Duration,
}

/// One shard's lease as the coordinator records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    /// The shard.
    pub shard: ShardId,
    /// Its holder; `None` when never claimed or released.
    pub owner: Option<NodeId>,
    /// The epoch of the latest claim (0: never claimed).
    pub epoch: Epoch,
    /// Time left before the lease expires on the coordinator's clock; `None` once
    /// it has expired (or was never granted).
    pub expires_in: Option<Duration>,
}

impl LeaseRow {
    /// Whether a claim would succeed now (see [`super::LeaseRecord::is_free`]).
    pub fn is_free(&self) -> bool {
        self.owner.is_none() || self.expires_in.is_none()
    }
}

/// The coordinator of a cluster, which is also its store: every rule of
/// [`super::lease::LeaseRecord`] and [`super::fence::FenceRecord`] is one
/// conditional statement here, atomic in the database, timed by the database's
/// clock only.
#[async_trait]
pub trait ClusterStore: Storage {
    /// Records `node`'s heartbeat (creating its row) with its address, and makes
    /// sure `shards` lease rows exist; fails when the database was set up with a
    /// different shard count (every node must agree on it).
    async fn heartbeat(&self, node: &NodeId, addr: &str, shards: u32) -> Result<(), StorageError>;
    /// Every member row, live or not.
    async fn members(&self) -> Result<Vec<MemberRow>, StorageError>;
    /// Removes `node`'s member row (a clean shutdown).
    async fn leave(&self, node: &NodeId) -> Result<(), StorageError>;
    /// Every shard's lease row, in shard order.
    async fn leases(&self) -> Result<Vec<LeaseRow>, StorageError>;
    /// Claims each of `shards` that is free, for `ttl`, bumping its epoch; returns
    /// the shards won with their new epochs.
    async fn claim(
        &self,
        node: &NodeId,
        shards: &[ShardId],
        ttl: Duration,
    ) -> Result<Vec<(ShardId, Epoch)>, StorageError>;
    /// Extends each of `held` (shard, epoch) for `ttl` where `node` still holds it at
    /// that epoch; returns the shards renewed.
    async fn renew(
        &self,
        node: &NodeId,
        held: &[(ShardId, Epoch)],
        ttl: Duration,
    ) -> Result<Vec<ShardId>, StorageError>;
    /// Gives up each of `held` (shard, epoch) where `node` still holds it at that
    /// epoch, so it can be claimed at once.
    async fn release(&self, node: &NodeId, held: &[(ShardId, Epoch)]) -> Result<(), StorageError>;
    /// Activates `name` at `epoch` (moves its fence up to `epoch`) and loads it, in
    /// one transaction; [`StorageError::Fenced`] when a newer epoch activated it.
    async fn activate(
        &self,
        name: &ListName,
        epoch: Epoch,
    ) -> Result<Option<TodoList>, StorageError>;
    /// Group commit with a fence per list: `writes[i]` is written only where its
    /// list's fence still equals `epochs[i]`, otherwise it fails with
    /// [`StorageError::Fenced`] and writes nothing. One result per write, in order.
    async fn store_batch_fenced(
        &self,
        writes: &[ListWrite],
        epochs: &[Epoch],
    ) -> Vec<Result<(), StorageError>>;
    /// Deletes `name` where its fence still equals `epoch` (the fence itself stays,
    /// so a stale owner cannot bring the list back).
    async fn delete_list_fenced(&self, name: &ListName, epoch: Epoch)
        -> Result<bool, StorageError>;
}
