//! How long the tests wait for anything.

use std::time::Duration;

/// Upper bound for anything the tests wait for; only reached when something is broken.
pub const PATIENCE: Duration = Duration::from_secs(60);
