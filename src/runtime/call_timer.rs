//! [`CallTimer`]: one timer per server, or per registry (whose servers share one),
//! for the timeouts of the calls waiting on their replies, instead of a tokio timer
//! entry per call ([`ReplyWait`] is the caller's side).
//!
//! Calls to one server, or to the servers of one registry, mostly carry the same
//! timeout, so their deadlines arrive in order: a waiting call appends `(seq, deadline, waker)` to a queue kept in
//! `(deadline, seq)` order and removes itself when its reply comes (usually from the
//! front, otherwise by binary search on `(deadline, seq)`). One task per timer (so
//! none per server of a registry: an idle server carries no timer task), spawned at
//! the first call that waits, on the runtime the timer was made on,
//! sleeps until the front's deadline with a single `Sleep`, wakes the callers whose
//! deadline has passed and goes back to sleep. The task's sleep is never later than
//! the front, so an append never has to wake it, except when the new deadline is
//! earlier than the one the task sleeps to (a short call, or the first one after an
//! idle spell); a wait costs two short lock rounds and a waker clone, no timer-wheel
//! insert or removal.
//!
//! The task lives on the server's runtime, so it lasts as long as the server can
//! answer; should it end anyway (that runtime shut down while a handle lives on
//! elsewhere), every later caller keeps a tokio timer of its own, as it would
//! without this module. Its `Sleep` is built before anything is queued, so a runtime
//! without timers fails the first caller loudly (as `tokio::time::timeout` would)
//! instead of leaving it queued on a task that cannot run.
//!
//! A deadline earlier than the queue's last (calls from several threads race to
//! append; a short call behind long ones) is inserted in its place, found by binary
//! search, when at most [`MAX_INSERT_DEPTH`] entries are later; the queue is kept in
//! `(deadline, seq)` order, and every caller is woken at its own deadline, never
//! later. A deadline that would go deeper gives `None` from [`CallTimer::register`],
//! and that caller keeps a tokio timer of its own (moving a long tail under the lock
//! would cost more than the timer; that timer is boxed, the one allocation a wait can
//! make). The task holds the timer weakly and ends once the last
//! [`ServerRef`](super::ServerRef) is gone; a shared wait allocates nothing once the
//! queue has grown to the number of calls in flight.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

/// How many queued entries may have a later deadline than a new one for it to be
/// inserted in place; a deeper insert gets its own tokio timer instead.
pub const MAX_INSERT_DEPTH: usize = 32;

/// The shared timer of one server's waiting calls.
pub(crate) struct CallTimer {
    inner: Mutex<Inner>,
    /// The runtime the task is spawned on: the server's (`None` outside any runtime,
    /// and then every caller times itself).
    runtime: Option<tokio::runtime::Handle>,
}

#[derive(Default)]
struct Inner {
    /// Waiting calls, in `(deadline, seq)` order.
    queue: VecDeque<Entry>,
    next_seq: u64,
    /// When the task wakes up by itself next; `None` while it waits to be told.
    armed: Option<Instant>,
    /// The task's waker, to tell it of a deadline earlier than `armed`.
    task: Option<Waker>,
    /// The task, once spawned.
    handle: Option<tokio::task::JoinHandle<()>>,
}

struct Entry {
    seq: u64,
    deadline: Instant,
    waker: Waker,
}

impl Inner {
    /// Where the entry `(deadline, seq)` is queued, if it still is.
    fn position(&self, deadline: Instant, seq: u64) -> Option<usize> {
        match self.queue.front() {
            Some(e) if e.seq == seq => Some(0),
            _ => self
                .queue
                .binary_search_by(|e| (e.deadline, e.seq).cmp(&(deadline, seq)))
                .ok(),
        }
    }
}

