//! Shard leases: the coordinator's rule for granting one (a row per shard whose epoch
//! is bumped on every takeover) and the node's rule for how long it may serve a
//! shard it holds, measured on its own monotonic clock.
//!
//! # Why the node's deadline is safe
//!
//! A node sends a claim or renewal at node time `a` and the coordinator processes it
//! later, at its own time `p`, setting the lease's expiry to `p + ttl` (its clock). The
//! node serves until `a + ttl - margin` (its clock). Sending precedes processing, so
//! if both clocks ran at the same rate the node would stop at least `margin` before the
//! coordinator could grant the shard to anyone else. Clocks do not run at the same
//! rate: if the node's clock runs slow by a relative error `ρ` against the
//! coordinator's, its `ttl - margin` lasts up to `(ttl - margin) / (1 - ρ)` of the
//! coordinator's time, which stays within `ttl` when `margin >= ρ · ttl`.
//! [`LeaseTerms::new`] therefore requires `margin >= ttl / 100` (a 1 % rate error,
//! twenty times what NTP lets a clock slew). Pauses do not break this rule (a paused
//! process's monotonic clock keeps running), but a pause between checking
//! [`HeldLease::may_serve`] and writing can: that is what the fence
//! ([`super::fence`]) is for.

use std::time::Duration;

use super::shard::{NodeId, ShardId};

/// A reading of one node's monotonic clock: the time since that node's own origin.
/// Readings of different nodes cannot be compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeTime(pub Duration);

/// A shard's epoch: bumped by every successful claim, so a newer owner always holds
/// a larger epoch than every earlier one. Stores carry it as their fencing token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u64);

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How long leases last and when they are renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTerms {
    ttl: Duration,
    renew_every: Duration,
    margin: Duration,
}

/// Why [`LeaseTerms::new`] refused its arguments.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseTermsError {
    /// The margin is below 1 % of the ttl (or is zero).
    #[error("lease margin {margin:?} is too small: it must be at least 1 % of the ttl ({ttl:?}) to cover clock rate differences")]
    MarginTooSmall {
        /// The ttl asked for.
        ttl: Duration,
        /// The margin asked for.
        margin: Duration,
    },
    /// A renewal would not be sent before the node must stop serving.
    #[error("lease renewal every {renew_every:?} leaves no time: it must be shorter than ttl - margin ({serve_for:?}) and non-zero")]
    RenewTooLate {
        /// The renewal period asked for.
        renew_every: Duration,
        /// `ttl - margin`.
        serve_for: Duration,
    },
}

impl LeaseTerms {
    /// The defaults: leases last 10 s, are renewed every 3 s, and a node stops serving
    /// 2 s before its lease could expire (so a shard moves 10-13 s after its owner dies).
    pub const DEFAULT: LeaseTerms = LeaseTerms {
        ttl: Duration::from_secs(10),
        renew_every: Duration::from_secs(3),
        margin: Duration::from_secs(2),
    };

    /// Terms with a lease length, a renewal period and a safety margin; see the
    /// module comment for the rules they must follow.
    pub fn new(
        ttl: Duration,
        renew_every: Duration,
        margin: Duration,
    ) -> Result<Self, LeaseTermsError> {
        if margin.is_zero() || margin < ttl / 100 || margin >= ttl {
            return Err(LeaseTermsError::MarginTooSmall { ttl, margin });
        }
        let serve_for = ttl - margin;
        if renew_every.is_zero() || renew_every >= serve_for {
            return Err(LeaseTermsError::RenewTooLate {
                renew_every,
                serve_for,
            });
        }
        Ok(Self {
            ttl,
            renew_every,
            margin,
        })
    }

    /// How long a granted lease lasts on the coordinator's clock.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How often a holder renews.
    pub fn renew_every(&self) -> Duration {
        self.renew_every
    }

    /// How long before the coordinator's expiry (at the latest) a holder stops serving.
    pub fn margin(&self) -> Duration {
        self.margin
    }
}

/// The coordinator's record of one shard's lease: PostgreSQL's `shard_lease` row.
/// Each method is one conditional `UPDATE`, atomic in the database.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    /// Who holds it; `None` when never claimed or released.
    pub owner: Option<NodeId>,
    /// The epoch of the latest claim.
    pub epoch: Epoch,
    /// When the lease expires, on the coordinator's clock.
    pub expires_at: Duration,
}

impl LeaseRecord {
    /// Whether the lease is free to claim at coordinator time `now`.
    pub fn is_free(&self, now: Duration) -> bool {
        self.owner.is_none() || self.expires_at <= now
    }

    /// A claim by `me` at coordinator time `now`: succeeds only when the lease is free
    /// (never held, released, or expired), bumping the epoch.
    /// `UPDATE shard_lease SET owner=$me, epoch=epoch+1, expires_at=now()+$ttl
    ///  WHERE shard=$s AND (owner IS NULL OR expires_at <= now()) RETURNING epoch`.
    pub fn claim(&mut self, me: &NodeId, now: Duration, ttl: Duration) -> Option<Epoch> {
        if !self.is_free(now) {
            return None;
        }
        self.owner = Some(me.clone());
        self.epoch = Epoch(self.epoch.0 + 1);
        self.expires_at = now + ttl;
        Some(self.epoch)
    }

