//! The CoDel control law (RFC 8289) applied at dequeue, on the sojourn time of
//! messages instead of packets. Pure state machine; the queue drives it.

use std::time::Duration;

use tokio::time::Instant;

/// CoDel's state between dequeues (RFC 8289 section 5).
#[derive(Clone, Debug, Default)]
pub(crate) struct Codel {
    /// When sojourn first stayed above target; shedding may start once `now`
    /// passes it (None while below target).
    first_above_time: Option<Instant>,
    /// When the next shed is due while in the dropping state.
    drop_next: Option<Instant>,
    /// Sheds in the current dropping episode; sets the shed rate.
    count: u32,
    /// `count` at the start of the previous episode, to resume a recent one.
    last_count: u32,
    /// Whether the queue is in the dropping state.
    dropping: bool,
}

/// `t + interval / sqrt(count)`: the spacing between sheds shrinks as they go on.
fn control_law(t: Instant, interval: Duration, count: u32) -> Instant {
    let count = count.max(1) as f64;
    t + interval.div_f64(count.sqrt())
}

impl Codel {
    /// Forget every episode (policy change, queue emptied by the owner).
    pub(crate) fn reset(&mut self) {
        *self = Codel::default();
    }

    /// RFC 8289 `dodequeue`: given the dequeued message's sojourn time, whether it
    /// may be dropped. `standing` is false when the queue is empty after this dequeue
    /// (the RFC's "less than one MTU queued"), which never counts as standing.
    fn ok_to_drop(
        &mut self,
        now: Instant,
        sojourn: Duration,
        standing: bool,
        target: Duration,
        interval: Duration,
    ) -> bool {
        if sojourn < target || !standing {
            self.first_above_time = None;
            return false;
        }
        match self.first_above_time {
            None => {
                self.first_above_time = Some(now + interval);
                false
            }
            Some(t) => now >= t,
        }
    }

    /// Called for each message taken from the head; returns true when CoDel sheds
    /// it (the caller then takes the next one and calls again with `after_shed`).
    pub(crate) fn should_shed(
        &mut self,
        now: Instant,
        sojourn: Duration,
        standing: bool,
        target: Duration,
        interval: Duration,
    ) -> bool {
        let ok = self.ok_to_drop(now, sojourn, standing, target, interval);
        if self.dropping {
            if !ok {
                self.dropping = false;
                return false;
            }
            match self.drop_next {
                Some(next) if now >= next => {
                    self.count += 1;
                    self.drop_next = Some(control_law(next, interval, self.count));
                    true
                }
                _ => false,
            }
        } else if ok {
            // Enter the dropping state: shed this one, schedule the next.
            self.dropping = true;
            let delta = self.count.saturating_sub(self.last_count);
            let recent = self
                .drop_next
                .is_some_and(|next| now.saturating_duration_since(next) < interval * 16);
            self.count = if delta > 1 && recent { delta } else { 1 };
            self.drop_next = Some(control_law(now, interval, self.count));
            self.last_count = self.count;
            true
        } else {
            false
        }
    }

    /// Whether a dequeue is certainly not shed, decided without the full rule:
    /// the queue is empty after it (`!standing`, which never counts as standing),
    /// or its sojourn in nanoseconds (`None`: not read, the clock skipped) is below
    /// target. When quiet, [`should_shed`](Self::should_shed) would return false and
    /// only forget the time above target and the dropping state: call
    /// [`settle`](Self::settle) instead.
    #[inline]
    pub(crate) fn quiet(
        &self,
        sojourn_nanos: Option<u64>,
        standing: bool,
        target: Duration,
    ) -> bool {
        !standing || sojourn_nanos.is_some_and(|s| u128::from(s) < target.as_nanos())
    }

    /// Whether the last sojourn seen was below target (no time above target
    /// pending, not dropping): the state in which [`quiet`](Self::quiet) is worth a
    /// clock read.
    #[inline]
    pub(crate) fn calm(&self) -> bool {
        self.first_above_time.is_none() && !self.dropping
    }

    /// What [`should_shed`](Self::should_shed) does to the state on a
    /// [`quiet`](Self::quiet) dequeue.
    #[inline]
    pub(crate) fn settle(&mut self) {
        self.first_above_time = None;
        self.dropping = false;
    }