impl CallTimer {
    /// A timer whose task will run on the current runtime (the server's, when built
    /// by [`start`](super::start)).
    pub(crate) fn on_current_runtime() -> Self {
        CallTimer {
            inner: Mutex::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Queues a waiting call; its ticket, or `None` when the caller must time itself:
    /// its deadline is too far out of order, or there is no task to wake it.
    fn register(self: &Arc<Self>, deadline: Instant, waker: &Waker) -> Option<u64> {
        let (seq, wake_task) = {
            let mut g = self.inner.lock();
            match &g.handle {
                Some(task) if task.is_finished() => return None,
                Some(_) => {}
                None => {
                    let runtime = self.runtime.as_ref()?;
                    // Built first: without timers this panics here, with nothing queued.
                    let sleep = {
                        let _in_runtime = runtime.enter();
                        Box::pin(tokio::time::sleep(Duration::ZERO))
                    };
                    g.handle = Some(runtime.spawn(run(Arc::downgrade(self), sleep)));
                }
            }
            // After every entry with the same or an earlier deadline: a new `seq` is
            // the largest, so the queue stays in `(deadline, seq)` order. Usually the
            // latest deadline yet, appended at the back.
            let at = match g.queue.back() {
                Some(last) if deadline < last.deadline => {
                    let at = g.queue.partition_point(|e| e.deadline <= deadline);
                    if g.queue.len() - at > MAX_INSERT_DEPTH {
                        return None;
                    }
                    Some(at)
                }
                _ => None,
            };
            let seq = g.next_seq;
            g.next_seq += 1;
            let entry = Entry {
                seq,
                deadline,
                waker: waker.clone(),
            };
            match at {
                None => g.queue.push_back(entry),
                Some(at) => g.queue.insert(at, entry),
            }
            let mut wake_task = None;
            if g.armed.is_none_or(|a| deadline < a) {
                // The task sleeps past this deadline, or not at all: tell it.
                g.armed = Some(deadline);
                wake_task = g.task.take();
            }
            (seq, wake_task)
        };
        if let Some(w) = wake_task {
            w.wake();
        }
        Some(seq)
    }

    /// Keeps a still-waiting call's waker current; `false` when the call is no longer
    /// queued (the task has woken it for its deadline).
    fn refresh(&self, deadline: Instant, seq: u64, waker: &Waker) -> bool {
        let mut g = self.inner.lock();
        let Some(i) = g.position(deadline, seq) else {
            return false;
        };
        let e = &mut g.queue[i];
        if !e.waker.will_wake(waker) {
            e.waker = waker.clone();
        }
        true
    }

    /// Takes a call out of the queue (its reply came, or its caller gave up).
    fn cancel(&self, deadline: Instant, seq: u64) {
        let entry = {
            let mut g = self.inner.lock();
            match g.position(deadline, seq) {
                // A call answered in turn: the oldest, at the front.
                Some(0) => g.queue.pop_front(),
                Some(i) => g.queue.remove(i),
                None => None,
            }
        };
        // The waker is dropped outside the lock.
        drop(entry);
    }

    /// Takes out every call whose queued deadline has passed, for waking, and says
    /// when to look again (`None`: when told); records the task's waker.
    fn expire(&self, now: Instant, task: &Waker, due: &mut Vec<Waker>) -> Option<Instant> {
        let mut g = self.inner.lock();
        while g.queue.front().is_some_and(|e| e.deadline <= now) {
            if let Some(e) = g.queue.pop_front() {
                due.push(e.waker);
            }
        }
        g.armed = g.queue.front().map(|e| e.deadline);
        if !g.task.as_ref().is_some_and(|w| w.will_wake(task)) {
            g.task = Some(task.clone());
        }
        g.armed
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        // Lets the task see that the timer is gone and end.
        if let Some(w) = self.inner.get_mut().task.take() {
            w.wake();
        }
    }
}

/// The timer task: sleeps to the front deadline, wakes the callers whose deadline
/// has passed, and ends when the timer has no handle left.
async fn run(timer: Weak<CallTimer>, mut sleep: Pin<Box<Sleep>>) {
    let mut due = Vec::new();
    std::future::poll_fn(|cx| loop {
        let Some(t) = timer.upgrade() else {
            return Poll::Ready(());
        };
        let next = t.expire(Instant::now(), cx.waker(), &mut due);
        drop(t);
        for w in due.drain(..) {
            w.wake();
        }
        let Some(at) = next else {
            return Poll::Pending;
        };
        sleep.as_mut().reset(at);
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
    })
    .await
}

/// How a waiting call is timed.
enum Timing {
    /// Not waited yet.
    Unregistered,
    /// Queued on the server's timer under this ticket.
    Shared(u64),
    /// Its deadline was out of order: its own tokio timer.
    Own(Pin<Box<Sleep>>),
    /// Done: nothing queued.
    Finished,
}

/// A caller waiting for its reply until its deadline: resolves to the reply, or
/// `None` once the deadline has passed. Dropping it takes the call off the timer.
pub(crate) struct ReplyWait<'a, R> {
    rx: oneshot::Receiver<R>,
    deadline: Instant,
    timer: &'a Arc<CallTimer>,
    timing: Timing,
}

impl<'a, R> ReplyWait<'a, R> {
    pub(crate) fn new(
        rx: oneshot::Receiver<R>,
        deadline: Instant,
        timer: &'a Arc<CallTimer>,
    ) -> Self {
        ReplyWait {
            rx,
            deadline,
            timer,
            timing: Timing::Unregistered,
        }
    }

