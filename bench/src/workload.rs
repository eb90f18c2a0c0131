//! The workload: three sources, twenty triggers with `if` conditions, six signed destinations,
//! and the ~1 KiB events the generator sends.
//!
//! Events cycle through twelve variants per source. The variants are built so that exactly half
//! of them fire at least one trigger (one of them fires two), so every event's deliveries are
//! known in advance: 7 deliveries per 12 events. Every body template copies the generator's
//! `bench.seq` and `bench.sent_at_us` and names its per-source `slot`, which lets the receiver
//! measure latency from the generator's send and count each delivery once.
//!
//! A test runs every trigger against every variant with the processor's own preview function, so
//! the expected deliveries are what Hookline does, not what this file believes.

use bytes::Bytes;
use hookline_schemas::{Action, Destination, ResourceId, Source, SourceAuth, Trigger, When};
use serde::Serialize;

use self::payloads::payload;

mod payloads;

/// Variants per source; the event with sequence number `seq` is of source `seq % 3` and variant
/// `(seq / 3) % VARIANTS`.
pub const VARIANTS: usize = 12;

/// The Standard Webhooks secret every destination signs with and the receiver verifies.
pub const SIGNING_SECRET: &str = "whsec_aG9va2xpbmUtYmVuY2gtc2lnbmluZy1zZWNyZXQtMDEyMzQ1";

/// One inbound source of the workload.
#[derive(Clone, Copy, Debug)]
pub struct SourceSpec {
    /// The source id (the ids were picked so that the three land on distinct partitions of a
    /// 6-partition topic under librdkafka's default partitioner).
    pub id: &'static str,
    /// The bearer token its requests carry.
    pub token: &'static str,
    /// Inbound headers sent with every event, beyond authorization and content type.
    pub headers: &'static [(&'static str, &'static str)],
}

/// The three sources: a GitHub-like push feed, a monitoring system's alerts, a billing provider.
pub const SOURCES: [SourceSpec; 3] = [
    SourceSpec {
        id: "github",
        token: "bench-token-github",
        headers: &[("x-github-event", "push")],
    },
    SourceSpec {
        id: "alerts",
        token: "bench-token-alerts",
        headers: &[],
    },
    SourceSpec {
        id: "billing",
        token: "bench-token-billing",
        headers: &[],
    },
];

/// The destinations, two per source. Like the sources, the ids land on the six distinct
/// partitions of `hookline.deliveries` (jobs are keyed by destination id), so two dispatchers
/// can share the work evenly.
pub const DESTINATIONS: [&str; 6] = ["chat", "ci", "pager", "status", "finance", "reporting"];

