//! The adaptive concurrency limit at the HTTP edge: Gradient2 as in Netflix's
//! concurrency-limits. Requests beyond the limit are refused at once (the edge
//! answers them `503` with `Retry-After`); the limit follows the latency of the
//! requests let in, shrinking when the short-run latency grows past `tolerance`
//! times its long-run average and growing by about its square root otherwise.
//!
//! Written here rather than taken from `tower-acc` or `congestion-limiter`: both
//! make excess requests wait in `poll_ready` (a queue) instead of refusing them,
//! and the edge needs the limit, the in-flight count and the refusals on
//! `/metrics`. The pure update ([`Gradient2::update`]) is tested on its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::LimitConfig;

/// The limit in force (gauge).
pub const LIMIT: &str = "sluicegate_http_concurrency_limit";
/// Requests in flight past the limiter (gauge).
pub const IN_FLIGHT: &str = "sluicegate_http_in_flight";
/// Requests refused by the limiter (counter).
pub const REFUSED: &str = "sluicegate_http_limit_refused_total";

/// A window closes after this many samples and at least [`WINDOW_MIN`].
const WINDOW_SAMPLES: u32 = 64;
/// Shortest window of samples.
const WINDOW_MIN: Duration = Duration::from_millis(10);
/// Windows the long-run latency average spans (about 600 samples).
const LONG_WINDOWS: f64 = 10.0;
/// How much of a new limit is taken each window.
const SMOOTHING: f64 = 0.2;

/// The Gradient2 algorithm's state (pure: samples are passed in).
#[derive(Debug, Clone)]
pub struct Gradient2 {
    limit: f64,
    min: f64,
    max: f64,
    tolerance: f64,
    long_rtt: Option<f64>,
}

impl Gradient2 {
    /// The algorithm with `config`'s bounds; `min` is at least 1, `max` at least
    /// `min`, and `initial` is clamped between them.
    pub fn new(config: &LimitConfig) -> Self {
        let min = config.min.max(1) as f64;
        let max = (config.max as f64).max(min);
        Gradient2 {
            limit: (config.initial as f64).clamp(min, max),
            min,
            max,
            tolerance: (f64::from(config.tolerance_percent) / 100.0).max(1.0),
            long_rtt: None,
        }
    }

    /// The limit now (whole requests).
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// Takes one window: its mean latency (`rtt`, seconds) and the most requests
    /// in flight during it; returns the new limit.
    ///
    /// The long-run average is the latency without queueing: while the limit is
    /// pressed (at least half of it in flight), a latency above the average is
    /// queueing the limit must answer, not a new normal, so it does not raise the
    /// average. Otherwise, under a sustained overload, the average would follow the
    /// growing queue and the limit would grow with it to `max` (Gradient2's drift).
    /// Windows with the limit not pressed move the average either way, so a backend
    /// that became slower raises it as soon as the load eases.
    pub fn update(&mut self, rtt: f64, max_in_flight: usize) -> usize {
        let pressed = (max_in_flight as f64) >= self.limit / 2.0;
        let long = match self.long_rtt {
            None => rtt,
            Some(long) if pressed && rtt > long => long,
            Some(long) => {
                let mut long = long + (rtt - long) / LONG_WINDOWS;
                // Recovering from a spell of high latency: let the average fall fast.
                if long / rtt > 2.0 {
                    long *= 0.95;
                }
                long
            }
        };
        self.long_rtt = Some(long);
        // Nobody pressing on the limit: its latency says nothing about the limit.
        if !pressed {
            return self.limit();
        }
        let gradient = (self.tolerance * long / rtt).clamp(0.5, 1.0);
        let queue = self.limit.sqrt();
        let target = self.limit * gradient + queue;
        self.limit =
            (self.limit * (1.0 - SMOOTHING) + target * SMOOTHING).clamp(self.min, self.max);
        self.limit()
    }
}

/// The edge's limiter: a lock-free admission check against the limit, and the
/// algorithm fed a window of latencies at a time.
pub struct Limiter {
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    window: Mutex<Window>,
    gauge_limit: metrics::Gauge,
    gauge_in_flight: metrics::Gauge,
    refused: metrics::Counter,
}

struct Window {
    algorithm: Gradient2,
    started: Instant,
    samples: u32,
    total: f64,
    max_in_flight: usize,
}

/// A request let in: counts as in flight until [`Permit::done`] or its drop (a
/// cancelled request frees its place, with no latency sample).
pub struct Permit {
    limiter: Arc<Limiter>,
    in_flight: usize,
}

impl Limiter {
    /// A limiter with `config`'s bounds, its gauges registered.
    pub fn new(config: &LimitConfig) -> Arc<Self> {
        let algorithm = Gradient2::new(config);
        let limiter = Limiter {
            limit: AtomicUsize::new(algorithm.limit()),
            in_flight: AtomicUsize::new(0),
            window: Mutex::new(Window {
                algorithm,
                started: Instant::now(),
                samples: 0,
                total: 0.0,
                max_in_flight: 0,
            }),
            gauge_limit: metrics::gauge!(LIMIT),
            gauge_in_flight: metrics::gauge!(IN_FLIGHT),
            refused: metrics::counter!(REFUSED),
        };
        limiter.gauge_limit.set(limiter.limit() as f64);
        limiter.refused.increment(0);
        Arc::new(limiter)
    }

