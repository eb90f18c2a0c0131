//! The checker: what a scenario's ledger (every event ingest acknowledged), the receiver's record
//! and the dead letters say, against the suite's assertions. Pure, so it is tested without a
//! broker.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::faults::workload::Kind;
use crate::receiver::TrackedEvent;

/// The longest the pipeline may take to catch up after a fault, in seconds.
pub const DRAIN_BUDGET_S: f64 = 30.0;

/// What a scenario left behind.
#[derive(Debug)]
pub struct Observed<'a> {
    /// Every acknowledged event: sequence number and when its 202 arrived (µs since the epoch).
    pub ledger: &'a [(u64, u64)],
    /// What the receiver got, per event.
    pub tracked: &'a [TrackedEvent],
    /// Events dead-lettered by the processor because a template failed.
    pub render_failed: &'a BTreeSet<u64>,
    /// When the fault ended (µs since the epoch).
    pub fault_end_us: u64,
    /// Most repeats the scenario may cause (see [`crate::faults::scenario`]).
    pub duplicate_bound: u64,
    /// Role processes that exited without being told to.
    pub exited: Vec<String>,
}

/// The figures of one scenario and the assertions it failed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    /// Events ingest answered 202.
    pub acknowledged: u64,
    /// Of those, the valid ones: each owes one delivery.
    pub expected: u64,
    /// Expected events whose delivery arrived.
    pub delivered: u64,
    /// Expected events whose delivery never arrived.
    pub lost: u64,
    /// Some of the lost, for the report.
    pub lost_sample: Vec<u64>,
    /// Deliveries of events ingest did not acknowledge (the answer was lost with a killed
    /// ingest): allowed, at least once says nothing against them.
    pub unacknowledged_delivered: u64,
    /// Deliveries received more than once, counted once per repeat.
    pub duplicates: u64,
    /// Repeats whose `webhook-id` differed from the first delivery's.
    pub duplicates_with_other_id: u64,
    /// Most repeats allowed.
    pub duplicate_bound: u64,
    /// The longest any acknowledged event waited past the later of its 202 and the fault's end,
    /// in seconds; absent when events were lost.
    pub drain_s: Option<f64>,
    /// Not-JSON events ingest acknowledged (it must refuse them).
    pub not_json_acknowledged: u64,
    /// Events with a failing template that were acknowledged.
    pub render_failures: u64,
    /// Of those, how many never reached the dead letters.
    pub render_failures_not_dead_lettered: u64,
    /// Role processes that exited.
    pub exited: Vec<String>,
    /// Every failed assertion, in words; empty when the scenario passed.
    pub failures: Vec<String>,
}

/// Checks one scenario.
pub fn check(observed: &Observed<'_>) -> Verdict {
    let received: HashMap<u64, &TrackedEvent> = observed
        .tracked
        .iter()
        .map(|event| (event.seq, event))
        .collect();
    let acknowledged: HashMap<u64, u64> = observed.ledger.iter().copied().collect();
    let mut verdict = Verdict {
        acknowledged: acknowledged.len() as u64,
        duplicate_bound: observed.duplicate_bound,
        exited: observed.exited.clone(),
        ..Verdict::default()
    };
    let mut drain_us = 0_u64;
    for (&seq, &acked_us) in &acknowledged {
        match Kind::of(seq) {
            Kind::Valid => {
                verdict.expected += 1;
                match received.get(&seq) {
                    Some(event) => {
                        verdict.delivered += 1;
                        let from = acked_us.max(observed.fault_end_us);
                        drain_us = drain_us.max(event.first_arrival_us.saturating_sub(from));
                    }
                    None => {
                        verdict.lost += 1;
                        if verdict.lost_sample.len() < 20 {
                            verdict.lost_sample.push(seq);
                        }
                    }
                }
            }
            Kind::NotJson => verdict.not_json_acknowledged += 1,
            Kind::FailingTemplate => {
                verdict.render_failures += 1;
                if !observed.render_failed.contains(&seq) {
                    verdict.render_failures_not_dead_lettered += 1;
                }
            }
        }
    }
    verdict.lost_sample.sort_unstable();
    for event in observed.tracked {
        verdict.duplicates += u64::from(event.count.saturating_sub(1));
        verdict.duplicates_with_other_id += u64::from(event.other_ids);
        if !acknowledged.contains_key(&event.seq) {
            verdict.unacknowledged_delivered += 1;
        }
    }
    verdict.drain_s = (verdict.lost == 0).then_some(drain_us as f64 / 1e6);
    verdict.failures = failures(&verdict);
    verdict
}

