//! The report: every figure of a run, written as JSON and printed as a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::machine::Machine;
use crate::monitor::Sample;
use crate::raw::RawKafka;
use crate::stats::Percentiles;

/// Everything a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// The command line.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// What ran.
    pub setup: Setup,
    /// The raw limits of the machine.
    pub raw: RawLimits,
    /// Every measured phase, in order.
    pub phases: Vec<Phase>,
    /// The headline figures.
    pub summary: Option<Summary>,
    /// Kafka's records and requests per event, per topic, over the closed loop (`--kafka-local`).
    pub topic_costs: Option<crate::topic_counts::TopicCosts>,
    /// Throughput against instances (`--scale`).
    pub scale: Vec<ScaleRow>,
    /// Whether every expected delivery arrived, once and correctly signed.
    pub deliveries: DeliveryCheck,
    /// Rates and latencies second by second.
    pub timeline: Vec<TimelinePoint>,
    /// The smoke test's verdict (`--smoke`).
    pub smoke: Option<Smoke>,
}

/// What ran.
#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    /// `embedded` or the bootstrap servers.
    pub broker: String,
    /// `all roles in one process (hookline dev)` or `one process per role`.
    pub layout: String,
    /// Partitions of each topic.
    pub partitions: i32,
    /// Load generator connections.
    pub connections: usize,
    /// Warm-up before each window, in seconds.
    pub warmup_seconds: u64,
    /// Measured window, in seconds.
    pub window_seconds: u64,
    /// Most outstanding events in the closed loop.
    pub max_backlog_events: u64,
    /// The workload.
    pub workload: WorkloadFacts,
}

/// The workload's shape.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadFacts {
    /// Sources (bearer tokens).
    pub sources: usize,
    /// Triggers, each with an `if` condition.
    pub triggers: usize,
    /// Destinations, each with a signing secret.
    pub destinations: usize,
    /// Mean event size, in bytes.
    pub event_bytes: usize,
    /// Share of events that fire at least one trigger.
    pub matching_share: f64,
    /// Deliveries per event.
    pub deliveries_per_event: f64,
}

/// The raw limits.
#[derive(Clone, Debug, Serialize)]
pub struct RawLimits {
    /// HTTP POSTs of the events from the load generator to the receiver, per second.
    pub http_per_second: f64,
    /// Kafka produce→consume with Hookline's client settings.
    pub kafka: RawKafka,
    /// The smaller of the two, per second.
    pub smaller_per_second: f64,
    /// Which one it is.
    pub smaller: String,
    /// CPU milliseconds one raw HTTP exchange took: the load generator's and the receiver's
    /// CPU during the raw HTTP phase, over the requests answered.
    pub http_cpu_ms: f64,
    /// CPU milliseconds one raw Kafka record took, produced, stored and consumed: the bench's CPU
    /// during the raw Kafka phase (producer, consumer, and the embedded broker when it is the
    /// broker) and the broker's (with `--broker-pid`), over the records consumed.
    pub kafka_cpu_ms: f64,
    /// Whether [`Self::kafka_cpu_ms`] includes the broker's CPU (false for a broker in another
    /// process without `--broker-pid`: then the composed limit is too high).
    pub kafka_broker_counted: bool,
    /// The composed limit: events per second the machine's cores would carry if each event cost
    /// only its floor, 1 + d HTTP exchanges and 1 + d Kafka records (d: deliveries per event),
    /// at the raw phases' CPU per exchange and per record.
    pub composed_per_second: f64,
}

