//! A trigger whose template fails on every event poisons nothing else: each event it fails on is
//! dead-lettered with the reason, and the same events still reach the other triggers, in order.
//! Runs on the embedded broker, or on the real cluster named by `KAFKA_BROKERS`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::eventually;
use harness::stages::{Stages, World, accepted_id, apply, post, resources, signup};
use hookline::resource_file::ResourceFile;
use hookline_schemas::{DeadLetter, DeadReason};

/// A trigger on every `app` event whose body asks for a petabyte of padding: before the
/// template limits, rendering it aborted the whole process on every restart.
const POISON: &str = r#"
[[triggers]]
id = "poison"
when = { sources = ["app"] }

[[triggers.actions]]
destination = "crm"
body = '{{ "{:>1000000000000000}".format("x") }}'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_failing_on_every_event_dead_letters_each_and_the_rest_is_delivered() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().world().await;
    let mut file = resources(&receiver);
    file.triggers
        .extend(ResourceFile::parse(POISON).unwrap().triggers);
    apply(&settings, &pipeline, &file).await;

    let mut ids = Vec::new();
    for seq in 1..=3 {
        ids.push(accepted_id(post(&pipeline, signup(seq)).await).await);
    }

    // The healthy `signups` trigger delivers every event, in order.
    let delivered = eventually("three deliveries", || async {
        let received = receiver.received();
        (received.len() >= 3).then_some(received)
    })
    .await;
    let seqs: Vec<_> = delivered.iter().map(|r| r.json()["seq"].clone()).collect();
    assert_eq!(seqs, [1, 2, 3]);

    // The poison trigger dead-letters each of them, saying why.
    let dead = harness::kafka::read_topic(
        &settings,
        &settings.topics().dead(),
        3,
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(dead.len(), 3, "one dead letter per event");
    let mut dead_events = BTreeSet::new();
    for (_, payload) in &dead {
        let letter: DeadLetter = serde_json::from_slice(payload).unwrap();
        assert_eq!(letter.reason, DeadReason::RenderFailed);
        assert!(
            letter.error.contains("trigger poison")
                && letter.error.contains("actions[0].body")
                && letter
                    .error
                    .contains("format width 1000000000000000 at offset 0 is larger than the limit"),
            "{}",
            letter.error
        );
        let payload = serde_json::to_string(&letter.payload).unwrap();
        dead_events.extend(
            ids.iter()
                .filter(|id| payload.contains(id.as_str()))
                .cloned(),
        );
    }
    assert_eq!(
        dead_events,
        ids.iter().cloned().collect(),
        "each event once"
    );
    pipeline.stop().await.unwrap();
}
