//! What the receiver and the bench exchange: counters, latency histograms (HdrHistogram, in
//! microseconds) and their wire form, and the percentiles reported from them.

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use serde::{Deserialize, Serialize};

/// A latency histogram in microseconds.
pub type Histogram = hdrhistogram::Histogram<u64>;

/// Highest latency recorded, in microseconds (one hour); longer ones are clamped to it.
const HIGHEST_US: u64 = 3_600_000_000;

/// An empty histogram from 1 µs to an hour with three significant digits.
pub fn histogram() -> Histogram {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("static histogram bounds are valid")
}

/// Records a latency, clamped to the histogram's range.
pub fn record(histogram: &mut Histogram, micros: u64) {
    histogram.saturating_record(micros.clamp(1, HIGHEST_US));
}

/// A histogram as base64 of its V2 serialization.
pub fn encode(histogram: &Histogram) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(|error| anyhow::anyhow!("could not serialize a histogram: {error:?}"))?;
    Ok(STANDARD.encode(bytes))
}

/// The histogram [`encode`] made.
pub fn decode(text: &str) -> anyhow::Result<Histogram> {
    let bytes = STANDARD.decode(text).context("a histogram is not base64")?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|error| anyhow::anyhow!("could not deserialize a histogram: {error:?}"))
}

/// The receiver's counters since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Deliveries received (requests to `/hooks/...`).
    pub deliveries: u64,
    /// Deliveries received for the first time (by event sequence number and trigger slot).
    pub unique: u64,
    /// Deliveries received again (at-least-once repeats).
    pub duplicates: u64,
    /// Deliveries whose Standard Webhooks signature was missing or wrong.
    pub bad_signatures: u64,
    /// Deliveries whose body was not the benchmark's JSON.
    pub unparsable: u64,
    /// Requests to `/raw` (the raw HTTP limit).
    pub raw: u64,
    /// Requests to `/slow/<ms>` (held that long before the answer), counted on arrival.
    #[serde(default)]
    pub slow: u64,
    /// Deliveries answered 503 or held past their sender's timeout on purpose (the fault suite's
    /// receiver modes), not counted as received.
    #[serde(default)]
    pub failed_on_purpose: u64,
}

/// Latencies of the deliveries of events sent during one second.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecondLatency {
    /// The second (Unix time) in which the generator sent the events.
    pub second: u64,
    /// Their deliveries' latencies, [`encode`]d.
    pub histogram: String,
}

/// Everything the receiver recorded, by second.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Series {
    /// Latencies by second of sending.
    pub latency: Vec<SecondLatency>,
    /// Deliveries by second of arrival (Unix time).
    pub arrivals: Vec<(u64, u64)>,
}

impl Series {
    /// The latencies of deliveries of events sent in `[from, to)` (Unix seconds), merged.
    pub fn latency_between(&self, from: u64, to: u64) -> anyhow::Result<Histogram> {
        let mut merged = histogram();
        for second in &self.latency {
            if (from..to).contains(&second.second) {
                merged
                    .add(decode(&second.histogram)?)
                    .map_err(|error| anyhow::anyhow!("could not merge histograms: {error:?}"))?;
            }
        }
        Ok(merged)
    }
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// The percentiles of `histogram` (microseconds).
    pub fn of(histogram: &Histogram) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.5)),
            p90_ms: ms(histogram.value_at_quantile(0.9)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_the_wire_and_merge_by_second() {
        let mut first = histogram();
        let mut second = histogram();
        for micros in [1_000, 2_000, 3_000] {
            record(&mut first, micros);
        }
        record(&mut second, 90_000);
        let series = Series {
            latency: vec![
                SecondLatency {
                    second: 10,
                    histogram: encode(&first).unwrap(),
                },
                SecondLatency {
                    second: 11,
                    histogram: encode(&second).unwrap(),
                },
            ],
            arrivals: Vec::new(),
        };
        let only_first = Percentiles::of(&series.latency_between(10, 11).unwrap());
        assert_eq!(only_first.count, 3);
        assert!((only_first.max_ms - 3.0).abs() < 0.01);
        let both = Percentiles::of(&series.latency_between(0, 100).unwrap());
        assert_eq!(both.count, 4);
        assert!((both.max_ms - 90.0).abs() < 0.1);
    }
}