/// A trigger of the workload and the variants of its source it fires on.
struct TriggerSpec {
    id: &'static str,
    source: usize,
    /// `(expression, types)` for `when.event_type` and `when.event_types`.
    event_types: Option<(&'static str, &'static [&'static str])>,
    condition: &'static str,
    destination: &'static str,
    /// The body's fields after the common ones (`seq`, `sent_at_us`, `slot`, `trigger`, `event_id`).
    fields: &'static str,
    /// Header templates of the action.
    headers: &'static [(&'static str, &'static str)],
    /// The variants (of its own source) that fire it.
    fires_on: &'static [usize],
}

const GITHUB_PUSH: Option<(&str, &[&str])> = Some(("event.headers[\"x-github-event\"]", &["push"]));
const ALERT_ANY: Option<(&str, &[&str])> = Some(("payload.event", &["customer.alert.*"]));

const TRIGGERS: [TriggerSpec; 20] = [
    // GitHub: seven triggers on pushes.
    TriggerSpec {
        id: "gh-push-default-branch",
        source: 0,
        event_types: GITHUB_PUSH,
        condition: r#"payload.ref == "refs/heads/" ~ payload.repository.default_branch and not payload.deleted"#,
        destination: "chat",
        fields: r#""text": {{ payload.pusher.name ~ " pushed " ~ (payload.commits | length) ~ " commit(s) to " ~ payload.repository.full_name }}, "compare": {{ payload.compare }}, "head": {{ payload.head_commit.message | truncate(length=40) }}"#,
        headers: &[("x-hookline-trigger", "{{ trigger.id }}")],
        fires_on: &[0],
    },
    TriggerSpec {
        id: "gh-release-tag",
        source: 0,
        event_types: GITHUB_PUSH,
        condition: r#"payload.ref.startswith("refs/tags/v")"#,
        destination: "ci",
        fields: r#""release": {{ payload.ref.split("/")[2] }}, "repository": {{ payload.repository.full_name }}, "url": {{ payload.repository.html_url }}, "by": {{ payload.sender.login }}"#,
        headers: &[],
        fires_on: &[1],
    },
    TriggerSpec {
        id: "gh-force-push-release",
        source: 0,
        event_types: GITHUB_PUSH,
        condition: r#"payload.forced and payload.ref.startswith("refs/heads/release/")"#,
        destination: "chat",
        fields: r#""warning": {{ "Force push to " ~ payload.ref ~ " by " ~ payload.pusher.name }}, "before": {{ payload.before[:12] }}, "after": {{ payload.after[:12] }}"#,
        headers: &[("x-hookline-trigger", "{{ trigger.id }}")],
        fires_on: &[2],
    },
    TriggerSpec {
        id: "gh-release-branch-deleted",
        source: 0,
        event_types: GITHUB_PUSH,
        condition: r#"payload.deleted and payload.ref.startswith("refs/heads/release/")"#,
        destination: "ci",
        fields: r#""deleted": {{ payload.ref }}, "repository": {{ payload.repository.full_name }}, "by": {{ payload.pusher.email }}, "at": {{ payload.commits[0].timestamp }}"#,
        headers: &[],
        fires_on: &[3],
    },
    TriggerSpec {
        id: "gh-security-repo",
        source: 0,
        event_types: GITHUB_PUSH,
        condition: r#"payload.repository.name == "security-policies""#,
        destination: "chat",
        fields: r#""audit": {{ payload.repository.full_name ~ "@" ~ payload.after[:12] }}, "pusher": {{ payload.pusher.name }}, "files": {{ payload.commits[0].modified | join(", ") }}"#,
        headers: &[("x-hookline-trigger", "{{ trigger.id }}")],
        fires_on: &[4],
    },
    TriggerSpec {
        id: "gh-revert",
        source: 0,
        event_types: GITHUB_PUSH,
        condition: r#"payload.head_commit.message.startswith("Revert")"#,
        destination: "chat",
        fields: r#""revert": {{ payload.head_commit.message | truncate(length=48) }}, "author": {{ payload.head_commit.author.username }}, "ref": {{ payload.ref }}"#,
        headers: &[("x-hookline-trigger", "{{ trigger.id }}")],
        fires_on: &[5],
    },
    TriggerSpec {
        id: "gh-bot-production",
        source: 0,
        event_types: GITHUB_PUSH,
        condition: r#"payload.pusher.name == "deploy-bot" and payload.ref == "refs/heads/production""#,
        destination: "ci",
        fields: r#""deploy": {{ payload.after }}, "environment": "production", "repository": {{ payload.repository.name }}"#,
        headers: &[],
        fires_on: &[5],
    },
    // Monitoring alerts: seven triggers.
    TriggerSpec {
        id: "al-page-critical",
        source: 1,
        event_types: ALERT_ANY,
        condition: r#"payload.severity == "critical" and payload.labels.env == "prod""#,
        destination: "pager",
        fields: r#""event_action": "trigger", "dedup_key": {{ payload.alert.id }}, "summary": {{ "[" ~ payload.labels.service ~ "] " ~ payload.message }}, "source": {{ payload.labels.region }}"#,
        headers: &[("idempotency-key", "{{ event.id }}")],
        fires_on: &[0],
    },
    TriggerSpec {
        id: "al-high-repeated",
        source: 1,
        event_types: ALERT_ANY,
        condition: r#"payload.severity == "high" and payload.count > 3 and payload.labels.env == "prod""#,
        destination: "pager",
        fields: r#""dedup_key": {{ payload.alert.id }}, "severity": {{ payload.severity }}, "count": {{ payload.count }}, "summary": {{ payload.message | truncate(length=48) }}"#,
        headers: &[("idempotency-key", "{{ event.id }}")],
        fires_on: &[1],
    },
    TriggerSpec {
        id: "al-billing-errors",
        source: 1,
        event_types: ALERT_ANY,
        condition: r#"payload.labels.service == "billing-api" and payload.alert.metric == "http_5xx_ratio""#,
        destination: "status",
        fields: r#""component": {{ payload.labels.service }}, "status": "degraded_performance", "value": {{ payload.alert.value }}, "threshold": {{ payload.alert.threshold }}"#,
        headers: &[],
        fires_on: &[2],
    },
    TriggerSpec {
        id: "al-latency",
        source: 1,
        event_types: ALERT_ANY,
        condition: r#"payload.alert.metric == "p99_latency_ms" and payload.alert.value > payload.alert.threshold"#,
        destination: "status",
        fields: r#""component": {{ payload.labels.service }}, "status": "partial_outage", "p99_ms": {{ payload.alert.value }}, "runbook": {{ payload.alert.runbook }}"#,
        headers: &[],
        fires_on: &[3],
    },
    TriggerSpec {
        id: "al-resolved",
        source: 1,
        event_types: Some(("payload.event", &["customer.alert.resolved"])),
        condition: r#"payload.labels.env == "prod""#,
        destination: "pager",
        fields: r#""event_action": "resolve", "dedup_key": {{ payload.alert.id }}, "customer": {{ payload.customer.name }}, "window": {{ payload.alert.window }}"#,
        headers: &[("idempotency-key", "{{ event.id }}")],
        fires_on: &[4],
    },
    TriggerSpec {
        id: "al-eu-staging",
        source: 1,
        event_types: ALERT_ANY,
        condition: r#"payload.labels.region.startswith("eu-") and payload.severity == "high" and payload.labels.env == "staging""#,
        destination: "status",
        fields: r#""region": {{ payload.labels.region }}, "environment": {{ payload.labels.env }}, "metric": {{ payload.alert.metric }}, "started_at": {{ payload.alert.started_at }}"#,
        headers: &[],
        fires_on: &[5],
    },
    TriggerSpec {
        id: "al-enterprise-critical",
        source: 1,
        event_types: ALERT_ANY,
        condition: r#"payload.customer.plan == "enterprise" and payload.severity == "critical""#,
        destination: "status",
        fields: r#""account": {{ payload.account_external_id }}, "customer": {{ payload.customer.name }}, "plan": {{ payload.customer.plan }}, "message": {{ payload.message }}"#,
        headers: &[],
        fires_on: &[0],
    },
    // Billing: six triggers.
    TriggerSpec {
        id: "bi-payment-failed-final",
        source: 2,
        event_types: Some(("payload.type", &["invoice.payment_failed"])),
        condition: "payload.data.object.attempt_count >= 3",
        destination: "finance",
        fields: r#""invoice": {{ payload.data.object.id }}, "customer": {{ payload.data.object.customer }}, "amount_due": {{ payload.data.object.amount_due }}, "currency": {{ payload.data.object.currency | upper }}"#,
        headers: &[],
        fires_on: &[0, 5],
    },
    TriggerSpec {
        id: "bi-large-invoice",
        source: 2,
        event_types: Some(("payload.type", &["invoice.*"])),
        condition: r#"payload.data.object.amount_due > 100000 and payload.data.object.currency == "eur""#,
        destination: "finance",
        fields: r#""amount_due": {{ payload.data.object.amount_due }}, "email": {{ payload.data.object.customer_email }}, "url": {{ payload.data.object.hosted_invoice_url }}"#,
        headers: &[],
        fires_on: &[1],
    },
    TriggerSpec {
        id: "bi-subscription-canceled",
        source: 2,
        event_types: Some(("payload.type", &["customer.subscription.deleted"])),
        condition: "payload.livemode",
        destination: "reporting",
        fields: r#""customer": {{ payload.data.object.customer }}, "event": {{ payload.id }}, "api_version": {{ payload.api_version }}, "created": {{ payload.created }}"#,
        headers: &[],
        fires_on: &[2],
    },
    TriggerSpec {
        id: "bi-dispute",
        source: 2,
        event_types: Some(("payload.type", &["charge.dispute.*"])),
        condition: "payload.data.object.amount_due > 0",
        destination: "finance",
        fields: r#""dispute_for": {{ payload.data.object.id }}, "amount": {{ payload.data.object.amount_due }}, "currency": {{ payload.data.object.currency }}, "email": {{ payload.data.object.customer_email }}"#,
        headers: &[],
        fires_on: &[3],
    },
    TriggerSpec {
        id: "bi-usd-paid",
        source: 2,
        event_types: Some(("payload.type", &["invoice.paid"])),
        condition: r#"payload.data.object.currency == "usd""#,
        destination: "reporting",
        fields: r#""paid": {{ payload.data.object.id }}, "amount_paid": {{ payload.data.object.amount_paid }}, "customer": {{ payload.data.object.customer }}, "status": {{ payload.data.object.status }}"#,
        headers: &[],
        fires_on: &[4],
    },
    TriggerSpec {
        id: "bi-vip-customer",
        source: 2,
        event_types: None,
        condition: r#"payload.data.object.customer_email.endswith("@bigcorp.example")"#,
        destination: "reporting",
        fields: r#""vip": {{ payload.data.object.customer_email }}, "type": {{ payload.type }}, "invoice": {{ payload.data.object.id }}, "attempts": {{ payload.data.object.attempt_count }}"#,
        headers: &[],
        fires_on: &[5],
    },
];

/// The resource file the benchmark applies: `hookline apply -f` and `hookline dev -f` read it.
#[derive(Debug, Serialize)]
pub struct ResourceFile {
    /// `[[sources]]`.
    pub sources: Vec<Source>,
    /// `[[destinations]]`.
    pub destinations: Vec<Destination>,
    /// `[[triggers]]`.
    pub triggers: Vec<Trigger>,
}

impl ResourceFile {
    /// The workload's resources, every destination pointing at `receiver` (`http://host:port`)
    /// and signing with [`SIGNING_SECRET`].
    pub fn new(receiver: &str) -> anyhow::Result<Self> {
        let id = |value: &str| ResourceId::parse(value.to_owned());
        let mut sources = Vec::new();
        for spec in SOURCES {
            let mut source = Source::new(
                id(spec.id)?,
                vec![SourceAuth::Bearer {
                    tokens: vec![spec.token.to_owned()],
                    expires_at: None,
                }],
            );
            source.name = format!("Benchmark source {}", spec.id);
            source.keep_headers = spec
                .headers
                .iter()
                .map(|(name, _)| (*name).to_owned())
                .collect();
            sources.push(source);
        }
        let mut destinations = Vec::new();
        for name in DESTINATIONS {
            let mut destination = Destination::new(id(name)?, format!("{receiver}/hooks/{name}"));
            destination.name = format!("Benchmark receiver ({name})");
            destination.secrets = vec![SIGNING_SECRET.to_owned()];
            destination
                .headers
                .insert("x-bench".to_owned(), "1".to_owned());
            destinations.push(destination);
        }
        let mut triggers = Vec::new();
        for spec in &TRIGGERS {
            triggers.push(Trigger {
                schema_version: hookline_schemas::SCHEMA_VERSION,
                id: id(spec.id)?,
                name: format!("Benchmark trigger {}", spec.id),
                enabled: true,
                when: When {
                    sources: vec![id(SOURCES[spec.source].id)?],
                    event_type: spec
                        .event_types
                        .map(|(expression, _)| expression.to_owned()),
                    event_types: spec
                        .event_types
                        .map(|(_, types)| types.iter().map(|t| (*t).to_owned()).collect())
                        .unwrap_or_default(),
                },
                condition: Some(spec.condition.to_owned()),
                actions: vec![Action {
                    destination: id(spec.destination)?,
                    body: body_template(slot(spec), spec.fields),
                    headers: spec
                        .headers
                        .iter()
                        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                        .collect(),
                    url: None,
                }],
            });
        }
        Ok(Self {
            sources,
            destinations,
            triggers,
        })
    }

    /// The file as TOML.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string(self)?)
    }
}

/// A trigger's index among the triggers of its source: the bit the receiver sets per event.
fn slot(spec: &TriggerSpec) -> usize {
    TRIGGERS
        .iter()
        .filter(|other| other.source == spec.source)
        .position(|other| other.id == spec.id)
        .unwrap_or(0)
}

fn body_template(slot: usize, fields: &str) -> String {
    let mut body = String::from(
        r#"{"seq": {{ payload.bench.seq }}, "sent_at_us": {{ payload.bench.sent_at_us }}, "slot": "#,
    );
    body.push_str(&slot.to_string());
    body.push_str(
        r#", "trigger": {{ trigger.id }}, "event_id": {{ event.id }}, "source": {{ event.source }}, "received_at": {{ event.received_at }}, "#,
    );
    body.push_str(fields);
    body.push('}');
    body
}

/// One event to send.
#[derive(Clone, Debug)]
pub struct Event {
    /// Index into [`SOURCES`].
    pub source: usize,
    /// The JSON body.
    pub body: Bytes,
    /// Deliveries it causes.
    pub deliveries: u32,
}

/// Makes the events: the variant payloads serialized once, the sequence number and send time
/// spliced in front of each.
#[derive(Clone, Debug)]
pub struct Generator {
    /// `payloads[source][variant]`: the serialized payload without its opening brace.
    rest: Vec<Vec<String>>,
    /// `deliveries[source][variant]`.
    deliveries: Vec<Vec<u32>>,
}

impl Default for Generator {
    fn default() -> Self {
        Self::new()
    }
}

impl Generator {
    /// The generator of the workload above.
    pub fn new() -> Self {
        let rest = (0..SOURCES.len())
            .map(|source| {
                (0..VARIANTS)
                    .map(|variant| {
                        let text = payload(source, variant).to_string();
                        text.strip_prefix('{').unwrap_or(&text).to_owned()
                    })
                    .collect()
            })
            .collect();
        let deliveries = (0..SOURCES.len())
            .map(|source| {
                (0..VARIANTS)
                    .map(|variant| expected_deliveries(source, variant))
                    .collect()
            })
            .collect();
        Self { rest, deliveries }
    }

