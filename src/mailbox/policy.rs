//! The overflow policy: what a mailbox does when it is full, as a plain value
//! that can be built in code, read from a TOML file, or swapped on a live mailbox.

use std::fmt;
use std::time::Duration;

/// What a mailbox does when a message arrives and the queue is full.
///
/// Every bounded policy carries its `capacity` (at least 1). Durations are written
/// in config files in humantime form (`"5ms"`, `"2s"`).
///
/// With the `serde` feature a policy reads from a config file:
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use sluicegate::mailbox::Policy;
/// let p: Policy = toml::from_str("policy = \"drop_oldest\"\ncapacity = 64").unwrap();
/// assert_eq!(p, Policy::DropOldest { capacity: 64 });
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum Policy {
    /// Never full: every message is accepted. Memory grows with the backlog.
    Unbounded,
    /// When full, the incoming message is refused and handed back to the sender.
    DropNewest {
        /// Most messages queued at once.
        capacity: usize,
    },
    /// When full, the oldest queued message is evicted (and handed to the
    /// dead-letter handler) to make room for the new one.
    DropOldest {
        /// Most messages queued at once.
        capacity: usize,
    },
    /// When full, the sender waits for space (FIFO among waiting senders),
    /// at most `send_timeout` if one is set.
    Block {
        /// Most messages queued at once.
        capacity: usize,
        /// How long `send` may wait for space before giving the message back.
        #[cfg_attr(
            feature = "serde",
            serde(
                default,
                with = "humantime_serde",
                skip_serializing_if = "Option::is_none"
            )
        )]
        send_timeout: Option<Duration>,
    },
    /// CoDel (RFC 8289) on sojourn time at dequeue: sheds from the head while the
    /// queue stands above `target` for longer than `interval`; refuses at `capacity`.
    Codel {
        /// Most messages queued at once; beyond it, new messages are refused.
        capacity: usize,
        /// Acceptable standing sojourn time.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        target: Duration,
        /// How long sojourn must stay above `target` before shedding starts.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        interval: Duration,
    },
    /// A keyed message replaces the queued message with the same key (which keeps its
    /// place); when full of distinct keys, the sender waits like [`Policy::Block`],
    /// but the policy sets no limit on the wait (bound it with
    /// [`Sender::send_timeout`](super::Sender::send_timeout)).
    Coalesce {
        /// Most messages queued at once.
        capacity: usize,
    },
}

impl Policy {
    /// The policy's name as written in config files and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Unbounded => "unbounded",
            Policy::DropNewest { .. } => "drop_newest",
            Policy::DropOldest { .. } => "drop_oldest",
            Policy::Block { .. } => "block",
            Policy::Codel { .. } => "codel",
            Policy::Coalesce { .. } => "coalesce",
        }
    }

    /// The capacity, or `None` for [`Policy::Unbounded`].
    pub fn capacity(&self) -> Option<usize> {
        match *self {
            Policy::Unbounded => None,
            Policy::DropNewest { capacity }
            | Policy::DropOldest { capacity }
            | Policy::Block { capacity, .. }
            | Policy::Codel { capacity, .. }
            | Policy::Coalesce { capacity } => Some(capacity),
        }
    }

    /// Whether every message offered is eventually delivered or merged into a newer
    /// one with its key: never refused, dropped, shed or timed out by the policy
    /// (`unbounded`, `block` without a send timeout, `coalesce`). Deadlines still
    /// expire messages under any policy.
    pub fn never_drops(&self) -> bool {
        matches!(
            self,
            Policy::Unbounded
                | Policy::Block {
                    send_timeout: None,
                    ..
                }
                | Policy::Coalesce { .. }
        )
    }

    /// Checks the parameters: capacity at least 1, CoDel durations non-zero.
    ///
    /// # Errors
    ///
    /// [`InvalidPolicy`], whose message names the parameter, its value and what is
    /// allowed.
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        if let Some(0) = self.capacity() {
            return Err(InvalidPolicy(format!(
                "capacity = 0 is not allowed for policy \"{}\": it must be at least 1",
                self.name()
            )));
        }
        if let Policy::Codel {
            target, interval, ..
        } = *self
        {
            if target.is_zero() {
                return Err(InvalidPolicy(
                    "target = \"0s\" is not allowed for policy \"codel\": it must be above zero"
                        .into(),
                ));
            }
            if interval < target {
                return Err(InvalidPolicy(format!(
                    "interval = \"{}\" is shorter than target = \"{}\" for policy \"codel\": \
                     interval must be at least target",
                    humantime::format_duration(interval),
                    humantime::format_duration(target)
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Policy::Unbounded => f.write_str("unbounded"),
            Policy::DropNewest { capacity } => write!(f, "drop_newest(capacity={capacity})"),
            Policy::DropOldest { capacity } => write!(f, "drop_oldest(capacity={capacity})"),
            Policy::Block {
                capacity,
                send_timeout,
            } => match send_timeout {
                Some(t) => write!(
                    f,
                    "block(capacity={capacity}, send_timeout={})",
                    humantime::format_duration(t)
                ),
                None => write!(f, "block(capacity={capacity})"),
            },
            Policy::Codel {
                capacity,
                target,
                interval,
            } => write!(
                f,
                "codel(capacity={capacity}, target={}, interval={})",
                humantime::format_duration(target),
                humantime::format_duration(interval)
            ),
            Policy::Coalesce { capacity } => write!(f, "coalesce(capacity={capacity})"),
        }
    }
}

/// What a policy does when the queue is full: the one decision where policies differ
/// in kind (see [`Behaviour`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhenFull {
    /// Never full (`unbounded`).
    Grow,
    /// Evict the oldest queued message (`drop_oldest`).
    EvictOldest,
    /// Refuse the newcomer (`drop_newest`, `codel`).
    Refuse,
    /// Park the sender until a slot frees (`block`, `coalesce`).
    Wait,
}

/// A policy as the mailbox core consults it: derived once from a [`Policy`] (and
/// again on a live change), so that the core asks these few fields instead of
/// matching on the policy at every decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Behaviour {
    /// Most messages queued at once (`usize::MAX` when unbounded).
    pub(crate) capacity: usize,
    /// What happens to a message that finds the queue full.
    pub(crate) when_full: WhenFull,
    /// Whether a keyed message replaces the queued one with its key.
    pub(crate) coalesces: bool,
    /// CoDel's `(target, interval)`: then every message is stamped and CoDel runs at
    /// dequeue.
    pub(crate) codel: Option<(Duration, Duration)>,
}