fn failures(verdict: &Verdict) -> Vec<String> {
    let mut failures = Vec::new();
    if verdict.lost > 0 {
        failures.push(format!(
            "{} acknowledged events were never delivered (first: {:?})",
            verdict.lost, verdict.lost_sample
        ));
    }
    if verdict.duplicates_with_other_id > 0 {
        failures.push(format!(
            "{} repeated deliveries carried another webhook-id than the first",
            verdict.duplicates_with_other_id
        ));
    }
    if verdict.duplicates > verdict.duplicate_bound {
        failures.push(format!(
            "{} repeated deliveries, more than the in-flight bound of {}",
            verdict.duplicates, verdict.duplicate_bound
        ));
    }
    if let Some(drain) = verdict.drain_s
        && drain >= DRAIN_BUDGET_S
    {
        failures.push(format!(
            "the pipeline took {drain:.1} s to catch up after the fault (budget {DRAIN_BUDGET_S} s)"
        ));
    }
    if verdict.not_json_acknowledged > 0 {
        failures.push(format!(
            "ingest acknowledged {} events that are not JSON",
            verdict.not_json_acknowledged
        ));
    }
    if verdict.render_failures_not_dead_lettered > 0 {
        failures.push(format!(
            "{} of {} events whose template fails never reached the dead letters",
            verdict.render_failures_not_dead_lettered, verdict.render_failures
        ));
    }
    for name in &verdict.exited {
        failures.push(format!("{name} exited"));
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(seq: u64, count: u32, other_ids: u32, first_arrival_us: u64) -> TrackedEvent {
        TrackedEvent {
            seq,
            count,
            other_ids,
            first_arrival_us,
        }
    }

    #[test]
    fn a_clean_run_passes_and_drain_counts_from_the_faults_end() {
        let ledger = [
            (1, 1_000_000),
            (2, 2_000_000),
            (3, 9_000_000),
            (999, 2_000_000),
        ];
        let received = [
            tracked(1, 1, 0, 1_001_000),
            tracked(2, 2, 0, 6_500_000),
            tracked(3, 1, 0, 9_250_000),
        ];
        let dead = BTreeSet::from([999]);
        let verdict = check(&Observed {
            ledger: &ledger,
            tracked: &received,
            render_failed: &dead,
            fault_end_us: 5_000_000,
            duplicate_bound: 1,
            exited: Vec::new(),
        });
        assert_eq!(verdict.failures, Vec::<String>::new());
        assert_eq!(
            (
                verdict.acknowledged,
                verdict.expected,
                verdict.delivered,
                verdict.lost
            ),
            (4, 3, 3, 0)
        );
        assert_eq!((verdict.duplicates, verdict.render_failures), (1, 1));
        // Event 2 waited 1.5 s past the fault's end; event 3, acknowledged later, 0.25 s.
        assert_eq!(verdict.drain_s, Some(1.5));
    }

    #[test]
    fn every_broken_promise_is_a_failure() {
        let ledger = [
            (1, 1_000_000),
            (2, 1_000_000),
            (499, 1_000_000),
            (999, 1_000_000),
        ];
        let received = [tracked(1, 3, 1, 40_000_000), tracked(7, 1, 0, 2_000_000)];
        let verdict = check(&Observed {
            ledger: &ledger,
            tracked: &received,
            render_failed: &BTreeSet::new(),
            fault_end_us: 5_000_000,
            duplicate_bound: 1,
            exited: vec!["processor-1".to_owned()],
        });
        assert_eq!((verdict.lost, verdict.lost_sample.clone()), (1, vec![2]));
        assert_eq!(verdict.drain_s, None);
        assert_eq!(verdict.unacknowledged_delivered, 1);
        assert_eq!(verdict.failures.len(), 6, "{:?}", verdict.failures);
    }

    #[test]
    fn a_slow_catch_up_fails_on_its_own() {
        let ledger = [(1, 1_000_000)];
        let received = [tracked(1, 1, 0, 36_000_000)];
        let verdict = check(&Observed {
            ledger: &ledger,
            tracked: &received,
            render_failed: &BTreeSet::new(),
            fault_end_us: 5_000_000,
            duplicate_bound: 0,
            exited: Vec::new(),
        });
        assert_eq!(verdict.drain_s, Some(31.0));
        assert_eq!(verdict.failures.len(), 1, "{:?}", verdict.failures);
    }
}
