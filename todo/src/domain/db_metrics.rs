//! The database's metrics: the names its workers and the SQLite writer record
//! under (stores, store errors, lists held unsaved, group-commit size and latency,
//! transactions and their size, the commit window) and their descriptions for the
//! recorder.

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

/// Transactions the SQLite writer committed or tried (`rate()` of it: commits/s).
pub const TRANSACTIONS: &str = "sluicegate_db_transactions_total";
/// List writes in one SQLite transaction (writes per commit).
pub const TRANSACTION_WRITES: &str = "sluicegate_db_transaction_writes";
/// The SQLite writer's commit window now (0 while durable writes arrive).
pub const COMMIT_WINDOW_SECONDS: &str = "sluicegate_db_commit_window_seconds";

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
    metrics::describe_counter!(
        TRANSACTIONS,
        "Transactions the SQLite writer committed or tried (rate: commits/s)."
    );
    metrics::describe_histogram!(
        TRANSACTION_WRITES,
        metrics::Unit::Count,
        "List writes in one SQLite transaction (writes per commit)."
    );
    metrics::describe_gauge!(
        COMMIT_WINDOW_SECONDS,
        metrics::Unit::Seconds,
        "The SQLite writer's commit window: how long it waits for more batches when nobody waits for durability."
    );
}
