//! The invariants every core operation restores before the lock is released
//! (checked after each one in debug builds), and the [`Stats`] snapshot read from
//! the counters.

#[cfg(debug_assertions)]
use super::super::policy::WhenFull;
use super::super::stats::{Outcome, Stats};
use super::super::Lane;
use super::Core;

impl<T> Core<T> {
    /// Checks, in debug builds, the invariants every operation restores before the
    /// lock is released (see the list in [`check_invariants`](Self::check_invariants)).
    #[inline]
    pub(super) fn debug_check(&self) {
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    /// The core's invariants, checked after every operation in debug builds; the
    /// parts that walk the queue only while it holds at most 256 slots.
    ///
    /// 1. Accounting: `sent` equals the sum of every outcome plus the depth.
    /// 2. `peak_depth` is at least the depth.
    /// 3. Only a waiting policy has parked senders, and a closed mailbox has none.
    /// 4. A policy that evicts or refuses when full never holds more than its
    ///    capacity, counting the places permits hold and leaving out the control
    ///    lane; permits out at a live policy change may exceed it by their number.
    /// 5. `with_deadline` counts exactly the queued slots that carry a deadline.
    /// 6. The coalesce index is empty unless the policy coalesces, and then maps each
    ///    key to a queued slot that carries that key.
    /// 7. `others` counts exactly the slots on the other lanes; control-lane slots
    ///    carry no key and no deadline.
    /// 8. No clock reading is left handed over (`read_at`): it lives only from a
    ///    `take_fast` that returns `Fast::Slow` to the `take` that follows it.
    #[cfg(debug_assertions)]
    pub(crate) fn check_invariants(&self) {
        assert!(!self.read_at.is_some(), "a clock reading left handed over");
        let st = self.stats();
        assert!(
            st.is_balanced(),
            "mailbox accounting out of balance: {st:?}"
        );
        assert!(self.peak >= self.len(), "peak below depth");
        assert!(
            self.waiting.is_empty() || (self.behaviour.when_full == WhenFull::Wait && !self.closed),
            "parked senders under {} (closed: {})",
            self.policy,
            self.closed
        );
        if matches!(
            self.behaviour.when_full,
            WhenFull::EvictOldest | WhenFull::Refuse
        ) {
            assert!(
                self.bounded_len() + self.held()
                    <= self.behaviour.capacity.saturating_add(self.grace),
                "over capacity"
            );
        }
        if !self.behaviour.coalesces {
            assert!(self.keys.is_empty(), "coalesce index without coalesce");
        }
        if self.len() > 256 {
            return;
        }
        let others: Vec<_> = self.lanes.iter().flat_map(|l| l.iter()).collect();
        assert_eq!(self.others, others.len(), "other lanes' count");
        assert!(
            others
                .iter()
                .all(|(s, lane)| *lane != Lane::Control
                    || (s.key.is_none() && !s.deadline.is_some())),
            "a control-lane slot with a key or deadline"
        );
        let with_deadline = self.queue.iter().filter(|s| s.deadline.is_some()).count()
            + others.iter().filter(|(s, _)| s.deadline.is_some()).count();
        assert_eq!(self.with_deadline, with_deadline, "deadline count");
        for (key, &seq) in self.keys.iter() {
            let idx = seq
                .checked_sub(self.head_seq)
                .map(|i| i as usize)
                .filter(|&i| i < self.queue.len());
            let Some(idx) = idx else {
                panic!("coalesce index points outside the queue for {key:?}");
            };
            assert_eq!(self.queue[idx].key.as_ref(), Some(key), "coalesce index");
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counts.by_outcome;
        Stats {
            policy: self.policy.clone(),
            sent: self.counts.sent,
            delivered: c[Outcome::Delivered.index()],
            rejected: c[Outcome::Rejected.index()],
            timed_out: c[Outcome::TimedOut.index()],
            dropped_oldest: c[Outcome::DroppedOldest.index()],
            shed: c[Outcome::Shed.index()],
            coalesced: c[Outcome::Coalesced.index()],
            expired: c[Outcome::Expired.index()],
            closed: c[Outcome::Closed.index()],
            discarded: c[Outcome::Discarded.index()],
            depth: self.len(),
            peak_depth: self.peak,
            waiting_senders: self.waiting.len(),
            reserved: self.reserved,
            control_depth: self.lane_len(Lane::Control),
        }
    }
}