    /// The event with sequence number `seq`, stamped `sent_at_us` (microseconds since the Unix
    /// epoch).
    pub fn event(&self, seq: u64, sent_at_us: u64) -> Event {
        let (source, variant) = position(seq);
        let rest = &self.rest[source][variant];
        let mut body = Vec::with_capacity(rest.len() + 64);
        body.extend_from_slice(b"{\"bench\":{\"seq\":");
        body.extend_from_slice(seq.to_string().as_bytes());
        body.extend_from_slice(b",\"sent_at_us\":");
        body.extend_from_slice(sent_at_us.to_string().as_bytes());
        body.extend_from_slice(b"},");
        body.extend_from_slice(rest.as_bytes());
        Event {
            source,
            body: Bytes::from(body),
            deliveries: self.deliveries[source][variant],
        }
    }

    /// Deliveries the event with sequence number `seq` causes.
    pub fn deliveries(&self, seq: u64) -> u32 {
        let (source, variant) = position(seq);
        self.deliveries[source][variant]
    }
}

/// Deliveries per event over a whole cycle of variants: 7 per 12 events.
pub fn deliveries_per_event() -> f64 {
    let total: u32 = (0..SOURCES.len())
        .flat_map(|source| (0..VARIANTS).map(move |variant| expected_deliveries(source, variant)))
        .sum();
    f64::from(total) / (SOURCES.len() * VARIANTS) as f64
}

/// Share of events that fire at least one trigger: exactly one half.
pub fn matching_share() -> f64 {
    let matching = (0..SOURCES.len())
        .flat_map(|source| (0..VARIANTS).map(move |variant| expected_deliveries(source, variant)))
        .filter(|deliveries| *deliveries > 0)
        .count();
    matching as f64 / (SOURCES.len() * VARIANTS) as f64
}

/// Number of triggers.
pub fn trigger_count() -> usize {
    TRIGGERS.len()
}

fn position(seq: u64) -> (usize, usize) {
    let sources = SOURCES.len() as u64;
    let source = (seq % sources) as usize;
    let variant = ((seq / sources) % VARIANTS as u64) as usize;
    (source, variant)
}

fn expected_deliveries(source: usize, variant: usize) -> u32 {
    let fired = TRIGGERS
        .iter()
        .filter(|spec| spec.source == source && spec.fires_on.contains(&variant))
        .count();
    u32::try_from(fired).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hookline_processor::preview::{SampleEvent, preview};
    use hookline_processor::template::Limits;
    use hookline_runtime::resources::ResourceSet;
    use hookline_schemas::Resource;

    use serde_json::{Value, json};

    use super::*;

    fn resources(file: &ResourceFile) -> ResourceSet {
        let mut set = ResourceSet::default();
        for source in &file.sources {
            set.put(Resource::Source(source.clone()));
        }
        for destination in &file.destinations {
            set.put(Resource::Destination(destination.clone()));
        }
        for trigger in &file.triggers {
            set.put(Resource::Trigger(trigger.clone()));
        }
        set
    }

    #[test]
    fn the_processor_fires_exactly_the_expected_triggers_with_300_byte_bodies() {
        let file = ResourceFile::new("http://127.0.0.1:9").unwrap();
        let set = resources(&file);
        let generator = Generator::new();
        let mut body_sizes = Vec::new();
        for (source, spec) in SOURCES.iter().enumerate() {
            for variant in 0..VARIANTS {
                let seq = (variant * SOURCES.len() + source) as u64;
                let event = generator.event(seq, 1_795_399_000_000_000);
                let headers: BTreeMap<String, String> = spec
                    .headers
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                    .collect();
                let sample = SampleEvent {
                    source: ResourceId::parse(spec.id.to_owned()).unwrap(),
                    headers,
                    body: event.body.to_vec(),
                };
                let mut fired = 0;
                for (trigger, trigger_spec) in file.triggers.iter().zip(&TRIGGERS) {
                    let result = preview(trigger, &set, &sample, &Limits::default())
                        .unwrap_or_else(|error| panic!("{}: {error}", trigger_spec.id));
                    let expected =
                        trigger_spec.source == source && trigger_spec.fires_on.contains(&variant);
                    assert_eq!(
                        result.matched, expected,
                        "trigger {} on {} variant {variant}: {:?}",
                        trigger_spec.id, spec.id, result.reason
                    );
                    for request in &result.requests {
                        let body: Value = serde_json::from_str(&request.body).unwrap();
                        assert_eq!(body["seq"], json!(seq));
                        assert_eq!(body["sent_at_us"], json!(1_795_399_000_000_000_u64));
                        assert_eq!(body["slot"], json!(slot(trigger_spec)));
                        body_sizes.push(request.body.len());
                        fired += 1;
                    }
                }
                assert_eq!(fired, event.deliveries, "{} variant {variant}", spec.id);
            }
        }
        let mean = body_sizes.iter().sum::<usize>() / body_sizes.len();
        assert!((250..=350).contains(&mean), "mean body {mean} bytes");
        assert!(
            body_sizes.iter().all(|size| (200..=400).contains(size)),
            "{body_sizes:?}"
        );
    }

    #[test]
    fn events_are_about_one_kib_and_half_of_them_match() {
        let generator = Generator::new();
        let sizes: Vec<usize> = (0..(SOURCES.len() * VARIANTS) as u64)
            .map(|seq| generator.event(seq, 1_795_399_000_000_000).body.len())
            .collect();
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!(
            (1000..=1050).contains(&mean) && sizes.iter().all(|size| (950..=1100).contains(size)),
            "{sizes:?}"
        );
        for seq in 0..(SOURCES.len() * VARIANTS) as u64 {
            serde_json::from_slice::<Value>(&generator.event(seq, 0).body).unwrap();
        }
        assert!((matching_share() - 0.5).abs() < f64::EPSILON);
        assert!((deliveries_per_event() - 7.0 / 12.0).abs() < 1e-12);
        assert_eq!(trigger_count(), 20);
    }

    #[test]
    fn the_resource_file_is_valid_for_hookline() {
        let text = ResourceFile::new("http://127.0.0.1:9")
            .unwrap()
            .to_toml()
            .unwrap();
        let file = hookline::resource_file::ResourceFile::parse(&text).unwrap();
        assert_eq!(
            (
                file.sources.len(),
                file.destinations.len(),
                file.triggers.len()
            ),
            (3, 6, 20)
        );
        let problems = hookline::resource_file::validate(&file.resources(), &Limits::default());
        assert!(problems.is_empty(), "{problems:?}");
    }
}
