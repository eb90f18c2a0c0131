//! End-to-end tests of the whole pipeline: HTTP in, through Kafka, HTTP out. They run on the
//! embedded broker, or on the real cluster named by `KAFKA_BROKERS`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use harness::stages::{Stages, World, accepted_id, apply, post, resources, signup};
use harness::{TestKafka, TestReceiver, eventually};
use hookline::pipeline::Pipeline;
use hookline::resource_file::{self, ResourceFile};
use hookline_schemas::{
    DeadLetter, DeadReason, MatchOutcome, MatchRecord, SkipReason, TriggerResult,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_event_reaches_the_receiver_rendered_with_its_headers() {
    let World {
        kafka: _kafka,
        receiver,
        pipeline,
        ..
    } = Stages::all().world().await;

    // The condition is false for this one: it must never arrive.
    let skipped = post(
        &pipeline,
        serde_json::json!({"type": "user.deleted", "seq": 0}),
    )
    .await;
    accepted_id(skipped).await;
    let id = accepted_id(post(&pipeline, signup(1)).await).await;

    let got = eventually("the delivery", || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert_eq!(got.path, "/hooks/crm");
    assert_eq!(
        got.json(),
        serde_json::json!({"email": "u1@example.com", "seq": 1, "event": id, "env": "prod", "trigger": "New sign-ups"})
    );
    assert_eq!(got.headers["x-static"], "fixed");
    assert_eq!(got.headers["x-rendered"], "user.signed_up");
    assert_eq!(got.headers["content-type"], "application/json");
    assert!(
        got.headers["webhook-id"].starts_with("msg_"),
        "{:?}",
        got.headers
    );
    assert_eq!(
        receiver.received().len(),
        1,
        "the non-matching event was delivered"
    );
    pipeline.stop().await.unwrap();
}

/// Posts 300 events, killing `processor` (no draining, no final commit) after the 150th and
/// starting a new one with `restart` 20 events later. Returns the accepted event ids (with their
/// sequence numbers) and the running processor.
async fn post_across_a_crash<F, Fut>(
    edges: &Pipeline,
    processor: Pipeline,
    restart: F,
) -> (BTreeMap<String, u64>, Pipeline)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Pipeline>,
{
    const EVENTS: u64 = 300;
    let mut accepted = BTreeMap::new();
    let mut processor = Some(processor);
    for seq in 0..EVENTS {
        accepted.insert(accepted_id(post(edges, signup(seq)).await).await, seq);
        if seq == EVENTS / 2 {
            processor.take().unwrap().kill();
        }
        if seq == EVENTS / 2 + 20 {
            processor = Some(restart().await);
        }
    }
    (accepted, processor.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_and_restarting_the_processor_mid_stream_loses_no_acknowledged_event() {
    harness::init_logs();
    let kafka = TestKafka::start();
    let settings = kafka.settings().await;
    let receiver = TestReceiver::start().await;
    let edges = Stages::all().without_processor().start(&settings).await;
    let processor = Stages::processor_only().start(&settings).await;
    apply(&settings, &edges, &resources(&receiver)).await;
    // Each process reads resources on its own: the processor must see them too before events
    // flow, or it rightly ignores events for a trigger it does not know yet.
    harness::stages::seen(&processor, &resources(&receiver)).await;

    let (accepted, processor) = post_across_a_crash(&edges, processor, || {
        Stages::processor_only().start(&settings)
    })
    .await;

    let delivered = eventually("every accepted event to be delivered", || async {
        let received = receiver.received();
        let events: BTreeSet<String> = received
            .iter()
            .map(|r| r.json()["event"].as_str().unwrap().to_owned())
            .collect();
        accepted
            .keys()
            .all(|id| events.contains(id))
            .then_some(received)
    })
    .await;
    // Duplicates are allowed (at least once), but a re-run carries the same delivery id.
    let mut ids_by_event: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for request in &delivered {
        ids_by_event
            .entry(request.json()["event"].as_str().unwrap().to_owned())
            .or_default()
            .insert(request.headers["webhook-id"].clone());
    }
    for (event, ids) in &ids_by_event {
        assert_eq!(
            ids.len(),
            1,
            "event {event} was delivered under several ids: {ids:?}"
        );
    }
    assert_eq!(ids_by_event.len(), accepted.len());
    processor.stop().await.unwrap();
    edges.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_on_503_then_delivers_with_the_same_webhook_id() {
    let dispatcher = hookline_dispatcher::Config {
        retry_schedule: Some(vec![0.05, 0.05, 0.05, 0.05]),
        ..hookline_dispatcher::Config::default()
    };
    let World {
        kafka: _kafka,
        receiver,
        pipeline,
        ..
    } = Stages::all().dispatcher(dispatcher).world().await;
    receiver.answer(&[503, 503]);

    accepted_id(post(&pipeline, signup(7)).await).await;
    let attempts = eventually("three attempts", || async {
        let received = receiver.received();
        (received.len() >= 3).then_some(received)
    })
    .await;
    let ids: BTreeSet<_> = attempts
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(attempts.len(), 3, "delivered once it succeeded, not again");
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_error_is_dead_lettered_and_the_next_event_is_delivered() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().world().await;

    // No `user.email`: the body template fails on a missing field.
    let broken = serde_json::json!({"type": "user.signed_up", "seq": 1, "user": {}});
    let broken_id = accepted_id(post(&pipeline, broken).await).await;
    accepted_id(post(&pipeline, signup(2)).await).await;

    let got = eventually("the next event's delivery", || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert_eq!(got.json()["seq"], 2);
    let dead = harness::kafka::read_topic(
        &settings,
        &settings.topics().dead(),
        1,
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(dead.len(), 1, "one dead letter");
    let letter: DeadLetter = serde_json::from_slice(&dead[0].1).unwrap();
    assert_eq!(letter.reason, DeadReason::RenderFailed);
    assert!(letter.error.contains("actions[0].body"), "{}", letter.error);
    assert!(
        serde_json::to_string(&letter.payload)
            .unwrap()
            .contains(&broken_id)
    );
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_gets_a_match_record_saying_what_fired_or_why_nothing_did() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().world().await;

    let delivered = accepted_id(post(&pipeline, signup(1)).await).await;
    let unmatched = accepted_id(
        post(
            &pipeline,
            serde_json::json!({"type": "user.deleted", "seq": 2}),
        )
        .await,
    )
    .await;
    let broken = accepted_id(
        post(
            &pipeline,
            serde_json::json!({"type": "user.signed_up", "seq": 3, "user": {}}),
        )
        .await,
    )
    .await;
    eventually("the delivery", || async {
        receiver.received().into_iter().next()
    })
    .await;
    let records: BTreeMap<String, MatchRecord> = harness::kafka::read_topic(
        &settings,
        &settings.topics().matches(),
        3,
        Duration::from_millis(500),
    )
    .await
    .into_iter()
    .map(|(key, value)| {
        assert_eq!(key, "app", "keyed by source");
        let record: MatchRecord = serde_json::from_slice(&value).unwrap();
        (record.event_id.clone(), record)
    })
    .collect();
    assert_eq!(records.len(), 3, "{records:?}");

    let fired = &records[&delivered];
    assert_eq!(fired.outcome, MatchOutcome::Delivered);
    assert_eq!(fired.triggers[0].trigger_id.as_str(), "signups");
    assert_eq!(fired.triggers[0].result, TriggerResult::Fired);
    let delivery = &fired.triggers[0].deliveries[0];
    assert_eq!(delivery.destination_id.as_str(), "crm");
    assert_eq!(
        delivery.delivery_id,
        receiver.received()[0].headers["webhook-id"]
    );

    let quiet = &records[&unmatched];
    assert_eq!(quiet.outcome, MatchOutcome::NoMatch);
    assert_eq!(quiet.triggers[0].result, TriggerResult::ConditionFalse);
    assert!(quiet.triggers[0].deliveries.is_empty());

    let dead = &records[&broken];
    assert_eq!(dead.outcome, MatchOutcome::Dead);
    assert_eq!(dead.triggers[0].skipped[0].reason, SkipReason::RenderFailed);
    let error = dead.triggers[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("actions[0].body"), "{error}");
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_records_can_be_turned_off() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all()
        .processor(hookline_processor::Config {
            match_records: false,
            ..hookline_processor::Config::default()
        })
        .world()
        .await;
    accepted_id(post(&pipeline, signup(1)).await).await;
    eventually("the delivery", || async {
        receiver.received().into_iter().next()
    })
    .await;
    let records = harness::kafka::read_topic(
        &settings,
        &settings.topics().matches(),
        0,
        Duration::from_millis(500),
    )
    .await;
    assert!(records.is_empty(), "{} match records", records.len());
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_the_same_file_twice_changes_nothing_the_second_time() {
    harness::init_logs();
    let kafka = TestKafka::start();
    let settings = kafka.settings().await;
    let file = ResourceFile::parse(include_str!("../examples/hookline.toml")).unwrap();
    let first = resource_file::apply(&settings, &file, false, false)
        .await
        .unwrap();
    assert_eq!(first.create.len(), 3, "{}", first.summary());
    let second = resource_file::apply(&settings, &file, false, false)
        .await
        .unwrap();
    assert!(second.is_empty(), "{}", second.summary());
    assert_eq!(second.unchanged.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_changes_apply_to_the_next_event_without_a_restart() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().world().await;
    let mut file = resources(&receiver);
    accepted_id(post(&pipeline, signup(1)).await).await;
    eventually("the first delivery", || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;

    file.destinations[0]
        .headers
        .insert("x-static".into(), "changed".into());
    file.triggers[0].actions[0].body = r#"{"seq": {{ payload.seq }}, "version": 2}"#.into();
    apply(&settings, &pipeline, &file).await;
    accepted_id(post(&pipeline, signup(2)).await).await;
    let second = eventually("the second delivery", || async {
        receiver.received().get(1).cloned()
    })
    .await;
    assert_eq!(second.json(), serde_json::json!({"seq": 2, "version": 2}));
    assert_eq!(second.headers["x-static"], "changed");

    file.sources[0].enabled = false;
    apply(&settings, &pipeline, &file).await;
    assert_eq!(
        post(&pipeline, signup(3)).await.status(),
        403,
        "a disabled source refuses events"
    );
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_fires_two_triggers_with_different_destinations() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().world().await;
    let audit = TestReceiver::start().await;
    let mut file = resources(&receiver);
    let extra = ResourceFile::parse(&format!(
        r#"
[[destinations]]
id = "audit"
url = "{url}"

[[triggers]]
id = "audit-everything"
when = {{ sources = ["app"], event_type = "payload.type", event_types = ["user.*"] }}

[[triggers.actions]]
destination = "audit"
url = "{url}/{{{{ payload.type }}}}"
body = '{{"type": {{{{ payload.type }}}}, "seq": {{{{ payload.seq }}}}}}'
"#,
        url = audit.url("/audit"),
    ))
    .unwrap();
    file.destinations.extend(extra.destinations);
    file.triggers.extend(extra.triggers);
    apply(&settings, &pipeline, &file).await;

    let id = accepted_id(post(&pipeline, signup(5)).await).await;
    let crm = eventually("the CRM delivery", || async {
        receiver.received().into_iter().next()
    })
    .await;
    let audited = eventually("the audit delivery", || async {
        audit.received().into_iter().next()
    })
    .await;
    assert_eq!(crm.json()["event"], id.as_str());
    assert_eq!(
        audited.json(),
        serde_json::json!({"type": "user.signed_up", "seq": 5})
    );
    assert_eq!(
        audited.path, "/audit/user.signed_up",
        "the URL template was rendered"
    );
    assert_ne!(
        crm.headers["webhook-id"], audited.headers["webhook-id"],
        "one delivery id per trigger"
    );
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_exactly_once_mode_a_crashed_processor_repeats_no_job() {
    harness::init_logs();
    let kafka = TestKafka::start();
    let settings = kafka.settings().await;
    let receiver = TestReceiver::start().await;
    let edges = Stages::all().without_processor().start(&settings).await;
    let exactly_once = || {
        Stages::processor_only().processor(hookline_processor::Config {
            exactly_once: true,
            ..hookline_processor::Config::default()
        })
    };
    let processor = exactly_once().start(&settings).await;
    if kafka.is_embedded() {
        // The embedded broker cannot do transactions properly: the processor says so and stops.
        let error = processor.wait().await.unwrap_err();
        assert!(
            format!("{error:#}").contains("exactly-once mode needs a real Kafka cluster"),
            "{error:#}"
        );
        edges.stop().await.unwrap();
        return;
    }
    apply(&settings, &edges, &resources(&receiver)).await;
    harness::stages::seen(&processor, &resources(&receiver)).await;

    // The crash leaves a transaction open; the restarted processor has the same
    // transactional.id, so starting aborts it.
    let (accepted, processor) =
        post_across_a_crash(&edges, processor, || exactly_once().start(&settings)).await;
    let accepted: BTreeSet<String> = accepted.into_keys().collect();

    eventually("every accepted event to be delivered", || async {
        let events: BTreeSet<String> = receiver
            .received()
            .iter()
            .map(|r| r.json()["event"].as_str().unwrap().to_owned())
            .collect();
        (events == accepted).then_some(())
    })
    .await;
    // What a read_committed reader (the dispatcher) sees of the deliveries topic: one job per
    // event, though the events around the crash were processed twice.
    let jobs = harness::kafka::read_topic(
        &settings,
        &settings.topics().deliveries(),
        accepted.len(),
        Duration::from_millis(500),
    )
    .await;
    let mut jobs_by_event: BTreeMap<String, usize> = BTreeMap::new();
    for (_, value) in &jobs {
        let job: hookline_schemas::DeliveryJob = serde_json::from_slice(value).unwrap();
        *jobs_by_event.entry(job.event_id).or_default() += 1;
    }
    let repeated: Vec<_> = jobs_by_event.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "jobs written twice: {repeated:?}");
    assert_eq!(jobs_by_event.len(), accepted.len());
    assert_eq!(receiver.received().len(), accepted.len());
    processor.stop().await.unwrap();
    edges.stop().await.unwrap();
}
