//! A queue that takes one pointer until its first element: for the core's parts
//! most mailboxes never use (senders waiting for space, their recycled wait
//! cells). A `VecDeque` is 32 bytes even empty and every live actor carries its
//! core; this is 8 until used. Once made, the buffer stays with its capacity, as a
//! `VecDeque`'s would.

use std::collections::VecDeque;

/// A `VecDeque` allocated by its first push.
#[allow(clippy::box_collection)] // the point: one pointer, not 32 bytes, until used
pub(super) struct LazyDeque<X>(Option<Box<VecDeque<X>>>);

impl<X> Default for LazyDeque<X> {
    fn default() -> Self {
        LazyDeque(None)
    }
}

impl<X> LazyDeque<X> {
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|d| d.is_empty())
    }

    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |d| d.len())
    }

    pub(super) fn front(&self) -> Option<&X> {
        self.0.as_ref()?.front()
    }

    pub(super) fn push_back(&mut self, x: X) {
        self.0.get_or_insert_with(Box::default).push_back(x);
    }

    pub(super) fn pop_front(&mut self) -> Option<X> {
        self.0.as_mut()?.pop_front()
    }

    pub(super) fn pop_back(&mut self) -> Option<X> {
        self.0.as_mut()?.pop_back()
    }

    pub(super) fn remove(&mut self, index: usize) -> Option<X> {
        self.0.as_mut()?.remove(index)
    }

    pub(super) fn position(&self, f: impl FnMut(&X) -> bool) -> Option<usize> {
        self.0.as_ref()?.iter().position(f)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &X> {
        self.0.iter().flat_map(|d| d.iter())
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut X> {
        self.0.iter_mut().flat_map(|d| d.iter_mut())
    }
}
