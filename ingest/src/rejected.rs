//! The log of refused requests: a compact record per refusal on the rejected topic, so the
//! control plane can show a source's failures with their reasons.
//!
//! Records are sampled with a global rate limit, so a flood of bad requests cannot turn ingest
//! into a write amplifier, and they are written without waiting for the broker: the log is a
//! diagnosis aid, never a reason to hold an answer.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota};
use hookline_schemas::RejectedRequest;
use prometheus::IntCounterVec;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::debug;

/// The most bytes of a refused body kept in its record.
pub const BODY_PREVIEW_BYTES: usize = 1024;

/// Writes sampled rejection records.
pub struct RejectedLog {
    producer: FutureProducer,
    topic: String,
    sampler: DefaultDirectRateLimiter,
    outcomes: IntCounterVec,
}

impl RejectedLog {
    /// A log writing at most `per_second` records per second (1 when 0) to `topic`; `outcomes`
    /// counts records by `written`, `sampled_out` or `failed`.
    pub fn new(
        producer: FutureProducer,
        topic: String,
        per_second: u32,
        outcomes: IntCounterVec,
    ) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        Self {
            producer,
            topic,
            sampler: DefaultDirectRateLimiter::direct(Quota::per_second(rate)),
            outcomes,
        }
    }

    /// Writes `record` if the sample allows, without waiting for the broker.
    pub fn record(&self, record: &RejectedRequest) {
        if self.sampler.check().is_err() {
            self.outcomes.with_label_values(&["sampled_out"]).inc();
            return;
        }
        let value = serde_json::to_vec(record).unwrap_or_default();
        let sent = self.producer.send_result(
            FutureRecord::to(&self.topic)
                .key(record.source.as_str())
                .payload(value.as_slice()),
        );
        let outcome = match sent {
            // The broker's answer is not awaited; librdkafka still delivers the record.
            Ok(_) => "written",
            Err((error, _)) => {
                debug!(%error, "Rejection record not written.");
                "failed"
            }
        };
        self.outcomes.with_label_values(&[outcome]).inc();
    }
}
