//! `FencedStorage`: the to-do domain's storage port on a cluster node. A load is an
//! activation at the epoch of the shard lease this node holds (refused when it holds
//! none), and every later store and delete of that list carries that epoch, so the
//! database refuses it once a newer owner has activated the list.
//!
//! The epoch a list was activated at is kept per list name (a name and a `u64` per
//! list this node activated, overwritten by the next activation). A refused write
//! comes back as [`StorageError::Fenced`] and is reported to the [`Node`], which stops
//! serving the shard at once. Optionally every store waits `store_delay` after that
//! lookup and before it reaches the database: fault injection that widens the window
//! between a node's lease check and its write, for the tests that prove the fence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::lease::Epoch;
use super::metrics::{ACTIVATIONS, FENCED_WRITES};
use super::node::Node;
use super::port::ClusterStore;
use crate::domain::port::{ListWrite, Storage, StorageError};
use crate::domain::{ListName, TodoList};

/// The storage a cluster node's to-do system writes through.
pub struct FencedStorage {
    store: Arc<dyn ClusterStore>,
    node: Arc<Node>,
    activated: Mutex<HashMap<ListName, Epoch>>,
    store_delay: Duration,
}

impl FencedStorage {
    /// Fences every write to `store` with the epochs of the leases `node` holds;
    /// `store_delay` (normally zero) holds each store back after its epoch is taken.
    pub fn new(store: Arc<dyn ClusterStore>, node: Arc<Node>, store_delay: Duration) -> Self {
        FencedStorage {
            store,
            node,
            activated: Mutex::new(HashMap::new()),
            store_delay,
        }
    }

    fn epoch_of(&self, name: &ListName) -> Option<Epoch> {
        self.activated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
    }

    fn not_activated(name: &ListName) -> StorageError {
        StorageError::Fenced {
            list: name.clone(),
            detail: "this node has not activated it under a lease it holds".into(),
        }
    }

    /// Counts a refused write and tells the node its shard is lost.
    fn fenced(&self, name: &ListName, epoch: Epoch) {
        metrics::counter!(FENCED_WRITES).increment(1);
        self.node
            .report_fenced(self.node.shards().shard_of(name), epoch);
    }
}

#[async_trait]
impl Storage for FencedStorage {
    async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError> {
        let shard = self.node.shards().shard_of(name);
        let Some(epoch) = self.node.serving_epoch(shard) else {
            return Err(StorageError::Fenced {
                list: name.clone(),
                detail: format!("this node does not hold shard {}", shard.0),
            });
        };
        match self.store.activate(name, epoch).await {
            Ok(list) => {
                metrics::counter!(ACTIVATIONS).increment(1);
                self.activated
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.clone(), epoch);
                Ok(list)
            }
            Err(e) => {
                if e.is_fenced() {
                    self.fenced(name, epoch);
                }
                Err(e)
            }
        }
    }

    async fn store(&self, name: &ListName, list: &TodoList) -> Result<(), StorageError> {
        let write = ListWrite::whole(name, list);
        self.store_batch(std::slice::from_ref(&write))
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    async fn store_batch(&self, writes: &[ListWrite]) -> Vec<Result<(), StorageError>> {
        // The epoch of each write's activation, in one lock round for the batch.
        let epochs: Vec<Option<Epoch>> = {
            let activated = self.activated.lock().unwrap_or_else(|e| e.into_inner());
            writes
                .iter()
                .map(|w| activated.get(&w.name).copied())
                .collect()
        };
        let mut out: Vec<Option<Result<(), StorageError>>> = epochs
            .iter()
            .zip(writes)
            .map(|(e, w)| e.is_none().then(|| Err(Self::not_activated(&w.name))))
            .collect();
        // Where each write that goes to the store came from in `writes`.
        let at: Vec<usize> = (0..writes.len()).filter(|&i| epochs[i].is_some()).collect();
        if !at.is_empty() {
            let fences: Vec<Epoch> = epochs.iter().flatten().copied().collect();
            // The common case, every list activated here, sends the batch as it came;
            // otherwise only the activated lists' writes go, copied.
            let picked: Vec<ListWrite>;
            let send = if at.len() == writes.len() {
                writes
            } else {
                picked = at.iter().map(|&i| writes[i].clone()).collect();
                &picked
            };
            if !self.store_delay.is_zero() {
                tokio::time::sleep(self.store_delay).await;
            }
            let results = self.store.store_batch_fenced(send, &fences).await;
            for ((i, r), e) in at.into_iter().zip(results).zip(&fences) {
                if matches!(&r, Err(err) if err.is_fenced()) {
                    self.fenced(&writes[i].name, *e);
                }
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .zip(writes)
            .map(|(r, w)| {
                r.unwrap_or_else(|| {
                    Err(StorageError::Io {
                        list: Some(w.name.clone()),
                        source: std::io::Error::other("the store gave no result for this list"),
                    })
                })
            })
            .collect()
    }

    async fn delete_list(&self, name: &ListName) -> Result<bool, StorageError> {
        let Some(epoch) = self.epoch_of(name) else {
            return Err(Self::not_activated(name));
        };
        let r = self.store.delete_list_fenced(name, epoch).await;
        if matches!(&r, Err(e) if e.is_fenced()) {
            self.fenced(name, epoch);
        }
        r
    }

    async fn list_names(&self) -> Result<Vec<ListName>, StorageError> {
        self.store.list_names().await
    }
    async fn purge_receipts(&self, before_ms: i64) -> Result<u64, StorageError> {
        self.store.purge_receipts(before_ms).await
    }

    fn kind(&self) -> &'static str {
        self.store.kind()
    }
}
