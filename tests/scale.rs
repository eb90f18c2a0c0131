//! One busy source scales out: its events are keyed by their ids unless it asks for order, so
//! they spread over every partition and every processor and dispatcher of a group takes part;
//! a destination's `max_in_flight` holds for all dispatchers together. And a source that needs
//! order gets it by its order key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::time::Duration;

use futures::StreamExt as _;
use harness::kafka::read_topic;
use harness::stages::{Stages, accepted_id, apply, metric, post, resources_with, signup};
use harness::{TestKafka, TestReceiver, eventually};
use hookline::pipeline::Pipeline;
use hookline::resource_file::ResourceFile;

/// Events posted under load.
const EVENTS: u64 = 600;

/// The destination's limit of requests in progress, shared by the two dispatchers.
const MAX_IN_FLIGHT: usize = 10;

/// A counter of `pipeline`, 0 before its first increment.
async fn count(pipeline: &Pipeline, series: &str) -> f64 {
    metric(pipeline, series).await.unwrap_or(0.0)
}

const EVENTS_READ: &str = "hookline_processor_events_total";
const DELIVERED: &str = "hookline_dispatcher_attempts_total{outcome=\"delivered\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_busy_source_uses_both_processors_and_both_dispatchers_within_one_limit() {
    harness::init_logs();
    let kafka = TestKafka::start();
    // Six partitions: two members of a group get three each.
    let settings = kafka.settings_with_partitions(6).await;
    let receiver = TestReceiver::start().await;
    // Every request takes a while, so more than the limit would be in progress if it did not hold.
    receiver.stall(Duration::from_millis(40));
    let ingest = Stages::ingest_only().start(&settings).await;
    let processors = [
        Stages::processor_only().start(&settings).await,
        Stages::processor_only().start(&settings).await,
    ];
    let dispatcher = || Stages::dispatcher_only(hookline_dispatcher::Config::default());
    let dispatchers = [
        dispatcher().start(&settings).await,
        dispatcher().start(&settings).await,
    ];
    let file = resources_with(&receiver, &format!("max_in_flight = {MAX_IN_FLIGHT}"));
    apply(&settings, &ingest, &file).await;
    for pipeline in processors.iter().chain(&dispatchers) {
        harness::stages::seen(pipeline, &file).await;
    }

    // Warm up until every instance has done some of the work: both members of each group have
    // joined and the groups have settled.
    let mut seq = 0;
    eventually("every processor and dispatcher to take part", || {
        seq += 1;
        let (ingest, processors, dispatchers) = (&ingest, &processors, &dispatchers);
        async move {
            accepted_id(post(ingest, signup(seq)).await).await;
            for processor in processors {
                if count(processor, EVENTS_READ).await == 0.0 {
                    return None;
                }
            }
            for dispatcher in dispatchers {
                if count(dispatcher, DELIVERED).await == 0.0 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    let warm = seq as usize;
    eventually("the warm-up to be delivered", || async {
        (receiver.received().len() >= warm).then_some(())
    })
    .await;
    let mut before = Vec::new();
    for processor in &processors {
        before.push(count(processor, EVENTS_READ).await);
    }
    for dispatcher in &dispatchers {
        before.push(count(dispatcher, DELIVERED).await);
    }

    // Full load from one source: many requests at once.
    let ingest_ref = &ingest;
    futures::stream::iter(1_000..1_000 + EVENTS)
        .map(|seq| async move { accepted_id(post(ingest_ref, signup(seq)).await).await })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let expected = warm + EVENTS as usize;
    eventually("every event to be delivered", || async {
        (receiver.received().len() >= expected).then_some(())
    })
    .await;

    let mut shares = Vec::new();
    for (index, processor) in processors.iter().enumerate() {
        shares.push((
            "processor",
            count(processor, EVENTS_READ).await - before[index],
        ));
    }
    for (index, dispatcher) in dispatchers.iter().enumerate() {
        shares.push((
            "dispatcher",
            count(dispatcher, DELIVERED).await - before[2 + index],
        ));
    }
    eprintln!("records handled under load: {shares:?}");
    for (role, handled) in &shares {
        let fraction = handled / EVENTS as f64;
        assert!(
            fraction >= 0.3,
            "a {role} handled {handled} of {EVENTS} ({fraction:.2}); every instance must take at least 30 %: {shares:?}"
        );
    }
    let most = receiver.most_in_flight();
    eprintln!("most requests in progress at once: {most} (limit {MAX_IN_FLIGHT})");
    assert!(
        most <= MAX_IN_FLIGHT,
        "{most} requests were in progress at once; the limit of {MAX_IN_FLIGHT} is for all dispatchers together"
    );
    // The limit is used, by both: one dispatcher's share alone is at most six.
    assert!(
        most > 6,
        "only {most} in progress at once: the dispatchers did not use their shares"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_jobs_are_keyed_by_the_order_key_the_source_asks_for() {
    harness::init_logs();
    let kafka = TestKafka::start();
    let settings = kafka.settings().await;
    let receiver = TestReceiver::start().await;
    let pipeline = Stages::all().start(&settings).await;
    let ordered = ResourceFile::parse(&format!(
        r#"
[[sources]]
id = "app"
auth = [{{ type = "bearer", tokens = ["{token}"] }}]

[[sources]]
id = "shop"
auth = [{{ type = "bearer", tokens = ["{token}"] }}]
order_key = 'payload["user"].email'

[[destinations]]
id = "crm"
url = "{url}"

[[triggers]]
id = "all"
when = {{ sources = ["app", "shop"] }}

[[triggers.actions]]
destination = "crm"
body = '{{"seq": {{{{ payload.seq }}}}}}'
"#,
        token = harness::stages::TOKEN,
        url = receiver.url("/hooks/crm"),
    ))
    .unwrap();
    apply(&settings, &pipeline, &ordered).await;

    // `app` sets no order key: its events are keyed by their ids.
    let plain = accepted_id(post(&pipeline, signup(1)).await).await;
    let shop = |body: serde_json::Value| {
        let url = format!(
            "http://{}/inbound-webhooks/shop",
            pipeline.ingest_addr.unwrap()
        );
        reqwest::Client::new()
            .post(url)
            .bearer_auth(harness::stages::TOKEN)
            .json(&body)
            .send()
    };
    let keyed = accepted_id(shop(signup(2)).await.unwrap()).await;
    // Without the value, an event has no order to keep: keyed by its id.
    let without = accepted_id(shop(serde_json::json!({"seq": 3})).await.unwrap()).await;

    let events = read_topic(
        &settings,
        &settings.topics().events(),
        3,
        Duration::from_millis(500),
    )
    .await;
    let keys: Vec<&str> = events.iter().map(|(key, _)| key.as_str()).collect();
    for key in [plain.as_str(), "u2@example.com", without.as_str()] {
        assert!(keys.contains(&key), "no event keyed {key:?} in {keys:?}");
    }
    let jobs = read_topic(
        &settings,
        &settings.topics().deliveries(),
        3,
        Duration::from_millis(500),
    )
    .await;
    let keys: Vec<&str> = jobs.iter().map(|(key, _)| key.as_str()).collect();
    for key in [
        format!("crm/{plain}"),
        "crm/u2@example.com".to_owned(),
        format!("crm/{without}"),
    ] {
        assert!(
            keys.contains(&key.as_str()),
            "no job keyed {key:?} in {keys:?}"
        );
    }
    assert!(!keyed.is_empty());
    eventually("the three deliveries", || async {
        (receiver.received().len() == 3).then_some(())
    })
    .await;
}
