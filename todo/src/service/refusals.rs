//! Logging of refused requests (5xx answers): at most one line per second per
//! (route, reason), with the count since the last line, the list and the cause;
//! a list whose stored data is damaged is logged at error once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// How often a (route, reason) may log a line.
pub const LOG_EVERY: Duration = Duration::from_secs(1);

/// Why a request was refused; put on the response by `ApiError` for every 5xx.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// Short reason: `overloaded_rejected`, `timeout`, `unavailable`, `not_durable`,
    /// `damaged`, `crashed`, ...
    pub reason: &'static str,
    /// The error message answered.
    pub message: String,
}

/// One log line to write: `count` refusals of `route` for `reason` since the last line.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// The route pattern, e.g. `/lists/{list}/entries`.
    pub route: String,
    /// The refusal's reason.
    pub reason: &'static str,
    /// Refusals this line stands for.
    pub count: u64,
    /// The last refused request's list.
    pub list: String,
    /// The last refused request's status.
    pub status: u16,
    /// The last refused request's message.
    pub message: String,
}

#[derive(Default)]
struct Window {
    last_line: Option<Instant>,
    pending: u64,
    list: String,
    status: u16,
    message: String,
}

/// The per-(route, reason) rate limit of refusal lines; pure (time is passed in).
#[derive(Default)]
pub struct Limiter {
    windows: HashMap<(String, &'static str), Window>,
}

impl Limiter {
    /// Counts one refusal at `now`; returns a line to log when the key has not
    /// logged within [`LOG_EVERY`], else keeps it for a later [`Limiter::flush`].
    pub fn record(
        &mut self,
        route: &str,
        list: &str,
        status: u16,
        refusal: &Refusal,
        now: Instant,
    ) -> Option<Line> {
        let key = (route.to_string(), refusal.reason);
        let w = self.windows.entry(key).or_default();
        w.pending += 1;
        w.list = list.to_string();
        w.status = status;
        w.message.clone_from(&refusal.message);
        let due = w
            .last_line
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY);
        due.then(|| take(route, refusal.reason, w, now))
    }

    /// Lines for every key with refusals not logged yet whose last line is at least
    /// [`LOG_EVERY`] old; keys quiet for a while are forgotten.
    pub fn flush(&mut self, now: Instant) -> Vec<Line> {
        let mut lines = Vec::new();
        self.windows.retain(|(route, reason), w| {
            let age = w.last_line.map_or(LOG_EVERY, |t| now.duration_since(t));
            if w.pending > 0 && age >= LOG_EVERY {
                lines.push(take(route, reason, w, now));
                true
            } else {
                w.pending > 0 || age < 60 * LOG_EVERY
            }
        });
        lines
    }
}

fn take(route: &str, reason: &'static str, w: &mut Window, now: Instant) -> Line {
    let line = Line {
        route: route.to_string(),
        reason,
        count: w.pending,
        list: w.list.clone(),
        status: w.status,
        message: w.message.clone(),
    };
    w.pending = 0;
    w.last_line = Some(now);
    line
}

/// The service's refusal log: the limiter, and the damaged lists already reported.
#[derive(Default)]
pub struct RefusalLog {
    limiter: Mutex<Limiter>,
    damaged: Mutex<HashSet<String>>,
}

/// At most this many damaged lists are remembered (each logged once).
const MAX_DAMAGED_REMEMBERED: usize = 10_000;

impl RefusalLog {
    /// A log whose pending counts are written every quarter of [`LOG_EVERY`] by a
    /// task that ends with the log.
    pub fn start() -> Arc<RefusalLog> {
        let log = Arc::new(RefusalLog::default());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak: Weak<RefusalLog> = Arc::downgrade(&log);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(LOG_EVERY / 4);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(log) = weak.upgrade() else { return };
                    let lines = log.lock_limiter().flush(Instant::now());
                    lines.iter().for_each(emit);
                }
            });
        }
        log
    }

    fn lock_limiter(&self) -> std::sync::MutexGuard<'_, Limiter> {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one refused request.
    pub fn record(&self, route: &str, list: &str, status: u16, refusal: &Refusal) {
        if refusal.reason == "damaged" {
            let mut seen = self.damaged.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() < MAX_DAMAGED_REMEMBERED && seen.insert(list.to_string()) {
                tracing::error!(
                    list,
                    route,
                    status,
                    "stored data of list {list:?} is damaged; its requests fail until the data is repaired or removed: {}",
                    refusal.message
                );
            } else {
                tracing::debug!(
                    list,
                    route,
                    status,
                    reason = refusal.reason,
                    "refused: {}",
                    refusal.message
                );
            }
            return;
        }
        let line = self
            .lock_limiter()
            .record(route, list, status, refusal, Instant::now());
        if let Some(line) = line {
            emit(&line);
        }
    }
}

fn emit(line: &Line) {
    let Line {
        route,
        reason,
        count,
        list,
        status,
        message,
    } = line;
    if *status == 500 {
        tracing::error!(
            route,
            reason,
            count,
            list,
            status,
            "{count} request(s) failed; last: {message}"
        );
    } else {
        tracing::warn!(
            route,
            reason,
            count,
            list,
            status,
            "{count} request(s) refused; last: {message}"
        );
    }
}

/// The list named in a `/lists/{list}/...` path, percent-decoded; `-` otherwise.
pub(super) fn list_of(path: &str) -> String {
    match path
        .strip_prefix("/lists/")
        .and_then(|rest| rest.split('/').next())
    {
        Some(seg) => percent_encoding::percent_decode_str(seg)
            .decode_utf8_lossy()
            .chars()
            .take(256)
            .collect(),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(reason: &'static str) -> Refusal {
        Refusal {
            reason,
            message: format!("{reason} message"),
        }
    }

    #[test]
    fn one_line_per_second_per_route_and_reason_with_the_count() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let r = refusal("overloaded_rejected");
        // The first refusal logs at once.
        let first = l.record("/a", "x", 503, &r, t0).expect("first line");
        assert_eq!(first.count, 1);
        // 999 more within the second: no line, and no flush before the second is over.
        for i in 1..1000u64 {
            let at = t0 + Duration::from_micros(i * 900);
            assert_eq!(l.record("/a", "y", 503, &r, at), None);
        }
        assert!(l.flush(t0 + Duration::from_millis(999)).is_empty());
        // Another reason and another route have their own windows.
        assert!(l.record("/a", "x", 504, &refusal("timeout"), t0).is_some());
        assert!(l.record("/b", "x", 503, &r, t0).is_some());
        // After a second the flush writes the 999 as one line naming the last list.
        let lines = l.flush(t0 + LOG_EVERY);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].count, 999);
        assert_eq!(lines[0].list, "y");
        assert_eq!(lines[0].route, "/a");
        assert_eq!(lines[0].message, "overloaded_rejected message");
        // Nothing pending: nothing more, and the next refusal waits for its second.
        assert!(l.flush(t0 + 3 * LOG_EVERY / 2).is_empty());
        assert_eq!(l.record("/a", "z", 503, &r, t0 + 3 * LOG_EVERY / 2), None);
        let later = l
            .record("/a", "z", 503, &r, t0 + 2 * LOG_EVERY)
            .expect("due");
        assert_eq!(later.count, 2);
    }

    #[test]
    fn the_list_is_taken_from_the_path_percent_decoded() {
        assert_eq!(list_of("/lists/a%2Fb/entries/3"), "a/b");
        assert_eq!(list_of("/lists/bob/entries"), "bob");
        assert_eq!(list_of("/metrics"), "-");
    }
}
