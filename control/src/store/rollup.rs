//! Rollups: what each destination and source did per time bucket (attempts, deliveries,
//! failures, dead letters, a histogram of attempt durations; events, matches, refusals by code),
//! kept beside the records so the statistics routes answer from a few thousand small rows
//! instead of scanning a window of records.
//!
//! **Written with the records.** Every batch's rollups are added in the transaction that stores
//! its records ([`super::Store::insert`]), from the rows actually stored: on PostgreSQL, where
//! several instances offer the same records and `ON CONFLICT DO NOTHING` keeps each once, only
//! the rows the insert returned are counted. So a restart, or a second instance, never counts a
//! record twice, and rollups never count a record whose transaction was lost.
//!
//! **Two grains.** Each record is counted in its minute and in its hour (the bucket its own time
//! falls in). Windows up to an hour read minutes, longer ones hours; minutes are kept
//! [`Grain::keep_ms`] (2 hours), hours 26 hours, and deleted by [`super::Store::prune_rollups`]
//! with retention. A window of `w` at grain `g` covers the buckets from the one `now - w` falls
//! in to the current one: between `w` and `w + g`.
//!
//! **Of what happened, not of what is stored.** Records that retention, the size budget or a
//! partition made anew delete stay counted until their buckets go. A store rebuilt from the
//! topics counts what it reads again, from the start of its retention window: with a window
//! shorter than a day, the 24-hour figures fill up over the following day.
//!
//! **Durations** are counted in fixed log-scale bins, [`BINS_PER_DOUBLING`] per doubling from
//! 1 ms (so a percentile read back is within about 4.5% of the true one), as measures `ms:<bin>`;
//! only the bins a bucket uses are stored.
//!
//! The table: `rollups (grain, bucket, resource, id, measure, count)`, keyed by all but `count`;
//! `grain` is the bucket's length and `bucket` its start, in milliseconds.

use std::collections::{BTreeMap, HashMap};

use super::bind::Bind;
use super::error::StoreError;
use super::row::{RecordKind, Row};
use super::sql::Database;

/// The length of a rollup bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grain {
    /// One minute: windows up to an hour.
    Minute,
    /// One hour: longer windows.
    Hour,
}

impl Grain {
    /// Every grain.
    pub const ALL: [Self; 2] = [Self::Minute, Self::Hour];

    /// The bucket's length in milliseconds (also its code in the table).
    pub fn ms(self) -> i64 {
        match self {
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
        }
    }

    /// How long buckets of this grain are kept: the longest window read at this grain (1 hour,
    /// 24 hours), its partial first bucket, and a margin.
    pub fn keep_ms(self) -> i64 {
        match self {
            Self::Minute => 2 * 3_600_000,
            Self::Hour => 26 * 3_600_000,
        }
    }

    /// The start of the bucket `at_ms` falls in.
    pub fn bucket(self, at_ms: i64) -> i64 {
        at_ms - at_ms.rem_euclid(self.ms())
    }

    /// The name answers give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
        }
    }
}

/// The resource kind of destinations' rollups.
pub const DESTINATION: &str = "destination";
/// The resource kind of sources' rollups.
pub const SOURCE: &str = "source";

/// Attempts of a destination, whatever their outcome.
pub const ATTEMPTS: &str = "attempts";
/// Attempts that delivered.
pub const DELIVERED: &str = "delivered";
/// Attempts that failed (`retrying`, `dead` or `blocked`).
pub const FAILED: &str = "failed";
/// Jobs of a destination that went to the dead letter topic.
pub const DEAD_LETTERS: &str = "dead_letters";
/// Events of a source.
pub const EVENTS: &str = "events";
/// Events of a source the processor made deliveries of.
pub const MATCHED: &str = "matched";
/// Refused requests of a source, by code: `refused:<code>`.
const REFUSED: &str = "refused:";
/// The bin of an attempt's duration: `ms:<bin>`.
const DURATION: &str = "ms:";

/// Duration bins per doubling: 8 makes bins 9% wide, so a bin's middle is within 4.5% of any
/// duration in it.
pub const BINS_PER_DOUBLING: f64 = 8.0;
/// The last bin, open above: 2^20 ms (17 minutes) and longer, far past any attempt's timeout.
const LAST_BIN: u32 = 160;

