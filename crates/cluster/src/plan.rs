//! The pure part of partition ownership: given what this node holds, which partitions nobody
//! holds and how many nodes are alive, what should it take or give up this tick.
//!
//! Each node aims at its fair share, `ceil(partitions / live nodes)`. A node below its share
//! takes free partitions; a node above it gives up the excess, one partition a tick, so a node
//! that joins gets work without every partition moving at once. Races between nodes are
//! settled by the lease store (compare-and-set), never here.

use std::collections::BTreeSet;

use crate::partition::{Partition, PartitionCount};

/// What one node should do this tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Free partitions to try to take, in the order to try them.
    pub acquire: Vec<Partition>,
    /// Held partitions to give up.
    pub release: Vec<Partition>,
}

/// The most partitions one node should hold when `live_nodes` share `count`.
pub fn fair_share(count: PartitionCount, live_nodes: usize) -> usize {
    let nodes = live_nodes.max(1);
    usize::from(count.get()).div_ceil(nodes)
}

/// Decide this tick's moves.
///
/// `rotation` spreads nodes' first attempts over different free partitions (each node passes
/// a number derived from its id), so nodes starting together do not all race for partition 0.
pub fn plan(
    count: PartitionCount,
    held: &BTreeSet<Partition>,
    free: &BTreeSet<Partition>,
    live_nodes: usize,
    rotation: u16,
) -> Plan {
    let share = fair_share(count, live_nodes);
    let mut out = Plan::default();
    if held.len() < share {
        let want = share - held.len();
        let n = usize::from(count.get());
        let start = usize::from(rotation) % n;
        out.acquire = (0..n)
            .map(|i| Partition(((start + i) % n) as u16))
            .filter(|p| free.contains(p) && !held.contains(p))
            .take(want)
            .collect();
    } else if held.len() > share && live_nodes > 1 {
        // Give up the highest-numbered one; which one does not matter, only that it is one.
        out.release = held.iter().next_back().copied().into_iter().collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ps: impl IntoIterator<Item = u16>) -> BTreeSet<Partition> {
        ps.into_iter().map(Partition).collect()
    }

    fn count(n: u16) -> PartitionCount {
        PartitionCount::new(n).expect("non-zero")
    }

    #[test]
    fn a_lone_node_takes_everything() {
        let p = plan(count(4), &set([]), &set(0..4), 1, 0);
        assert_eq!(
            p.acquire,
            vec![Partition(0), Partition(1), Partition(2), Partition(3)]
        );
        assert!(p.release.is_empty());
    }

    #[test]
    fn a_node_takes_only_its_fair_share() {
        let p = plan(count(12), &set([]), &set(0..12), 3, 5);
        assert_eq!(p.acquire.len(), 4);
        assert_eq!(p.acquire[0], Partition(5), "starts at its rotation");
    }

    #[test]
    fn a_node_over_its_share_gives_up_one_a_tick() {
        let p = plan(count(12), &set(0..12), &set([]), 2, 0);
        assert_eq!(p.release, vec![Partition(11)]);
        assert!(p.acquire.is_empty());
    }

    #[test]
    fn a_node_alone_never_gives_up_work() {
        // Seeing one live node while holding more than the share only happens when it is the
        // only one; giving work up then would leave it unowned.
        let p = plan(count(4), &set(0..4), &set([]), 1, 0);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn when_a_node_dies_the_survivors_share_grows_to_cover_it() {
        // 3 nodes held 4 each of 12; one died and its 4 expired; 2 remain with share 6.
        let held = set([0, 1, 2, 3]);
        let p = plan(count(12), &held, &set([8, 9, 10, 11]), 2, 0);
        assert_eq!(p.acquire, vec![Partition(8), Partition(9)]);
    }

    #[test]
    fn only_free_partitions_are_tried() {
        let p = plan(count(6), &set([0]), &set([3]), 2, 0);
        assert_eq!(p.acquire, vec![Partition(3)]);
    }

    #[test]
    fn shares_cover_every_partition() {
        for partitions in 1..=70u16 {
            for nodes in 1..=9usize {
                assert!(fair_share(count(partitions), nodes) * nodes >= usize::from(partitions));
            }
        }
    }
}
