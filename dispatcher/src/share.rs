//! Each dispatcher's share of a destination's limits.
//!
//! A destination's jobs are keyed by destination and order key, so they spread over every
//! partition of the deliveries topic and every dispatcher of the group delivers some of them. For
//! `max_in_flight` and the rate limit to hold for all dispatchers together, each instance takes
//! the part of a limit that belongs to the partitions it reads: the limit is dealt out over the
//! partitions (every partition gets `limit / partitions`, and `limit % partitions` of them one
//! more, which ones chosen by the destination, so small limits do not all land on partition 0),
//! and an instance's share is the sum over its partitions. The shares of the instances add up to
//! the limit exactly while every partition has one owner; they are dealt again on every
//! rebalance.
//!
//! One exception keeps every destination deliverable: a share is never below 1, so an instance
//! whose partitions were dealt nothing (possible only for a limit below the number of partitions)
//! still sends one request at a time, and one per minute. Such a limit can be exceeded by one for
//! each such instance.

use hookline_schemas::RateLimit;
use sha2::{Digest as _, Sha256};

/// Which partitions of the deliveries topic this instance reads, of how many.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Part {
    /// The partitions it reads.
    owned: Vec<i32>,
    /// The topic's partitions; 0 when unknown, and then the instance takes whole limits (a
    /// dispatcher that follows no group assignment, as in unit tests).
    total: usize,
}

impl Part {
    /// The part of an instance reading `owned` of `total` partitions.
    pub fn new(mut owned: Vec<i32>, total: usize) -> Self {
        owned.sort_unstable();
        owned.dedup();
        Self { owned, total }
    }

    /// Whole limits: no group to share them with.
    pub fn whole() -> Self {
        Self::default()
    }

    /// This instance's share of `limit` for `destination`: at least 1.
    pub fn share(&self, limit: u32, destination: &str) -> u32 {
        self.dealt(limit, destination).max(1)
    }

    /// What this instance's partitions were dealt of `limit`.
    fn dealt(&self, limit: u32, destination: &str) -> u32 {
        let total = u32::try_from(self.total).unwrap_or(0);
        if total == 0 {
            return limit;
        }
        let (each, extra) = (limit / total, limit % total);
        let first = rotation(destination) % total;
        let dealt: u32 = self
            .owned
            .iter()
            .filter_map(|partition| u32::try_from(*partition).ok())
            .filter(|partition| *partition < total)
            .map(|partition| each + u32::from((partition + total - first) % total < extra))
            .sum();
        dealt
    }

    /// This instance's share of a rate limit: `per_minute` dealt as in [`Self::share`], a
    /// `burst` in the same proportion (at least 1).
    pub fn share_rate(&self, limit: &RateLimit, destination: &str) -> RateLimit {
        let per_minute = self.share(limit.per_minute, destination);
        let burst = limit.burst.map(|burst| {
            let scaled =
                u64::from(burst) * u64::from(per_minute) / u64::from(limit.per_minute.max(1));
            u32::try_from(scaled).unwrap_or(u32::MAX).max(1)
        });
        RateLimit { per_minute, burst }
    }
}

/// Where a destination's extra slots start: the same in every instance and every release.
fn rotation(destination: &str) -> u32 {
    let digest = Sha256::digest(destination.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_limit_however_the_partitions_are_split() {
        for total in 1..=12usize {
            for limit in [1u32, 2, 5, 10, 11, 100] {
                for destination in ["a", "orders", "crm-sync"] {
                    // Two instances, every split of the partitions between them.
                    for split in 0..=total {
                        let first: Vec<i32> = (0..split as i32).collect();
                        let second: Vec<i32> = (split as i32..total as i32).collect();
                        let parts = [first, second].map(|owned| Part::new(owned, total));
                        let dealt: u32 = parts
                            .iter()
                            .map(|part| part.dealt(limit, destination))
                            .sum();
                        assert_eq!(dealt, limit, "{limit} over {total} split at {split}");
                        for part in &parts {
                            let share = part.share(limit, destination);
                            assert_eq!(share, part.dealt(limit, destination).max(1));
                            if limit >= total as u32 && !part.owned.is_empty() {
                                assert!(share == part.dealt(limit, destination), "no floor needed");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_issue_case_ten_in_flight_over_two_dispatchers() {
        let shares: Vec<u32> = [vec![0, 1, 2], vec![3, 4, 5]]
            .into_iter()
            .map(|owned| Part::new(owned, 6).share(10, "d"))
            .collect();
        assert_eq!(shares.iter().sum::<u32>(), 10);
        assert!(
            shares.iter().all(|share| (4..=6).contains(share)),
            "{shares:?}"
        );
    }

    #[test]
    fn an_instance_dealt_nothing_still_sends_one_and_unknown_means_whole() {
        // 1 slot over 6 partitions: five instances get none, and still send one at a time.
        let shares: Vec<u32> = (0..6)
            .map(|partition| Part::new(vec![partition], 6).share(1, "d"))
            .collect();
        assert_eq!(shares, [1; 6]);
        assert_eq!(Part::whole().share(10, "d"), 10);
        assert_eq!(Part::new(vec![0, 1, 2, 3, 4, 5], 6).share(10, "d"), 10);
        assert_eq!(Part::new(Vec::new(), 6).share(10, "d"), 1);
    }

    #[test]
    fn destinations_get_their_extra_slots_on_different_partitions() {
        let starts: std::collections::BTreeSet<u32> = (0..50)
            .map(|n| rotation(&format!("destination-{n}")) % 6)
            .collect();
        assert!(starts.len() > 3, "{starts:?}");
    }

    #[test]
    fn rate_limits_are_shared_with_their_burst() {
        let limit = RateLimit {
            per_minute: 100,
            burst: Some(10),
        };
        let halves =
            [vec![0, 1, 2], vec![3, 4, 5]].map(|owned| Part::new(owned, 6).share_rate(&limit, "d"));
        assert_eq!(halves[0].per_minute + halves[1].per_minute, 100);
        for half in &halves {
            assert_eq!(half.burst, Some(half.per_minute / 10), "{half:?}");
        }
    }
}
