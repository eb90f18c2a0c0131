//! Kafka's own counts per topic (records in, produce and fetch requests, bytes in), read from a
//! broker `scripts/kafka-local` runs (`topic-counts`, its JMX metrics) before and after the closed
//! loop, and turned into figures per event: how many records and requests one event costs on each
//! topic. A produce or fetch request is counted once for each topic it carries, as Kafka counts.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::process::Command;

/// One topic's counters since the broker started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records written.
    pub records: u64,
    /// Produce requests that carried the topic.
    pub produce_requests: u64,
    /// Fetch requests that asked for the topic (consumers' and followers').
    pub fetch_requests: u64,
    /// Bytes written (compressed, as stored).
    pub bytes: u64,
}

/// Every topic's counters, by topic name.
pub type Snapshot = BTreeMap<String, Counts>;

/// One topic's cost per event over a measurement.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PerEvent {
    /// The topic without the run's prefix (`events`, `deliveries`), or Kafka's internal topic
    /// (`__consumer_offsets`: offset commits; `__transaction_state`).
    pub topic: String,
    /// Records written per event.
    pub records: f64,
    /// Produce requests per event.
    pub produce_requests: f64,
    /// Fetch requests per event.
    pub fetch_requests: f64,
    /// Records per produce request: how well the producers batch.
    pub records_per_produce_request: Option<f64>,
    /// Bytes written per event.
    pub bytes: f64,
}

/// What the broker counted over the closed loop (warm-up, window and drain), per event.
#[derive(Clone, Debug, Serialize)]
pub struct TopicCosts {
    /// Events written to the events topic meanwhile: the denominator.
    pub events: u64,
    /// Per topic, the run's topics first, then Kafka's internal ones; topics nothing wrote to
    /// nor read from are left out.
    pub topics: Vec<PerEvent>,
    /// Over every topic listed.
    pub total: PerEvent,
}

/// Reads the counters with `script topic-counts`.
pub async fn read(script: &Path) -> anyhow::Result<Snapshot> {
    let output = Command::new(script)
        .arg("topic-counts")
        .output()
        .await
        .with_context(|| format!("running {} topic-counts", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} topic-counts failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// Parses `<topic> <records> <produce requests> <fetch requests> <bytes>` lines.
fn parse(text: &str) -> anyhow::Result<Snapshot> {
    let mut snapshot = Snapshot::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [topic, records, produce, fetch, bytes] = fields[..] else {
            bail!("a topic-counts line without five fields: {line:?}");
        };
        let number = |field: &str| {
            field
                .parse::<u64>()
                .with_context(|| format!("not a count in {line:?}"))
        };
        snapshot.insert(
            topic.to_owned(),
            Counts {
                records: number(records)?,
                produce_requests: number(produce)?,
                fetch_requests: number(fetch)?,
                bytes: number(bytes)?,
            },
        );
    }
    Ok(snapshot)
}

/// The costs per event of the topics under `prefix` (and Kafka's internal ones) between two
/// snapshots; `None` when nothing was written to `<prefix>events`.
pub fn per_event(before: &Snapshot, after: &Snapshot, prefix: &str) -> Option<TopicCosts> {
    let delta = |topic: &str| {
        let (now, then) = (
            after.get(topic).copied().unwrap_or_default(),
            before.get(topic).copied().unwrap_or_default(),
        );
        Counts {
            records: now.records.saturating_sub(then.records),
            produce_requests: now.produce_requests.saturating_sub(then.produce_requests),
            fetch_requests: now.fetch_requests.saturating_sub(then.fetch_requests),
            bytes: now.bytes.saturating_sub(then.bytes),
        }
    };
    let events = delta(&format!("{prefix}events")).records;
    if events == 0 {
        return None;
    }
    let scaled = |topic: String, counts: Counts| {
        let per = |count: u64| count as f64 / events as f64;
        PerEvent {
            topic,
            records: per(counts.records),
            produce_requests: per(counts.produce_requests),
            fetch_requests: per(counts.fetch_requests),
            records_per_produce_request: (counts.produce_requests > 0)
                .then(|| counts.records as f64 / counts.produce_requests as f64),
            bytes: per(counts.bytes),
        }
    };
    let ours = after
        .keys()
        .filter_map(|topic| Some((topic, topic.strip_prefix(prefix)?)));
    let internal = after
        .keys()
        .filter(|topic| topic.starts_with("__"))
        .map(|topic| (topic, topic.as_str()));
    let mut total = Counts::default();
    let mut topics = Vec::new();
    for (topic, name) in ours.chain(internal) {
        let counts = delta(topic);
        if counts == Counts::default() {
            continue;
        }
        total.records += counts.records;
        total.produce_requests += counts.produce_requests;
        total.fetch_requests += counts.fetch_requests;
        total.bytes += counts.bytes;
        topics.push(scaled(name.to_owned(), counts));
    }
    Some(TopicCosts {
        events,
        topics,
        total: scaled("all".to_owned(), total),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_per_event_of_the_run_and_leave_other_runs_out() {
        let before = parse(
            "__consumer_offsets 10 10 0 100\nrun.events 100 50 20 1000\nrun.matches 0 0 5 0\n\
             other.events 7 7 7 7\n",
        )
        .unwrap();
        let after = parse(
            "__consumer_offsets 30 30 0 300\nrun.events 1100 250 120 11000\n\
             run.matches 1000 100 15 5000\nrun.dead 0 0 9 0\nother.events 900 900 9 9\n",
        )
        .unwrap();
        let costs = per_event(&before, &after, "run.").unwrap();
        assert_eq!(costs.events, 1000);
        let names: Vec<&str> = costs.topics.iter().map(|t| t.topic.as_str()).collect();
        assert_eq!(names, ["dead", "events", "matches", "__consumer_offsets"]);
        let events = &costs.topics[1];
        assert_eq!((events.records, events.produce_requests), (1.0, 0.2));
        assert_eq!(events.records_per_produce_request, Some(5.0));
        assert_eq!(costs.topics[0].records_per_produce_request, None);
        assert!((costs.total.records - 2.02).abs() < 1e-9, "{costs:?}");
        assert!(
            (costs.total.fetch_requests - 0.119).abs() < 1e-9,
            "{costs:?}"
        );
    }

    #[test]
    fn nothing_written_to_the_events_topic_gives_no_costs() {
        let snapshot = parse("run.events 5 5 5 5\n").unwrap();
        assert!(per_event(&snapshot, &snapshot, "run.").is_none());
        assert!(parse("run.events 5 5\n").is_err());
        assert!(parse("run.events 5 5 x 5 5\n").is_err());
    }
}
