//! Preview and pipeline agree: a table of events goes through the running pipeline (ingest,
//! processor, dispatcher) and through the preview the CLI and the control API use, and for every
//! trigger both say the same: fired or not and why, which actions were delivered, skipped or
//! failed, and the same requests. Runs on the embedded broker, or on the real cluster named by
//! `KAFKA_BROKERS`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::eventually;
use harness::stages::{Stages, World, accepted_id, apply, post};
use hookline::resource_file::ResourceFile;
use hookline_processor::preview::{self, PreviewError, SampleEvent};
use hookline_processor::template::Limits;
use hookline_runtime::resources::ResourceSet;
use hookline_schemas::{MatchRecord, ResourceId, SkipReason, TriggerResult};

/// Triggers on `app` (the harness's source), each firing on its own `payload.case`, and
/// destinations at the receiver, one of them disabled.
fn table(receiver: &str) -> String {
    format!(
        r#"
[[destinations]]
id = "ops"
url = "{receiver}/hooks/ops"

[[destinations]]
id = "off"
url = "{receiver}/hooks/off"
enabled = false

[[triggers]]
id = "fires"
when = {{ sources = ["app"] }}
if = 'payload.case == "fires"'
[[triggers.actions]]
destination = "crm"
body = '{{"email": {{{{ payload.email }}}}, "n": {{{{ payload.n * 2 }}}}}}'
headers = {{ "x-case" = "{{{{ payload.case }}}}" }}
url = '{receiver}/hooks/crm?n={{{{ payload.n }}}}'

[[triggers]]
id = "two-actions"
when = {{ sources = ["app"] }}
if = 'payload.case == "two-actions"'
[[triggers.actions]]
destination = "crm"
body = '{{"to": "crm"}}'
headers = {{ "x-case" = "{{{{ payload.case }}}}" }}
[[triggers.actions]]
destination = "ops"
body = '{{"to": "ops", "email": {{{{ payload.email | upper }}}}}}'
headers = {{ "x-case" = "{{{{ payload.case }}}}" }}

# The disabled destination's template would fail: it is skipped, never rendered.
[[triggers]]
id = "disabled-first"
when = {{ sources = ["app"] }}
if = 'payload.case == "disabled-first"'
[[triggers.actions]]
destination = "off"
body = '{{"x": {{{{ payload.missing.deeper }}}}}}'
[[triggers.actions]]
destination = "crm"
body = '{{"after": "disabled"}}'
headers = {{ "x-case" = "{{{{ payload.case }}}}" }}

[[triggers]]
id = "broken"
when = {{ sources = ["app"] }}
if = 'payload.case == "broken"'
[[triggers.actions]]
destination = "crm"
body = '{{"x": {{{{ payload.missing.deeper }}}}}}'

[[triggers]]
id = "broken-condition"
when = {{ sources = ["app"] }}
if = 'payload.case == "broken-condition" and payload.missing.deeper'
[[triggers.actions]]
destination = "crm"
body = '{{}}'

[[triggers]]
id = "typed"
when = {{ sources = ["app"], event_type = "payload.kind", event_types = ["order.*"] }}
[[triggers.actions]]
destination = "ops"
body = '{{"kind": {{{{ payload.kind }}}}}}'
headers = {{ "x-case" = "{{{{ payload.case }}}}" }}
"#
    )
}

const CASES: &[&str] = &[
    "fires",
    "two-actions",
    "disabled-first",
    "broken",
    "broken-condition",
    "typed",
];

/// What one trigger did with one event, as both sides can say it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Did {
    OtherEventType,
    ConditionFalse,
    /// `when.event_type` or `if` failed.
    Failed,
    /// Fired: per action, `delivered`, `skipped: <reason>` or `failed`.
    Fired(Vec<String>),
}

