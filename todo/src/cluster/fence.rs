//! The fence in every store of a list: the check that keeps one writer per list
//! even when a paused or partitioned ex-owner still believes it holds the shard.
//!
//! Each stored list records the newest epoch that activated it (PostgreSQL's
//! `todo_list.fence`). A node that starts serving a list activates it with its
//! shard's epoch, which only moves the fence forward; every later store of the list
//! carries that epoch and writes only where the fence still equals it
//! (`UPDATE ... WHERE list = $l AND fence = $e`, zero rows: fenced). Under READ
//! COMMITTED PostgreSQL re-checks that condition after a concurrent activation
//! commits, so no interleaving lets a stale store through. A fenced list server
//! stops and its callers get a retryable error naming the newer owner's epoch.

use super::lease::Epoch;

/// Why a store or activation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fenced {
    /// A newer owner has activated the list: this node's epoch is stale.
    #[error("fenced: the list's shard moved to a newer owner (epoch {current}, this node holds {held}); retry, the request will reach the new owner")]
    Stale {
        /// The epoch the refused write carried.
        held: Epoch,
        /// The list's fence.
        current: Epoch,
    },
    /// A store at an epoch that never activated the list (a bug in the caller).
    #[error("store at epoch {held} before the list was activated at it (fence {current})")]
    NotActivated {
        /// The epoch the refused write carried.
        held: Epoch,
        /// The list's fence.
        current: Epoch,
    },
}

/// One list's fence, as the store keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FenceRecord {
    fence: Epoch,
}

impl FenceRecord {
    /// The newest epoch that activated the list (0: never activated).
    pub fn fence(&self) -> Epoch {
        self.fence
    }

    /// An owner at `epoch` starts serving the list: the fence moves up to `epoch`;
    /// refused when a newer epoch has already activated it.
    /// `UPDATE todo_list SET fence = $e WHERE list = $l AND fence <= $e`.
    pub fn activate(&mut self, epoch: Epoch) -> Result<(), Fenced> {
        if epoch < self.fence {
            return Err(Fenced::Stale {
                held: epoch,
                current: self.fence,
            });
        }
        self.fence = epoch;
        Ok(())
    }

    /// Whether a store carrying `epoch` may write: only where the fence equals it.
    pub fn check_store(&self, epoch: Epoch) -> Result<(), Fenced> {
        match epoch.cmp(&self.fence) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(Fenced::Stale {
                held: epoch,
                current: self.fence,
            }),
            std::cmp::Ordering::Greater => Err(Fenced::NotActivated {
                held: epoch,
                current: self.fence,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_activation_fences_every_store_of_the_older_epoch() {
        let mut list = FenceRecord::default();
        list.activate(Epoch(1)).expect("first owner");
        assert_eq!(list.check_store(Epoch(1)), Ok(()));
        list.activate(Epoch(2)).expect("takeover");
        assert_eq!(
            list.check_store(Epoch(1)),
            Err(Fenced::Stale {
                held: Epoch(1),
                current: Epoch(2)
            })
        );
        assert!(
            list.activate(Epoch(1)).is_err(),
            "the old owner cannot take it back"
        );
        assert_eq!(list.check_store(Epoch(2)), Ok(()));
        assert!(matches!(
            list.check_store(Epoch(3)),
            Err(Fenced::NotActivated { .. })
        ));
    }
}
