//! End-to-end test of an ordered (FIFO) destination: one delivery at a time, in the order the
//! events came, its failing first job holding back only its own later jobs (another destination
//! of the same events is served meanwhile), across a restart of every role. On the embedded
//! broker, or on the cluster named by `KAFKA_BROKERS`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::HashSet;

use harness::stages::{Stages, World, accepted_id, apply, post, signup};
use harness::{TestReceiver, eventually};
use hookline::resource_file::ResourceFile;

/// A source keeping its events in arrival order, and one trigger sending each event to `crm`
/// (ordered, retrying every 100 ms) and to `other` (not ordered).
fn ordered(crm: &TestReceiver, other: &TestReceiver) -> ResourceFile {
    ResourceFile::parse(&format!(
        r#"
[[sources]]
id = "app"
auth = [{{ type = "bearer", tokens = ["{token}"] }}]
order_key = "source"

[[destinations]]
id = "crm"
url = "{crm}"
ordered = true
retry = {{ type = "exponential", initial_seconds = 0.1, multiplier = 1.0, max_interval_seconds = 0.1, max_attempts = 1000, jitter = false }}

[[destinations]]
id = "other"
url = "{other}"

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

/// The dispatcher's defaults, but a circuit that stays closed through the test's failures (an
/// open circuit would add its 30 s to the test, not change what it shows).
fn patient() -> hookline_dispatcher::Config {
    hookline_dispatcher::Config {
        circuit_failures: 1000,
        ..hookline_dispatcher::Config::default()
    }
}

fn seqs(received: &[harness::receiver::Received]) -> Vec<u64> {
    received
        .iter()
        .map(|request| request.json()["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_destination_gets_one_job_at_a_time_in_order_and_only_it_waits_for_a_failure() {
    const EVENTS: u64 = 40;
    let World {
        kafka: _kafka,
        settings,
        receiver: crm,
        pipeline,
    } = Stages::all().dispatcher(patient()).world().await;
    let other = TestReceiver::start().await;
    apply(&settings, &pipeline, &ordered(&crm, &other)).await;
    crm.fail_with(Some(503));
    for seq in 0..EVENTS {
        accepted_id(post(&pipeline, signup(seq)).await).await;
    }

    eventually(
        "other to get every job while crm's first one fails",
        || async {
            (other.received().len() >= EVENTS as usize && crm.received().len() >= 3).then_some(())
        },
    )
    .await;
    let tried = seqs(&crm.received());
    assert!(
        tried.iter().all(|seq| *seq == 0),
        "only crm's first job is tried while it fails: {tried:?}"
    );

    // Every role stops and starts again while crm's line waits behind its first job.
    pipeline.stop().await.unwrap();
    let before = crm.received().len();
    let pipeline = Stages::all().dispatcher(patient()).start(&settings).await;
    eventually(
        "the first job to be tried again after the restart",
        || async { (crm.received().len() > before).then_some(()) },
    )
    .await;
    crm.fail_with(None);

    let received = eventually("every job of crm to be delivered", || async {
        let received = crm.received();
        let ids: HashSet<String> = received
            .iter()
            .map(|request| request.headers["webhook-id"].clone())
            .collect();
        (ids.len() >= EVENTS as usize).then_some(received)
    })
    .await;
    let sent = seqs(&received);
    assert!(
        sent.windows(2).all(|pair| pair[0] <= pair[1]),
        "in the order of the events: {sent:?}"
    );
    assert_eq!(
        sent.iter().filter(|seq| **seq > 0).count(),
        EVENTS as usize - 1,
        "each later job sent once, after the first was delivered: {sent:?}"
    );
    let firsts: HashSet<&str> = received
        .iter()
        .filter(|request| request.json()["seq"] == 0)
        .map(|request| request.headers["webhook-id"].as_str())
        .collect();
    assert_eq!(firsts.len(), 1, "the first job kept its webhook-id");
    assert_eq!(crm.most_in_flight(), 1, "one request at a time");
    assert_eq!(
        other.received().len(),
        EVENTS as usize,
        "other got each job once"
    );
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_given_up_leaves_the_line_to_the_next_in_order() {
    const EVENTS: u64 = 5;
    let World {
        kafka: _kafka,
        settings,
        receiver: crm,
        pipeline,
    } = Stages::all().world().await;
    let other = TestReceiver::start().await;
    apply(&settings, &pipeline, &ordered(&crm, &other)).await;
    // A 400 is final: the first job is dead-lettered at once.
    crm.answer(&[400]);
    for seq in 0..EVENTS {
        accepted_id(post(&pipeline, signup(seq)).await).await;
    }
    let received = eventually("every job of crm to be tried", || async {
        let received = crm.received();
        (received.len() >= EVENTS as usize).then_some(received)
    })
    .await;
    assert_eq!(seqs(&received), (0..EVENTS).collect::<Vec<_>>());
    let dead = harness::kafka::read_topic(
        &settings,
        &settings.topics().dead(),
        1,
        std::time::Duration::from_millis(300),
    )
    .await;
    assert_eq!(dead.len(), 1, "the rejected job, dead-lettered");
    pipeline.stop().await.unwrap();
}
