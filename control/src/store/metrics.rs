//! What control counts about its store. Names follow Prometheus conventions; labels are the
//! record kind (a fixed set of five) and why records were deleted (two).

use hookline_runtime::telemetry::register;
use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::row::RecordKind;

/// The space the store takes, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Size {
    /// Pages that hold data.
    pub used_bytes: u64,
    /// The whole database (used and free pages, not counting the WAL).
    pub file_bytes: u64,
}

/// Records the store holds, by kind.
pub const STORE_RECORDS: &str = "hookline_control_store_records";
/// How long after it was written the newest stored record of a kind reached the store.
pub const STORE_LAG_SECONDS: &str = "hookline_control_store_lag_seconds";
/// Records read but not stored because they could not be read as their topic's type.
pub const STORE_SKIPPED: &str = "hookline_control_store_skipped_records_total";
/// Records deleted from the store, by why.
pub const STORE_DELETED: &str = "hookline_control_store_deleted_records_total";
/// Whether the store has read the topics up to where they ended at start.
pub const STORE_READY: &str = "hookline_control_store_ready";
/// The bytes the store's data takes (its pages in use).
pub const STORE_SIZE_BYTES: &str = "hookline_control_store_size_bytes";
/// The store's size budget.
pub const STORE_BUDGET_BYTES: &str = "hookline_control_store_budget_bytes";
/// The time of the oldest record the store holds: how far back history reaches.
pub const STORE_OLDEST: &str = "hookline_control_store_oldest_record_timestamp_seconds";

/// The store's metrics.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    records: IntGaugeVec,
    lag_seconds: GaugeVec,
    skipped: IntCounterVec,
    deleted: IntCounterVec,
    ready: IntGauge,
    size_bytes: IntGauge,
    budget_bytes: IntGauge,
    oldest: Gauge,
}

impl StoreMetrics {
    /// Creates and registers the metrics; once per registry.
    pub fn register(registry: &Registry) -> Self {
        let metrics = Self {
            records: IntGaugeVec::new(
                Opts::new(
                    STORE_RECORDS,
                    "Records the control store holds (within the retention window), by kind.",
                ),
                &["record"],
            )
            .expect("valid metric"),
            lag_seconds: GaugeVec::new(
                Opts::new(
                    STORE_LAG_SECONDS,
                    "Time from writing the newest stored record of a kind to storing it; 0 when \
                     the store has nothing left to read.",
                ),
                &["record"],
            )
            .expect("valid metric"),
            skipped: IntCounterVec::new(
                Opts::new(
                    STORE_SKIPPED,
                    "Records the control store could not read as their topic's type, by kind.",
                ),
                &["record"],
            )
            .expect("valid metric"),
            deleted: IntCounterVec::new(
                Opts::new(
                    STORE_DELETED,
                    "Records deleted from the control store: past the retention window \
                     (`retention`) or beyond its size limit (`size`).",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            ready: IntGauge::new(
                STORE_READY,
                "1 once the control store has read its topics up to where they ended at start.",
            )
            .expect("valid metric"),
            size_bytes: IntGauge::new(
                STORE_SIZE_BYTES,
                "Bytes the control store's data takes (database pages in use).",
            )
            .expect("valid metric"),
            budget_bytes: IntGauge::new(
                STORE_BUDGET_BYTES,
                "The control store's size budget (--control-store-max-bytes).",
            )
            .expect("valid metric"),
            oldest: Gauge::new(
                STORE_OLDEST,
                "Unix time of the oldest record the control store holds: how far back history \
                 reaches. 0 while it is empty.",
            )
            .expect("valid metric"),
        };
        for kind in RecordKind::ALL {
            metrics.records.with_label_values(&[kind.as_str()]).set(0);
            metrics
                .lag_seconds
                .with_label_values(&[kind.as_str()])
                .set(0.0);
        }
        register(registry, metrics.records.clone());
        register(registry, metrics.lag_seconds.clone());
        register(registry, metrics.skipped.clone());
        for reason in ["retention", "size"] {
            metrics.deleted.with_label_values(&[reason]).inc_by(0);
        }
        register(registry, metrics.deleted.clone());
        register(registry, metrics.ready.clone());
        register(registry, metrics.size_bytes.clone());
        register(registry, metrics.budget_bytes.clone());
        register(registry, metrics.oldest.clone());
        metrics
    }

    /// Sets the record count of `kind`.
    pub fn records(&self, kind: RecordKind, count: i64) {
        self.records.with_label_values(&[kind.as_str()]).set(count);
    }

    /// Sets the lag of `kind`.
    pub fn lag(&self, kind: RecordKind, seconds: f64) {
        self.lag_seconds
            .with_label_values(&[kind.as_str()])
            .set(seconds);
    }

    /// Counts a record of `kind` that was not stored.
    pub fn skipped(&self, kind: RecordKind) {
        self.skipped.with_label_values(&[kind.as_str()]).inc();
    }

    /// Counts `count` records deleted for `reason` (`retention` or `size`).
    pub fn deleted(&self, reason: &str, count: usize) {
        self.deleted
            .with_label_values(&[reason])
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// Sets the store's size, its budget and the time of its oldest record (Unix milliseconds).
    pub fn size(&self, size: Size, budget: u64, oldest_ms: Option<i64>) {
        self.size_bytes
            .set(i64::try_from(size.used_bytes).unwrap_or(i64::MAX));
        self.budget_bytes
            .set(i64::try_from(budget).unwrap_or(i64::MAX));
        self.oldest
            .set(oldest_ms.map_or(0.0, |ms| ms as f64 / 1000.0));
    }

    /// Says whether the store is loaded.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }
}