/// The bin of a duration: bin 0 holds [0, 1) ms, bin `b` > 0 holds
/// [2^((b-1)/8), 2^(b/8)) ms, the last bin everything longer.
pub fn bin(duration_ms: f64) -> u32 {
    if duration_ms.is_nan() || duration_ms < 1.0 {
        return 0;
    }
    let bin = 1.0 + (duration_ms.log2() * BINS_PER_DOUBLING).floor();
    (bin.min(f64::from(LAST_BIN))) as u32
}

/// The duration a bin stands for: the geometric middle of its range (0.5 ms for bin 0, the
/// lower bound for the last).
pub fn bin_ms(bin: u32) -> f64 {
    match bin {
        0 => 0.5,
        LAST_BIN.. => 2_f64.powf(f64::from(LAST_BIN - 1) / BINS_PER_DOUBLING),
        _ => 2_f64.powf((f64::from(bin) - 0.5) / BINS_PER_DOUBLING),
    }
}

/// The key of one rollup row: grain, bucket start, resource kind, resource id, measure.
pub type Key = (Grain, i64, &'static str, String, String);

/// What a batch of rows adds to the rollups, in key order (the order rows are locked in, so
/// instances adding to the same rows never deadlock each other).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally(BTreeMap<Key, i64>);

impl Tally {
    /// What `rows` add.
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Self {
        let mut tally = Self::default();
        for row in rows {
            for (resource, id, measure) in measures(row) {
                for grain in Grain::ALL {
                    let key = (
                        grain,
                        grain.bucket(row.at_ms),
                        resource,
                        id.clone(),
                        measure.clone(),
                    );
                    *tally.0.entry(key).or_default() += 1;
                }
            }
        }
        tally
    }

    /// Each row's key and what it adds, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&Key, i64)> {
        self.0.iter().map(|(key, count)| (key, *count))
    }

    /// Whether it adds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What `row` counts toward: (resource kind, id, measure).
fn measures(row: &Row) -> Vec<(&'static str, String, String)> {
    let mut measures = Vec::new();
    match row.kind {
        RecordKind::Attempt => {
            let Some(destination) = &row.destination_id else {
                return measures;
            };
            let mut add =
                |measure: String| measures.push((DESTINATION, destination.clone(), measure));
            add(ATTEMPTS.to_owned());
            match row.outcome.as_deref() {
                Some("delivered") => add(DELIVERED.to_owned()),
                Some(_) | None => add(FAILED.to_owned()),
            }
            if let Some(duration_ms) = row.duration_ms {
                add(format!("{DURATION}{}", bin(duration_ms)));
            }
        }
        RecordKind::Dead => {
            if let Some(destination) = &row.destination_id {
                measures.push((DESTINATION, destination.clone(), DEAD_LETTERS.to_owned()));
            }
        }
        RecordKind::Event => {
            if let Some(source) = &row.source_id {
                measures.push((SOURCE, source.clone(), EVENTS.to_owned()));
            }
        }
        RecordKind::Match => {
            if let Some(source) = &row.source_id
                && row.outcome.as_deref() == Some("delivered")
            {
                measures.push((SOURCE, source.clone(), MATCHED.to_owned()));
            }
        }
        RecordKind::Rejected => {
            // A request to a source that does not exist names any id its sender made up: it
            // would add rows without bound, for sources no answer lists.
            if let (Some(source), Some(code)) = (&row.source_id, &row.outcome)
                && code != "source_not_found"
            {
                measures.push((SOURCE, source.clone(), format!("{REFUSED}{code}")));
            }
        }
    }
    measures
}

/// The counts of one resource over a window, by measure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    counts: HashMap<String, i64>,
}

impl Totals {
    /// The count of `measure` (0 when none).
    pub fn count(&self, measure: &str) -> i64 {
        self.counts.get(measure).copied().unwrap_or_default()
    }

    /// Refused requests, by code.
    pub fn refused(&self) -> BTreeMap<String, i64> {
        self.counts
            .iter()
            .filter_map(|(measure, count)| {
                Some((measure.strip_prefix(REFUSED)?.to_owned(), *count))
            })
            .collect()
    }

    /// The durations of attempts, as a histogram.
    pub fn durations(&self) -> Durations {
        Durations(
            self.counts
                .iter()
                .filter_map(|(measure, count)| {
                    Some((measure.strip_prefix(DURATION)?.parse().ok()?, *count))
                })
                .collect(),
        )
    }
}