impl Policy {
    /// The policy's [`Behaviour`].
    pub(crate) fn behaviour(&self) -> Behaviour {
        let (when_full, codel) = match *self {
            Policy::Unbounded => (WhenFull::Grow, None),
            Policy::DropOldest { .. } => (WhenFull::EvictOldest, None),
            Policy::DropNewest { .. } => (WhenFull::Refuse, None),
            Policy::Codel {
                target, interval, ..
            } => (WhenFull::Refuse, Some((target, interval))),
            Policy::Block { .. } | Policy::Coalesce { .. } => (WhenFull::Wait, None),
        };
        Behaviour {
            capacity: self.capacity().unwrap_or(usize::MAX),
            when_full,
            coalesces: matches!(self, Policy::Coalesce { .. }),
            codel,
        }
    }
}

/// A policy whose parameters are out of range; the message names the parameter,
/// its value and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPolicy(pub String);

impl fmt::Display for InvalidPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidPolicy {}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "serde")]
    #[test]
    fn parses_every_policy_from_toml() {
        let cases = [
            ("policy = \"unbounded\"", Policy::Unbounded),
            (
                "policy = \"drop_newest\"\ncapacity = 3",
                Policy::DropNewest { capacity: 3 },
            ),
            (
                "policy = \"block\"\ncapacity = 3\nsend_timeout = \"50ms\"",
                Policy::Block {
                    capacity: 3,
                    send_timeout: Some(Duration::from_millis(50)),
                },
            ),
            (
                "policy = \"codel\"\ncapacity = 9\ntarget = \"5ms\"\ninterval = \"100ms\"",
                Policy::Codel {
                    capacity: 9,
                    target: Duration::from_millis(5),
                    interval: Duration::from_millis(100),
                },
            ),
        ];
        for (text, want) in cases {
            let got: Policy = toml::from_str(text).unwrap();
            assert_eq!(got, want);
            let back: Policy = toml::from_str(&toml::to_string(&got).unwrap()).unwrap();
            assert_eq!(back, want);
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn refuses_unknown_fields_and_policies() {
        let err = toml::from_str::<Policy>("policy = \"drop_newest\"\ncapacity = 3\ncapcity = 4")
            .unwrap_err()
            .to_string();
        assert!(err.contains("capcity"), "{err}");
        let err = toml::from_str::<Policy>("policy = \"lifo\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lifo") && err.contains("drop_oldest"), "{err}");
    }

    #[test]
    fn validate_names_the_bad_parameter() {
        let err = Policy::DropOldest { capacity: 0 }.validate().unwrap_err();
        assert!(err.0.contains("capacity = 0"));
        let err = Policy::Codel {
            capacity: 1,
            target: Duration::from_millis(10),
            interval: Duration::from_millis(1),
        }
        .validate()
        .unwrap_err();
        assert!(err.0.contains("interval"));
    }
}