fn event(case: &str, n: u64) -> serde_json::Value {
    let kind = if case == "typed" {
        "order.paid"
    } else {
        "user.created"
    };
    serde_json::json!({"case": case, "n": n, "email": format!("{case}@example.com"), "kind": kind})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_and_pipeline_agree_on_every_trigger_and_request() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().world().await;
    let base = receiver.url("");
    let mut file = harness::stages::resources(&receiver);
    let table = ResourceFile::parse(&table(base.trim_end_matches('/'))).unwrap();
    file.destinations.extend(table.destinations);
    file.triggers.extend(table.triggers);
    apply(&settings, &pipeline, &file).await;
    let mut resources = ResourceSet::default();
    for resource in file.resources() {
        resources.put(resource);
    }
    let app = ResourceId::parse("app").unwrap();

    // What the previews say, per case and trigger, and the requests they show.
    let mut expected = BTreeMap::new();
    let mut expected_requests = Vec::new();
    for (n, case) in (1..).zip(CASES) {
        let body = serde_json::to_vec(&event(case, n)).unwrap();
        for trigger in &file.triggers {
            let sample = SampleEvent {
                source: app.clone(),
                headers: BTreeMap::new(),
                body: body.clone(),
            };
            let did = match preview::preview(trigger, &resources, &sample, &Limits::default()) {
                Ok(preview) if preview.matched => {
                    let mut actions = BTreeMap::new();
                    for request in preview.requests {
                        let path = request
                            .url
                            .strip_prefix(base.trim_end_matches('/'))
                            .unwrap();
                        expected_requests.push((case.to_string(), path.to_owned(), request.body));
                        actions.insert(request.action, "delivered".to_owned());
                    }
                    for skipped in preview.skipped {
                        let index: usize = skipped["actions[".len()..skipped.find(']').unwrap()]
                            .parse()
                            .unwrap();
                        let reason = if skipped.ends_with("is disabled") {
                            "skipped: destination_disabled"
                        } else {
                            "skipped: destination_missing"
                        };
                        actions.insert(index, reason.to_owned());
                    }
                    Did::Fired(actions.into_values().collect())
                }
                Ok(preview) => match preview.reason.as_deref() {
                    Some("the `if` condition is false") => Did::ConditionFalse,
                    Some(reason) if reason.starts_with("event type") => Did::OtherEventType,
                    other => panic!("{case}/{}: unexpected reason {other:?}", trigger.id),
                },
                Err(PreviewError::Render(error)) if error.field.starts_with("actions[") => {
                    // Preview stops at the failing action; the pipeline records each action.
                    let index: usize = error.field
                        ["actions[".len()..error.field.find(']').unwrap()]
                        .parse()
                        .unwrap();
                    let mut actions = vec!["delivered".to_owned(); trigger.actions.len()];
                    actions[index] = "failed".to_owned();
                    Did::Fired(actions)
                }
                Err(PreviewError::Render(_)) => Did::Failed,
                Err(error) => panic!("{case}/{}: {error}", trigger.id),
            };
            expected.insert((case.to_string(), trigger.id.to_string()), did);
        }
    }

    // What the pipeline does with the same events.
    let mut cases_by_event = BTreeMap::new();
    for (n, case) in (1..).zip(CASES) {
        let id = accepted_id(post(&pipeline, event(case, n)).await).await;
        cases_by_event.insert(id, case.to_string());
    }
    let records = harness::kafka::read_topic(
        &settings,
        &settings.topics().matches(),
        CASES.len(),
        Duration::from_millis(500),
    )
    .await;
    let mut actual = BTreeMap::new();
    for (_, payload) in &records {
        let record: MatchRecord = serde_json::from_slice(payload).unwrap();
        let case = &cases_by_event[&record.event_id];
        for result in record.triggers {
            let did = match result.result {
                TriggerResult::OtherEventType => Did::OtherEventType,
                TriggerResult::ConditionFalse => Did::ConditionFalse,
                TriggerResult::Error => Did::Failed,
                TriggerResult::Fired => {
                    let mut actions = BTreeMap::new();
                    for delivery in result.deliveries {
                        actions.insert(delivery.action, "delivered".to_owned());
                    }
                    for skipped in result.skipped {
                        let did = match skipped.reason {
                            SkipReason::DestinationDisabled => "skipped: destination_disabled",
                            SkipReason::DestinationMissing => "skipped: destination_missing",
                            SkipReason::RenderFailed => "failed",
                            SkipReason::TooLarge => "too large",
                            SkipReason::AlreadyDelivered => "already delivered",
                        };
                        actions.insert(skipped.action, did.to_owned());
                    }
                    // Preview stops at a failing action, so the ones after it count as the
                    // pipeline's.
                    Did::Fired(actions.into_values().collect())
                }
            };
            actual.insert((case.clone(), result.trigger_id.to_string()), did);
        }
    }
    for ((case, trigger), did) in &expected {
        // A preview that stopped at a failing action says nothing of the actions after it.
        let pipeline_did = actual.get(&(case.clone(), trigger.clone()));
        match (did, pipeline_did) {
            (Did::Fired(previewed), Some(Did::Fired(done)))
                if previewed.contains(&"failed".to_owned()) =>
            {
                let stop = previewed.iter().position(|a| a == "failed").unwrap();
                assert_eq!(previewed[..=stop], done[..=stop], "{case}/{trigger}");
            }
            _ => assert_eq!(Some(did), pipeline_did, "{case}/{trigger}"),
        }
    }
    assert_eq!(expected.len(), actual.len(), "{actual:#?}");

    // The requests delivered are those the previews showed.
    let delivered = eventually("the previewed requests to arrive", || async {
        let received = receiver.received();
        (received.len() >= expected_requests.len()).then_some(received)
    })
    .await;
    let mut delivered: Vec<_> = delivered
        .into_iter()
        .map(|request| {
            let case = request.headers.get("x-case").cloned().unwrap_or_default();
            (case, request.path, request.body)
        })
        .collect();
    delivered.sort();
    expected_requests.sort();
    assert_eq!(delivered, expected_requests);
    assert!(
        expected_requests.len() >= 5,
        "the table delivers through several triggers: {expected_requests:#?}"
    );
    pipeline.stop().await.unwrap();
}
