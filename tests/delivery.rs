//! End-to-end tests of delivery: signing, retry decisions a receiver can steer, the SSRF guard,
//! durable retries across a restart, isolation between destinations, and rebalances. HTTP in, through Kafka,
//! to receivers on loopback; on the embedded broker, or on the cluster named by `KAFKA_BROKERS`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::time::Duration;

use harness::receiver::Answer;
use harness::stages::{
    Stages, World, accepted_id, apply, post, resources_at, resources_with, signup,
};
use harness::{TestReceiver, eventually};
use hookline::pipeline::Pipeline;
use hookline::resource_file::ResourceFile;
use hookline_runtime::KafkaSettings;
use hookline_schemas::{
    AttemptOutcome, AttemptRecord, DeadLetter, DeadReason, Destination, ResourceId, RetryTier,
    SourceAuth,
};

/// Dispatcher settings for tests: quick retries, so a test sees several attempts.
fn quick_retries(waits: &[f64]) -> hookline_dispatcher::Config {
    hookline_dispatcher::Config {
        retry_schedule: Some(waits.to_vec()),
        ..hookline_dispatcher::Config::default()
    }
}

async fn dead_letters(settings: &KafkaSettings, at_least: usize) -> Vec<DeadLetter> {
    harness::kafka::read_topic(
        settings,
        &settings.topics().dead(),
        at_least,
        Duration::from_millis(300),
    )
    .await
    .into_iter()
    .map(|(_, value)| serde_json::from_slice(&value).unwrap())
    .collect()
}

async fn attempts(settings: &KafkaSettings, at_least: usize) -> Vec<AttemptRecord> {
    harness::kafka::read_topic(
        settings,
        &settings.topics().attempts(),
        at_least,
        Duration::from_millis(300),
    )
    .await
    .into_iter()
    .map(|(_, value)| serde_json::from_slice(&value).unwrap())
    .collect()
}

/// The `crm` destination once `pipeline` sees it disabled.
async fn disabled_crm(pipeline: &Pipeline) -> std::sync::Arc<Destination> {
    let crm = ResourceId::parse("crm").unwrap();
    eventually("the destination to be disabled", || async {
        pipeline
            .store
            .snapshot()
            .destinations
            .get(&crm)
            .filter(|destination| !destination.enabled)
            .cloned()
    })
    .await
}

