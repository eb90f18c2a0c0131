//! End-to-end tests of what the control API shows and replays: an event's journey with the
//! receiver's answer, a destination's attempts, refused requests, test sends through the real
//! dispatcher, and dead letters replayed after the cause was fixed. On the embedded broker, or on
//! the cluster named by `KAFKA_BROKERS`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::eventually;
use harness::stages::{
    CONTROL_READ_TOKEN, CONTROL_TOKEN, Stages, World, accepted_id, post, signup,
};
use hookline::pipeline::Pipeline;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A client of the pipeline's control API.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn of(pipeline: &Pipeline) -> Self {
        Self {
            base: format!("http://{}", pipeline.control_addr.unwrap()),
            client: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(CONTROL_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, body)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Asks `path` until `ready` holds for the answer (the store fills as the topics are read).
    async fn get_until(&self, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
        eventually(&format!("GET {path} to show it"), || async {
            let (status, body) = self.call(Method::GET, path, None).await;
            (status == StatusCode::OK && ready(&body)).then_some(body)
        })
        .await
    }
}

/// Writes event `id` of source `app`, received at `received_at`, straight to the events topic, as
/// a producer that skips ingest would.
async fn write_event(settings: &hookline_runtime::KafkaSettings, id: &str, received_at: &str) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;

    let producer = hookline_runtime::kafka::create_producer(
        &hookline_runtime::kafka::producer_config(settings, "test"),
    )
    .unwrap();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "hookline-source",
            value: Some("app"),
        })
        .insert(Header {
            key: "hookline-event-id",
            value: Some(id),
        })
        .insert(Header {
            key: "hookline-received-at",
            value: Some(received_at),
        });
    producer
        .send(
            FutureRecord::to(&settings.topics().events())
                .key("app")
                .payload(r#"{"type": "user.deleted"}"#)
                .headers(headers),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
}

/// The metrics text of `pipeline` once its control store is ready and holds `events` events.
async fn loaded_store_metrics(pipeline: &Pipeline, events: u32) -> String {
    let url = format!("http://{}/metrics", pipeline.admin_addr);
    let wanted = format!("hookline_control_store_records{{record=\"event\"}} {events}\n");
    eventually("the store metrics", || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        (text.contains("hookline_control_store_ready 1\n") && text.contains(&wanted))
            .then_some(text)
    })
    .await
}

