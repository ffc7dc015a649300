//! Taking part in tokio's cooperative budget from inside `poll`, one unit per
//! [`COOP_EVERY`] mailbox operations (counted per thread for senders, per handle for
//! the receiver).

use std::task::{Context, Poll};

/// Mailbox operations charge tokio's cooperative budget one unit per this many, so a
/// task that always finds room or a message still yields to the scheduler, after
/// `128 * COOP_EVERY` operations at most. Charging tokio's budget on every operation
/// cost about 40 instructions each (callgrind, benches/mailbox.rs on one thread: 734
/// against 658 instructions per message sent and received); one operation in eight
/// pays it.
pub const COOP_EVERY: u32 = 8;

thread_local! {
    static COOP_CREDIT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Takes part in tokio's cooperative budget (see [`COOP_EVERY`]): `Pending` when the
/// task has used its budget (it is woken at once to run again later), otherwise a
/// guard to mark progress with. Seven operations in eight only count down the
/// thread's credit, inline; the eighth charges tokio, out of line.
#[inline]
pub(crate) fn poll_coop(cx: &mut Context<'_>) -> Poll<Option<tokio::task::coop::RestoreOnPending>> {
    let credited = COOP_CREDIT.with(|cell| {
        let n = cell.get();
        if n > 0 {
            cell.set(n - 1);
        }
        n > 0
    });
    if credited {
        return Poll::Ready(None);
    }
    charge_thread(cx)
}

/// The eighth operation of [`poll_coop`]: charges tokio's budget and refills the
/// thread's credit.
#[cold]
#[inline(never)]
fn charge_thread(cx: &mut Context<'_>) -> Poll<Option<tokio::task::coop::RestoreOnPending>> {
    let guard = std::task::ready!(tokio::task::coop::poll_proceed(cx));
    COOP_CREDIT.with(|cell| cell.set(COOP_EVERY - 1));
    Poll::Ready(Some(guard))
}

/// A budget counter owned by one handle (the receiver, reached through `&mut`), so
/// charging needs no thread-local look-up.
#[derive(Debug, Default)]
pub(crate) struct Credit(u32);

impl Credit {
    /// As [`poll_coop`], counted on this handle.
    #[inline]
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<tokio::task::coop::RestoreOnPending>> {
        if self.0 > 0 {
            self.0 -= 1;
            return Poll::Ready(None);
        }
        self.charge(cx)
    }

    /// The eighth operation of [`poll`](Self::poll), out of line.
    #[cold]
    #[inline(never)]
    fn charge(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<tokio::task::coop::RestoreOnPending>> {
        let guard = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        self.0 = COOP_EVERY - 1;
        Poll::Ready(Some(guard))
    }
}

/// Marks progress on the budget charged by this operation, if it was charged.
#[inline]
pub(crate) fn made_progress(coop: Option<tokio::task::coop::RestoreOnPending>) {
    if let Some(c) = coop {
        c.made_progress();
    }
}
