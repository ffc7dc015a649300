//! Senders that wait for space (`block`, `coalesce`): parking a send with its
//! message (or a reservation without one), handing freed room to the oldest parked
//! one (strict FIFO among waiters, sends and reservations alike), re-registering a
//! waker, and a parked wait given up by its future.

use std::task::Waker;

use super::super::policy::WhenFull;
use super::super::stats::{Eviction, Outcome};
use super::super::sync::{Arc, Ordering};
use super::super::Lane;
use super::{Core, Effects, Resolved, Slot, WaitCell, WAITING};

impl<T> Core<T> {
    /// Moves parked sends into free room, oldest first, and resolves them; a parked
    /// reservation at the front gets its place as a permit.
    pub(super) fn fill_from_waiting(&mut self, fx: &mut Effects<T>) {
        while let Some(front) = self.waiting.front() {
            let fits = !self.is_full()
                || matches!(
                    self.behaviour.when_full,
                    WhenFull::Grow | WhenFull::EvictOldest
                )
                || (self.behaviour.coalesces
                    && front.lane == Lane::Normal
                    && front
                        .slot
                        .as_ref()
                        .and_then(|s| s.key.as_ref())
                        .is_some_and(|k| self.keys.contains_key(k)));
            if !fits {
                break;
            }
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            let Some(slot) = w.slot else {
                self.reserved += 1;
                self.finish_wait(w.cell, w.waker, Resolved::Accepted, fx);
                continue;
            };
            let slot = if self.behaviour.coalesces && w.lane == Lane::Normal {
                self.try_coalesce(slot, fx).err()
            } else {
                Some(slot)
            };
            if let Some(slot) = slot {
                if self.is_full() && !self.evict_lowest_for(w.lane, fx) {
                    // Only drop_oldest gets here when full: the newcomer is the lowest.
                    self.count_sent();
                    self.evict_on(w.lane, slot, Eviction::DroppedOldest, fx);
                } else {
                    self.push_on(w.lane, slot, fx);
                }
            }
            self.finish_wait(w.cell, w.waker, Resolved::Accepted, fx);
        }
    }

    /// Lets in, oldest first, every parked send on the normal lane with `slot`'s key,
    /// through the place of the permit `slot` comes with: a permit's message never
    /// waits, and its newer content must not land before theirs. The first is queued
    /// (or merged into the queued message with its key), the others merged into it;
    /// `slot` is merged last, by the caller.
    pub(super) fn admit_same_key(&mut self, slot: &Slot<T>, fx: &mut Effects<T>) {
        let Some(key) = slot.key.clone() else {
            return;
        };
        while let Some(pos) = self.waiting.position(|w| w.has_key(&key)) {
            let Some(w) = self.waiting.remove(pos) else {
                break;
            };
            if let Some(parked) = w.slot {
                if let Err(parked) = self.try_coalesce(parked, fx) {
                    self.push_back(parked, fx);
                }
            }
            self.finish_wait(w.cell, w.waker, Resolved::Accepted, fx);
        }
    }

    /// A wait cell for a sender about to park: a spare one its last sender has let
    /// go of, or a new one.
    pub(super) fn wait_cell(&mut self) -> Arc<WaitCell<T>> {
        while let Some(cell) = self.spare.pop_back() {
            if Arc::strong_count(&cell) == 1 {
                cell.state.store(WAITING, Ordering::Relaxed);
                *cell.back.lock() = None;
                return cell;
            }
            // Its sender has not read it yet; drop our handle, the sender frees it.
        }
        Arc::new(WaitCell::new())
    }

    /// Resolves a parked send, queues its wake-up and keeps the cell for reuse.
    pub(super) fn finish_wait(
        &mut self,
        cell: Arc<WaitCell<T>>,
        waker: Waker,
        outcome: Resolved<T>,
        fx: &mut Effects<T>,
    ) {
        cell.resolve(outcome);
        fx.wake_senders.push(waker);
        if self.spare.len() < 64 {
            self.spare.push_back(cell);
        }
    }

    /// A parked sender polled again before it was resolved, maybe from another task:
    /// its waker is replaced when it would not wake the same task. `Some` if the send
    /// was resolved in the meantime.
    pub(crate) fn repark(&mut self, cell: &Arc<WaitCell<T>>, waker: &Waker) -> Option<Resolved<T>> {
        if let Some(r) = cell.resolved() {
            return Some(r);
        }
        if let Some(w) = self.waiting.iter_mut().find(|w| Arc::ptr_eq(&w.cell, cell)) {
            if !w.waker.will_wake(waker) {
                w.waker = waker.clone();
            }
        }
        None
    }

    /// A parked sender gives up (timeout or dropped future). Returns how its send
    /// ended: its message back if it was still parked (`timed_out` says whether to
    /// count it as timed out), or the outcome if it was resolved meanwhile.
    pub(crate) fn cancel_parked(
        &mut self,
        cell: &Arc<WaitCell<T>>,
        timed_out: bool,
    ) -> Option<Result<(), crate::mailbox::SendError<T>>> {
        if let Some(r) = cell.resolved() {
            return Some(r.into_result());
        }
        let pos = self.waiting.position(|w| Arc::ptr_eq(&w.cell, cell))?;
        let w = self.waiting.remove(pos)?;
        let slot = w.slot?;
        if timed_out {
            self.count_sent();
            self.count(Outcome::TimedOut);
        }
        Some(Err(crate::mailbox::SendError::Timeout(slot.msg)))
    }

    /// A parked reservation gives up (timeout or dropped future): `None` if it was
    /// still waiting (it leaves the FIFO, counted nowhere), otherwise how it was
    /// resolved meanwhile (a granted permit is the caller's to use or release).
    /// Those behind it may fit now (a keyed send under `coalesce`): they are let in.
    pub(crate) fn cancel_reserve(
        &mut self,
        cell: &Arc<WaitCell<T>>,
        fx: &mut Effects<T>,
    ) -> Option<Resolved<T>> {
        if let Some(r) = cell.resolved() {
            return Some(r);
        }
        if let Some(pos) = self.waiting.position(|w| Arc::ptr_eq(&w.cell, cell)) {
            self.waiting.remove(pos);
            self.fill_from_waiting(fx);
        }
        self.debug_check();
        None
    }
}
