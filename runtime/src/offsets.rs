//! Which offset a partition may commit while its records finish out of order.
//!
//! Records of a partition are started in offset order but may finish in any order (deliveries to
//! different destinations run concurrently). Committing past an unfinished record would lose it on
//! a crash, so the committable position is the lowest unfinished offset, or one past the highest
//! started offset when nothing is unfinished.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
struct Partition {
    unfinished: BTreeSet<i64>,
    highest_started: Option<i64>,
}

/// Tracks started and finished offsets per (topic, partition).
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<(String, i32), Partition>,
}

impl OffsetTracker {
    /// Records that work on `offset` started.
    pub fn start(&mut self, topic: &str, partition: i32, offset: i64) {
        let entry = self
            .partitions
            .entry((topic.to_owned(), partition))
            .or_default();
        entry.unfinished.insert(offset);
        entry.highest_started = entry.highest_started.max(Some(offset));
    }

    /// Records that work on `offset` finished and returns the position that may now be committed
    /// (the next offset to read), if finishing it moved that position.
    pub fn finish(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let entry = self.partitions.get_mut(&(topic.to_owned(), partition))?;
        let was_lowest = entry.unfinished.first() == Some(&offset);
        if !entry.unfinished.remove(&offset) || !was_lowest {
            return None;
        }
        match entry.unfinished.first() {
            Some(lowest) => Some(*lowest),
            None => entry.highest_started.map(|highest| highest + 1),
        }
    }

    /// How many records are unfinished across all partitions.
    pub fn unfinished(&self) -> usize {
        self.partitions.values().map(|p| p.unfinished.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_up_to_the_lowest_unfinished_offset() {
        let mut tracker = OffsetTracker::default();
        for offset in 10..=12 {
            tracker.start("t", 0, offset);
        }
        assert_eq!(tracker.finish("t", 0, 11), None, "10 is still unfinished");
        assert_eq!(tracker.finish("t", 0, 12), None, "10 is still unfinished");
        assert_eq!(tracker.finish("t", 0, 10), Some(13));
        assert_eq!(tracker.unfinished(), 0);
    }

    #[test]
    fn moves_to_the_next_unfinished_offset() {
        let mut tracker = OffsetTracker::default();
        for offset in [3, 5, 8] {
            tracker.start("t", 1, offset);
        }
        assert_eq!(tracker.finish("t", 1, 3), Some(5));
        assert_eq!(tracker.finish("t", 1, 5), Some(8));
    }

    #[test]
    fn partitions_are_independent() {
        let mut tracker = OffsetTracker::default();
        tracker.start("t", 0, 1);
        tracker.start("t", 1, 7);
        assert_eq!(tracker.finish("t", 1, 7), Some(8));
        assert_eq!(tracker.unfinished(), 1);
        assert_eq!(tracker.finish("other", 0, 1), None, "unknown topic");
    }
}
