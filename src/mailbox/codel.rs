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

    /// The queue ran empty: leave the dropping state.
    pub(crate) fn on_empty(&mut self) {
        self.first_above_time = None;
        self.dropping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
