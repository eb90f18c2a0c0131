//! Kafka refusing writes for longer than the produce timeout stops no role: records the broker
//! gave back are sent again until it takes them, the input offset waiting meanwhile, and every
//! accepted event is delivered once writes succeed again. Faults are injected into the embedded
//! broker, so this runs in the embedded-broker pass only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::time::Duration;

use harness::stages::{Stages, accepted_id, apply, metric, post, resources, signup};
use harness::{TestKafka, TestReceiver, eventually};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

/// The produce timeout in this test (librdkafka's `message.timeout.ms`; 30 s by default).
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_refusing_writes_past_the_produce_timeout_stops_no_role() {
    if !TestKafka::embedded_requested() {
        eprintln!(
            "This test injects faults into the embedded broker; it runs in the embedded-broker pass."
        );
        return;
    }
    harness::init_logs();
    let kafka = TestKafka::start();
    let TestKafka::Embedded(broker) = &kafka else {
        unreachable!("the embedded broker was requested");
    };
    // The stages get the short produce timeout; setting up (topics, resources) does not.
    let plain = kafka.settings().await;
    let mut settings = plain.clone();
    settings.options.push((
        "message.timeout.ms".to_owned(),
        PRODUCE_TIMEOUT.as_millis().to_string(),
    ));
    let receiver = TestReceiver::start().await;
    // Ingest and the dispatcher first; the processor starts during the outage, with an event
    // waiting for it, so its writes are the ones the broker refuses.
    let front = Stages::all().without_processor().start(&settings).await;
    apply(&plain, &front, &resources(&receiver)).await;
    let id = accepted_id(post(&front, signup(1)).await).await;

    // A retriable refusal of every write, as from a cluster that lost its in-sync replicas.
    let refusals = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 100_000];
    broker
        .cluster()
        .request_errors(RDKafkaApiKey::Produce, &refusals);
    let processor = Stages::processor_only().start(&settings).await;
    // The outage itself: three produce timeouts, so every record the processor wrote was given
    // back at least twice.
    tokio::time::sleep(3 * PRODUCE_TIMEOUT).await;
    assert!(
        receiver.received().is_empty(),
        "nothing can be delivered while the broker refuses writes"
    );
    broker
        .cluster()
        .clear_request_errors(RDKafkaApiKey::Produce);

    let delivered = eventually("the event's delivery after the outage", || async {
        receiver
            .received()
            .into_iter()
            .find(|request| request.json()["event"] == id.as_str())
    })
    .await;
    assert_eq!(delivered.json()["seq"], 1);
    // Both pipelines stop cleanly: no role ended with an error during the outage.
    processor.stop().await.unwrap();
    front.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_not_ready_while_kafka_is_unreachable_and_ready_once_it_is_back() {
    if !TestKafka::embedded_requested() {
        eprintln!("This test stops the embedded broker; it runs in the embedded-broker pass.");
        return;
    }
    harness::init_logs();
    let kafka = TestKafka::start();
    let TestKafka::Embedded(broker) = &kafka else {
        unreachable!("the embedded broker was requested");
    };
    let settings = kafka.settings().await;
    let pipeline = Stages::all().start(&settings).await;
    let admin = pipeline.admin_addr;
    let readyz = || async move {
        let response = reqwest::get(format!("http://{admin}/readyz")).await.ok()?;
        Some((response.status().as_u16(), response.text().await.ok()?))
    };
    let reachable = || metric(&pipeline, "hookline_kafka_reachable");
    eventually("ready with Kafka there", || async {
        (readyz().await?.0 == 200 && reachable().await? == 1.0).then_some(())
    })
    .await;

    // The test's embedded cluster has one broker, id 1.
    broker.cluster().broker_down(1).unwrap();
    let (_, body) = eventually("not ready while Kafka is away", || async {
        let answer = readyz().await?;
        (answer.0 == 503 && reachable().await? == 0.0).then_some(answer)
    })
    .await;
    assert!(body.contains("kafka"), "{body}");

    broker.cluster().broker_up(1).unwrap();
    eventually("ready again once Kafka is back", || async {
        (readyz().await?.0 == 200 && reachable().await? == 1.0).then_some(())
    })
    .await;
    // Every role stops when told, also after an outage: closing a group consumer then once waited
    // forever in librdkafka, and a role's close is now bounded (kafka::CLOSE_TIMEOUT each).
    tokio::time::timeout(Duration::from_secs(120), pipeline.stop())
        .await
        .expect("every role stops after an outage")
        .unwrap();
}
