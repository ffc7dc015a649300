//! What changes the mailbox as a whole: closing it, discarding what is queued, and
//! switching its policy while it runs (what no longer fits is handled by the new
//! policy; nothing accepted is lost without being counted).

use super::super::policy::WhenFull;
use super::super::stats::{Eviction, Outcome};
use super::super::Policy;
use super::{Core, Effects, Handles, Resolved};

impl<T> Core<T> {
    /// Refuses new messages and hands every parked message back as `Closed`.
    pub(crate) fn close(&mut self, fx: &mut Effects<T>) {
        self.closed = true;
        while let Some(w) = self.waiting.pop_front() {
            // A parked reservation has no message: nothing to count.
            let msg = w.slot.map(|slot| {
                self.count_sent();
                self.count(Outcome::Closed);
                slot.msg
            });
            self.finish_wait(w.cell, w.waker, Resolved::Closed(msg), fx);
        }
        self.debug_check();
    }

    /// Takes every queued message out, counted as discarded: returned to the caller
    /// when `hand_back` (`Receiver::discard_queued`), otherwise given to the
    /// dead-letter handler through `fx` (the receiver's drop).
    pub(crate) fn discard_all(&mut self, fx: &mut Effects<T>, hand_back: bool) -> Vec<T> {
        let mut out = Vec::with_capacity(if hand_back { self.len() } else { 0 });
        while let Some((slot, lane)) = self.pop_next() {
            if hand_back {
                self.count(Outcome::Discarded);
                out.push(slot.msg);
            } else {
                self.evict_on(lane, slot, Eviction::Discarded, fx);
            }
        }
        self.codel.reset();
        self.fill_from_waiting(fx);
        self.watch_depth(fx);
        self.debug_check();
        out
    }

    /// Switches policy on the live queue. What no longer fits is handled by the new
    /// policy: evicted as oldest (`drop_oldest`), evicted as newest and counted as
    /// rejected (`drop_newest`, `codel`), or kept (`block`, `coalesce`, `unbounded`:
    /// nothing accepted is lost; senders wait until the queue drains below capacity).
    pub(crate) fn set_policy(&mut self, policy: Policy, fx: &mut Effects<T>) {
        if let Some(m) = self.metrics.take() {
            m.retire(&self.counts.by_outcome, self.len());
            // The fresh handles start from the counts now (the old labels got
            // everything up to here) and publish the queue's length with their
            // first publication.
            self.metrics = Some(Handles::new(
                self.role,
                policy.name(),
                policy.capacity(),
                &self.counts.by_outcome,
            ));
        }
        self.behaviour = policy.behaviour();
        if self.behaviour.codel.is_some() {
            self.stamp = true;
        }
        self.policy = policy;
        self.codel.reset();
        // Rebuild the coalesce index for the new policy.
        self.keys.clear();
        if self.behaviour.coalesces {
            for (i, slot) in self.queue.iter().enumerate() {
                if let Some(k) = &slot.key {
                    self.keys.insert(k.clone(), self.head_seq + i as u64);
                }
            }
        }
        let cap = self.capacity();
        // Permits out keep their promise under the new policy: they may take the
        // queue over the new capacity by at most their number.
        self.grace = self.reserved;
        match self.behaviour.when_full {
            WhenFull::EvictOldest => {
                // The oldest of the lowest priority first.
                while self.bounded_len() > cap {
                    let Some(lane) = self.lowest_lane() else {
                        break;
                    };
                    if let Some(slot) = self.pop_lane_front(lane) {
                        self.evict_on(lane, slot, Eviction::DroppedOldest, fx);
                    }
                }
            }
            WhenFull::Refuse => {
                // The newest of the lowest priority first.
                while self.bounded_len() > cap {
                    let Some(lane) = self.lowest_lane() else {
                        break;
                    };
                    if let Some(slot) = self.pop_lane_back(lane) {
                        self.evict_on(lane, slot, Eviction::Rejected, fx);
                    }
                }
            }
            WhenFull::Grow | WhenFull::Wait => {}
        }
        self.fill_from_waiting(fx);
        // Parked senders the new policy would not make wait are refused (a parked
        // reservation has no message: nothing to count).
        if self.behaviour.when_full != WhenFull::Wait {
            while let Some(w) = self.waiting.pop_front() {
                let msg = w.slot.map(|slot| {
                    self.count_sent();
                    self.count(Outcome::Rejected);
                    slot.msg
                });
                self.finish_wait(w.cell, w.waker, Resolved::Rejected(msg), fx);
            }
        }
        self.watch_depth(fx);
        self.debug_check();
    }
}