    fn finish(&mut self) {
        if let Timing::Shared(seq) = std::mem::replace(&mut self.timing, Timing::Finished) {
            self.timer.cancel(self.deadline, seq);
        }
    }
}

impl<R> Future for ReplyWait<'_, R> {
    /// The reply (or the reply channel's error), `None` on timeout.
    type Output = Option<Result<R, oneshot::error::RecvError>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(r) = Pin::new(&mut this.rx).poll(cx) {
            this.finish();
            return Poll::Ready(Some(r));
        }
        let timed_out = match &mut this.timing {
            Timing::Unregistered => {
                match this.timer.register(this.deadline, cx.waker()) {
                    Some(seq) => this.timing = Timing::Shared(seq),
                    None => {
                        let mut own = Box::pin(tokio::time::sleep_until(this.deadline));
                        let ready = own.as_mut().poll(cx).is_ready();
                        this.timing = Timing::Own(own);
                        if ready {
                            this.finish();
                            return Poll::Ready(None);
                        }
                    }
                }
                false
            }
            // Woken without a reply: by the timer at the deadline, or spuriously.
            Timing::Shared(seq) => {
                let seq = *seq;
                Instant::now() >= this.deadline
                    || !this.timer.refresh(this.deadline, seq, cx.waker())
            }
            Timing::Own(sleep) => sleep.as_mut().poll(cx).is_ready(),
            Timing::Finished => true,
        };
        if timed_out {
            this.finish();
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

impl<R> Drop for ReplyWait<'_, R> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn queued(t: &CallTimer) -> usize {
        t.inner.lock().queue.len()
    }

