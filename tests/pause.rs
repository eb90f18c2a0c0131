//! End-to-end tests of pausing a destination: its jobs are held durably, in order, across
//! restarts of every role, and delivered once after it resumes, with their original delivery
//! ids; one destination resuming is not held up by another that stays paused. On the embedded
//! broker, or on the cluster named by `KAFKA_BROKERS`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::HashSet;
use std::time::Duration;

use harness::stages::{CONTROL_TOKEN, Stages, World, accepted_id, apply, post, signup};
use harness::{TestReceiver, eventually};
use hookline::pipeline::Pipeline;
use hookline::resource_file::ResourceFile;
use hookline_runtime::KafkaSettings;
use hookline_schemas::DeliveryJob;
use reqwest::StatusCode;
use serde_json::Value;

/// One job at a time, so deliveries happen in the order the jobs are read.
fn one_at_a_time() -> hookline_dispatcher::Config {
    hookline_dispatcher::Config {
        max_in_flight: 1,
        ..hookline_dispatcher::Config::default()
    }
}

/// `POST /api/v1/destinations/{id}/{verb}` (pause or resume) through the control API.
async fn switch(pipeline: &Pipeline, id: &str, verb: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/api/v1/destinations/{id}/{verb}",
            pipeline.control_addr.unwrap()
        ))
        .bearer_auth(CONTROL_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn destination(pipeline: &Pipeline, id: &str) -> Value {
    get(pipeline, &format!("/api/v1/destinations/{id}")).await
}

/// `GET path` on the control API (a 404 or 503 while control's store catches up reads as JSON
/// too, and fails the caller's check).
async fn get(pipeline: &Pipeline, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{}{path}", pipeline.control_addr.unwrap()))
        .bearer_auth(CONTROL_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The held topic in offset order: (delivery id, the job, or `None` for a tombstone).
async fn held_topic(
    settings: &KafkaSettings,
    at_least: usize,
) -> Vec<(String, Option<DeliveryJob>)> {
    harness::kafka::read_topic(
        settings,
        &settings.topics().held(),
        at_least,
        Duration::from_millis(300),
    )
    .await
    .into_iter()
    .map(|(key, value)| {
        let job = (!value.is_empty()).then(|| serde_json::from_slice(&value).unwrap());
        (key, job)
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_destination_s_jobs_survive_restarts_and_are_delivered_in_order_once() {
    const EVENTS: u64 = 500;
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all()
        .dispatcher(one_at_a_time())
        .with_control()
        .world()
        .await;
    let paused = switch(&pipeline, "crm", "pause").await;
    assert_eq!(paused["paused"], true, "{paused}");
    eventually("the pipeline to see the pause", || async {
        let set = pipeline.store.snapshot();
        set.destinations[&hookline_schemas::ResourceId::parse("crm").unwrap()]
            .paused
            .then_some(())
    })
    .await;

    let mut first = None;
    for seq in 0..EVENTS {
        let id = accepted_id(post(&pipeline, signup(seq)).await).await;
        first.get_or_insert(id);
    }
    let first = first.unwrap();
    let held = held_topic(&settings, EVENTS as usize).await;
    assert_eq!(held.len(), EVENTS as usize, "one held record per job");
    let view = eventually("control to count the held jobs", || async {
        let view = destination(&pipeline, "crm").await;
        (view["held_jobs"] == EVENTS).then_some(view)
    })
    .await;
    assert!(view["oldest_held_at"].is_string(), "{view}");
    eventually("the event's timeline to show its delivery held", || async {
        let journey = get(&pipeline, &format!("/api/v1/events/{first}")).await;
        (journey["deliveries"][0]["status"] == "held").then_some(())
    })
    .await;
    eventually("the dispatcher's gauge to count them", || async {
        let held = harness::stages::metric(&pipeline, "hookline_dispatcher_held_jobs").await;
        (held == Some(EVENTS as f64)).then_some(())
    })
    .await;
    assert!(
        receiver.received().is_empty(),
        "nothing reaches a paused destination"
    );

    // Every role stops and starts again while the destination is paused.
    pipeline.stop().await.unwrap();
    let pipeline = Stages::all()
        .dispatcher(one_at_a_time())
        .with_control()
        .start(&settings)
        .await;
    eventually(
        "control to count the held jobs after the restart",
        || async { (destination(&pipeline, "crm").await["held_jobs"] == EVENTS).then_some(()) },
    )
    .await;
    assert!(receiver.received().is_empty());

    let resumed = switch(&pipeline, "crm", "resume").await;
    assert!(resumed.get("paused").is_none(), "{resumed}");
    let received = eventually("every held job to be delivered", || async {
        let received = receiver.received();
        (received.len() >= EVENTS as usize).then_some(received)
    })
    .await;
    // Released jobs are tombstoned once they are back on the deliveries topic.
    let topic = held_topic(&settings, 2 * EVENTS as usize).await;
    let tombstones = topic.iter().filter(|(_, job)| job.is_none()).count();
    assert_eq!(tombstones, EVENTS as usize, "every held job released once");
    eventually("control to see nothing held", || async {
        (destination(&pipeline, "crm").await["held_jobs"] == 0).then_some(())
    })
    .await;
    eventually("the event's timeline to show the delivery", || async {
        let journey = get(&pipeline, &format!("/api/v1/events/{first}")).await;
        (journey["deliveries"][0]["status"] == "delivered").then_some(())
    })
    .await;

    let delivered: Vec<&str> = receiver_ids(&received);
    assert_eq!(delivered.len(), EVENTS as usize, "delivered once each");
    let held_order: Vec<&str> = held.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        delivered, held_order,
        "in the order they were held, with their ids"
    );
    assert_eq!(receiver.received().len(), EVENTS as usize, "nothing more");
    pipeline.stop().await.unwrap();
}

fn receiver_ids(received: &[harness::receiver::Received]) -> Vec<&str> {
    received
        .iter()
        .map(|request| request.headers["webhook-id"].as_str())
        .collect()
}

/// A source whose events go to two destinations, both of which start paused (the `signups`
/// trigger of the world's resources is replaced, so each event makes one job per destination).
fn two_paused(crm: &TestReceiver, other: &TestReceiver) -> ResourceFile {
    ResourceFile::parse(&format!(
        r#"
[[sources]]
id = "app"
auth = [{{ type = "bearer", tokens = ["{token}"] }}]

[[destinations]]
id = "crm"
url = "{crm}"
paused = true

[[destinations]]
id = "other"
url = "{other}"
paused = true

[[triggers]]
id = "signups"
when = {{ sources = ["app"] }}

[[triggers.actions]]
destination = "crm"
body = '{{"seq": {{{{ payload.seq }}}}}}'

[[triggers.actions]]
destination = "other"
body = '{{"seq": {{{{ payload.seq }}}}}}'
"#,
        token = harness::stages::TOKEN,
        crm = crm.url("/crm"),
        other = other.url("/other"),
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_destination_is_not_held_up_by_one_still_paused_even_across_a_restart() {
    const EVENTS: usize = 5;
    let World {
        kafka: _kafka,
        settings,
        receiver: crm,
        pipeline,
    } = Stages::all().with_control().world().await;
    let other = TestReceiver::start().await;
    apply(&settings, &pipeline, &two_paused(&crm, &other)).await;
    for seq in 0..EVENTS {
        accepted_id(post(&pipeline, signup(seq as u64)).await).await;
    }
    // Both destinations' jobs interleave in the held topic.
    held_topic(&settings, 2 * EVENTS).await;

    // `other` resumes; `crm`'s jobs, held before and between `other`'s, stay.
    switch(&pipeline, "other", "resume").await;
    let to_other = eventually("other's held jobs to be delivered", || async {
        let received = other.received();
        (received.len() >= EVENTS).then_some(received)
    })
    .await;
    held_topic(&settings, 3 * EVENTS).await;
    assert!(crm.received().is_empty(), "crm is still paused");

    // A new owner of the held topic must learn what was released before it releases anything.
    pipeline.stop().await.unwrap();
    let pipeline = Stages::all().with_control().start(&settings).await;
    switch(&pipeline, "crm", "resume").await;
    let to_crm = eventually("crm's held jobs to be delivered", || async {
        let received = crm.received();
        (received.len() >= EVENTS).then_some(received)
    })
    .await;
    let topic = held_topic(&settings, 4 * EVENTS).await;
    assert_eq!(
        topic.iter().filter(|(_, job)| job.is_none()).count(),
        2 * EVENTS,
        "each held job released once: {:?}",
        topic
            .iter()
            .map(|(id, job)| format!(
                "{}{}",
                job.as_ref().map_or("-", |job| job.destination_id.as_str()),
                &id[id.len() - 4..]
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        other.received().len(),
        EVENTS,
        "nothing of other's sent twice"
    );
    assert_eq!(crm.received().len(), EVENTS);
    let distinct: HashSet<&str> = receiver_ids(&to_other)
        .into_iter()
        .chain(receiver_ids(&to_crm))
        .collect();
    assert_eq!(distinct.len(), 2 * EVENTS, "one delivery id per job");
    pipeline.stop().await.unwrap();
}
