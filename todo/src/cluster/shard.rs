//! Lists to shards, and shards to their preferred owner among the live nodes.
//!
//! Every node must compute the same shard for a list, on every build: the hash is
//! 64-bit FNV-1a over the name's bytes, written here because std's `DefaultHasher`
//! may change between Rust releases. The preferred owner of a shard is chosen by
//! rendezvous (highest random weight) hashing, so when a node joins or leaves only
//! the shards it gains or loses move.

use crate::domain::ListName;

/// A node's stable name in the cluster (from config; unique among nodes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub String);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One shard: lists are grouped into a fixed number of them, each held by one lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

/// How lists map to shards: a fixed shard count, the same on every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardMap {
    shards: u32,
}

/// FNV-1a, 64 bits: stable across builds and platforms.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// MurmurHash3's 64-bit finalizer: FNV-1a of short, similar inputs (node ids that
/// differ in one character) leaves its high bits correlated, which skews rendezvous
/// weights; this spreads every input bit over the whole word.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl ShardMap {
    /// The default shard count: about ten times the most nodes a cluster is
    /// expected to run, as Akka's sharding guide advises.
    pub const DEFAULT_SHARDS: u32 = 256;

    /// A map with `shards` shards; `None` when `shards` is 0.
    pub fn new(shards: u32) -> Option<Self> {
        (shards > 0).then_some(Self { shards })
    }

    /// How many shards there are.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The shard of `list`.
    pub fn shard_of(&self, list: &ListName) -> ShardId {
        ShardId((fnv1a(&[list.as_str().as_bytes()]) % u64::from(self.shards)) as u32)
    }

    /// The live node that should own `shard`: the one with the highest rendezvous
    /// weight; `None` when `nodes` is empty. Ties (equal hashes) go to the smaller id.
    pub fn preferred_owner<'a>(&self, shard: ShardId, nodes: &'a [NodeId]) -> Option<&'a NodeId> {
        let weight = |n: &NodeId| mix(fnv1a(&[n.0.as_bytes(), &shard.0.to_le_bytes()]));
        nodes
            .iter()
            .max_by(|a, b| weight(a).cmp(&weight(b)).then_with(|| b.cmp(a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ListName {
        ListName::new(s).expect("valid list name")
    }

    #[test]
    fn the_shard_of_a_list_never_changes_between_builds() {
        // Pinned values: a change here would move every stored list to another shard.
        let map = ShardMap::new(256).expect("non-zero");
        assert_eq!(fnv1a(&[b"bob"]), 0xcd55_619b_c6d0_2091, "FNV-1a of \"bob\"");
        assert_eq!(map.shard_of(&name("bob")), ShardId(0x91));
    }

    #[test]
    fn lists_spread_over_every_shard() {
        let map = ShardMap::new(16).expect("non-zero");
        let mut counts = [0u32; 16];
        for i in 0..1600 {
            counts[map.shard_of(&name(&format!("list-{i}"))).0 as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50 && c < 150), "{counts:?}");
    }

    #[test]
    fn a_leaving_node_moves_only_its_own_shards() {
        let map = ShardMap::new(256).expect("non-zero");
        let three: Vec<NodeId> = ["a", "b", "c"]
            .iter()
            .map(|n| NodeId(n.to_string()))
            .collect();
        let two = &three[..2];
        let mut owned_by_c = 0;
        for s in 0..256 {
            let before = map.preferred_owner(ShardId(s), &three).expect("nodes");
            let after = map.preferred_owner(ShardId(s), two).expect("nodes");
            if before.0 == "c" {
                owned_by_c += 1;
            } else {
                assert_eq!(before, after, "shard {s} moved though its owner stayed");
            }
        }
        assert!(
            (40..130).contains(&owned_by_c),
            "c preferred for {owned_by_c} of 256"
        );
    }

    #[test]
    fn three_nodes_get_about_a_third_of_the_shards_each() {
        let map = ShardMap::new(256).expect("non-zero");
        let nodes: Vec<NodeId> = ["n1", "n2", "n3"]
            .iter()
            .map(|n| NodeId(n.to_string()))
            .collect();
        let mut counts = std::collections::HashMap::new();
        for s in 0..256 {
            *counts
                .entry(map.preferred_owner(ShardId(s), &nodes).expect("nodes"))
                .or_insert(0) += 1;
        }
        // 85 expected; a fair split stays within about three standard deviations (7.5).
        assert!(
            counts.values().all(|&c| (63..=107).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn zero_shards_is_refused() {
        assert_eq!(ShardMap::new(0), None);
    }
}
