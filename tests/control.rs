//! End-to-end tests of the control API: resources created, changed and deleted over HTTP reach
//! every stage through the resources topic, so an event posted to a source made by the API is
//! delivered, and disabling or deleting the source closes its URL. On the embedded broker, or
//! on the cluster named by `KAFKA_BROKERS`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::stages::{CONTROL_READ_TOKEN, CONTROL_TOKEN, Stages, World};
use harness::{TestKafka, TestReceiver, eventually};
use hookline::pipeline::Pipeline;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// An answer of the API.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn etag(&self) -> String {
        self.headers["etag"].to_str().unwrap().to_owned()
    }

    fn problems(&self) -> Vec<(String, String)> {
        self.body["error"]["problems"]
            .as_array()
            .unwrap_or_else(|| panic!("no problems in {}", self.body))
            .iter()
            .map(|p| {
                (
                    p["resource"].as_str().unwrap().to_owned(),
                    p["field"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

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

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call(method, path, Some(CONTROL_TOKEN), &[], body)
            .await
    }

    async fn create(&self, collection: &str, body: Value) -> Answer {
        let answer = self
            .admin(Method::POST, &format!("/api/v1/{collection}"), Some(body))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer
    }
}

async fn start(stages: Stages) -> World {
    harness::init_logs();
    let kafka = TestKafka::start();
    let settings = kafka.settings().await;
    let receiver = TestReceiver::start().await;
    let pipeline = stages.start(&settings).await;
    World {
        kafka,
        settings,
        receiver,
        pipeline,
    }
}

/// Posts `body` to a source's inbound URL with its bearer token.
async fn post_event(url: &str, token: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The source `shop`, the destination `crm` at the receiver and the trigger `orders` that
/// sends every event of the source to the destination. Returns the source's create answer.
async fn create_shop(api: &Api, receiver: &TestReceiver) -> Answer {
    let source = api
        .create("sources", json!({"id": "shop", "name": "Shop"}))
        .await;
    api.create(
        "destinations",
        json!({"id": "crm", "url": receiver.url("/hooks/crm"), "headers": {"x-team": "growth"}}),
    )
    .await;
    api.create(
        "triggers",
        json!({"id": "orders", "name": "Orders to the CRM", "when": {"sources": ["shop"]},
               "actions": [{"destination": "crm",
                            "body": "{\"order\": {{ payload.order }}, \"trigger\": {{ trigger.name }}}"}]}),
    )
    .await;
    source
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_created_through_the_api_deliver_an_event() {
    let World {
        kafka: _kafka,
        receiver,
        pipeline,
        ..
    } = start(Stages::all().with_control()).await;
    let api = Api::of(&pipeline);
    let source = create_shop(&api, &receiver).await;
    let url = source.body["ingest_url"].as_str().unwrap();
    assert_eq!(
        url,
        format!(
            "http://{}/inbound-webhooks/shop",
            pipeline.ingest_addr.unwrap()
        )
    );
    // No credentials were sent, so the source got a bearer token, shown this once.
    let token = source.body["auth"][0]["tokens"][0].as_str().unwrap();

    let posted = post_event(url, token, json!({"order": 42})).await;
    assert_eq!(posted.status(), StatusCode::ACCEPTED);
    let delivered = eventually("the event to reach the receiver", || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert_eq!(delivered.path, "/hooks/crm");
    assert_eq!(
        delivered.json(),
        json!({"order": 42, "trigger": "Orders to the CRM"})
    );
    assert_eq!(delivered.headers["x-team"], "growth");
    pipeline.stop().await.unwrap();
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_etag_gets_412_and_changes_nothing() {
    let World {
        kafka: _kafka,
        pipeline,
        ..
    } = start(Stages::ingest_and_control()).await;
    let api = Api::of(&pipeline);
    let created = api
        .create("sources", json!({"id": "shop", "auth": [{"type": "open"}]}))
        .await;
    let tag = created.etag();
    let first = api
        .call(
            Method::PATCH,
            "/api/v1/sources/shop",
            Some(CONTROL_TOKEN),
            &[("if-match", &tag)],
            Some(json!({"name": "first"})),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_ne!(first.etag(), tag);
    let second = api
        .call(
            Method::PATCH,
            "/api/v1/sources/shop",
            Some(CONTROL_TOKEN),
            &[("if-match", &tag)],
            Some(json!({"name": "second"})),
        )
        .await;
    assert_eq!(second.status, StatusCode::PRECONDITION_FAILED);
    let read = api.admin(Method::GET, "/api/v1/sources/shop", None).await;
    assert_eq!(read.body["name"], "first");
    assert_eq!(read.etag(), first.etag());

    let twice = api
        .admin(
            Method::POST,
            "/api/v1/sources",
            Some(json!({"id": "shop", "auth": [{"type": "open"}]})),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    pipeline.stop().await.unwrap();
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_references_get_409_naming_the_trigger() {
    let World {
        kafka: _kafka,
        receiver,
        pipeline,
        ..
    } = start(Stages::ingest_and_control()).await;
    let api = Api::of(&pipeline);
    create_shop(&api, &receiver).await;
    let delete = api
        .admin(Method::DELETE, "/api/v1/destinations/crm", None)
        .await;
    assert_eq!(delete.status, StatusCode::CONFLICT, "{}", delete.body);
    assert_eq!(
        delete.problems(),
        [(
            "trigger/orders".to_owned(),
            "actions[0].destination".to_owned()
        )]
    );
    let dangling = api
        .admin(
            Method::POST,
            "/api/v1/triggers",
            Some(json!({"id": "lost", "when": {"sources": ["shop"]},
                        "actions": [{"destination": "nowhere", "body": "{}"}]})),
        )
        .await;
    assert_eq!(dangling.status, StatusCode::CONFLICT);
    assert_eq!(
        dangling.problems(),
        [(
            "trigger/lost".to_owned(),
            "actions[0].destination".to_owned()
        )]
    );
    // Deleting the trigger first frees the destination.
    let trigger = api
        .admin(Method::DELETE, "/api/v1/triggers/orders", None)
        .await;
    assert_eq!(trigger.status, StatusCode::NO_CONTENT);
    let destination = api
        .admin(Method::DELETE, "/api/v1/destinations/crm", None)
        .await;
    assert_eq!(destination.status, StatusCode::NO_CONTENT);
    pipeline.stop().await.unwrap();
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resources_get_422_naming_the_field() {
    let World {
        kafka: _kafka,
        receiver,
        pipeline,
        ..
    } = start(Stages::ingest_and_control()).await;
    let api = Api::of(&pipeline);
    create_shop(&api, &receiver).await;
    let template = api
        .admin(
            Method::POST,
            "/api/v1/triggers",
            Some(json!({"id": "broken", "when": {"sources": ["shop"]},
                        "actions": [{"destination": "crm", "body": "{\"a\": {{ payload. }}}"}]})),
        )
        .await;
    assert_eq!(
        template.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        template.body
    );
    assert_eq!(template.body["error"]["code"], "invalid");
    assert_eq!(
        template.problems(),
        [("trigger/broken".to_owned(), "actions[0].body".to_owned())]
    );
    let unknown = api
        .admin(
            Method::PATCH,
            "/api/v1/destinations/crm",
            Some(json!({"timeout_msec": 100})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        unknown.problems(),
        [("destination/crm".to_owned(), "timeout_msec".to_owned())]
    );
    let missing = api
        .admin(Method::GET, "/api/v1/triggers/broken", None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    pipeline.stop().await.unwrap();
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_decide_who_reads_and_who_writes() {
    let World {
        kafka: _kafka,
        receiver,
        pipeline,
        ..
    } = start(Stages::ingest_and_control()).await;
    let api = Api::of(&pipeline);
    create_shop(&api, &receiver).await;
    for token in [None, Some("not-a-token")] {
        let answer = api
            .call(Method::GET, "/api/v1/sources/shop", token, &[], None)
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(
            answer.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert!(!answer.body.to_string().contains("shop"), "{}", answer.body);
    }
    let read = api
        .call(
            Method::GET,
            "/api/v1/sources",
            Some(CONTROL_READ_TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["items"][0]["id"], "shop");
    let write = api
        .call(
            Method::POST,
            "/api/v1/sources/shop/disable",
            Some(CONTROL_READ_TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert_eq!(write.body["error"]["code"], "read_only");
    let unchanged = api.admin(Method::GET, "/api/v1/sources/shop", None).await;
    assert_eq!(unchanged.body["enabled"], true);
    pipeline.stop().await.unwrap();
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_source_answers_403_and_deleting_it_404() {
    let World {
        kafka: _kafka,
        pipeline,
        ..
    } = start(Stages::ingest_and_control()).await;
    let api = Api::of(&pipeline);
    let source = api
        .create(
            "sources",
            json!({"id": "shop", "auth": [{"type": "bearer", "tokens": ["shop-token"]}]}),
        )
        .await;
    let url = source.body["ingest_url"].as_str().unwrap().to_owned();
    let post = || post_event(&url, "shop-token", json!({"order": 1}));
    assert_eq!(post().await.status(), StatusCode::ACCEPTED);

    let disabled = api
        .admin(Method::POST, "/api/v1/sources/shop/disable", None)
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    // The API answered after this process applied the change, so ingest sees it already.
    let refused = post().await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "source_disabled");

    api.admin(Method::POST, "/api/v1/sources/shop/enable", None)
        .await;
    assert_eq!(post().await.status(), StatusCode::ACCEPTED);

    let deleted = api
        .admin(Method::DELETE, "/api/v1/sources/shop", None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = post().await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["error"]["code"], "source_not_found");
    pipeline.stop().await.unwrap();
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_masked_on_read_and_kept_when_the_mask_comes_back() {
    let World {
        kafka: _kafka,
        pipeline,
        ..
    } = start(Stages::ingest_and_control()).await;
    let api = Api::of(&pipeline);
    const TOKEN: &str = "shop-token-0123456789";
    let created = api
        .create(
            "sources",
            json!({"id": "shop", "auth": [{"type": "bearer", "tokens": [TOKEN]},
                                          {"type": "shared_secret", "secrets": ["short"]}]}),
        )
        .await;
    assert_eq!(created.body["auth"][0]["tokens"][0], TOKEN, "shown once");
    let mut read = api.admin(Method::GET, "/api/v1/sources/shop", None).await;
    assert_eq!(read.body["auth"][0]["tokens"][0], "shop…");
    assert_eq!(read.body["auth"][1]["secrets"][0], "…");
    assert!(!read.body.to_string().contains(TOKEN));
    let listed = api.admin(Method::GET, "/api/v1/sources", None).await;
    assert!(!listed.body.to_string().contains(TOKEN));

    // Send back what was read, masks included, with a new name.
    read.body["name"] = "Shop".into();
    let tag = read.etag();
    let put = api
        .call(
            Method::PUT,
            "/api/v1/sources/shop",
            Some(CONTROL_TOKEN),
            &[("if-match", &tag)],
            Some(read.body),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["name"], "Shop");
    assert_eq!(put.body["auth"][0]["tokens"][0], "shop…");
    let url = put.body["ingest_url"].as_str().unwrap();
    let posted = post_event(url, TOKEN, json!({"order": 1})).await;
    assert_eq!(
        posted.status(),
        StatusCode::ACCEPTED,
        "the stored token still works"
    );
    pipeline.stop().await.unwrap();
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_and_change_times_survive_a_restart() {
    let World {
        kafka: _kafka,
        settings,
        pipeline,
        ..
    } = start(Stages::ingest_and_control()).await;
    let api = Api::of(&pipeline);
    let created = api
        .create("sources", json!({"id": "shop", "auth": [{"type": "open"}]}))
        .await;
    let changed = eventually("a write in a later millisecond", || async {
        let answer = api
            .admin(
                Method::PATCH,
                "/api/v1/sources/shop",
                Some(json!({"name": uuid::Uuid::now_v7().to_string()})),
            )
            .await;
        (answer.body["updated_at"] != created.body["updated_at"]).then_some(answer)
    })
    .await;
    assert_eq!(changed.body["created_at"], created.body["created_at"]);
    pipeline.stop().await.unwrap();

    let pipeline = Stages::ingest_and_control().start(&settings).await;
    let api = Api::of(&pipeline);
    let read = api.admin(Method::GET, "/api/v1/sources/shop", None).await;
    assert_eq!(read.body["created_at"], created.body["created_at"]);
    assert_eq!(read.body["updated_at"], changed.body["updated_at"]);
    assert_eq!(read.etag(), changed.etag());
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_paths_and_undecodable_ids_get_the_json_error_with_a_request_id() {
    let world = start(Stages::control_only()).await;
    let api = Api::of(&world.pipeline);
    for (method, path, token, status, code) in [
        (
            Method::GET,
            "/api/v1/sources/%ff",
            Some(CONTROL_TOKEN),
            400,
            "invalid_path",
        ),
        (
            Method::GET,
            "/api/v1/sources/%E2%82",
            Some(CONTROL_TOKEN),
            400,
            "invalid_path",
        ),
        (
            Method::GET,
            "/api/v1/nothing",
            Some(CONTROL_TOKEN),
            404,
            "not_found",
        ),
        (Method::GET, "/", None, 404, "not_found"),
        (
            Method::PUT,
            "/api/v1/sources",
            Some(CONTROL_TOKEN),
            405,
            "method_not_allowed",
        ),
        (Method::GET, "/api/v1/sources/x", None, 401, "unauthorized"),
    ] {
        let answer = api.call(method.clone(), path, token, &[], None).await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{method} {path}: {}",
            answer.body
        );
        assert_eq!(answer.body["error"]["code"], code, "{method} {path}");
        assert!(
            answer.headers.contains_key("x-request-id"),
            "{method} {path} has no x-request-id"
        );
    }
    // A request id the client sends comes back unchanged.
    let answer = api
        .call(
            Method::GET,
            "/api/v1/nothing",
            Some(CONTROL_TOKEN),
            &[("x-request-id", "trace-42")],
            None,
        )
        .await;
    assert_eq!(answer.headers["x-request-id"], "trace-42");
}
