//! The fault suite's workload: one source, one trigger, one destination, so every valid event
//! fires exactly one delivery and the checker knows what each acknowledged event owes; and two
//! poison events in every 1,000 — one that is not JSON, one whose template fails.

use bytes::Bytes;
use hookline_schemas::{Action, Destination, ResourceId, RetryPolicy, Source, SourceAuth, Trigger};
use serde::Serialize;

use crate::load::Events;
use crate::workload::{Event, SIGNING_SECRET, SourceSpec};

/// The suite's only source.
pub const SOURCE: SourceSpec = SourceSpec {
    id: "faults",
    token: "faults-token",
    headers: &[],
};

/// The destination's attempt deadline, in milliseconds: the stalling receiver holds each request
/// longer ([`STALL_MS`]).
pub const TIMEOUT_MS: u64 = 2_000;

/// How long the stalling receiver holds a request, in milliseconds.
pub const STALL_MS: u64 = 5_000;

/// Events per poison cycle: one event of each poison kind in every this many.
pub const POISON_EVERY: u64 = 1_000;

/// What an event is, by its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// JSON the trigger renders: one delivery.
    Valid,
    /// Not JSON: ingest must refuse it (400), so it is never acknowledged.
    NotJson,
    /// JSON without the field the template needs: the render fails, so the processor must
    /// dead-letter it (`render_failed`) and go on with the others.
    FailingTemplate,
}

impl Kind {
    /// The kind of event `seq`: the 500th of every 1,000 is not JSON, the 1,000th fails its
    /// template.
    pub fn of(seq: u64) -> Self {
        match seq % POISON_EVERY {
            499 => Self::NotJson,
            999 => Self::FailingTemplate,
            _ => Self::Valid,
        }
    }
}

/// The events: `{"seq": N, "sent_at_us": T, "value": "..."}`, ~200 bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultEvents;

impl Events for FaultEvents {
    fn sources(&self) -> &[SourceSpec] {
        std::slice::from_ref(&SOURCE)
    }