/// One measured phase.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    /// `closed loop`, `open 50%`, `scale 2+2`.
    pub name: String,
    /// The open loop's rate, per second.
    pub target_per_second: Option<f64>,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// Requests sent.
    pub sent: u64,
    /// Events accepted (202).
    pub accepted: u64,
    /// Other answers, by status.
    pub refused: BTreeMap<u16, u64>,
    /// Failed requests.
    pub errors: u64,
    /// Events accepted per second.
    pub accepted_per_second: f64,
    /// Deliveries received in the window.
    pub deliveries: u64,
    /// Deliveries received per second.
    pub deliveries_per_second: f64,
    /// Events per second through the whole pipeline: the smaller of the accepted rate and the
    /// delivered rate divided by deliveries per event.
    pub end_to_end_per_second: f64,
    /// From the generator's send to the receiver's arrival, for events sent in the window.
    pub end_to_end_latency: Percentiles,
    /// From the generator's send to ingest's 202.
    pub ingest_latency: Percentiles,
    /// CPU and memory of each process over the window.
    pub processes: Vec<ProcessFigures>,
    /// CPU seconds the machine spent on processes other than these during the window.
    pub other_cpu_seconds: f64,
    /// The open loop was stopped because the pipeline fell behind.
    pub fell_behind: bool,
    /// Expected deliveries still missing after the drain that followed.
    pub missing_after_drain: u64,
    /// With `--control`: control's history API asked during the window, by question.
    pub control_queries: Vec<(String, Percentiles)>,
    /// With `--control`: answers of control's history API other than 200 during the window.
    pub control_query_failures: u64,
}

/// CPU and memory of one process over a window.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessFigures {
    /// `hookline dev`, `ingest`, `processor-1`, `receiver`, `bench`.
    pub name: String,
    /// Whether it is Hookline (rather than the receiver or the load generator).
    pub hookline: bool,
    /// CPU seconds in the window.
    pub cpu_seconds: f64,
    /// CPU seconds per 1,000 accepted events.
    pub cpu_seconds_per_1000_events: f64,
    /// Cores used on average.
    pub cores_used: f64,
    /// Peak resident memory since it started, in MB.
    pub peak_rss_mb: f64,
    /// Resident memory at the end of the window, in MB.
    pub rss_mb: f64,
}

/// The headline.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Closed-loop end-to-end events per second.
    pub max_events_per_second: f64,
    /// Closed-loop deliveries per second.
    pub max_deliveries_per_second: f64,
    /// The maximum as a share of the smaller raw limit.
    pub ratio_to_smaller_raw_limit: f64,
    /// The maximum as a share of the composed limit ([`RawLimits::composed_per_second`]).
    pub ratio_to_composed_limit: f64,
    /// End-to-end p99 at half the maximum, in milliseconds.
    pub p99_at_half_ms: Option<f64>,
    /// Hookline's CPU seconds per 1,000 events at the maximum.
    pub hookline_cpu_seconds_per_1000_events: f64,
    /// The largest peak RSS of a Hookline process, in MB.
    pub hookline_peak_rss_mb: f64,
}

/// One row of `--scale`.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleRow {
    /// Processor instances.
    pub processors: usize,
    /// Dispatcher instances.
    pub dispatchers: usize,
    /// Partitions of each topic.
    pub partitions: i32,
    /// Closed-loop end-to-end events per second.
    pub events_per_second: f64,
    /// Deliveries per second.
    pub deliveries_per_second: f64,
    /// End-to-end p99 in the closed loop, in milliseconds.
    pub p99_ms: f64,
}

/// The delivery check over the whole run.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct DeliveryCheck {
    /// Deliveries the accepted events should cause.
    pub expected: u64,
    /// Distinct deliveries received.
    pub received: u64,
    /// Repeats received.
    pub duplicates: u64,
    /// Deliveries with a missing or wrong signature.
    pub bad_signatures: u64,
    /// Deliveries whose body was not the benchmark's.
    pub unparsable: u64,
}

/// One second of the run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the first sample.
    pub t: f64,
    /// Events accepted per second.
    pub accepted_per_second: f64,
    /// Deliveries per second.
    pub deliveries_per_second: f64,
    /// Latency of deliveries of events sent in this second.
    pub latency: Option<Percentiles>,
}

impl TimelinePoint {
    /// The timeline from the monitor's samples and the receiver's latencies by second.
    pub fn build(samples: &[Sample], latency: &BTreeMap<u64, Percentiles>) -> Vec<TimelinePoint> {
        let Some(first) = samples.first() else {
            return Vec::new();
        };
        samples
            .windows(2)
            .map(|pair| {
                let (before, after) = (pair[0], pair[1]);
                let seconds = (after.unix_s - before.unix_s).max(1e-3);
                TimelinePoint {
                    t: after.unix_s - first.unix_s,
                    accepted_per_second: (after.accepted - before.accepted) as f64 / seconds,
                    deliveries_per_second: (after.deliveries - before.deliveries) as f64 / seconds,
                    latency: latency.get(&(before.unix_s as u64)).copied(),
                }
            })
            .collect()
    }
}