    /// Polls a wait once, which must then be waiting (registered, or on its own timer).
    async fn parked<'a>(w: ReplyWait<'a, u32>) -> Pin<Box<ReplyWait<'a, u32>>> {
        let mut w = Box::pin(w);
        assert!(futures::poll!(w.as_mut()).is_pending());
        w
    }

    /// A wait on a reply that never comes (its sender is kept alive).
    fn silent(t: &Arc<CallTimer>, deadline: Instant) -> (ReplyWait<'_, u32>, oneshot::Sender<u32>) {
        let (tx, rx) = oneshot::channel();
        (ReplyWait::new(rx, deadline, t), tx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_before_the_deadline_is_returned_and_leaves_nothing_queued() {
        let t = Arc::new(CallTimer::on_current_runtime());
        let (tx, rx) = oneshot::channel();
        let wait = ReplyWait::new(rx, Instant::now() + SEC, &t);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = tx.send(7u32);
        });
        assert_eq!(wait.await.map(Result::ok), Some(Some(7)));
        assert_eq!(queued(&t), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_reply_the_wait_ends_exactly_at_its_deadline() {
        let t = Arc::new(CallTimer::on_current_runtime());
        let started = Instant::now();
        let (wait, _tx) = silent(&t, started + SEC);
        assert!(wait.await.is_none());
        assert_eq!(started.elapsed(), SEC);
        assert_eq!(queued(&t), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_in_deadline_order_share_the_queue_and_each_ends_at_its_own_deadline() {
        let t = Arc::new(CallTimer::on_current_runtime());
        let started = Instant::now();
        let mut waits = Vec::new();
        let mut senders = Vec::new();
        for i in 1..=5u32 {
            let (w, tx) = silent(&t, started + SEC * i);
            waits.push(w);
            senders.push(tx);
        }
        let ended = futures::future::join_all(waits.into_iter().map(|w| async move {
            assert!(w.await.is_none());
            started.elapsed()
        }));
        let (ended, ()) = tokio::join!(ended, async {
            tokio::task::yield_now().await;
            // Every wait is queued on the one timer, none has its own.
            assert_eq!(queued(&t), 5);
        });
        assert_eq!(ended, (1..=5).map(|i| SEC * i).collect::<Vec<_>>());
        assert_eq!(queued(&t), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_is_queued_in_its_place_and_ends_exactly_on_time() {
        let t = Arc::new(CallTimer::on_current_runtime());
        let started = Instant::now();
        let (a, _a) = silent(&t, started + SEC * 5);
        let (b, _b) = silent(&t, started + SEC * 2);
        let (c, _c) = silent(&t, started + SEC * 2);
        let (d, _d) = silent(&t, started + Duration::from_millis(100));
        let waits = [
            parked(a).await,
            parked(b).await,
            parked(c).await,
            parked(d).await,
        ];
        let order: Vec<_> = t.inner.lock().queue.iter().map(|e| e.seq).collect();
        assert_eq!(order, [3, 1, 2, 0], "in (deadline, seq) order");
        let [a, b, c, d] = waits;
        for (w, at) in [
            (d, Duration::from_millis(100)),
            (b, SEC * 2),
            (c, SEC * 2),
            (a, SEC * 5),
        ] {
            assert!(w.await.is_none());
            assert_eq!(started.elapsed(), at);
        }
        assert_eq!(queued(&t), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_deeper_than_the_insert_limit_gets_its_own_timer_and_ends_on_time() {
        let t = Arc::new(CallTimer::on_current_runtime());
        let started = Instant::now();
        let mut long = Vec::new();
        let mut senders = Vec::new();
        for _ in 0..=MAX_INSERT_DEPTH {
            let (w, tx) = silent(&t, started + SEC * 5);
            let w = parked(w).await;
            long.push(w);
            senders.push(tx);
        }
        assert_eq!(queued(&t), MAX_INSERT_DEPTH + 1);
        let (early, _e) = silent(&t, started + Duration::from_millis(100));
        let early = parked(early).await;
        // Not queued: it keeps its own timer.
        assert_eq!(queued(&t), MAX_INSERT_DEPTH + 1);
        assert!(early.await.is_none());
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        for w in long {
            assert!(w.await.is_none());
        }
        assert_eq!(started.elapsed(), SEC * 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_wait_leaves_the_queue() {
        let t = Arc::new(CallTimer::on_current_runtime());
        let now = Instant::now();
        let (a, _a) = silent(&t, now + SEC);
        let (b, _b) = silent(&t, now + SEC * 2);
        let (a, b) = (parked(a).await, parked(b).await);
        assert_eq!(queued(&t), 2);
        // From the back, then the front.
        drop(b);
        assert_eq!(queued(&t), 1);
        drop(a);
        assert_eq!(queued(&t), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_wait_after_long_ones_wakes_the_sleeping_task_early() {
        let t = Arc::new(CallTimer::on_current_runtime());
        // A long wait answered before its deadline leaves the task asleep until then.
        let (tx, rx) = oneshot::channel();
        let far = Instant::now() + SEC * 60;
        let long = parked(ReplyWait::new(rx, far, &t)).await;
        tokio::task::yield_now().await;
        tx.send(1u32).unwrap();
        assert!(long.await.is_some());
        assert_eq!(queued(&t), 0);
        assert_eq!(t.inner.lock().armed, Some(far));
        // A short wait now must not sleep to the long deadline.
        let started = Instant::now();
        let (short, _s) = silent(&t, started + Duration::from_millis(50));
        assert!(short.await.is_none());
        assert_eq!(started.elapsed(), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn outside_any_runtime_every_caller_times_itself() {
        let t = Arc::new(CallTimer {
            inner: Mutex::default(),
            runtime: None,
        });
        let started = Instant::now();
        let (wait, _tx) = silent(&t, started + SEC);
        let wait = parked(wait).await;
        assert_eq!(queued(&t), 0);
        assert!(wait.await.is_none());
        assert_eq!(started.elapsed(), SEC);
    }

    #[tokio::test(start_paused = true)]
    async fn once_the_task_has_ended_with_its_runtime_callers_time_themselves() {
        let other = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let t = {
            let _in_other = other.enter();
            Arc::new(CallTimer::on_current_runtime())
        };
        // The first wait spawns the task on the other runtime, which then shuts down.
        let (first, _a) = silent(&t, Instant::now() + SEC);
        let first = parked(first).await;
        assert_eq!(queued(&t), 1);
        drop(first);
        other.shutdown_background();
        let started = Instant::now();
        let (wait, _b) = silent(&t, started + SEC);
        let wait = parked(wait).await;
        assert_eq!(queued(&t), 0, "not queued on a task that is gone");
        assert!(wait.await.is_none());
        assert_eq!(started.elapsed(), SEC);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_task_ends_with_the_last_handle() {
        let tasks = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let before = tasks();
        let t = Arc::new(CallTimer::on_current_runtime());
        let (wait, _tx) = silent(&t, Instant::now() + SEC);
        assert!(wait.await.is_none());
        assert_eq!(tasks(), before + 1);
        drop(t);
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert_eq!(tasks(), before);
    }
}