fn header_map(received: &harness::receiver::Received) -> axum::http::HeaderMap {
    received
        .headers
        .iter()
        .map(|(name, value)| (name.parse().unwrap(), value.parse().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_with_every_secret_of_the_destination() {
    const OLD: &str = "whsec_aG9va2xpbmUtb2xkLXNlY3JldC0wMTIzNDU2Nzg5YWI=";
    const NEW: &str = "whsec_aG9va2xpbmUtbmV3LXNlY3JldC0wMTIzNDU2Nzg5YWI=";
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().world().await;
    apply(
        &settings,
        &pipeline,
        &resources_with(&receiver, &format!(r#"secrets = ["{OLD}", "{NEW}"]"#)),
    )
    .await;

    accepted_id(post(&pipeline, signup(1)).await).await;
    let got = eventually("the signed delivery", || async {
        receiver.received().into_iter().next()
    })
    .await;

    // Verified by ingest's Standard Webhooks verifier, which is tested against vectors from the
    // official library (the Python library itself checks the signer in the dispatcher's tests).
    let headers = header_map(&got);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let verifies_with = |secret: &str| {
        hookline_ingest::auth::Verifier::new(&[SourceAuth::Standard {
            secrets: vec![secret.to_owned()],
            tolerance_seconds: None,
        }])
        .unwrap()
        .verify(&headers, got.body.as_bytes(), now)
    };
    assert!(verifies_with(OLD), "the old secret verifies: {headers:?}");
    assert!(verifies_with(NEW), "the new secret verifies");
    assert!(
        !verifies_with("whsec_b3RoZXItc2VjcmV0LW5vdC1vbi10aGUtZGVzdGluYXRpb24="),
        "another secret does not"
    );
    assert!(got.headers["webhook-id"].starts_with("msg_"));
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_respected_and_a_400_is_dead_lettered_at_once() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all()
        .dispatcher(quick_retries(&[0.05, 0.05, 0.05]))
        .world()
        .await;
    receiver.answer_with([Answer::status(429).header("retry-after", "2")]);
    accepted_id(post(&pipeline, signup(1)).await).await;
    let both = eventually("the retry after Retry-After", || async {
        let received = receiver.received();
        (received.len() >= 2).then_some(received)
    })
    .await;
    let waited = both[1].at - both[0].at;
    assert!(
        waited >= Duration::from_millis(1_900),
        "the policy says 50 ms, the receiver asked for 2 s; waited {waited:?}"
    );

    receiver.answer(&[400]);
    accepted_id(post(&pipeline, signup(2)).await).await;
    let dead = dead_letters(&settings, 1).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].reason, DeadReason::Rejected);
    assert_eq!(dead[0].attempts, 1, "no retry after a 400");
    assert_eq!(receiver.received().len(), 3);
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_dead_letters_the_job_and_disables_the_destination() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().world().await;
    receiver.answer(&[410]);
    accepted_id(post(&pipeline, signup(1)).await).await;

    let dead = dead_letters(&settings, 1).await;
    assert_eq!(dead[0].reason, DeadReason::Gone);
    let disabled = disabled_crm(&pipeline).await;
    let reason = disabled.disabled_reason.clone().unwrap_or_default();
    assert!(reason.contains("410"), "{reason}");
    assert_eq!(
        receiver.received().len(),
        1,
        "a disabled destination gets nothing more"
    );
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssrf_guard_refuses_loopback_names_and_does_not_follow_redirects() {
    // An allow-list without loopback, so the guard's defaults apply to the receiver.
    let guarded = hookline_dispatcher::Config {
        allow_cidrs: vec!["192.0.2.0/24".parse().unwrap()],
        ..hookline_dispatcher::Config::default()
    };
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().dispatcher(guarded).world().await;
    // A DNS name that resolves to 127.0.0.1 is refused after resolution.
    let port = receiver.url("").rsplit(':').next().unwrap().to_owned();
    apply(
        &settings,
        &pipeline,
        &resources_at(&format!("http://localhost:{port}/hooks/crm"), ""),
    )
    .await;
    accepted_id(post(&pipeline, signup(1)).await).await;
    let dead = dead_letters(&settings, 1).await;
    assert_eq!(dead[0].reason, DeadReason::Blocked, "{:?}", dead[0]);
    assert_eq!(dead[0].attempts, 1, "never retried");
    assert!(dead[0].error.contains("loopback"), "{}", dead[0].error);
    let records = attempts(&settings, 1).await;
    assert_eq!(records[0].outcome, AttemptOutcome::Blocked);
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_the_metadata_address_is_not_followed() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().world().await;
    receiver.answer_with([
        Answer::status(302).header("location", "http://169.254.169.254/latest/meta-data/")
    ]);
    accepted_id(post(&pipeline, signup(1)).await).await;
    let dead = dead_letters(&settings, 1).await;
    assert_eq!(dead[0].reason, DeadReason::Rejected);
    let records = attempts(&settings, 1).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, Some(302));
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_past_the_deadline_is_a_timeout_retried_until_exhausted() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all()
        .dispatcher(quick_retries(&[0.05, 0.05]))
        .world()
        .await;
    apply(
        &settings,
        &pipeline,
        &resources_with(&receiver, "timeout_ms = 300"),
    )
    .await;
    receiver.stall(Duration::from_secs(30));
    accepted_id(post(&pipeline, signup(1)).await).await;

    let dead = dead_letters(&settings, 1).await;
    assert_eq!(dead[0].reason, DeadReason::Exhausted);
    assert_eq!(dead[0].attempts, 3);
    let records = attempts(&settings, 3).await;
    assert_eq!(records.len(), 3);
    for record in &records {
        assert_eq!(record.status, None);
        let error = record.error.as_deref().unwrap_or_default();
        assert!(error.contains("within 300 ms"), "{error}");
        assert!(record.latency_seconds < 5.0, "{}", record.latency_seconds);
    }
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_waiting_in_a_retry_topic_survive_a_restart() {
    // Every wait goes through the retry topics, none is held in memory.
    let durable = hookline_dispatcher::Config {
        in_process_wait_ms: 0,
        ..quick_retries(&[4.0])
    };
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().dispatcher(durable.clone()).world().await;
    receiver.answer(&[503]);
    accepted_id(post(&pipeline, signup(1)).await).await;

    // The job is parked in the 5 s tier (due 4 s after the failed attempt)...
    let parked = harness::kafka::read_topic(
        &settings,
        &settings.topics().retry(RetryTier::S5),
        1,
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(parked.len(), 1);
    // ...when the dispatcher stops.
    pipeline.stop().await.unwrap();
    assert_eq!(
        receiver.received().len(),
        1,
        "the retry must not have happened before the restart"
    );

    let restarted = Stages::dispatcher_only(durable).start(&settings).await;
    let file: ResourceFile = resources_with(&receiver, "");
    harness::stages::seen(&restarted, &file).await;
    let both = eventually("the retry after the restart", || async {
        let received = receiver.received();
        (received.len() >= 2).then_some(received)
    })
    .await;
    assert_eq!(both[0].headers["webhook-id"], both[1].headers["webhook-id"]);
    let records = attempts(&settings, 2).await;
    assert_eq!(
        records.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        [1, 2],
        "the attempt count survives too"
    );
    restarted.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_destination_does_not_hold_up_a_healthy_one() {
    // Eight slots in all, two for any one destination: without isolation the stalled
    // destination's jobs would take all eight for 50 s, longer than the test's patience.
    let narrow = hookline_dispatcher::Config {
        max_in_flight: 8,
        destination_max_in_flight: 2,
        ..hookline_dispatcher::Config::default()
    };
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().dispatcher(narrow).world().await;
    let stalled = TestReceiver::start().await;
    stalled.stall(Duration::from_secs(60));
    // Every event goes to both destinations, the stalled one first.
    let file = ResourceFile::parse(&format!(
        r#"
[[sources]]
id = "app"
auth = [{{ type = "bearer", tokens = ["{token}"] }}]

[[destinations]]
id = "stalled"
url = "{stalled}"
timeout_ms = 50000

[[destinations]]
id = "crm"
url = "{healthy}"

[[triggers]]
id = "both"
when = {{ sources = ["app"] }}

[[triggers.actions]]
destination = "stalled"
body = '{{"seq": {{{{ payload.seq }}}}}}'

[[triggers.actions]]
destination = "crm"
body = '{{"seq": {{{{ payload.seq }}}}}}'
"#,
        token = harness::stages::TOKEN,
        stalled = stalled.url("/slow"),
        healthy = receiver.url("/fast"),
    ))
    .unwrap();
    apply(&settings, &pipeline, &file).await;

    const EVENTS: usize = 100;
    for seq in 0..EVENTS {
        accepted_id(post(&pipeline, signup(seq as u64)).await).await;
    }
    eventually("every healthy delivery", || async {
        (receiver.received().len() >= EVENTS).then_some(())
    })
    .await;
    assert_eq!(
        stalled.received().len(),
        2,
        "the stalled destination holds its two slots and no more"
    );
    // Shutdown gives the stalled deliveries a short grace, then leaves them for a restart.
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_failing_past_the_window_is_disabled_even_across_a_restart() {
    const WINDOW: u64 = 3;
    let failing = hookline_dispatcher::Config {
        disable_after_failing_seconds: WINDOW,
        ..quick_retries(&[1.0; 50])
    };
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().dispatcher(failing.clone()).world().await;
    receiver.answer(&[503; 100]);
    accepted_id(post(&pipeline, signup(1)).await).await;
    eventually("the first failed attempt", || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;
    pipeline.stop().await.unwrap();

    // The first failure was recorded with its time...
    let records = harness::kafka::read_topic(
        &settings,
        &settings.topics().destination_health(),
        1,
        Duration::from_millis(100),
    )
    .await;
    let health: hookline_schemas::DestinationHealth =
        serde_json::from_slice(&records.last().unwrap().1).unwrap();
    assert_eq!(health.destination_id.as_str(), "crm");
    let since = hookline_runtime::time::parse_rfc3339(&health.failing_since).unwrap();
    // ...so once the window has passed, a restarted dispatcher disables the destination at its
    // first failure: it remembers since when the destination fails.
    let passed = time::OffsetDateTime::now_utc() - since;
    if let Ok(rest) = Duration::try_from(time::Duration::seconds(WINDOW as i64) - passed) {
        tokio::time::sleep(rest).await;
    }
    let before = receiver.received().len();
    let restarted = Stages::dispatcher_only(failing).start(&settings).await;
    harness::stages::seen(&restarted, &resources_with(&receiver, "")).await;
    let disabled = disabled_crm(&restarted).await;
    let reason = disabled.disabled_reason.clone().unwrap_or_default();
    assert!(reason.contains(&health.failing_since), "{reason}");
    assert_eq!(
        receiver.received().len() - before,
        1,
        "one failure after the restart was enough"
    );
    restarted.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_waits_for_deliveries_in_progress_and_repeats_none() {
    // Jobs are keyed by destination and event: eighteen jobs put deliveries on every partition
    // (all but certainly), so whichever partition the rebalance moves has deliveries in progress.
    const DESTINATIONS: usize = 6;
    const EVENTS: usize = 3;
    // Deliveries in progress get half the deadline to finish when their partition is revoked.
    let deadline = Duration::from_secs(20);
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().shutdown_deadline(deadline).world().await;
    let mut file = format!(
        r#"
[[sources]]
id = "app"
auth = [{{ type = "bearer", tokens = ["{token}"] }}]

[[triggers]]
id = "fan-out"
when = {{ sources = ["app"] }}
"#,
        token = harness::stages::TOKEN,
    );
    for n in 0..DESTINATIONS {
        file += &format!(
            "\n[[triggers.actions]]\ndestination = \"d{n}\"\nbody = '{{\"seq\": {{{{ payload.seq }}}}}}'\n"
        );
    }
    for n in 0..DESTINATIONS {
        file += &format!(
            "\n[[destinations]]\nid = \"d{n}\"\nurl = \"{}\"\n",
            receiver.url(&format!("/d{n}"))
        );
    }
    let file = ResourceFile::parse(&file).unwrap();
    apply(&settings, &pipeline, &file).await;
    // Longer than a consumer takes to notice a rebalance (one 3 s heartbeat), shorter than the
    // drain.
    receiver.stall(Duration::from_secs(6));
    for seq in 0..EVENTS {
        accepted_id(post(&pipeline, signup(seq as u64)).await).await;
    }
    // The world's own trigger sends every event to `crm` too.
    let jobs = EVENTS * (DESTINATIONS + 1);
    eventually("every delivery in progress", || async {
        (receiver.received().len() >= jobs).then_some(())
    })
    .await;

    // A second dispatcher joins the group while every delivery waits for its answer: one of the
    // first one's partitions is revoked and handed to it.
    let second = Stages::dispatcher_only(hookline_dispatcher::Config::default())
        .shutdown_deadline(deadline)
        .start(&settings)
        .await;
    let records = attempts(&settings, jobs).await;
    assert!(
        records
            .iter()
            .all(|record| record.outcome == AttemptOutcome::Delivered),
        "{records:?}"
    );
    // The second dispatcher was assigned a partition of the deliveries topic and read it from
    // the committed offset: it would have repeated any delivery not committed by then.
    let group = format!("{}dispatcher", settings.topic_prefix);
    eventually(
        "the second dispatcher to be assigned partitions",
        || async {
            let text = reqwest::get(format!("http://{}/metrics", second.admin_addr))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.lines()
                .any(|line| {
                    line.starts_with("hookline_consumer_rebalances_total")
                        && line.contains(&format!("group=\"{group}\""))
                })
                .then_some(())
        },
    )
    .await;
    second.stop().await.unwrap();
    pipeline.stop().await.unwrap();

    let received = receiver.received();
    let mut ids: Vec<&str> = received
        .iter()
        .map(|received| received.headers["webhook-id"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), jobs);
    assert_eq!(
        received.len(),
        jobs,
        "finished deliveries were committed before the rebalance, so none was repeated"
    );
    assert_eq!(records.len(), jobs, "{records:?}");
}