/// The smoke test's verdict.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Smoke {
    /// The floor, events per second.
    pub floor: f64,
    /// The measured end-to-end events per second.
    pub measured: f64,
    /// Whether it passed.
    pub passed: bool,
}

impl Report {
    /// The report as a table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "\nHookline benchmark: {} broker, {}\nmachine: {} cores, {}, {:.1} GiB, load {:.2} at start, commit {}",
            self.setup.broker,
            self.setup.layout,
            m.cores,
            m.cpu_model,
            m.memory_bytes as f64 / (1u64 << 30) as f64,
            m.load_average_at_start,
            m.hookline_commit.as_deref().unwrap_or("unknown"),
        );
        let w = &self.setup.workload;
        let _ = writeln!(
            out,
            "workload: {} sources, {} triggers with conditions, {} signed destinations; {} B events, {:.0}% match, {:.3} deliveries per event; {} connections, {} partitions\n",
            w.sources,
            w.triggers,
            w.destinations,
            w.event_bytes,
            w.matching_share * 100.0,
            w.deliveries_per_event,
            self.setup.connections,
            self.setup.partitions,
        );
        let _ = writeln!(out, "raw limits of this machine, same run:");
        let _ = writeln!(
            out,
            "  Kafka produce->consume  {:>10} records/s  ({} B records, {} partitions, Hookline's client settings)",
            thousands(self.raw.kafka.per_second),
            self.raw.kafka.record_bytes,
            self.raw.kafka.partitions
        );
        let _ = writeln!(
            out,
            "  HTTP POST -> receiver   {:>10} requests/s\n",
            thousands(self.raw.http_per_second)
        );
        let _ = writeln!(
            out,
            "{:<14} {:>9} {:>11} {:>11} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}",
            "phase",
            "rate",
            "accepted/s",
            "deliver/s",
            "e2e ev/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "ingest p99"
        );
        for phase in &self.phases {
            let rate = phase
                .target_per_second
                .map_or_else(|| "max".to_owned(), thousands);
            let l = &phase.end_to_end_latency;
            let _ = writeln!(
                out,
                "{:<14} {:>9} {:>11} {:>11} {:>11} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>10.1}{}",
                phase.name,
                rate,
                thousands(phase.accepted_per_second),
                thousands(phase.deliveries_per_second),
                thousands(phase.end_to_end_per_second),
                l.p50_ms,
                l.p90_ms,
                l.p99_ms,
                l.p999_ms,
                l.max_ms,
                phase.ingest_latency.p99_ms,
                if phase.fell_behind {
                    "  (fell behind)"
                } else {
                    ""
                },
            );
        }
        if let Some(phase) = self.phases.first() {
            let _ = writeln!(
                out,
                "\nprocesses during '{}': CPU s per 1,000 events, cores used, peak RSS",
                phase.name
            );
            for process in &phase.processes {
                let _ = writeln!(
                    out,
                    "  {:<18} {:>7.3} s {:>6.2} cores {:>8.1} MB",
                    process.name,
                    process.cpu_seconds_per_1000_events,
                    process.cores_used,
                    process.peak_rss_mb
                );
            }
            let _ = writeln!(
                out,
                "  {:<18} {:>7.1} s of CPU in the window",
                "other processes", phase.other_cpu_seconds
            );
        }
        for phase in self.phases.iter().filter(|phase| {
            phase
                .processes
                .iter()
                .any(|process| process.name == "control")
        }) {
            let _ = writeln!(
                out,
                "\nduring '{}' ({:.0} events/s accepted): CPU s per 1,000 events, peak RSS; \
                 control's history API",
                phase.name, phase.accepted_per_second
            );
            for process in &phase.processes {
                let _ = writeln!(
                    out,
                    "  {:<18} {:>7.3} s {:>8.1} MB",
                    process.name, process.cpu_seconds_per_1000_events, process.peak_rss_mb
                );
            }
            for (question, latency) in &phase.control_queries {
                let _ = writeln!(
                    out,
                    "  {:<44} p50 {:>6.1} ms  p90 {:>6.1} ms  p99 {:>6.1} ms  ({} asked)",
                    question, latency.p50_ms, latency.p90_ms, latency.p99_ms, latency.count
                );
            }
            let _ = writeln!(
                out,
                "  answers other than 200: {}",
                phase.control_query_failures
            );
        }
        if !self.scale.is_empty() {
            let _ = writeln!(out, "\nscaling (closed loop, one process per role):");
            let _ = writeln!(
                out,
                "  {:>10} {:>11} {:>10} {:>11} {:>11} {:>8}",
                "processors", "dispatchers", "partitions", "e2e ev/s", "deliver/s", "p99 ms"
            );
            for row in &self.scale {
                let _ = writeln!(
                    out,
                    "  {:>10} {:>11} {:>10} {:>11} {:>11} {:>8.1}",
                    row.processors,
                    row.dispatchers,
                    row.partitions,
                    thousands(row.events_per_second),
                    thousands(row.deliveries_per_second),
                    row.p99_ms
                );
            }
        }
        let d = &self.deliveries;
        let _ = writeln!(
            out,
            "\ndeliveries: {} of {} expected received, {} duplicates, {} bad signatures, {} unparsable",
            d.received, d.expected, d.duplicates, d.bad_signatures, d.unparsable
        );
        let raw = &self.raw;
        let _ = writeln!(
            out,
            "composed limit: {} events/s on {} cores at {:.4} CPU-ms per HTTP exchange and {:.4} per Kafka record{} (1 + {:.2} of each per event)",
            thousands(raw.composed_per_second),
            self.machine.cores,
            raw.http_cpu_ms,
            raw.kafka_cpu_ms,
            if raw.kafka_broker_counted {
                ""
            } else {
                " (broker CPU not counted: pass --broker-pid)"
            },
            self.setup.workload.deliveries_per_event,
        );
        if let Some(summary) = &self.summary {
            let _ = writeln!(
                out,
                "pipeline against the composed limit: {:.2}",
                summary.ratio_to_composed_limit
            );
            let _ = writeln!(
                out,
                "summary: {} events/s end to end ({} deliveries/s) = {:.2} of the smaller raw limit ({}); p99 at 50%: {}; Hookline {:.3} CPU s per 1,000 events, peak RSS {:.0} MB",
                thousands(summary.max_events_per_second),
                thousands(summary.max_deliveries_per_second),
                summary.ratio_to_smaller_raw_limit,
                self.raw.smaller,
                summary
                    .p99_at_half_ms
                    .map_or_else(|| "not measured".to_owned(), |p99| format!("{p99:.1} ms")),
                summary.hookline_cpu_seconds_per_1000_events,
                summary.hookline_peak_rss_mb,
            );
        }
        if let Some(costs) = &self.topic_costs {
            let _ = writeln!(
                out,
                "\nKafka per event, counted by the broker over the closed loop ({} events; requests counted once per topic they carry):",
                thousands(costs.events as f64)
            );
            let _ = writeln!(
                out,
                "  {:<20} {:>8} {:>9} {:>10} {:>8} {:>9}",
                "topic", "records", "produces", "rec/produce", "fetches", "bytes"
            );
            for topic in costs.topics.iter().chain([&costs.total]) {
                let _ = writeln!(
                    out,
                    "  {:<20} {:>8.3} {:>9.3} {:>10} {:>8.3} {:>9.0}",
                    topic.topic,
                    topic.records,
                    topic.produce_requests,
                    topic
                        .records_per_produce_request
                        .map_or_else(|| "-".to_owned(), |records| format!("{records:.1}")),
                    topic.fetch_requests,
                    topic.bytes,
                );
            }
        }
        if let Some(smoke) = &self.smoke {
            let _ = writeln!(
                out,
                "smoke: {} events/s against a floor of {}: {}",
                thousands(smoke.measured),
                thousands(smoke.floor),
                if smoke.passed { "passed" } else { "FAILED" }
            );
        }
        out
    }
}

/// `12345.6` as `12,346`.
pub fn thousands(value: f64) -> String {
    let rounded = value.round().max(0.0) as u64;
    let digits = rounded.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(12_345.6), "12,346");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
