//! Partitions: which share of the monitoring work a piece of data belongs to.
//!
//! Work is partitioned by the person an order binds (the monitored person), not by case. His
//! devices' fixes and events are evaluated in one place, so one strap cut raises one tamper
//! alert even when he is bound by orders in several cases, and his track (speed, heading,
//! smoothing) is kept once. A protected person's fixes are published to the partition of every
//! person bound by an order that protects her; in the usual case that is one partition.
//!
//! The mapping is a pure function of the person id and the partition count, the same on every
//! node and every version, so nodes agree on it without talking to each other.

use domain::PersonId;

/// How many partitions the cluster's work is split into. Fixed when the cluster is created;
/// a cluster never changes it while running (that would move every person).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionCount(u16);

impl PartitionCount {
    /// The default: enough partitions for work to spread over tens of nodes, few enough that
    /// one node can renew all their leases every tick.
    pub const DEFAULT: PartitionCount = PartitionCount(64);

    /// A count of at least one partition.
    pub fn new(count: u16) -> Option<PartitionCount> {
        (count > 0).then_some(PartitionCount(count))
    }

    pub fn get(self) -> u16 {
        self.0
    }

    /// Every partition, in order.
    pub fn all(self) -> impl Iterator<Item = Partition> {
        (0..self.0).map(Partition)
    }
}

/// One partition of the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition(pub u16);

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The partition that evaluates the orders binding `person`.
///
/// Ids are assigned sequentially by the store, so they are mixed (SplitMix64's finaliser)
/// before the modulo; otherwise a batch of people registered together would land in
/// neighbouring partitions in lockstep with registration order.
pub fn partition_of(person: PersonId, count: PartitionCount) -> Partition {
    let mut z = (person.0 as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // The remainder is below `count`, which is a u16.
    Partition((z % u64::from(count.0)) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_is_stable_across_versions() {
        // Pinned: changing the mapping moves every person to another partition, which a
        // running cluster must never do. If this fails, the change is a breaking one.
        let count = PartitionCount::DEFAULT;
        let got: Vec<u16> = (1..=8)
            .map(|id| partition_of(PersonId(id), count).0)
            .collect();
        assert_eq!(got, PINNED);
    }

    const PINNED: [u16; 8] = [1, 14, 45, 10, 26, 0, 23, 54];

    #[test]
    fn sequential_ids_spread_evenly() {
        let count = PartitionCount::new(16).expect("non-zero");
        let mut per = [0u32; 16];
        for id in 1..=16_000 {
            per[partition_of(PersonId(id), count).0 as usize] += 1;
        }
        // 1,000 expected per partition; a fair hash stays well within ±15 %.
        for (p, n) in per.iter().enumerate() {
            assert!((850..=1150).contains(n), "partition {p} got {n}");
        }
    }

    #[test]
    fn every_partition_is_below_the_count() {
        for count in [1u16, 2, 3, 7, 64, 1000] {
            let c = PartitionCount::new(count).expect("non-zero");
            for id in [i64::MIN, -1, 0, 1, 12345, i64::MAX] {
                assert!(partition_of(PersonId(id), c).0 < count);
            }
        }
        assert!(PartitionCount::new(0).is_none());
    }
}