/// Waits until `api` shows each event of `ids` with its first delivery delivered.
async fn every_delivery_shown(api: &Api, ids: &[String]) {
    for id in ids {
        api.get_until(&format!("/api/v1/events/{id}"), |body| {
            body["deliveries"][0]["status"] == "delivered"
        })
        .await;
    }
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_s_timeline_shows_its_match_delivery_and_the_receiver_s_answer() {
    let World {
        kafka: _kafka,
        receiver,
        pipeline,
        ..
    } = Stages::all().with_control().world().await;
    let api = Api::of(&pipeline);
    receiver.answer(&[503]);
    let id = accepted_id(post(&pipeline, signup(1)).await).await;
    let refused = harness::stages::post_request(&pipeline)
        .bearer_auth("wrong-token")
        .json(&signup(2))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let journey = api
        .get_until(&format!("/api/v1/events/{id}"), |body| {
            body["deliveries"][0]["status"] == "delivered"
        })
        .await;
    assert_eq!(journey["source"], "app");
    assert_eq!(journey["client"], "127.0.0.1");
    assert_eq!(journey["payload"], signup(1));
    assert_eq!(journey["match"]["outcome"], "delivered");
    assert_eq!(journey["match"]["triggers"][0]["trigger_id"], "signups");
    let delivery = &journey["deliveries"][0];
    assert_eq!(delivery["destination_id"], "crm");
    assert_eq!(
        delivery["delivery_id"],
        receiver.received()[0].headers["webhook-id"]
    );
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[0]["outcome"], "retrying");
    assert_eq!(attempts[1]["status"], 200);
    assert!(attempts[1]["latency_seconds"].as_f64().unwrap() > 0.0);

    let failed = api
        .get("/api/v1/destinations/crm/attempts?outcome=retrying")
        .await;
    assert_eq!(items(&failed).len(), 1);
    assert_eq!(items(&failed)[0]["event_id"], id.as_str());

    let source_log = api
        .get_until("/api/v1/sources/app/events", |body| {
            items(body).iter().any(|item| item["kind"] == "rejected")
        })
        .await;
    let rejected = items(&source_log)
        .iter()
        .find(|item| item["kind"] == "rejected")
        .unwrap();
    assert_eq!(rejected["code"], "unauthorized");
    // The refused body, as text, for the operator to see what was sent.
    let preview: Value = serde_json::from_str(rejected["body_preview"].as_str().unwrap()).unwrap();
    assert_eq!(preview, signup(2));
    assert!(
        items(&source_log)
            .iter()
            .any(|item| item["kind"] == "event" && item["event_id"] == id.as_str())
    );

    let crm = api.get("/api/v1/destinations/crm").await;
    assert!(crm["last_delivered_at"].is_string(), "{crm}");
    let unmatched = api.get("/api/v1/triggers/signups").await;
    assert!(unmatched["last_triggered_at"].is_string(), "{unmatched}");
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_send_goes_through_the_dispatcher_and_answers_with_its_attempt() {
    let World {
        kafka: _kafka,
        receiver,
        pipeline,
        ..
    } = Stages::all().with_control().world().await;
    let api = Api::of(&pipeline);
    let (status, answer) = api
        .call(Method::POST, "/api/v1/destinations/crm/test", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["attempt"]["outcome"], "delivered");
    assert_eq!(answer["attempt"]["status"], 200);
    let got = &receiver.received()[0];
    assert_eq!(got.json()["type"], "hookline.test");
    assert_eq!(
        got.headers["webhook-id"],
        answer["delivery_id"].as_str().unwrap()
    );
    // The dispatcher added the destination's static headers: this was the real path.
    assert_eq!(got.headers["x-static"], "fixed");

    receiver.answer(&[404]);
    let (status, failed) = api
        .call(
            Method::POST,
            "/api/v1/destinations/crm/test",
            Some(json!({"body": {"hello": "world"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(failed["attempt"]["outcome"], "dead");
    assert_eq!(failed["attempt"]["status"], 404);
    assert_eq!(receiver.received()[1].json(), json!({"hello": "world"}));

    let (status, _) = api
        .call(Method::POST, "/api/v1/destinations/nowhere/test", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let read_only = reqwest::Client::new()
        .post(format!("{}/api/v1/destinations/crm/test", api.base))
        .bearer_auth(CONTROL_READ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(read_only.status(), 403);
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_with_the_same_delivery_id() {
    let World {
        kafka: _kafka,
        settings,
        receiver,
        pipeline,
    } = Stages::all().with_control().world().await;
    let api = Api::of(&pipeline);
    // The destination points at the wrong path, which answers 400: final, straight to the dead
    // letter topic.
    let (status, moved) = api
        .call(
            Method::PATCH,
            "/api/v1/destinations/crm",
            Some(json!({"url": receiver.url("/wrong")})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    receiver.answer(&[400]);
    let id = accepted_id(post(&pipeline, signup(1)).await).await;
    let dead = api
        .get_until("/api/v1/dead-letters?destination=crm", |body| {
            !items(body).is_empty()
        })
        .await;
    let letter = &items(&dead)[0];
    assert_eq!(letter["reason"], "rejected");
    assert_eq!(letter["state"], "open");
    assert_eq!(letter["payload"]["job"]["event_id"], id.as_str());
    let none = api.get("/api/v1/dead-letters?reason=exhausted").await;
    assert!(items(&none).is_empty());

    // The destination is fixed: every rejected failure of it goes again, to the fixed URL.
    let (status, fixed) = api
        .call(
            Method::PATCH,
            "/api/v1/destinations/crm",
            Some(json!({"url": receiver.url("/hooks/crm")})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fixed}");
    // A dry run lists the job as it would go, and sends nothing.
    let (status, dry) = api
        .call(
            Method::POST,
            "/api/v1/dead-letters/replay",
            Some(json!({"destination": "crm", "since": "2020-01-01T00:00:00Z", "dry_run": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    let planned = &dry["would_send"][0];
    assert_eq!(
        (&planned["delivery_id"], &planned["url"], &planned["result"]),
        (
            &letter["payload"]["job"]["delivery_id"],
            &json!(receiver.url("/hooks/crm")),
            &json!("send")
        ),
        "{dry}"
    );
    assert_eq!(receiver.received().len(), 1, "nothing sent by the dry run");
    let (status, replayed) = api
        .call(
            Method::POST,
            "/api/v1/dead-letters/replay",
            Some(json!({"destination": "crm", "since": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["replayed_jobs"], 1);
    let again = eventually("the replayed delivery", || async {
        receiver.received().get(1).cloned()
    })
    .await;
    let first = &receiver.received()[0];
    assert_eq!(first.path, "/wrong");
    assert_eq!(again.path, "/hooks/crm");
    assert_eq!(again.headers["webhook-id"], first.headers["webhook-id"]);
    assert_eq!(again.body, first.body);
    let journey = api
        .get_until(&format!("/api/v1/events/{id}"), |body| {
            body["deliveries"][0]["status"] == "delivered"
        })
        .await;
    let attempts = journey["deliveries"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[1]["attempt"], 1,
        "a replay starts over at attempt 1"
    );

    // The letter is replayed, then delivered; the same replay again sends nothing.
    let letter_id = letter["id"].as_str().unwrap().to_owned();
    let listed = api
        .get_until("/api/v1/dead-letters?destination=crm", |body| {
            items(body)[0]["state"] == "delivered"
        })
        .await;
    assert!(
        items(&listed)[0]["state_by"]
            .as_str()
            .is_some_and(|by| by.starts_with("token:")),
        "{listed}"
    );
    let (status, twice) = api
        .call(
            Method::POST,
            "/api/v1/dead-letters/replay",
            Some(json!({"destination": "crm", "since": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{twice}");
    assert_eq!(twice["replayed_jobs"], 0);
    assert_eq!(
        twice["skipped"],
        json!([{"id": letter_id, "reason": "already_replayed"}])
    );

    // A second failure is discarded: it stays listed, and is replayed only when forced.
    receiver.answer(&[400]);
    accepted_id(post(&pipeline, signup(2)).await).await;
    let dead = api
        .get_until("/api/v1/dead-letters?destination=crm", |body| {
            items(body).len() == 2
        })
        .await;
    let second = items(&dead)[0]["id"].as_str().unwrap().to_owned();
    assert_ne!(second, letter_id);
    let (status, discarded) = api
        .call(
            Method::POST,
            "/api/v1/dead-letters/discard",
            Some(json!({"ids": [second]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{discarded}");
    assert_eq!(discarded["discarded"], json!([second]));
    let (_, refused) = api
        .call(
            Method::POST,
            "/api/v1/dead-letters/replay",
            Some(json!({"ids": [second]})),
        )
        .await;
    assert_eq!(refused["skipped"][0]["reason"], "discarded", "{refused}");
    // Another control instance reads the same states from Kafka.
    let fresh = Stages::control_only().start(&settings).await;
    let states = Api::of(&fresh)
        .get_until("/api/v1/dead-letters?destination=crm", |body| {
            items(body).len() == 2
        })
        .await;
    let states: Vec<_> = items(&states)
        .iter()
        .map(|item| item["state"].clone())
        .collect();
    assert_eq!(states, [json!("discarded"), json!("delivered")]);
    fresh.stop().await.unwrap();
    let (_, forced) = api
        .call(
            Method::POST,
            "/api/v1/dead-letters/replay",
            Some(json!({"ids": [second], "force": true})),
        )
        .await;
    assert_eq!(forced["replayed_jobs"], 1, "{forced}");

    let (status, missing) = api
        .call(
            Method::POST,
            "/api/v1/dead-letters/replay",
            Some(json!({"ids": ["9-999"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(missing["skipped"][0]["reason"], "not_found");
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_failed_a_template_is_replayed_after_the_trigger_is_fixed() {
    let World {
        kafka: _kafka,
        receiver,
        pipeline,
        ..
    } = Stages::all().with_control().world().await;
    let api = Api::of(&pipeline);
    // No `user.email`: the body template fails, the event is dead-lettered.
    let broken = json!({"type": "user.signed_up", "seq": 7, "user": {}});
    let id = accepted_id(post(&pipeline, broken).await).await;
    let journey = api
        .get_until(&format!("/api/v1/events/{id}"), |body| {
            body["match"]["outcome"] == "dead"
                && !body["dead_letters"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(
        journey["match"]["triggers"][0]["skipped"][0]["reason"],
        "render_failed"
    );
    let letter_id = journey["dead_letters"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, fixed) = api
        .call(
            Method::PATCH,
            "/api/v1/triggers/signups",
            Some(json!({"actions": [{"destination": "crm", "body": "{\"seq\": {{ payload.seq }}}"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fixed}");
    let (status, replayed) = api
        .call(
            Method::POST,
            "/api/v1/dead-letters/replay",
            Some(json!({"ids": [letter_id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["replayed_events"], 1);
    let got = eventually("the replayed event's delivery", || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert_eq!(got.json(), json!({"seq": 7}));

    // Replaying the event again sends nothing: its one delivery succeeded. A dry run says so
    // first, and sends nothing either.
    let journey = api
        .get_until(&format!("/api/v1/events/{id}"), |body| {
            body["deliveries"][0]["status"] == "delivered"
        })
        .await;
    let delivery_id = journey["deliveries"][0]["delivery_id"].clone();
    let (status, dry) = api
        .call(
            Method::POST,
            "/api/v1/events/replay",
            Some(json!({"ids": [id], "dry_run": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        dry["would_send"],
        json!([{"id": id, "event_id": id, "trigger_id": "signups", "action": 0,
                "destination_id": "crm", "result": "already_delivered"}]),
        "{dry}"
    );
    let (status, again) = api
        .call(
            Method::POST,
            "/api/v1/events/replay",
            Some(json!({"ids": [id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (
            again["replayed_events"].clone(),
            again["already_delivered"].clone()
        ),
        (json!(1), json!(1)),
        "{again}"
    );
    let journey = api
        .get_until(&format!("/api/v1/events/{id}"), |body| {
            body["replays"].as_array().unwrap().len() == 2
                && body["match"]["triggers"][0]["skipped"][0]["reason"] == "already_delivered"
        })
        .await;
    assert!(
        journey["replays"][1]["by"]
            .as_str()
            .is_some_and(|by| by.starts_with("token:")),
        "{journey}"
    );

    // Asked for everything, the replay sends it again, under the same delivery id.
    let (status, all) = api
        .call(
            Method::POST,
            "/api/v1/events/replay",
            Some(json!({"ids": [id], "all": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["already_delivered"], 0);
    let second = eventually("the second delivery", || async {
        receiver.received().get(1).cloned()
    })
    .await;
    assert_eq!(second.headers["webhook-id"], got.headers["webhook-id"]);
    assert_eq!(second.headers["webhook-id"], delivery_id.as_str().unwrap());
    assert_eq!(
        receiver.received().len(),
        2,
        "the dry run and the plain replay sent nothing"
    );
    let journey = api
        .get_until(&format!("/api/v1/events/{id}"), |body| {
            body["replays"].as_array().unwrap().len() == 3
        })
        .await;
    assert_eq!(journey["replayed_at"], Value::Null, "the original is shown");
    assert_eq!(journey["payload"]["seq"], 7);
    let log = api.get("/api/v1/sources/app/events?kind=event").await;
    let replays = items(&log)
        .iter()
        .filter(|item| item["event_id"] == id.as_str() && item["replayed_at"].is_string())
        .count();
    assert_eq!(replays, 3, "{log}");
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_control_instance_rebuilds_the_store_from_the_topics_within_the_retention() {
    let World {
        kafka: _kafka,
        settings,
        receiver: _receiver,
        pipeline,
    } = Stages::all().with_control().world().await;
    let api = Api::of(&pipeline);
    let id = accepted_id(post(&pipeline, signup(1)).await).await;
    api.get_until(&format!("/api/v1/events/{id}"), |body| {
        body["deliveries"][0]["status"] == "delivered"
    })
    .await;
    // An event received long before the retention window (7 days by default), written straight
    // to Kafka.
    write_event(&settings, "old-event", "2020-01-01T00:00:00Z").await;
    pipeline.stop().await.unwrap();

    let fresh = Stages::control_only().start(&settings).await;
    let api = Api::of(&fresh);
    let journey = api
        .get_until(&format!("/api/v1/events/{id}"), |body| {
            body["deliveries"][0]["status"] == "delivered"
        })
        .await;
    assert_eq!(journey["payload"], signup(1));
    assert_eq!(journey["match"]["outcome"], "delivered");
    let log = api.get("/api/v1/sources/app/events?kind=event").await;
    let ids: Vec<&str> = items(&log)
        .iter()
        .map(|item| item["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()], "the old event is past the retention");
    let crm = api.get("/api/v1/destinations/crm").await;
    assert!(crm["last_delivered_at"].is_string(), "{crm}");

    let metrics = loaded_store_metrics(&fresh, 1).await;
    assert!(metrics.contains("hookline_control_store_lag_seconds{record=\"attempt\"}"));
    assert!(metrics.contains("hookline_control_store_deleted_records_total{reason=\"size\"} 0"));
    fresh.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_control_resumes_its_store_file_where_it_stopped() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("control").join("history.sqlite3");
    let World {
        kafka: _kafka,
        settings,
        receiver: _receiver,
        pipeline,
    } = Stages::all()
        .with_control()
        .control_store_at(&path)
        .world()
        .await;
    let api = Api::of(&pipeline);
    let id = accepted_id(post(&pipeline, signup(1)).await).await;
    api.get_until(&format!("/api/v1/events/{id}"), |body| {
        body["deliveries"][0]["status"] == "delivered"
    })
    .await;
    pipeline.stop().await.unwrap();
    assert!(path.exists(), "the store is a file");

    // While control is down, one more event arrives.
    write_event(
        &settings,
        "while-away",
        &hookline_runtime::time::now_rfc3339(),
    )
    .await;

    let restarted = Stages::control_only()
        .control_store_at(&path)
        .start(&settings)
        .await;
    let api = Api::of(&restarted);
    // What the last run stored is there at once, and what came meanwhile is read.
    let journey = api.get(&format!("/api/v1/events/{id}")).await;
    assert_eq!(journey["deliveries"][0]["status"], "delivered");
    assert_eq!(journey["payload"], signup(1));
    api.get_until("/api/v1/events/while-away", |body| {
        body["payload"]["type"] == "user.deleted"
    })
    .await;
    let crm = api.get("/api/v1/destinations/crm").await;
    assert!(
        crm["last_delivered_at"].is_string(),
        "activity is kept: {crm}"
    );
    // Two events, each once: the restart resumed, it did not read the topics again.
    let metrics = loaded_store_metrics(&restarted, 2).await;
    assert!(metrics.contains("hookline_control_store_records{record=\"match\"} 1"));
    let size = harness::stages::metric(&restarted, "hookline_control_store_size_bytes").await;
    assert!(size.is_some_and(|bytes| bytes > 0.0), "store size {size:?}");
    restarted.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_instances_each_keep_a_whole_history() {
    let World {
        kafka: _kafka,
        settings,
        receiver: _receiver,
        pipeline,
    } = Stages::all().with_control().world().await;
    let second = Stages::control_only().start(&settings).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(accepted_id(post(&pipeline, signup(n)).await).await);
    }
    for instance in [&pipeline, &second] {
        let api = Api::of(instance);
        every_delivery_shown(&api, &ids).await;
        let log = api
            .get_until("/api/v1/sources/app/events?kind=event", |page| {
                items(page).len() == ids.len()
            })
            .await;
        let mut listed: Vec<&str> = items(&log)
            .iter()
            .map(|item| item["event_id"].as_str().unwrap())
            .collect();
        listed.sort_unstable();
        let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
        expected.sort_unstable();
        assert_eq!(listed, expected);
    }
    second.stop().await.unwrap();
    pipeline.stop().await.unwrap();
}

/// The test PostgreSQL server (`scripts/postgres-local start`), if there is one; with
/// `HOOKLINE_TEST_POSTGRES_REQUIRED` set (CI), a missing one fails the test.
fn test_postgres() -> Option<String> {
    match std::env::var("HOOKLINE_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        Ok(_) | Err(_) => {
            assert!(
                std::env::var_os("HOOKLINE_TEST_POSTGRES_REQUIRED").is_none(),
                "HOOKLINE_TEST_POSTGRES_REQUIRED is set but HOOKLINE_TEST_POSTGRES names no server"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_instances_share_one_postgres_store_and_a_new_one_resumes_it() {
    let Some(url) = test_postgres() else {
        eprintln!("No HOOKLINE_TEST_POSTGRES: the PostgreSQL store is not tested here.");
        return;
    };
    let schema = format!("it_{}", uuid::Uuid::new_v4().simple());
    let World {
        kafka: _kafka,
        settings,
        receiver: _receiver,
        pipeline,
    } = Stages::all()
        .with_control()
        .control_store_in_postgres(&url, &schema)
        .world()
        .await;
    let second = Stages::control_only()
        .control_store_in_postgres(&url, &schema)
        .start(&settings)
        .await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(accepted_id(post(&pipeline, signup(n)).await).await);
    }
    for instance in [&pipeline, &second] {
        every_delivery_shown(&Api::of(instance), &ids).await;
    }
    // Both instances offered every record; the shared store kept each once.
    for instance in [&pipeline, &second] {
        let metrics = loaded_store_metrics(instance, 3).await;
        assert!(
            metrics.contains("hookline_control_store_records{record=\"match\"} 3\n"),
            "{metrics}"
        );
    }
    second.stop().await.unwrap();
    pipeline.stop().await.unwrap();

    // While no control runs, one more event arrives; a new instance resumes the shared store.
    write_event(
        &settings,
        "while-away",
        &hookline_runtime::time::now_rfc3339(),
    )
    .await;
    let resumed = Stages::control_only()
        .control_store_in_postgres(&url, &schema)
        .start(&settings)
        .await;
    let api = Api::of(&resumed);
    let journey = api.get(&format!("/api/v1/events/{}", ids[0])).await;
    assert_eq!(journey["deliveries"][0]["status"], "delivered");
    api.get_until("/api/v1/events/while-away", |body| {
        body["payload"]["type"] == "user.deleted"
    })
    .await;
    loaded_store_metrics(&resumed, 4).await;
    resumed.stop().await.unwrap();
}
