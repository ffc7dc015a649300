//! The lanes beside the normal one (`Core::queue`): the control lane and the `High`
//! and `Low` priorities, in one box allocated at the first message sent on any of
//! them. A mailbox that only ever sees `Normal` messages keeps `Core::lanes` at
//! `None` and `Core::others` at 0, which is all its hot paths look at.
//!
//! Delivery order: control, `High`, `Normal`, `Low`, each FIFO. What the policy sees
//! ([`Core::bounded_len`]): every lane but control. The coalesce index covers the
//! normal lane only.

use std::collections::VecDeque;

use super::super::stats::Eviction;
use super::super::Lane;
use super::{Core, Effects, Slot};

/// The queues of the lanes other than `Normal`.
pub(super) struct Lanes<T> {
    control: VecDeque<Slot<T>>,
    high: VecDeque<Slot<T>>,
    low: VecDeque<Slot<T>>,
}

impl<T> Lanes<T> {
    fn new() -> Self {
        Lanes {
            control: VecDeque::new(),
            high: VecDeque::new(),
            low: VecDeque::new(),
        }
    }

    fn get(&self, lane: Lane) -> Option<&VecDeque<Slot<T>>> {
        match lane {
            Lane::Control => Some(&self.control),
            Lane::High => Some(&self.high),
            Lane::Low => Some(&self.low),
            _ => None,
        }
    }

    fn get_mut(&mut self, lane: Lane) -> Option<&mut VecDeque<Slot<T>>> {
        match lane {
            Lane::Control => Some(&mut self.control),
            Lane::High => Some(&mut self.high),
            Lane::Low => Some(&mut self.low),
            _ => None,
        }
    }

    /// Slots on the other lanes, each with its lane (for the invariants, which
    /// debug builds check).
    #[cfg(debug_assertions)]
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Slot<T>, Lane)> {
        let tag = |lane| move |s| (s, lane);
        self.control
            .iter()
            .map(tag(Lane::Control))
            .chain(self.high.iter().map(tag(Lane::High)))
            .chain(self.low.iter().map(tag(Lane::Low)))
    }
}

impl<T> Core<T> {
    /// Messages queued on `lane` now.
    pub(super) fn lane_len(&self, lane: Lane) -> usize {
        if lane == Lane::Normal {
            return self.queue.len();
        }
        self.lanes
            .as_ref()
            .and_then(|l| l.get(lane))
            .map_or(0, VecDeque::len)
    }

    /// Messages the policy's capacity applies to: every lane but control.
    pub(super) fn bounded_len(&self) -> usize {
        self.queue.len() + self.others - self.lane_len(Lane::Control)
    }

    /// Queues a slot at the back of `lane`, counted as sent (the control lane's
    /// slots carry no key or deadline: the caller strips them).
    pub(super) fn push_on(&mut self, lane: Lane, slot: Slot<T>, fx: &mut Effects<T>) {
        if lane == Lane::Normal {
            self.push_back(slot, fx);
            return;
        }
        if slot.deadline.is_some() {
            self.with_deadline += 1;
        }
        let lanes = self.lanes.get_or_insert_with(|| Box::new(Lanes::new()));
        if let Some(q) = lanes.get_mut(lane) {
            q.push_back(slot);
        }
        self.others += 1;
        self.count_sent();
        self.peak = self.peak.max(self.len());
        if fx.wake_rx.is_none() {
            fx.wake_rx = self.rx_waker.take();
        }
    }

    /// Takes the front slot of `lane`, keeping the counts in step.
    pub(super) fn pop_lane_front(&mut self, lane: Lane) -> Option<Slot<T>> {
        if lane == Lane::Normal {
            return self.pop_front();
        }
        let slot = self.lanes.as_mut()?.get_mut(lane)?.pop_front()?;
        self.others -= 1;
        if slot.deadline.is_some() {
            self.with_deadline -= 1;
        }
        Some(slot)
    }

    /// Takes the back slot of `lane` (the newest), keeping the counts in step.
    pub(super) fn pop_lane_back(&mut self, lane: Lane) -> Option<Slot<T>> {
        if lane == Lane::Normal {
            let slot = self.queue.pop_back()?;
            let seq = self.head_seq + self.queue.len() as u64;
            self.forget(&slot, seq);
            return Some(slot);
        }
        let slot = self.lanes.as_mut()?.get_mut(lane)?.pop_back()?;
        self.others -= 1;
        if slot.deadline.is_some() {
            self.with_deadline -= 1;
        }
        Some(slot)
    }

    /// Takes the next slot in delivery order (control, `High`, `Normal`, `Low`).
    pub(super) fn pop_next(&mut self) -> Option<(Slot<T>, Lane)> {
        if self.others == 0 {
            return self.pop_front().map(|s| (s, Lane::Normal));
        }
        [Lane::Control, Lane::High, Lane::Normal, Lane::Low]
            .into_iter()
            .find_map(|lane| self.pop_lane_front(lane).map(|s| (s, lane)))
    }

    /// The lowest-priority lane the policy applies to that holds a message.
    pub(super) fn lowest_lane(&self) -> Option<Lane> {
        [Lane::Low, Lane::Normal, Lane::High]
            .into_iter()
            .find(|&lane| self.lane_len(lane) > 0)
    }

    /// `drop_oldest` makes room for a newcomer on `lane`: evicts the oldest message
    /// of the lowest priority queued, counting the newcomer. Returns `false` when the
    /// newcomer is itself that message (every queued one outranks it): the caller
    /// then evicts the newcomer.
    pub(super) fn evict_lowest_for(&mut self, lane: Lane, fx: &mut Effects<T>) -> bool {
        let Some(lowest) = self.lowest_lane() else {
            return true;
        };
        if lane.rank() < lowest.rank() {
            return false;
        }
        if let Some(oldest) = self.pop_lane_front(lowest) {
            self.evict_on(lowest, oldest, Eviction::DroppedOldest, fx);
        }
        true
    }

    /// Purges expired messages from the `High` and `Low` lanes (the normal lane is
    /// purged by the caller; the control lane has no deadlines).
    pub(super) fn purge_other_lanes(&mut self, now: super::Stamp, fx: &mut Effects<T>) {
        if self.others == 0 {
            return;
        }
        let mut expired = Vec::new();
        if let Some(lanes) = self.lanes.as_mut() {
            for lane in [Lane::High, Lane::Low] {
                let Some(q) = lanes.get_mut(lane) else {
                    continue;
                };
                let mut kept = VecDeque::with_capacity(q.len());
                for slot in q.drain(..) {
                    if slot.deadline.is_some() && slot.deadline <= now {
                        expired.push((slot, lane));
                    } else {
                        kept.push_back(slot);
                    }
                }
                *q = kept;
            }
        }
        for (slot, lane) in expired {
            self.others -= 1;
            self.with_deadline -= 1;
            self.evict_on(lane, slot, Eviction::Expired, fx);
        }
    }
}
