//! End-to-end tests of ingest through Kafka: rate limits, idempotency keys, events written
//! straight to Kafka, refusals on the rejected topic, and a broker that goes away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::kafka::read_topic;
use harness::stages::{Stages, World, accepted_id, post, post_request, signup};
use harness::{TestKafka, eventually};
use hookline_schemas::RejectedRequest;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

fn ingest_limited_to(per_minute: u32) -> hookline_ingest::Config {
    hookline_ingest::Config {
        limits: hookline_ingest::limits::LimitSettings {
            source_per_minute: per_minute,
            org_per_minute: 1_000_000,
        },
        ..hookline_ingest::Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_requests_get_429_and_are_recorded_but_never_reach_the_events_topic() {
    let World {
        kafka: _kafka,
        settings,
        pipeline,
        ..
    } = Stages::all().ingest(ingest_limited_to(3)).world().await;

    for seq in 0..3 {
        accepted_id(post(&pipeline, signup(seq)).await).await;
    }
    let limited = post(&pipeline, signup(3)).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // 3 per minute, all used within the last few seconds: the first leaves the 60 s window
    // about a minute after it came.
    assert!((40..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let unauthorized = post_request(&pipeline)
        .bearer_auth("wrong")
        .json(&signup(4))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    let events = read_topic(
        &settings,
        &settings.topics().events(),
        3,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(events.len(), 3, "refused requests must not reach Kafka");
    let rejected = read_topic(
        &settings,
        &settings.topics().rejected(),
        2,
        Duration::from_millis(500),
    )
    .await;
    let codes: BTreeSet<String> = rejected
        .iter()
        .map(|(_, value)| serde_json::from_slice::<RejectedRequest>(value).unwrap())
        .inspect(|record| {
            assert_eq!(record.source, "app");
            assert!(
                record
                    .client
                    .as_deref()
                    .is_some_and(|c| c.starts_with("127.")),
                "{record:?}"
            );
            assert!(
                !serde_json::to_string(record).unwrap().contains("wrong"),
                "no credentials recorded"
            );
        })
        .map(|record| record.code)
        .collect();
    assert_eq!(
        codes,
        BTreeSet::from(["rate_limited".to_owned(), "unauthorized".to_owned()])
    );
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_post_with_the_same_idempotency_key_gets_the_first_event_id() {
    let World {
        kafka: _kafka,
        receiver,
        pipeline,
        ..
    } = Stages::all().world().await;

    let send = |seq| {
        post_request(&pipeline)
            .header("idempotency-key", "delivery-1")
            .json(&signup(seq))
            .send()
    };
    let first = accepted_id(send(1).await.unwrap()).await;
    let retry = accepted_id(send(1).await.unwrap()).await;
    assert_eq!(first, retry);
    // A later event arriving proves the retry produced nothing before it.
    accepted_id(post(&pipeline, signup(2)).await).await;
    let received = eventually("the second event", || async {
        let received = receiver.received();
        received
            .iter()
            .any(|r| r.json()["seq"] == 2)
            .then_some(received)
    })
    .await;
    assert_eq!(received.len(), 2, "{received:?}");
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_written_straight_to_kafka_flows_like_an_http_one() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().world().await;

    let producer: FutureProducer = hookline_runtime::kafka::create_producer(
        &hookline_runtime::kafka::producer_config(&settings, "test-producer"),
    )
    .unwrap();
    let body = serde_json::to_vec(&signup(9)).unwrap();
    let headers = OwnedHeaders::new().insert(Header {
        key: "hookline-source",
        value: Some("app"),
    });
    producer
        .send(
            FutureRecord::to(&settings.topics().events())
                .key("app")
                .payload(&body)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    let got = eventually("the delivery", || async {
        receiver.received().into_iter().next()
    })
    .await;
    let json = got.json();
    assert_eq!(json["seq"], 9);
    assert_eq!(json["env"], "none", "no inbound headers without ingest");
    assert_eq!(
        json["event"].as_str().unwrap().len(),
        36,
        "a derived event id: {json}"
    );
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_cannot_take_events_gets_503_and_nothing_acknowledged_is_lost() {
    if !TestKafka::embedded_requested() {
        eprintln!(
            "This test injects faults into the embedded broker; it runs in the embedded-broker pass."
        );
        return;
    }
    let ingest = hookline_ingest::Config {
        produce_timeout_ms: 1_000,
        ..Stages::all_ingest()
    };
    let World {
        kafka,
        receiver,
        pipeline,
        ..
    } = Stages::all().ingest(ingest).world().await;
    let TestKafka::Embedded(broker) = &kafka else {
        unreachable!("the embedded broker was requested");
    };

    let before = accepted_id(post(&pipeline, signup(1)).await).await;
    // The broker refuses every write for a while (a retriable error: the producer keeps trying
    // until the produce timeout), while consumers go on unaffected.
    let refusals = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 1000];
    broker
        .cluster()
        .request_errors(RDKafkaApiKey::Produce, &refusals);
    let refused = post(&pipeline, signup(2)).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    broker
        .cluster()
        .clear_request_errors(RDKafkaApiKey::Produce);
    let after = eventually("ingest to accept again", || async {
        let response = post(&pipeline, signup(3)).await;
        (response.status() == 202).then_some(response)
    })
    .await;
    let after = accepted_id(after).await;

    eventually("every acknowledged event to be delivered", || async {
        let events: BTreeSet<String> = receiver
            .received()
            .iter()
            .map(|r| r.json()["event"].as_str().unwrap().to_owned())
            .collect();
        (events.contains(&before) && events.contains(&after)).then_some(())
    })
    .await;
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_event_is_acknowledged_and_stored_decoded() {
    use std::io::Write;
    let World {
        kafka: _kafka,
        settings,
        receiver: _receiver,
        pipeline,
    } = Stages::all().world().await;
    let json = serde_json::to_vec(&signup(1)).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&json).unwrap();
    let response = post_request(&pipeline)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(encoder.finish().unwrap())
        .send()
        .await
        .unwrap();
    accepted_id(response).await;
    let events = read_topic(
        &settings,
        &settings.topics().events(),
        1,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, json, "the record holds the decoded JSON");
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_ingest_is_full_and_a_waiting_sender_is_served_when_a_slot_frees() {
    let World {
        kafka: _kafka,
        receiver: _receiver,
        pipeline,
        ..
    } = Stages::all()
        .ingest(hookline_ingest::Config {
            max_connections: 2,
            // Longer than the test: only a client closing frees a slot.
            header_timeout_ms: 600_000,
            ..Stages::all_ingest()
        })
        .world()
        .await;
    let ingest = pipeline.ingest_addr.unwrap();
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(ingest).await.unwrap());
    }
    let waiting = tokio::spawn(post_request(&pipeline).json(&signup(7)).send());
    let health = reqwest::get(format!("http://{}/healthz", pipeline.admin_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "/healthz while ingest is full");
    let metrics = reqwest::get(format!("http://{}/metrics", pipeline.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"hookline_http_connections{listener="ingest"} 2"#),
        "{metrics}"
    );
    assert!(!waiting.is_finished(), "served although ingest was full");
    drop(silent.pop());
    let response = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the waiting sender was served once a slot freed")
        .unwrap()
        .unwrap();
    accepted_id(response).await;
    drop(silent);
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_writes_an_oversized_body_before_reading_gets_the_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let World {
        kafka: _kafka,
        receiver: _receiver,
        pipeline,
        ..
    } = Stages::all().world().await;
    // Refused on its declared length before the body is read; the sender, like most, writes the
    // whole body first and only then reads, so the answer must survive the unread bytes.
    let body = vec![b' '; 3 << 20];
    let mut stream = tokio::net::TcpStream::connect(pipeline.ingest_addr.unwrap())
        .await
        .unwrap();
    let head = format!(
        "POST /inbound-webhooks/app HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        harness::stages::TOKEN,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = vec![0; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer within 10 s")
        .expect("an answer, not a reset connection");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    pipeline.stop().await.unwrap();
}
