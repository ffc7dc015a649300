//! The database's metrics: the names its workers record under (stores, store
//! errors, lists held unsaved, group-commit size and latency) and their
//! descriptions for the recorder.

/// Stores completed (ok or not).
pub const STORES: &str = "sluicegate_db_stores_total";
/// Stores that failed in the backend.
pub const STORE_ERRORS: &str = "sluicegate_db_store_errors_total";
/// Lists held in the database workers' memory because their store failed
/// (0 when storage is healthy).
pub const UNSAVED_LISTS: &str = "sluicegate_db_unsaved_lists";
/// Stores made durable by one commit (one batch, one sync where the backend can).
pub const COMMIT_WRITES: &str = "sluicegate_db_commit_writes";
/// How long one commit (a batch of stores) took.
pub const COMMIT_SECONDS: &str = "sluicegate_db_commit_duration_seconds";

/// Describes the database's metrics to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(STORES, "Stores completed (ok or not).");
    metrics::describe_counter!(STORE_ERRORS, "Stores that failed in the backend.");
    metrics::describe_gauge!(
        UNSAVED_LISTS,
        "Lists held in memory because their store failed (0 when storage is healthy)."
    );
    metrics::describe_histogram!(
        COMMIT_WRITES,
        metrics::Unit::Count,
        "Stores made durable by one commit (group commit batch size)."
    );
    metrics::describe_histogram!(
        COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "Latency of one commit of a batch of stores."
    );
}