/// Attempt durations: how many fell in each bin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durations(BTreeMap<u32, i64>);

impl Durations {
    /// The duration at quantile `q` (0 to 1) in milliseconds, to 0.01 ms: the middle of the bin
    /// the `ceil(q * n)`-th shortest attempt fell in. `None` without attempts.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: i64 = self.0.values().sum();
        if total <= 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as i64).max(1);
        let mut seen = 0;
        for (bin, count) in &self.0 {
            seen += count;
            if seen >= rank {
                return Some((bin_ms(*bin) * 100.0).round() / 100.0);
            }
        }
        None
    }
}

/// The totals of every `resource` (a kind) with rollups of `grain` from the bucket `since_ms`
/// falls in on, by id.
pub fn totals(
    database: &Database<'_>,
    grain: Grain,
    resource: &str,
    since_ms: i64,
) -> Result<HashMap<String, Totals>, StoreError> {
    let rows = database.sums(
        "SELECT id, measure, CAST(sum(count) AS BIGINT) FROM rollups
         WHERE grain = ?1 AND bucket >= ?2 AND resource = ?3 GROUP BY id, measure",
        &[
            Bind::Int(grain.ms()),
            Bind::Int(grain.bucket(since_ms)),
            Bind::Text(resource.to_owned()),
        ],
    )?;
    let mut totals: HashMap<String, Totals> = HashMap::new();
    for (id, measure, count) in rows {
        totals.entry(id).or_default().counts.insert(measure, count);
    }
    Ok(totals)
}

/// What the destinations' statistics read from the store.
#[derive(Clone, Debug, Default)]
pub struct DestinationFigures {
    /// The totals of each destination with rollups in the window, by id.
    pub totals: HashMap<String, Totals>,
    /// The time and outcome of each destination's newest attempt, of those that have one.
    pub last_attempts: HashMap<String, (i64, Option<String>)>,
}

/// The destinations' totals of `grain` from `since_ms` on, and the newest attempt of each of
/// `ids` (one indexed row each).
pub fn destination_figures(
    database: &Database<'_>,
    grain: Grain,
    since_ms: i64,
    ids: &[String],
) -> Result<DestinationFigures, StoreError> {
    let mut figures = DestinationFigures {
        totals: totals(database, grain, DESTINATION, since_ms)?,
        last_attempts: HashMap::new(),
    };
    for id in ids {
        if let Some(last) = super::query::last_attempt(database, id)? {
            figures.last_attempts.insert(id.clone(), last);
        }
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_log_scale_and_their_middles_within_five_percent() {
        assert_eq!(bin(0.0), 0);
        assert_eq!(bin(0.99), 0);
        assert_eq!(bin(1.0), 1);
        assert_eq!(bin(2.0), 9);
        assert_eq!(bin(f64::NAN), 0);
        assert_eq!(bin(1e12), LAST_BIN);
        for ms in [
            1.0, 1.5, 4.0, 12.5, 99.0, 250.0, 1_234.0, 15_000.0, 600_000.0,
        ] {
            let back = bin_ms(bin(ms));
            assert!((back - ms).abs() / ms < 0.045, "{ms} reads back as {back}");
        }
    }

    #[test]
    fn quantiles_take_the_bin_of_the_ranked_attempt() {
        let mut durations = Durations::default();
        assert_eq!(durations.quantile(0.5), None);
        // 98 attempts of 10 ms, 2 of 1000 ms: p50 is 10 ms, p99 is 1000 ms.
        durations.0.insert(bin(10.0), 98);
        durations.0.insert(bin(1_000.0), 2);
        let p50 = durations.quantile(0.5).unwrap();
        let p99 = durations.quantile(0.99).unwrap();
        assert!((p50 - 10.0).abs() < 0.45, "{p50}");
        assert!((p99 - 1_000.0).abs() < 45.0, "{p99}");
        assert_eq!(durations.quantile(0.98), Some(p50));
    }

    #[test]
    fn buckets_start_on_whole_minutes_and_hours() {
        let at = 1_767_323_045_123; // 2026-01-02T03:04:05.123Z
        assert_eq!(Grain::Minute.bucket(at), 1_767_323_040_000);
        assert_eq!(Grain::Hour.bucket(at), 1_767_322_800_000);
    }
}