    /// When the time above target started counting (tests of the core, which loom
    /// builds leave out).
    #[cfg(all(test, not(sluicegate_loom)))]
    pub(crate) fn first_above_time(&self) -> Option<Instant> {
        self.first_above_time
    }

    /// The queue ran empty: leave the dropping state.
    pub(crate) fn on_empty(&mut self) {
        self.first_above_time = None;
        self.dropping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field, for comparing states (Codel has no `PartialEq` of its own).
    fn fields(c: &Codel) -> (Option<Instant>, Option<Instant>, u32, u32, bool) {
        (
            c.first_above_time,
            c.drop_next,
            c.count,
            c.last_count,
            c.dropping,
        )
    }

    #[test]
    fn quiet_means_the_full_rule_would_not_shed_and_settle_does_what_it_would() {
        // Walk CoDel through many states (rising, standing and falling sojourns, the
        // queue emptying now and then), and at each one compare `quiet` + `settle`
        // with `should_shed` on a copy, for several candidate dequeues.
        let start = Instant::now();
        let mut c = Codel::default();
        let mut quiet_seen = 0;
        let mut loud_seen = 0;
        let mut sheds = 0;
        let mut dropping_steps = 0;
        for step in 0u64..3000 {
            let now = start + Duration::from_millis(step);
            for (sojourn_ms, standing) in [
                (0, true),
                (4, true),
                (5, true),
                (6, true),
                (50, true),
                (50, false),
                (1, false),
            ] {
                let sojourn = Duration::from_millis(sojourn_ms);
                for known in [Some(sojourn), None] {
                    let known_nanos = known.map(|d| u64::try_from(d.as_nanos()).unwrap());
                    if !c.quiet(known_nanos, standing, T) {
                        loud_seen += 1;
                        continue;
                    }
                    quiet_seen += 1;
                    let mut full = c.clone();
                    assert!(
                        !full.should_shed(now, sojourn, standing, T, I),
                        "quiet but the full rule sheds: {:?} {sojourn:?} {standing}",
                        fields(&c)
                    );
                    let mut settled = c.clone();
                    settled.settle();
                    assert_eq!(
                        fields(&settled),
                        fields(&full),
                        "settle differs from the full rule"
                    );
                }
            }
            // Drive the real state: a standing queue above target for a while (it
            // enters the dropping state and sheds), then below, then empty.
            let phase = step % 600;
            let sojourn = if phase < 400 {
                Duration::from_millis(30)
            } else {
                Duration::from_millis(2)
            };
            let standing = phase % 250 != 0;
            if c.should_shed(now, sojourn, standing, T, I) {
                sheds += 1;
            }
            dropping_steps += u32::from(c.dropping);
        }
        assert!(
            quiet_seen > 1000 && loud_seen > 1000,
            "{quiet_seen} {loud_seen}"
        );
        assert!(
            sheds > 10 && dropping_steps > 100,
            "the walk reached the dropping state"
        );
    }

    const T: Duration = Duration::from_millis(5);
    const I: Duration = Duration::from_millis(100);

    #[test]
    fn sojourn_below_target_never_sheds() {
        let mut c = Codel::default();
        let start = Instant::now();
        for ms in 0..1000 {
            let now = start + Duration::from_millis(ms);
            assert!(!c.should_shed(now, Duration::from_millis(4), true, T, I));
        }
    }

    #[test]
    fn standing_queue_sheds_after_interval_then_faster() {
        let mut c = Codel::default();
        let start = Instant::now();
        let mut sheds = Vec::new();
        for ms in 0..400 {
            let now = start + Duration::from_millis(ms);
            if c.should_shed(now, Duration::from_millis(50), true, T, I) {
                sheds.push(ms);
            }
        }
        // Nothing for the first interval, then a first shed, the next one interval
        // later, then interval/sqrt(2) later, and so on.
        assert_eq!(sheds[0], 100);
        assert_eq!(sheds[1], 200);
        assert_eq!(sheds[2], 200 + 71);
        assert!(sheds.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn falling_below_target_stops_shedding() {
        let mut c = Codel::default();
        let start = Instant::now();
        for ms in 0..=100 {
            c.should_shed(
                start + Duration::from_millis(ms),
                Duration::from_millis(50),
                true,
                T,
                I,
            );
        }
        assert!(c.dropping);
        assert!(!c.should_shed(
            start + Duration::from_millis(300),
            Duration::from_millis(1),
            true,
            T,
            I
        ));
        assert!(!c.dropping);
    }
}
