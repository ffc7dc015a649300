//! The cluster's Prometheus metric names, described once at startup.

/// Shard leases this node holds now (gauge).
pub const LEASES_HELD: &str = "sluicegate_cluster_leases_held";
/// Successful shard claims by this node (counter).
pub const CLAIMS: &str = "sluicegate_cluster_lease_claims_total";
/// Claims of a shard whose lease another node held and let expire (counter).
pub const TAKEOVERS: &str = "sluicegate_cluster_takeovers_total";
/// Leases this node stopped serving without releasing them, by `reason`
/// (`expired`: not renewed in time; `refused`: a renewal found a newer epoch;
/// `fenced`: a store was fenced) (counter).
pub const LEASES_LOST: &str = "sluicegate_cluster_leases_lost_total";
/// Shards this node released to their preferred owner (counter).
pub const HANDOFFS: &str = "sluicegate_cluster_handoffs_total";
/// List stores and deletes the database refused because a newer owner holds the
/// list (counter).
pub const FENCED_WRITES: &str = "sluicegate_cluster_fenced_writes_total";
/// Lists activated (loaded under this node's epoch) on this node (counter).
pub const ACTIVATIONS: &str = "sluicegate_cluster_activations_total";
/// Requests this node forwarded to a list's owner, by `outcome` (`ok`: the owner
/// answered; `error`: it could not be reached) (counter).
pub const FORWARDS: &str = "sluicegate_cluster_forwards_total";
/// Time to forward a request and get the owner's answer (histogram, seconds).
pub const FORWARD_SECONDS: &str = "sluicegate_cluster_forward_seconds";

/// Registers every cluster metric's help text and exports the counters at 0.
pub fn describe() {
    metrics::describe_gauge!(LEASES_HELD, "Shard leases this node holds");
    metrics::describe_counter!(CLAIMS, "Successful shard lease claims by this node");
    metrics::describe_counter!(
        TAKEOVERS,
        "Claims of a shard whose lease another node held and let expire"
    );
    metrics::describe_counter!(
        LEASES_LOST,
        "Leases this node stopped serving without releasing them, by reason"
    );
    metrics::describe_counter!(HANDOFFS, "Shards released to their preferred owner");
    metrics::describe_counter!(
        FENCED_WRITES,
        "Stores and deletes refused by the database because a newer owner holds the list"
    );
    metrics::describe_counter!(ACTIVATIONS, "Lists activated on this node");
    metrics::describe_counter!(FORWARDS, "Requests forwarded to a list's owner, by outcome");
    metrics::describe_histogram!(
        FORWARD_SECONDS,
        metrics::Unit::Seconds,
        "Time to forward a request to its owner and get the answer"
    );
    metrics::gauge!(LEASES_HELD).set(0.0);
    for c in [CLAIMS, TAKEOVERS, HANDOFFS, FENCED_WRITES, ACTIVATIONS] {
        metrics::counter!(c).increment(0);
    }
    for reason in ["expired", "refused", "fenced"] {
        metrics::counter!(LEASES_LOST, "reason" => reason).increment(0);
    }
    for outcome in ["ok", "error"] {
        metrics::counter!(FORWARDS, "outcome" => outcome).increment(0);
    }
}
