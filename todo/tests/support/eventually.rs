//! Waiting for an effect instead of sleeping for it: check a condition until it holds,
//! first often, then less often, and give up after [`PATIENCE`].

use std::time::Duration;

/// Upper bound for anything the tests wait for; only reached when something is broken.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The pause after the first failed check; it doubles after each one, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause between two checks.
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// The pauses between checks: [`FIRST_PAUSE`], doubling up to [`MAX_PAUSE`].
fn pauses() -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(FIRST_PAUSE), |p| Some((*p * 2).min(MAX_PAUSE)))
}

/// Calls `check` until it gives `Some`, and returns that; `None` when it still gives
/// `None` once [`PATIENCE`] has passed. Measured and slept on tokio's clock, so it
/// also works under paused time.
pub async fn poll_until<T>(mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for pause in pauses() {
        if let Some(found) = check().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    None
}

/// [`poll_until`] for a plain thread: the same checks, on the system clock.
pub fn poll_until_blocking<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + PATIENCE;
    for pause in pauses() {
        if let Some(found) = check() {
            return Some(found);
        }
        if std::time::Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(pause);
    }
    None
}

/// Waits until `cond` holds; panics naming `what` when it does not within [`PATIENCE`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    if poll_until(async || cond().then_some(())).await.is_none() {
        panic!("never happened within {PATIENCE:?}: {what}");
    }
}