    /// The limit in force.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Requests let in and not done.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Lets a request in, or `None` when the limit is reached (counted as refused).
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= self.limit() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.refused.increment(1);
            return None;
        }
        Some(Permit {
            limiter: self.clone(),
            in_flight: before + 1,
        })
    }

    fn sample(&self, latency: Duration, in_flight: usize) {
        let mut w = self.window.lock();
        w.samples += 1;
        w.total += latency.as_secs_f64();
        w.max_in_flight = w.max_in_flight.max(in_flight);
        let now = Instant::now();
        if w.samples < WINDOW_SAMPLES || now.duration_since(w.started) < WINDOW_MIN {
            return;
        }
        let rtt = (w.total / f64::from(w.samples)).max(1e-6);
        let max_in_flight = w.max_in_flight;
        let limit = w.algorithm.update(rtt, max_in_flight);
        *w = Window {
            algorithm: w.algorithm.clone(),
            started: now,
            samples: 0,
            total: 0.0,
            max_in_flight: 0,
        };
        drop(w);
        self.limit.store(limit, Ordering::Relaxed);
        self.gauge_limit.set(limit as f64);
        self.gauge_in_flight.set(self.in_flight() as f64);
    }
}

impl Permit {
    /// The request is answered after `latency`: one sample for the limit.
    pub fn done(self, latency: Duration) {
        self.limiter.sample(latency, self.in_flight);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Descriptions of the limiter's metrics.
pub fn describe() {
    metrics::describe_gauge!(
        LIMIT,
        "The adaptive concurrency limit of the /lists routes."
    );
    metrics::describe_gauge!(
        IN_FLIGHT,
        "Requests to /lists routes in flight past the limiter."
    );
    metrics::describe_counter!(
        REFUSED,
        "Requests refused by the concurrency limit (503, certainly not applied)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(initial: usize, min: usize, max: usize) -> LimitConfig {
        LimitConfig {
            enabled: true,
            initial,
            min,
            max,
            tolerance_percent: 150,
        }
    }

    #[test]
    fn steady_latency_under_pressure_grows_the_limit() {
        let mut g = Gradient2::new(&config(20, 1, 1000));
        let mut last = g.limit();
        for _ in 0..50 {
            let l = g.update(0.001, last);
            assert!(l >= last);
            last = l;
        }
        assert!(last > 40, "{last}");
    }

    #[test]
    fn a_jump_in_latency_shrinks_the_limit_but_never_below_the_floor() {
        let mut g = Gradient2::new(&config(200, 150, 1000));
        for _ in 0..20 {
            g.update(0.001, 1000);
        }
        let before = g.limit();
        for _ in 0..5 {
            g.update(0.050, 1000);
        }
        assert!(g.limit() < before * 3 / 4, "{} vs {before}", g.limit());
        for _ in 0..5 {
            g.update(0.050, 1000);
        }
        assert!(g.limit() >= 150);
    }

    #[test]
    fn a_sustained_overload_does_not_drift_the_limit_up() {
        // A server that completes 10,000 requests/s: with `limit` in flight a
        // request waits about `limit / 10,000` s. Without queueing it takes 1 ms.
        let mut g = Gradient2::new(&config(20, 1, 4096));
        for _ in 0..20 {
            g.update(0.001, 5);
        }
        for _ in 0..2000 {
            let limit = g.limit();
            let rtt = (limit as f64 / 10_000.0).max(0.001);
            g.update(rtt, limit);
        }
        // 1.5x the latency without queueing is 15 requests in flight; the limit
        // stays near it instead of following the queue up to 4096.
        assert!(g.limit() <= 40, "{}", g.limit());
    }

    #[test]
    fn an_eased_load_lets_a_slower_backend_raise_the_baseline() {
        let mut g = Gradient2::new(&config(100, 1, 1000));
        for _ in 0..20 {
            g.update(0.001, 10);
        }
        // The backend now takes 10 ms without queueing; the load is light.
        for _ in 0..100 {
            g.update(0.010, 10);
        }
        // Pressed at that latency, the limit grows again: 10 ms is the new normal.
        let before = g.limit();
        for _ in 0..20 {
            let l = g.limit();
            g.update(0.010, l);
        }
        assert!(g.limit() > before, "{} vs {before}", g.limit());
    }

    #[test]
    fn an_idle_limit_does_not_move() {
        let mut g = Gradient2::new(&config(100, 1, 1000));
        g.update(0.001, 100);
        let l = g.limit();
        assert_eq!(g.update(0.5, 3), l);
    }

    #[test]
    fn bounds_are_kept_whatever_the_config() {
        let g = Gradient2::new(&config(5000, 0, 10));
        assert_eq!(g.limit(), 10);
        let g = Gradient2::new(&config(0, 0, 0));
        assert_eq!(g.limit(), 1);
    }

    #[test]
    fn requests_beyond_the_limit_are_refused_until_one_is_done() {
        let limiter = Limiter::new(&config(2, 2, 2));
        let a = limiter.try_acquire().unwrap();
        let _b = limiter.try_acquire().unwrap();
        assert!(limiter.try_acquire().is_none());
        assert_eq!(limiter.in_flight(), 2);
        a.done(Duration::from_millis(1));
        assert!(limiter.try_acquire().is_some());
    }

    #[test]
    fn a_dropped_permit_frees_its_place() {
        let limiter = Limiter::new(&config(1, 1, 1));
        let a = limiter.try_acquire().unwrap();
        drop(a);
        assert_eq!(limiter.in_flight(), 0);
        assert!(limiter.try_acquire().is_some());
    }
}