    fn event(&self, seq: u64, sent_at_us: u64) -> Event {
        let kind = Kind::of(seq);
        let body = match kind {
            Kind::Valid => {
                format!(r#"{{"seq": {seq}, "sent_at_us": {sent_at_us}, "value": "{PADDING}"}}"#)
            }
            Kind::NotJson => format!("seq={seq} this is not JSON {PADDING}"),
            Kind::FailingTemplate => {
                format!(r#"{{"seq": {seq}, "sent_at_us": {sent_at_us}, "other": "{PADDING}"}}"#)
            }
        };
        Event {
            source: 0,
            body: Bytes::from(body),
            deliveries: u32::from(kind == Kind::Valid),
        }
    }
}

/// Filler, so an event is about the size of a small real webhook.
const PADDING: &str = "the quick brown fox jumps over the lazy dog, the quick brown fox jumps over \
                       the lazy dog, the quick brown fox jumps over the lazy dog";

/// The body template: the receiver reads `seq`, `sent_at_us` and `slot` (as the benchmark's);
/// `payload.value` is what the failing events lack.
const BODY: &str = r#"{"seq": {{ payload.seq }}, "sent_at_us": {{ payload.sent_at_us }}, "slot": 0, "event_id": {{ event.id }}, "value": {{ payload.value }}}"#;

/// The resource file `hookline apply` writes.
#[derive(Debug, Serialize)]
pub struct ResourceFile {
    sources: Vec<Source>,
    destinations: Vec<Destination>,
    triggers: Vec<Trigger>,
}

impl ResourceFile {
    /// The resources for a receiver at `receiver` (`http://host:port`).
    pub fn new(receiver: &str) -> anyhow::Result<Self> {
        let mut source = Source::new(
            id(SOURCE.id)?,
            vec![SourceAuth::Bearer {
                tokens: vec![SOURCE.token.to_owned()],
                expires_at: None,
            }],
        );
        source.name = "Fault suite".to_owned();
        let mut destination = Destination::new(id("receiver")?, format!("{receiver}/hooks/faults"));
        destination.name = "Fault suite receiver".to_owned();
        destination.secrets = vec![SIGNING_SECRET.to_owned()];
        destination.timeout_ms = Some(TIMEOUT_MS);
        // Retries come within seconds, so a receiver back from an outage is caught up within the
        // drain budget, and no job runs out of attempts during a fault (which would lose it).
        destination.retry = Some(RetryPolicy::Exponential {
            initial_seconds: 1.0,
            multiplier: 2.0,
            max_interval_seconds: 5.0,
            max_attempts: 1_000,
            jitter: true,
        });
        let trigger = Trigger {
            schema_version: hookline_schemas::SCHEMA_VERSION,
            id: id("relay")?,
            name: "Relay every event".to_owned(),
            enabled: true,
            when: hookline_schemas::When {
                sources: vec![id(SOURCE.id)?],
                event_type: None,
                event_types: Vec::new(),
            },
            condition: None,
            actions: vec![Action {
                destination: id("receiver")?,
                body: BODY.to_owned(),
                headers: Default::default(),
                url: None,
            }],
        };
        Ok(Self {
            sources: vec![source],
            destinations: vec![destination],
            triggers: vec![trigger],
        })
    }

    /// The file as TOML.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string(self)?)
    }
}

fn id(text: &str) -> anyhow::Result<ResourceId> {
    ResourceId::parse(text.to_owned()).map_err(|error| anyhow::anyhow!("{text}: {error}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hookline_processor::preview::{PreviewError, SampleEvent, preview};
    use hookline_processor::template::Limits;
    use hookline_runtime::resources::ResourceSet;
    use hookline_schemas::Resource;

    use super::*;

    #[test]
    fn two_events_in_every_thousand_are_poison_one_of_each_kind() {
        let kinds: Vec<Kind> = (0..2 * POISON_EVERY).map(Kind::of).collect();
        let count = |kind| kinds.iter().filter(|k| **k == kind).count();
        assert_eq!(count(Kind::NotJson), 2);
        assert_eq!(count(Kind::FailingTemplate), 2);
        assert_eq!(count(Kind::Valid), 1_996);
    }

    #[test]
    fn valid_events_render_one_delivery_and_failing_ones_fail_in_the_processor() {
        let file = ResourceFile::new("http://127.0.0.1:9").unwrap();
        let text = file.to_toml().unwrap();
        let parsed = hookline::resource_file::ResourceFile::parse(&text).unwrap();
        let problems = hookline::resource_file::validate(&parsed.resources(), &Limits::default());
        assert!(problems.is_empty(), "{problems:?}");
        let mut set = ResourceSet::default();
        set.put(Resource::Source(file.sources[0].clone()));
        set.put(Resource::Destination(file.destinations[0].clone()));
        set.put(Resource::Trigger(file.triggers[0].clone()));
        let sample = |seq| SampleEvent {
            source: ResourceId::parse(SOURCE.id.to_owned()).unwrap(),
            headers: BTreeMap::new(),
            body: FaultEvents.event(seq, 1_795_399_000_000_000).body.to_vec(),
        };
        let valid = preview(&file.triggers[0], &set, &sample(7), &Limits::default()).unwrap();
        assert_eq!(valid.requests.len(), 1);
        let body: serde_json::Value = serde_json::from_str(&valid.requests[0].body).unwrap();
        assert_eq!(
            (body["seq"].as_u64(), body["slot"].as_u64()),
            (Some(7), Some(0))
        );
        let failing = preview(&file.triggers[0], &set, &sample(999), &Limits::default());
        assert!(
            matches!(failing, Err(PreviewError::Render(_))),
            "{failing:?}"
        );
        assert!(serde_json::from_slice::<serde_json::Value>(&sample(499).body).is_err());
        assert_eq!(FaultEvents.event(499, 0).deliveries, 0);
        assert_eq!(FaultEvents.event(999, 0).deliveries, 0);
        assert_eq!(FaultEvents.event(1_000, 0).deliveries, 1);
    }
}