    /// A renewal by `me` of the lease it claimed at `epoch`: succeeds while nobody
    /// has claimed the shard since, even after expiry (no one else holds it then).
    /// `UPDATE shard_lease SET expires_at=now()+$ttl WHERE shard=$s AND owner=$me AND epoch=$e`.
    pub fn renew(&mut self, me: &NodeId, epoch: Epoch, now: Duration, ttl: Duration) -> bool {
        if self.owner.as_ref() != Some(me) || self.epoch != epoch {
            return false;
        }
        self.expires_at = now + ttl;
        true
    }

    /// A release by `me` of the lease it holds at `epoch` (a clean shutdown), so the
    /// shard can be claimed at once. `UPDATE shard_lease SET owner=NULL WHERE ... AND owner=$me AND epoch=$e`.
    pub fn release(&mut self, me: &NodeId, epoch: Epoch) -> bool {
        if self.owner.as_ref() != Some(me) || self.epoch != epoch {
            return false;
        }
        self.owner = None;
        true
    }
}

/// A lease as the node holding it sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldLease {
    shard: ShardId,
    epoch: Epoch,
    asked_at: NodeTime,
    terms: LeaseTerms,
}

impl HeldLease {
    /// A lease granted at `epoch` by a claim that this node sent at `asked_at`
    /// (read the clock before sending, not after the answer).
    pub fn granted(shard: ShardId, epoch: Epoch, asked_at: NodeTime, terms: LeaseTerms) -> Self {
        Self {
            shard,
            epoch,
            asked_at,
            terms,
        }
    }

    /// The shard held.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// The epoch every store of the shard's lists carries.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The node time at which the node must have stopped serving the shard.
    pub fn serve_until(&self) -> NodeTime {
        NodeTime(self.asked_at.0 + self.terms.ttl - self.terms.margin)
    }

    /// Whether the node may still serve the shard at node time `now`.
    pub fn may_serve(&self, now: NodeTime) -> bool {
        now < self.serve_until()
    }

    /// Whether a renewal is due at node time `now`.
    pub fn renew_due(&self, now: NodeTime) -> bool {
        now.0 >= self.asked_at.0 + self.terms.renew_every
    }

    /// A renewal sent at `asked_at` succeeded. An answer to an older request than the
    /// one that last extended the lease changes nothing.
    pub fn renewed(&mut self, asked_at: NodeTime) {
        self.asked_at = self.asked_at.max(asked_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn terms_refuse_a_margin_below_one_percent_and_late_renewals() {
        assert!(LeaseTerms::new(s(10), s(3), Duration::from_millis(99)).is_err());
        assert!(LeaseTerms::new(s(10), s(3), Duration::from_millis(100)).is_ok());
        assert!(LeaseTerms::new(s(10), s(8), s(2)).is_err());
        assert!(LeaseTerms::new(s(10), s(0), s(2)).is_err());
        assert!(LeaseTerms::new(s(10), s(3), s(10)).is_err());
        let d = LeaseTerms::DEFAULT;
        assert_eq!(LeaseTerms::new(d.ttl(), d.renew_every(), d.margin()), Ok(d));
    }

    #[test]
    fn a_claim_bumps_the_epoch_and_only_a_free_lease_can_be_claimed() {
        let (a, b) = (NodeId("a".into()), NodeId("b".into()));
        let mut row = LeaseRecord::default();
        assert_eq!(row.claim(&a, s(0), s(10)), Some(Epoch(1)));
        assert_eq!(row.claim(&b, s(9), s(10)), None, "held until 10 s");
        assert!(row.renew(&a, Epoch(1), s(9), s(10)));
        assert_eq!(row.claim(&b, s(18), s(10)), None, "renewed until 19 s");
        assert_eq!(row.claim(&b, s(19), s(10)), Some(Epoch(2)));
        assert!(!row.renew(&a, Epoch(1), s(20), s(10)), "a lost it");
        assert!(!row.release(&a, Epoch(1)));
        assert!(row.release(&b, Epoch(2)));
        assert_eq!(
            row.claim(&a, s(21), s(10)),
            Some(Epoch(3)),
            "released: free at once"
        );
    }

    #[test]
    fn a_holder_stops_serving_a_margin_before_a_lease_measured_from_its_request() {
        let terms = LeaseTerms::DEFAULT;
        let mut held = HeldLease::granted(ShardId(7), Epoch(4), NodeTime(s(100)), terms);
        assert_eq!(held.serve_until(), NodeTime(s(108)));
        assert!(held.may_serve(NodeTime(s(107))));
        assert!(!held.may_serve(NodeTime(s(108))));
        assert!(!held.renew_due(NodeTime(s(102))));
        assert!(held.renew_due(NodeTime(s(103))));
        held.renewed(NodeTime(s(103)));
        assert_eq!(held.serve_until(), NodeTime(s(111)));
        held.renewed(NodeTime(s(101)));
        assert_eq!(
            held.serve_until(),
            NodeTime(s(111)),
            "a stale answer never shortens"
        );
    }
}
