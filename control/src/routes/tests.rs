//! The routes through `Router::oneshot`, with the resources on the embedded broker, so every
//! write really goes to a topic and is read back.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use hookline_runtime::embedded::EmbeddedKafka;
use hookline_runtime::kafka;
use hookline_runtime::resources::{ResourceStore, ResourceWriter};
use hookline_schemas::ResourceId;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::*;
use crate::metrics::Metrics;
use crate::state::History;
use crate::tokens::Tokens;
use crate::write::Writes;

const ADMIN: &str = "admin-token";
const VIEWER: &str = "viewer-token";

struct App {
    router: Router,
    registry: Registry,
    metrics: Metrics,
    store: ResourceStore,
    history: Arc<History>,
    shutdown: CancellationToken,
    _broker: EmbeddedKafka,
}

impl Drop for App {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn etag(&self) -> String {
        self.headers[header::ETAG].to_str().unwrap().to_owned()
    }

    fn problem_fields(&self) -> Vec<String> {
        self.body["error"]["problems"]
            .as_array()
            .unwrap_or_else(|| panic!("no problems in {}", self.body))
            .iter()
            .map(|p| p["field"].as_str().unwrap().to_owned())
            .collect()
    }
}

async fn app() -> App {
    app_with_body_limit(1 << 20).await
}

async fn app_with_body_limit(max_body_bytes: usize) -> App {
    app_with(max_body_bytes, true).await
}

/// An app whose store of what happened is `ready`, or still loading.
async fn app_with(max_body_bytes: usize, ready: bool) -> App {
    let broker = EmbeddedKafka::start(1).unwrap();
    let settings = broker.settings("t.");
    broker.create_topics(&settings).unwrap();
    let shutdown = CancellationToken::new();
    let (store, _task) = ResourceStore::start(&settings, shutdown.clone())
        .await
        .unwrap();
    store.wait_ready().await.unwrap();
    let producer = kafka::create_producer(&kafka::producer_config(&settings, "test")).unwrap();
    let writer = ResourceWriter::with_producer(&settings, producer.clone());
    let registry = Registry::new();
    let metrics = Metrics::register(&registry);
    let history = Arc::new(History {
        logs: if ready {
            crate::store::reader::Logs::fixed(crate::store::Store::in_memory().unwrap())
        } else {
            crate::store::reader::Logs::loading(crate::store::Store::in_memory().unwrap())
        },
        sender: crate::send::Sender::new(&settings, producer.clone(), Duration::from_secs(5)),
        test_timeout: Duration::from_millis(100),
        max_replay: 100,
        dead_states: {
            let states =
                crate::dead_states::DeadStates::new(&settings, producer, Duration::from_secs(5));
            tokio::spawn(states.clone().run(settings.clone(), shutdown.clone()));
            states
        },
        held: {
            let held = crate::held::Held::new();
            tokio::spawn(held.clone().run(settings.clone(), shutdown.clone()));
            held
        },
        failing: {
            let failing = crate::failing::Failing::new();
            tokio::spawn(failing.clone().run(settings.clone(), shutdown.clone()));
            failing
        },
    });
    let router = super::app(
        ApiState {
            writes: Arc::new(Writes::new(writer, store.clone(), Duration::from_secs(20))),
            store: store.clone(),
            tokens: Arc::new(Tokens::new(&[ADMIN.into()], &[VIEWER.into()])),
            ingest_base: "http://hooks.test".into(),
            max_body_bytes,
            metrics: metrics.clone(),
            history: history.clone(),
        },
        &registry,
    );
    App {
        router,
        registry,
        metrics,
        store,
        history,
        shutdown,
        _broker: broker,
    }
}

impl App {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.call(method, path, Some(ADMIN), &[], body).await
    }

    /// A source, a destination and a trigger that uses both.
    async fn seed(&self) {
        for (path, body) in [
            (
                "/api/v1/sources",
                json!({"id": "app", "auth": [{"type": "open"}]}),
            ),
            (
                "/api/v1/destinations",
                json!({"id": "crm", "url": "https://crm.example.com/hooks"}),
            ),
            (
                "/api/v1/triggers",
                json!({"id": "signups", "when": {"sources": ["app"]},
                       "actions": [{"destination": "crm", "body": "{\"n\": {{ payload.n }}}"}]}),
            ),
        ] {
            let answer = self.admin("POST", path, Some(body)).await;
            assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        }
    }
}

#[tokio::test]
async fn requests_without_a_valid_token_learn_nothing() {
    let app = app().await;
    app.seed().await;
    for token in [None, Some("wrong")] {
        for path in [
            "/api/v1/sources/app",
            "/api/v1/sources/missing",
            "/api/v1/triggers",
        ] {
            let answer = app.call("GET", path, token, &[], None).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(
                answer.headers[header::WWW_AUTHENTICATE],
                "Bearer realm=\"hookline\""
            );
            assert_eq!(answer.body["error"]["code"], "unauthorized");
            assert!(!answer.body.to_string().contains("app"), "{}", answer.body);
        }
    }
    let answer = app
        .call("DELETE", "/api/v1/sources/app", None, &[], None)
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // The API's description is public: it says nothing about resources.
    let document = app.call("GET", openapi::PATH, None, &[], None).await;
    assert_eq!(document.status, StatusCode::OK);
    assert_eq!(document.body["openapi"], "3.1.0");
}

#[tokio::test]
async fn read_only_tokens_read_but_cannot_write() {
    let app = app().await;
    app.seed().await;
    let read = app
        .call("GET", "/api/v1/sources/app", Some(VIEWER), &[], None)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    for (method, path, body) in [
        ("POST", "/api/v1/sources", Some(json!({"id": "x"}))),
        ("POST", "/api/v1/sources/app/disable", None),
        ("PATCH", "/api/v1/sources/app", Some(json!({"name": "x"}))),
        ("DELETE", "/api/v1/triggers/signups", None),
        // The unsaved preview's route: only its POST is open to read-only tokens.
        (
            "PUT",
            "/api/v1/triggers/preview",
            Some(json!({"when": {"sources": ["app"]},
                        "actions": [{"destination": "crm", "body": "{}"}]})),
        ),
        (
            "PATCH",
            "/api/v1/triggers/preview",
            Some(json!({"name": "x"})),
        ),
        ("DELETE", "/api/v1/triggers/preview", None),
    ] {
        let answer = app.call(method, path, Some(VIEWER), &[], body).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(answer.body["error"]["code"], "read_only");
    }
    let still = app.admin("GET", "/api/v1/sources/app", None).await;
    assert_eq!(still.body["enabled"], true);
    let none = app.admin("GET", "/api/v1/triggers/preview", None).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn creates_shows_lists_and_deletes_with_times_and_etags() {
    let app = app().await;
    let created = app
        .admin("POST", "/api/v1/sources", Some(json!({"name": "GitHub"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("src_"), "{id}");
    assert_eq!(
        created.headers[header::LOCATION],
        format!("/api/v1/sources/{id}")
    );
    assert_eq!(
        created.body["ingest_url"],
        format!("http://hooks.test/inbound-webhooks/{id}")
    );
    let token = created.body["auth"][0]["tokens"][0].as_str().unwrap();
    assert!(token.starts_with("hl_") && token.len() > 40, "{token}");
    assert!(created.body["created_at"].is_string(), "{}", created.body);
    assert_eq!(created.body["created_at"], created.body["updated_at"]);

    let shown = app
        .admin("GET", &format!("/api/v1/sources/{id}"), None)
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.etag(), created.etag());
    assert_eq!(
        shown.body["auth"][0]["tokens"][0],
        format!("{}…", &token[..4])
    );
    assert!(!shown.body.to_string().contains(token));

    let renamed = app
        .admin(
            "PATCH",
            &format!("/api/v1/sources/{id}"),
            Some(json!({"name": "GitHub org"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "GitHub org");
    assert_eq!(renamed.body["created_at"], created.body["created_at"]);
    assert_ne!(renamed.etag(), created.etag());

    let listed = app.admin("GET", "/api/v1/sources", None).await;
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    assert_eq!(listed.body["next_cursor"], Value::Null);

    let deleted = app
        .admin("DELETE", &format!("/api/v1/sources/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app
        .admin("GET", &format!("/api/v1/sources/{id}"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["error"]["code"], "not_found");
}

#[tokio::test]
async fn if_match_refuses_changes_to_a_version_you_did_not_read() {
    let app = app().await;
    app.seed().await;
    let read = app.admin("GET", "/api/v1/destinations/crm", None).await;
    let tag = read.etag();
    let mut changed = read.body.clone();
    changed["name"] = "CRM".into();
    let put = app
        .call(
            "PUT",
            "/api/v1/destinations/crm",
            Some(ADMIN),
            &[("if-match", &tag)],
            Some(changed.clone()),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    // The second writer still holds the old tag.
    changed["name"] = "Lost update".into();
    let stale = app
        .call(
            "PUT",
            "/api/v1/destinations/crm",
            Some(ADMIN),
            &[("if-match", &tag)],
            Some(changed),
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.body["error"]["code"], "precondition_failed");
    let stale_delete = app
        .call(
            "DELETE",
            "/api/v1/destinations/crm",
            Some(ADMIN),
            &[("if-match", &tag)],
            None,
        )
        .await;
    assert_eq!(stale_delete.status, StatusCode::PRECONDITION_FAILED);
    let now = app.admin("GET", "/api/v1/destinations/crm", None).await;
    assert_eq!(now.body["name"], "CRM");

    let again = json!({"id": "crm", "url": "https://other.example.com/"});
    let exists = app
        .admin("POST", "/api/v1/destinations", Some(again.clone()))
        .await;
    assert_eq!(exists.status, StatusCode::CONFLICT);
    assert_eq!(exists.body["error"]["code"], "already_exists");
    let create_only = app
        .call(
            "POST",
            "/api/v1/destinations",
            Some(ADMIN),
            &[("if-none-match", "*")],
            Some(again),
        )
        .await;
    assert_eq!(create_only.status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn broken_references_are_conflicts_that_name_the_trigger() {
    let app = app().await;
    app.seed().await;
    let delete = app.admin("DELETE", "/api/v1/destinations/crm", None).await;
    assert_eq!(delete.status, StatusCode::CONFLICT, "{}", delete.body);
    assert_eq!(delete.body["error"]["code"], "conflict");
    assert_eq!(
        delete.body["error"]["problems"][0]["resource"],
        "trigger/signups"
    );
    assert_eq!(delete.problem_fields(), ["actions[0].destination"]);

    let dangling = app
        .admin(
            "POST",
            "/api/v1/triggers",
            Some(json!({"id": "t2", "when": {"sources": ["nope"]},
                        "actions": [{"destination": "crm", "body": "{}"}]})),
        )
        .await;
    assert_eq!(dangling.status, StatusCode::CONFLICT, "{}", dangling.body);
    assert_eq!(dangling.problem_fields(), ["when.sources[0]"]);
    assert_eq!(
        app.admin("GET", "/api/v1/destinations/crm", None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn invalid_resources_are_refused_naming_the_field() {
    let app = app().await;
    app.seed().await;
    let template = app
        .admin(
            "PATCH",
            "/api/v1/triggers/signups",
            Some(json!({"actions": [{"destination": "crm", "body": "{\"n\": {{ payload. }}}"}]})),
        )
        .await;
    assert_eq!(
        template.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        template.body
    );
    assert_eq!(template.body["error"]["code"], "invalid");
    assert_eq!(template.problem_fields(), ["actions[0].body"]);
    let message = template.body["error"]["problems"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("line 1"), "{message}");
    // What would fail on every event is refused too, in every field at once.
    let failing = app
        .admin(
            "PATCH",
            "/api/v1/triggers/signups",
            Some(json!({"if": "payload.x is nosuch", "actions": [
                {"destination": "crm", "body": "{\"n\": {{ payload.n|nosuch }}"}]})),
        )
        .await;
    assert_eq!(
        failing.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        failing.body
    );
    assert_eq!(failing.problem_fields(), ["actions[0].body", "if"]);
    let message = failing.body["error"]["problems"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("unknown filter `nosuch`"), "{message}");

    for (path, body, field) in [
        (
            "/api/v1/destinations",
            json!({"id": "d", "url": "https://x.example/", "hedaers": {}}),
            "hedaers",
        ),
        (
            "/api/v1/destinations",
            json!({"id": "d", "url": "ftp://x"}),
            "url",
        ),
        ("/api/v1/sources", json!({"id": "s", "auth": []}), "auth"),
        (
            "/api/v1/sources",
            json!({"id": "s", "auth": [{"type": "bearer", "tokens": ["t"], "x": 1}]}),
            "auth[0]",
        ),
        (
            "/api/v1/sources",
            json!({"id": "s", "kind": "trigger"}),
            "kind",
        ),
    ] {
        let answer = app.admin("POST", path, Some(body)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            answer.body
        );
        let fields = answer.problem_fields();
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{field} not in {fields:?}"
        );
    }
    let renamed = app
        .admin(
            "PUT",
            "/api/v1/sources/app",
            Some(json!({"id": "other", "auth": [{"type": "open"}]})),
        )
        .await;
    assert_eq!(renamed.problem_fields(), ["id"]);
}

#[tokio::test]
async fn masked_secrets_sent_back_keep_the_stored_ones() {
    let app = app().await;
    let secret = "whsec_aG9va2xpbmUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OWFi";
    let created = app
        .admin(
            "POST",
            "/api/v1/destinations",
            Some(
                json!({"id": "crm", "url": "https://crm.example.com/", "secrets": [secret],
                        "headers": {"Authorization": "Bearer receiver-key", "x-team": "blue"}}),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let mut read = app
        .admin("GET", "/api/v1/destinations/crm", None)
        .await
        .body;
    assert_eq!(read["secrets"], json!(["whse…"]));
    assert_eq!(read["headers"]["Authorization"], "Bear…");
    assert_eq!(read["headers"]["x-team"], "blue");
    read["timeout_ms"] = 5000.into();
    let put = app
        .admin("PUT", "/api/v1/destinations/crm", Some(read))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["timeout_ms"], 5000);
    assert_eq!(
        stored_crm(&app),
        (vec![secret.to_owned()], "Bearer receiver-key".to_owned())
    );

    let unknown = app
        .admin(
            "PATCH",
            "/api/v1/destinations/crm",
            Some(json!({"secrets": ["abcd…"]})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.problem_fields(), ["secrets[0]"]);
}

/// What the destination `crm` really holds, read past the API.
fn stored_crm(app: &App) -> (Vec<String>, String) {
    let snapshot = app.store.snapshot();
    let crm = &snapshot.destinations[&ResourceId::parse("crm").unwrap()];
    (crm.secrets.clone(), crm.headers["Authorization"].clone())
}

#[tokio::test]
async fn a_url_password_is_masked_on_read_and_kept_when_sent_back() {
    let app = app().await;
    let url = "https://crm-user:hunter2-receiver@crm.example.com/hooks";
    let created = app
        .admin(
            "POST",
            "/api/v1/destinations",
            Some(json!({"id": "crm", "url": url})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let masked = "https://crm-user:hunt…@crm.example.com/hooks";
    let mut read = app
        .admin("GET", "/api/v1/destinations/crm", None)
        .await
        .body;
    assert_eq!(read["url"], masked);
    let listed = app.admin("GET", "/api/v1/destinations", None).await;
    assert_eq!(listed.body["items"][0]["url"], masked);
    assert!(
        !listed.body.to_string().contains("hunter2"),
        "{}",
        listed.body
    );

    read["name"] = "CRM".into();
    let put = app
        .admin("PUT", "/api/v1/destinations/crm", Some(read))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["name"], "CRM");
    assert_eq!(put.body["url"], masked);
    let snapshot = app.store.snapshot();
    let crm = &snapshot.destinations[&ResourceId::parse("crm").unwrap()];
    assert_eq!(crm.url, url);

    let elsewhere = app
        .admin(
            "PATCH",
            "/api/v1/destinations/crm",
            Some(json!({"url": "https://crm-user:hunt…@attacker.example/hooks"})),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(elsewhere.problem_fields(), ["url"]);
}

#[tokio::test]
async fn headers_the_dispatcher_sets_and_control_characters_in_urls_are_refused() {
    let app = app().await;
    let answer = app
        .admin(
            "POST",
            "/api/v1/destinations",
            Some(
                json!({"id": "crm", "url": "https://crm.example.com/hooks\r\nX-Evil: 1",
                        "headers": {"Host": "internal", "webhook-signature": "v1,forged"}}),
            ),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(
        answer.problem_fields(),
        ["url", "headers.Host", "headers.webhook-signature"]
    );
    let message = answer.body["error"]["problems"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains(r"\r at byte 29"), "{message}");
}

#[tokio::test]
async fn disabling_enabling_and_patching_switch_resources() {
    let app = app().await;
    app.seed().await;
    let disabled = app.admin("POST", "/api/v1/sources/app/disable", None).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    assert_eq!(disabled.body["enabled"], false);
    let listed = app
        .admin("GET", "/api/v1/sources?enabled=false", None)
        .await;
    assert_eq!(listed.body["items"][0]["id"], "app");
    let enabled = app
        .admin(
            "PATCH",
            "/api/v1/sources/app",
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(enabled.body["enabled"], true);
    let listed = app
        .admin("GET", "/api/v1/sources?enabled=false", None)
        .await;
    assert_eq!(listed.body["items"], json!([]));
    // Enabling what is enabled writes nothing and keeps the version.
    let again = app.admin("POST", "/api/v1/sources/app/enable", None).await;
    assert_eq!(again.etag(), enabled.etag());
    let missing = app.admin("POST", "/api/v1/sources/nope/enable", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn put_with_if_none_match_creates_and_lists_page_by_cursor() {
    let app = app().await;
    for n in 0..3 {
        let answer = app
            .call(
                "PUT",
                &format!("/api/v1/sources/s{n}"),
                Some(ADMIN),
                &[("if-none-match", "*")],
                Some(json!({"auth": [{"type": "open"}], "name": format!("Source {n}")})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    let put_missing = app
        .admin(
            "PUT",
            "/api/v1/sources/s9",
            Some(json!({"auth": [{"type": "open"}]})),
        )
        .await;
    assert_eq!(put_missing.status, StatusCode::NOT_FOUND);
    let first = app.admin("GET", "/api/v1/sources?limit=2", None).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .admin(
            "GET",
            &format!("/api/v1/sources?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(second.body["items"][0]["id"], "s2");
    assert_eq!(second.body["next_cursor"], Value::Null);
    let bad = app.admin("GET", "/api/v1/sources?colour=red", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["code"], "invalid_query");
}

#[tokio::test]
async fn bodies_must_be_json_objects_within_the_limit() {
    let app = app_with_body_limit(256).await;
    let large = json!({"id": "s", "name": "x".repeat(300), "auth": [{"type": "open"}]});
    let answer = app.admin("POST", "/api/v1/sources", Some(large)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.body["error"]["code"], "payload_too_large");
    let answer = app.admin("POST", "/api/v1/sources", Some(json!([1]))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let request = app
        .call(
            "POST",
            "/api/v1/sources",
            Some(ADMIN),
            &[("content-type", "text/plain")],
            None,
        )
        .await;
    assert_eq!(request.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let route = app.admin("GET", "/api/v1/widgets", None).await;
    assert_eq!(route.status, StatusCode::NOT_FOUND);
    assert_eq!(route.body["error"]["code"], "not_found");
    let method = app.admin("PUT", "/api/v1/sources", None).await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_saved_trigger_previews_what_it_would_send() {
    let app = app().await;
    app.seed().await;
    let event = json!({"event": {"payload": {"n": 7}}});
    let answer = app
        .admin(
            "POST",
            "/api/v1/triggers/signups/preview",
            Some(event.clone()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["matched"], true);
    assert_eq!(answer.body["error"], Value::Null);
    let request = &answer.body["requests"][0];
    assert_eq!(request["url"], "https://crm.example.com/hooks");
    assert_eq!(request["method"], "POST");
    assert_eq!(request["body"], "{\"n\": 7}");
    // Previews write nothing, so a dashboard's token may preview too.
    let viewer = app
        .call(
            "POST",
            "/api/v1/triggers/signups/preview",
            Some(VIEWER),
            &[],
            Some(event),
        )
        .await;
    assert_eq!(viewer.status, StatusCode::OK, "{}", viewer.body);
    let missing = app
        .admin(
            "POST",
            "/api/v1/triggers/nope/preview",
            Some(json!({"event": {"payload": {}}})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let no_event = app
        .admin(
            "POST",
            "/api/v1/triggers/signups/preview",
            Some(json!({"payload": {"n": 1}})),
        )
        .await;
    assert_eq!(no_event.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(no_event.problem_fields(), ["event"]);
}

#[tokio::test]
async fn an_unsaved_trigger_says_why_it_does_not_fire() {
    let app = app().await;
    app.seed().await;
    let trigger = json!({"when": {"sources": ["app"], "event_type": "event.headers[\"x-kind\"]",
                                  "event_types": ["order.*"]},
                         "if": "payload.total > 100",
                         "actions": [{"destination": "crm", "body": "{\"total\": {{ payload.total }}}"}]});
    let preview = |headers: Value, payload: Value| {
        app.admin(
            "POST",
            "/api/v1/triggers/preview",
            Some(json!({"trigger": trigger, "event": {"payload": payload, "headers": headers}})),
        )
    };
    let fired = preview(json!({"X-Kind": "order.paid"}), json!({"total": 250})).await;
    assert_eq!(fired.status, StatusCode::OK, "{}", fired.body);
    assert_eq!(fired.body["matched"], true);
    assert_eq!(fired.body["requests"][0]["body"], "{\"total\": 250}");
    let small = preview(json!({"X-Kind": "order.paid"}), json!({"total": 5})).await;
    assert_eq!(small.body["matched"], false);
    assert_eq!(small.body["reason"], "the `if` condition is false");
    let other = preview(json!({"X-Kind": "refund"}), json!({"total": 250})).await;
    assert_eq!(
        other.body["reason"],
        "event type \"refund\" is not in when.event_types"
    );
    // Nothing was saved.
    let saved = app.admin("GET", "/api/v1/triggers/preview", None).await;
    assert_eq!(saved.status, StatusCode::NOT_FOUND, "{}", saved.body);
}

#[tokio::test]
async fn preview_errors_name_the_field_line_and_column() {
    let app = app().await;
    app.seed().await;
    let with_body = |body: &str| {
        json!({"trigger": {"id": "draft", "when": {"sources": ["app"]},
                           "actions": [{"destination": "crm", "body": body}]},
               "event": {"payload": {"user": {}}}})
    };
    // A template that fails on the sample: the processor would dead-letter the event.
    let failing = app
        .admin(
            "POST",
            "/api/v1/triggers/preview",
            Some(with_body("{\n  \"email\": {{ payload.user.email }}\n}")),
        )
        .await;
    assert_eq!(failing.status, StatusCode::OK, "{}", failing.body);
    let error = &failing.body["error"];
    assert_eq!(error["field"], "actions[0].body");
    assert_eq!(
        (error["line"].clone(), error["column"].clone()),
        (json!(2), json!(15))
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("payload.user.email"),
        "{error}"
    );
    assert_eq!(failing.body["requests"], json!([]));
    // A template that does not compile is refused, like a write of it would be.
    let broken = app
        .admin(
            "POST",
            "/api/v1/triggers/preview",
            Some(with_body("{}\n{{ payload. }}")),
        )
        .await;
    assert_eq!(
        broken.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        broken.body
    );
    let problem = &broken.body["error"]["problems"][0];
    assert_eq!(problem["resource"], "trigger/draft");
    assert_eq!(problem["field"], "actions[0].body");
    assert_eq!(problem["line"], 2);
    // So is one that would fail on every event, even where this sample would not reach it.
    let unknown = app
        .admin(
            "POST",
            "/api/v1/triggers/preview",
            Some(with_body("{% if false %}{{ 1|nosuch }}{% endif %}{}")),
        )
        .await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.body
    );
    let problem = &unknown.body["error"]["problems"][0];
    assert_eq!(problem["field"], "actions[0].body");
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("unknown filter `nosuch`"),
        "{problem}"
    );
    let typo = app
        .admin(
            "POST",
            "/api/v1/triggers/preview",
            Some(
                json!({"trigger": {"when": {"sources": ["app"]}, "actions": []},
                        "event": {"payload": {}, "hedaers": {}}}),
            ),
        )
        .await;
    assert_eq!(typo.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(typo.problem_fields(), ["event.hedaers"]);
}

#[tokio::test]
async fn a_trigger_called_preview_is_still_reachable() {
    let app = app().await;
    app.seed().await;
    let created = app
        .admin(
            "PUT",
            "/api/v1/triggers/preview",
            Some(json!({"when": {"sources": ["app"]},
                        "actions": [{"destination": "crm", "body": "{}"}]})),
        )
        .await;
    // PUT without If-None-Match only replaces.
    assert_eq!(created.status, StatusCode::NOT_FOUND, "{}", created.body);
    let created = app
        .admin(
            "POST",
            "/api/v1/triggers",
            Some(json!({"id": "preview", "when": {"sources": ["app"]},
                        "actions": [{"destination": "crm", "body": "{}"}]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let read = app.admin("GET", "/api/v1/triggers/preview", None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["id"], "preview");
    let deleted = app.admin("DELETE", "/api/v1/triggers/preview", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn requests_are_counted_by_route_template_never_by_path() {
    let app = app().await;
    app.seed().await;
    app.admin("GET", "/api/v1/sources/app", None).await;
    app.admin("GET", "/api/v1/sources/nope", None).await;
    app.call("GET", "/api/v1/sources/app", Some("wrong"), &[], None)
        .await;
    app.admin("GET", "/api/v1/no/such/route", None).await;
    app.admin("PUT", "/api/v1/sources", None).await;
    let requests = |route: &str, method: &str, status: &str| {
        app.metrics
            .requests
            .with_label_values(&[route, method, status])
            .get()
    };
    let one = "/api/v1/sources/{id}";
    assert_eq!(requests(one, "GET", "200"), 1);
    assert_eq!(requests(one, "GET", "404"), 1);
    assert_eq!(requests(one, "GET", "401"), 1);
    assert_eq!(requests("/api/v1/sources", "POST", "201"), 1);
    assert_eq!(requests("/api/v1/sources", "PUT", "405"), 1);
    assert_eq!(requests("unmatched", "GET", "404"), 1);
    let durations = app
        .metrics
        .duration
        .with_label_values(&[one, "GET"])
        .get_sample_count();
    assert_eq!(durations, 3);
    let mut text = Vec::new();
    prometheus::Encoder::encode(
        &prometheus::TextEncoder::new(),
        &app.registry.gather(),
        &mut text,
    )
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("hookline_control_requests_total{method=\"GET\",route=\"/api/v1/sources/{id}\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("/api/v1/sources/app"),
        "raw paths leak: {text}"
    );
    assert!(!text.contains("no/such"), "raw paths leak: {text}");
}

#[tokio::test]
async fn the_logs_show_an_event_s_journey_attempts_and_dead_letters() {
    use crate::store::tests::{T0, attempt, dead, event, matched};
    let app = app().await;
    app.seed().await;
    let rows = [
        event(0, "evt-1", T0),
        matched(0, "evt-1", T0 + 1),
        attempt(0, "evt-1", "retrying", T0 + 10),
        attempt(1, "evt-1", "delivered", T0 + 20),
        dead(0, "evt-1", "exhausted", T0 + 30),
    ];
    app.history.logs.store.insert(&rows, &[]).unwrap();
    app.history.logs.activities.note(&rows);

    let journey = app.admin("GET", "/api/v1/events/evt-1", None).await;
    assert_eq!(journey.status, StatusCode::OK, "{}", journey.body);
    assert_eq!(journey.body["deliveries"][0]["status"], "delivered");
    assert_eq!(journey.body["client"], "192.0.2.7");
    let missing = app.admin("GET", "/api/v1/events/evt-9", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let delivered = app
        .call(
            "GET",
            "/api/v1/destinations/crm/attempts?outcome=delivered",
            Some(VIEWER),
            &[],
            None,
        )
        .await;
    assert_eq!(delivered.status, StatusCode::OK, "{}", delivered.body);
    let items = delivered.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], 200);
    assert_eq!(delivered.body["next_cursor"], Value::Null);
    let first = app
        .admin("GET", "/api/v1/destinations/crm/attempts?limit=1", None)
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .admin(
            "GET",
            &format!("/api/v1/destinations/crm/attempts?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_ne!(first.body["items"][0], second.body["items"][0]);
    for bad in [
        "/api/v1/destinations/crm/attempts?outcome=lost",
        "/api/v1/destinations/crm/attempts?since=yesterday",
        "/api/v1/destinations/crm/attempts?color=red",
        "/api/v1/sources/app/events?kind=other",
    ] {
        assert_eq!(
            app.admin("GET", bad, None).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }

    let events = app.admin("GET", "/api/v1/sources/app/events", None).await;
    assert_eq!(events.body["items"][0]["kind"], "event");
    assert_eq!(events.body["items"][0]["event_id"], "evt-1");
    assert_eq!(events.body["items"][0]["match_outcome"], "delivered");
    let dead = app
        .admin(
            "GET",
            "/api/v1/dead-letters?destination=crm&reason=exhausted",
            None,
        )
        .await;
    assert_eq!(dead.body["items"][0]["id"], "0-0");
    let none = app
        .admin("GET", "/api/v1/dead-letters?reason=gone", None)
        .await;
    assert_eq!(none.body["items"], json!([]));

    let crm = app.admin("GET", "/api/v1/destinations/crm", None).await;
    assert_eq!(crm.body["last_delivered_at"], "2026-01-02T03:04:05.02Z");
    assert_eq!(crm.body["last_triggered_at"], "2026-01-02T03:04:05.001Z");
    let sources = app.admin("GET", "/api/v1/sources", None).await;
    assert_eq!(
        sources.body["items"][0]["last_triggered_at"],
        "2026-01-02T03:04:05Z"
    );

    assert_eq!(
        app.call("GET", "/api/v1/events/evt-1", None, &[], None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let replay = app
        .call(
            "POST",
            "/api/v1/dead-letters/replay",
            Some(VIEWER),
            &[],
            Some(json!({"ids": ["0-0"]})),
        )
        .await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN);
    let both = app
        .admin(
            "POST",
            "/api/v1/dead-letters/replay",
            Some(json!({"ids": ["0-0"], "destination": "crm"})),
        )
        .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST, "{}", both.body);
}

#[tokio::test]
async fn an_unknown_event_is_not_ready_while_the_store_loads_and_not_found_after() {
    let loading = app_with(1 << 20, false).await;
    let answer = loading.admin("GET", "/api/v1/events/evt-1", None).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
    let ready = app().await;
    let answer = ready.admin("GET", "/api/v1/events/evt-1", None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
}

#[tokio::test]
async fn previews_render_a_stored_event_by_id() {
    use crate::store::tests::{T0, event};
    let app = app().await;
    app.seed().await;
    let rows = [event(0, "evt-1", T0)];
    app.history.logs.store.insert(&rows, &[]).unwrap();

    // The stored payload ({"type": "user.signed_up"}) and source (app) are the sample.
    let unsaved = json!({
        "trigger": {"when": {"sources": ["app"]},
                    "actions": [{"destination": "crm", "body": "{\"type\": {{ payload.type }}}"}]},
        "event_id": "evt-1"
    });
    let preview = app
        .call(
            "POST",
            "/api/v1/triggers/preview",
            Some(VIEWER),
            &[],
            Some(unsaved),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["matched"], true);
    assert_eq!(
        preview.body["requests"][0]["body"],
        r#"{"type": "user.signed_up"}"#
    );

    // The saved trigger wants payload.n, which the stored event lacks: the error names it.
    let saved = app
        .admin(
            "POST",
            "/api/v1/triggers/signups/preview",
            Some(json!({"event_id": "evt-1"})),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(
        saved.body["error"]["field"], "actions[0].body",
        "{}",
        saved.body
    );

    let missing = app
        .admin(
            "POST",
            "/api/v1/triggers/signups/preview",
            Some(json!({"event_id": "evt-9"})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let both = app
        .admin(
            "POST",
            "/api/v1/triggers/signups/preview",
            Some(json!({"event_id": "evt-1", "event": {"payload": {}}})),
        )
        .await;
    assert_eq!(
        both.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        both.body
    );
}

#[tokio::test]
async fn a_masked_credential_header_does_not_follow_the_url_to_another_host() {
    let app = app().await;
    let created = app
        .admin(
            "POST",
            "/api/v1/destinations",
            Some(json!({"id": "crm", "url": "https://crm.example.com/hooks",
                        "secrets": ["whsec_aG9va2xpbmUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OWFi"],
                        "headers": {"Authorization": "Bearer receiver-key"}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let mut read = app
        .admin("GET", "/api/v1/destinations/crm", None)
        .await
        .body;
    read["url"] = "https://attacker.example/hooks".into();
    let put = app
        .admin("PUT", "/api/v1/destinations/crm", Some(read))
        .await;
    assert_eq!(put.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", put.body);
    assert_eq!(put.problem_fields(), ["headers.Authorization"]);
    let message = put.body["error"]["problems"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("send the value in full"), "{message}");
    assert_eq!(stored_crm(&app).1, "Bearer receiver-key");

    // A PATCH of the URL alone is judged the same way: it sends the header back masked.
    let patch = app
        .admin(
            "PATCH",
            "/api/v1/destinations/crm",
            Some(json!({"url": "https://attacker.example/hooks"})),
        )
        .await;
    assert_eq!(
        patch.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        patch.body
    );
    assert_eq!(patch.problem_fields(), ["headers.Authorization"]);
    assert_eq!(stored_crm(&app).1, "Bearer receiver-key");
    // On the same host, a PATCH keeps every secret.
    let same_host = app
        .admin(
            "PATCH",
            "/api/v1/destinations/crm",
            Some(json!({"url": "https://crm.example.com/v2/hooks", "name": "CRM"})),
        )
        .await;
    assert_eq!(same_host.status, StatusCode::OK, "{}", same_host.body);
    assert_eq!(stored_crm(&app).1, "Bearer receiver-key");

    // Sent in full, the header goes along: the writer knows what it sends.
    let full = app
        .admin(
            "PATCH",
            "/api/v1/destinations/crm",
            Some(json!({"url": "https://attacker.example/hooks",
                        "headers": {"Authorization": "Bearer own-key"}})),
        )
        .await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.body);
    assert_eq!(stored_crm(&app).1, "Bearer own-key");
}

#[tokio::test]
async fn a_preview_shows_the_url_password_and_credential_headers_masked() {
    let app = app().await;
    let url = "https://crm-user:hunter2-receiver@crm.example.com/hooks";
    for (path, body) in [
        (
            "/api/v1/sources",
            json!({"id": "app", "auth": [{"type": "open"}]}),
        ),
        ("/api/v1/destinations", json!({"id": "crm", "url": url})),
        (
            "/api/v1/triggers",
            json!({"id": "signups", "when": {"sources": ["app"]},
                   "actions": [{"destination": "crm", "body": "{}",
                                "headers": {"Authorization": "Bearer {{ payload.token }}",
                                            "x-team": "blue"}}]}),
        ),
    ] {
        let answer = app.admin("POST", path, Some(body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    let preview = app
        .call(
            "POST",
            "/api/v1/triggers/signups/preview",
            Some(VIEWER),
            &[],
            Some(json!({"event": {"payload": {"token": "event-token-0123456789"}}})),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    let request = &preview.body["requests"][0];
    assert_eq!(
        request["url"],
        "https://crm-user:hunt…@crm.example.com/hooks"
    );
    assert_eq!(request["headers"]["Authorization"], "Bear…");
    assert_eq!(request["headers"]["x-team"], "blue");
    let text = preview.body.to_string();
    assert!(
        !text.contains("hunter2") && !text.contains("event-token"),
        "{text}"
    );
}

/// A dead letter of a job of event `evt-1` to `crm` at `url` with `headers`, as the store keeps it.
fn dead_job(url: &str, headers: Value) -> crate::store::Row {
    let value = json!({
        "schema_version": 1, "reason": "exhausted", "error": "503 three times",
        "position": {"topic": "t.deliveries", "partition": 0, "offset": 3}, "attempts": 3,
        "dead_at": "2026-01-02T03:04:05Z",
        "payload": {"kind": "job", "job": {
            "schema_version": 1, "delivery_id": "msg_1", "event_id": "evt-1", "source_id": "app",
            "trigger_id": "signups", "action": 0, "destination_id": "crm", "attempt": 3,
            "method": "POST", "url": url, "headers": headers, "body": "{}",
            "received_at": "2026-01-02T03:04:05Z"
        }}
    });
    let message = rdkafka::message::OwnedMessage::new(
        Some(value.to_string().into_bytes()),
        None,
        "t.dead".into(),
        rdkafka::Timestamp::CreateTime(crate::store::tests::T0),
        0,
        0,
        None,
    );
    crate::store::row::parse(crate::store::RecordKind::Dead, &message).unwrap()
}

#[tokio::test]
async fn dead_letters_show_the_job_s_url_password_and_credential_headers_masked() {
    use crate::store::tests::{T0, event};
    let app = app().await;
    let rows = [
        event(0, "evt-1", T0),
        dead_job(
            "https://crm-user:hunter2-receiver@crm.example.com/hooks",
            json!({"Authorization": "Bearer receiver-key", "content-type": "application/json"}),
        ),
    ];
    app.history.logs.store.insert(&rows, &[]).unwrap();
    // Lists answer 503 until the dead letters' states are read from Kafka.
    assert!(app.history.dead_states.when_ready().await);

    let listed = app
        .call("GET", "/api/v1/dead-letters", Some(VIEWER), &[], None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let journey = app
        .call("GET", "/api/v1/events/evt-1", Some(VIEWER), &[], None)
        .await;
    assert_eq!(journey.status, StatusCode::OK, "{}", journey.body);
    for (shown, job) in [
        (&listed.body, &listed.body["items"][0]["payload"]["job"]),
        (
            &journey.body,
            &journey.body["dead_letters"][0]["payload"]["job"],
        ),
    ] {
        assert_eq!(job["url"], "https://crm-user:hunt…@crm.example.com/hooks");
        assert_eq!(job["headers"]["Authorization"], "Bear…");
        assert_eq!(job["headers"]["content-type"], "application/json");
        let text = shown.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("receiver-key"),
            "{text}"
        );
    }
}

// ----- The console at /ui/ -----

/// A page of the console: its status, headers and HTML.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    /// The cross-site request token the page's forms carry.
    fn csrf(&self) -> String {
        let start = self
            .html
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no form on {}", self.html))
            + r#"name="csrf" value=""#.len();
        let end = start + self.html[start..].find('"').unwrap();
        self.html[start..end].to_owned()
    }
}

impl App {
    /// `GET` (no `form`) or `POST` of a form to a console page, with the session `cookie`.
    async fn page(&self, path: &str, cookie: Option<&str>, form: Option<&str>) -> Page {
        let mut request = Request::builder().uri(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let body = match form {
            Some(form) => {
                request = request
                    .method("POST")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(form.to_owned())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Page {
            status,
            headers,
            html: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// Logs in to the console with `token`: the session cookie (`name=value`).
    async fn log_in(&self, token: &str) -> String {
        let page = self
            .page(
                "/ui/login",
                None,
                Some(&format!("token={token}&next=/ui/sources")),
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
        assert_eq!(page.headers[header::LOCATION], "/ui/sources");
        let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        cookie.split(';').next().unwrap().to_owned()
    }
}

#[tokio::test]
async fn the_console_needs_a_login_and_shows_what_it_is_given_as_text() {
    let app = app().await;
    app.seed().await;
    // No session: to the login page, coming back after.
    let page = app.page("/ui/destinations", None, None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers[header::LOCATION],
        "/ui/login?next=%2Fui%2Fdestinations"
    );
    let page = app.page("/ui/login", None, Some("token=wrong")).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.html.contains("not accepted"), "{}", page.html);
    assert!(page.headers.get(header::SET_COOKIE).is_none());

    let cookie = app.log_in(ADMIN).await;
    let page = app.page("/ui/sources", Some(&cookie), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.html.contains(r#"href="/ui/sources/app""#),
        "{}",
        page.html
    );
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));

    // A source named with markup is created through the console and shown as text, with its
    // URL and token this once.
    let name = "<script>alert(1)</script>";
    let form = format!(
        "csrf={}&id=hostile&name={}",
        page.csrf(),
        console::call::query_value(name)
    );
    let created = app.page("/ui/sources", Some(&cookie), Some(&form)).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.html);
    assert!(!created.html.contains(name));
    assert!(
        created
            .html
            .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
    );
    assert!(
        created
            .html
            .contains("http:&#x2f;&#x2f;hooks.test&#x2f;inbound-webhooks&#x2f;hostile")
    );
    let view = app.admin("GET", "/api/v1/sources/hostile", None).await;
    assert_eq!(view.body["name"], name);
    let token = view.body["auth"][0]["tokens"][0].as_str().unwrap();
    assert!(token.starts_with("hl_"), "masked in the API: {token}");
    let shown = |html: &str| {
        let start = html.find(r#"<code id="token">"#).expect("a token") + 17;
        html[start..start + html[start..].find('<').unwrap()].to_owned()
    };
    let first = shown(&created.html);
    assert!(first.starts_with("hl_") && first.len() > 40, "{first}");
    // A rotation shows the new token in full, once.
    let rotated = app
        .page(
            "/ui/sources/hostile/rotate-token",
            Some(&cookie),
            Some(&format!("csrf={}", page.csrf())),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.html);
    let second = shown(&rotated.html);
    assert!(
        second.starts_with("hl_") && second.len() > 40 && second != first,
        "{second}"
    );
    assert!(
        rotated.html.contains("keep working until"),
        "{}",
        rotated.html
    );

    // Pages over each kind render for the seeded resources.
    for path in [
        "/ui/",
        "/ui/sources/app",
        "/ui/destinations",
        "/ui/destinations/crm",
        "/ui/triggers",
        "/ui/triggers/signups",
        "/ui/triggers/new",
        "/ui/events?source=app",
        "/ui/dead-letters",
        "/ui/edit/destinations/crm",
    ] {
        let page = app.page(path, Some(&cookie), None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
        // A page that could not read what it shows still answers 200, with an error box.
        assert!(
            !page.html.contains(r#"class="error""#),
            "{path}: {}",
            page.html
        );
    }
    let page = app.page("/ui/sources/nope", Some(&cookie), None).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn console_changes_need_the_session_s_form_token_and_an_admin() {
    let app = app().await;
    app.seed().await;
    let cookie = app.log_in(ADMIN).await;
    let csrf = app.page("/ui/sources", Some(&cookie), None).await.csrf();

    // Without the form's token, or from another site: refused, and nothing changes.
    let refused = app
        .page(
            "/ui/destinations/crm/disable",
            Some(&cookie),
            Some("csrf=guess"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let mut request = Request::builder()
        .method("POST")
        .uri("/ui/destinations/crm/disable")
        .header(header::COOKIE, &cookie)
        .header(header::HOST, "control.test")
        .header(header::ORIGIN, "https://evil.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    request = request.header("sec-fetch-site", "cross-site");
    let response = app
        .router
        .clone()
        .oneshot(request.body(Body::from(format!("csrf={csrf}"))).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let view = app.admin("GET", "/api/v1/destinations/crm", None).await;
    assert_eq!(view.body["enabled"], true);

    // With it: done, through the API.
    let done = app
        .page(
            "/ui/destinations/crm/disable",
            Some(&cookie),
            Some(&format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let view = app.admin("GET", "/api/v1/destinations/crm", None).await;
    assert_eq!(view.body["enabled"], false);

    // A read-only session reads, sees no write controls, and its changes are refused.
    let viewer = app.log_in(VIEWER).await;
    let page = app.page("/ui/destinations/crm", Some(&viewer), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("read-only"));
    assert!(
        !page.html.contains("/ui/destinations/crm/enable"),
        "{}",
        page.html
    );
    let csrf = page.csrf();
    let refused = app
        .page(
            "/ui/destinations/crm/enable",
            Some(&viewer),
            Some(&format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.html.contains("read-only"));
    let view = app.admin("GET", "/api/v1/destinations/crm", None).await;
    assert_eq!(view.body["enabled"], false);
    // Previews write nothing, so a read-only session may preview.
    let form = format!(
        "csrf={csrf}&code={}&sample={}",
        console::call::query_value(
            r#"{"when": {"sources": ["app"]}, "actions": [{"destination": "crm", "body": "{{ payload.n }}"}]}"#
        ),
        console::call::query_value(r#"{"payload": {"n": 7}}"#),
    );
    let preview = app.page("/ui/preview", Some(&viewer), Some(&form)).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.html);
    let preview: Value = serde_json::from_str(&preview.html).unwrap();
    assert_eq!(preview["matched"], true);
    // The destination was disabled above: the preview says what the processor would do.
    assert_eq!(
        preview["skipped"][0], "actions[0]: destination crm is disabled",
        "{preview}"
    );
}

#[tokio::test]
async fn an_event_search_refuses_unknown_outcomes_and_long_text() {
    let app = app().await;
    let answer = app.admin("GET", "/api/v1/events?outcome=lost", None).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("delivered, no_trigger, no_match, dead, pending")
    );
    let long = "x".repeat(257);
    let answer = app
        .call(
            "GET",
            &format!("/api/v1/events?q={long}"),
            Some(VIEWER),
            &[],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = app
        .call(
            "GET",
            "/api/v1/events?q=acme&outcome=pending",
            Some(VIEWER),
            &[],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["items"], json!([]));
    assert_eq!(answer.body["scanned"], 0);
    assert_eq!(answer.body["complete"], true);
}

/// Every stats answer of `app` for `path`, read with the read-only token.
async fn stats(app: &App, path: &str) -> Value {
    let answer = app.call("GET", path, Some(VIEWER), &[], None).await;
    assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
    answer.body
}

fn ids(answer: &Value) -> Vec<&str> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect()
}

fn rfc3339_ms(ms: i64) -> String {
    hookline_runtime::time::rfc3339(
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap(),
    )
}

#[tokio::test]
async fn stats_show_every_destination_and_source_over_the_window_worst_first() {
    use crate::store::rollup::{bin, bin_ms};
    use crate::store::rollup_tests::{attempt_to, traffic};
    let app = app().await;
    app.seed().await;
    for (path, body) in [
        (
            "/api/v1/destinations",
            json!({"id": "erp", "name": "ERP", "url": "https://erp.example.com/hooks"}),
        ),
        (
            "/api/v1/destinations",
            json!({"id": "quiet", "url": "https://quiet.example.com/hooks", "paused": true}),
        ),
        (
            "/api/v1/sources",
            json!({"id": "shop", "auth": [{"type": "open"}]}),
        ),
    ] {
        let answer = app.admin("POST", path, Some(body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    assert!(app.history.held.when_ready().await);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Two minutes ago: crm 101 attempts (11 failed), erp 1 delivered; app's events and
    // refusals. Three hours ago: 10 failed attempts of erp, seen only by the 24-hour window.
    let start = now - 2 * 60_000;
    let mut rows = traffic(start);
    for n in 0..10 {
        rows.push(attempt_to(
            600 + n,
            "erp",
            "retrying",
            now - 3 * 3_600_000,
            100.0,
        ));
    }
    app.history.logs.store.insert(&rows, &[]).unwrap();
    app.history.logs.activities.note(&rows);
    // The paused destination holds a job since a minute ago.
    let settings = app._broker.settings("t.");
    let producer = kafka::create_producer(&kafka::producer_config(&settings, "test")).unwrap();
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&settings.topics().held())
                .key("msg_held")
                .payload(r#"{"destination_id": "quiet"}"#)
                .timestamp(now - 60_000),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    // A dispatcher recorded that crm fails without a success since ten minutes ago.
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&settings.topics().destination_health())
                .key("crm")
                .payload(
                    r#"{"schema_version": 1, "destination_id": "crm", "failing_since": "2026-12-04T10:00:00Z"}"#,
                ),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let quiet_id = ResourceId::parse("quiet").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.history.held.of(&quiet_id).is_none() || app.history.failing.since("crm").is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the held job or the health record was not read"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rounded = |ms: f64| (bin_ms(bin(ms)) * 100.0).round() / 100.0;

    let hour = stats(&app, "/api/v1/stats/destinations").await;
    assert_eq!(hour["window"], "1h");
    assert_eq!(hour["granularity"], "minute");
    assert_eq!(hour["sort"], "failure_rate");
    assert_eq!(ids(&hour), ["crm", "erp", "quiet"]);
    let crm = &hour["items"][0];
    assert_eq!(crm["attempts"], 101);
    assert_eq!(crm["delivered"], 90);
    assert_eq!(crm["failed"], 11);
    assert_eq!(crm["dead_letters"], 2);
    assert_eq!(crm["success_rate"], 0.8911);
    assert_eq!(crm["failure_rate"], 0.1089);
    assert_eq!(crm["p50_ms"], rounded(10.0));
    assert_eq!(crm["p99_ms"], rounded(3_000.0));
    assert_eq!(crm["enabled"], true);
    assert_eq!(crm["paused"], false);
    assert_eq!(crm["held_jobs"], 0);
    assert_eq!(crm["failing_since"], "2026-12-04T10:00:00Z");
    assert_eq!(crm["oldest_held_at"], Value::Null);
    assert_eq!(crm["last_delivered_at"], rfc3339_ms(start + 89));
    assert_eq!(crm["last_attempt_at"], rfc3339_ms(start + 100));
    assert_eq!(crm["last_attempt_outcome"], "blocked");
    let erp = &hour["items"][1];
    assert_eq!(erp["name"], "ERP");
    assert_eq!(erp["attempts"], 1);
    assert_eq!(erp["failure_rate"], 0.0);
    assert_eq!(erp["p99_ms"], rounded(50.0));
    // Idle: zeros, and no rate or duration to speak of.
    let quiet = &hour["items"][2];
    assert_eq!(quiet["paused"], true);
    assert_eq!(quiet["attempts"], 0);
    assert_eq!(quiet["dead_letters"], 0);
    assert_eq!(quiet["success_rate"], Value::Null);
    assert_eq!(quiet["p50_ms"], Value::Null);
    assert_eq!(quiet["last_attempt_outcome"], Value::Null);
    assert_eq!(quiet["last_attempt_at"], Value::Null);
    assert_eq!(quiet["held_jobs"], 1);
    assert_eq!(quiet["failing_since"], Value::Null);
    assert_eq!(quiet["oldest_held_at"], rfc3339_ms(now - 60_000));

    // The last 5 minutes hold the same; the day also erp's failures of three hours ago.
    let five = stats(&app, "/api/v1/stats/destinations?window=5m").await;
    assert_eq!(five["items"], hour["items"]);
    let since = crate::store::row::millis(five["since"].as_str().unwrap()).unwrap();
    assert!(
        since <= now - 5 * 60_000 && since > now - 6 * 60_000 - 1_000,
        "{five}"
    );
    let day = stats(&app, "/api/v1/stats/destinations?window=24h").await;
    assert_eq!(day["granularity"], "hour");
    assert_eq!(ids(&day), ["erp", "crm", "quiet"]);
    assert_eq!(day["items"][0]["attempts"], 11);
    assert_eq!(day["items"][0]["failure_rate"], 0.9091);
    assert_eq!(day["items"][0]["p50_ms"], rounded(100.0));

    for (sort, order) in [
        ("p99", ["crm", "erp", "quiet"]),
        ("attempts", ["crm", "erp", "quiet"]),
        ("dead_letters", ["crm", "erp", "quiet"]),
    ] {
        let sorted = stats(&app, &format!("/api/v1/stats/destinations?sort={sort}")).await;
        assert_eq!(sorted["sort"], sort);
        assert_eq!(ids(&sorted), order, "{sort}");
    }
    let by_attempts = stats(&app, "/api/v1/stats/destinations?window=24h&sort=attempts").await;
    assert_eq!(ids(&by_attempts), ["crm", "erp", "quiet"]);
    let by_p99 = stats(&app, "/api/v1/stats/destinations?window=24h&sort=p99").await;
    assert_eq!(ids(&by_p99), ["crm", "erp", "quiet"]);

    let sources = stats(&app, "/api/v1/stats/sources").await;
    assert_eq!(sources["sort"], "refused");
    // A refused request naming no source is not listed.
    assert_eq!(ids(&sources), ["app", "shop"]);
    assert_eq!(
        sources["items"][0],
        json!({
            "id": "app", "name": "", "enabled": true, "events": 5, "matched": 3,
            "refused": 3, "refused_by_code": {"rate_limited": 1, "unauthorized": 2},
            "last_event_at": rfc3339_ms(start + 4),
        })
    );
    assert_eq!(sources["items"][1]["events"], 0);
    assert_eq!(sources["items"][1]["refused_by_code"], json!({}));
    assert_eq!(sources["items"][1]["last_event_at"], Value::Null);
    let by_events = stats(&app, "/api/v1/stats/sources?window=24h&sort=events").await;
    assert_eq!(ids(&by_events), ["app", "shop"]);
    assert_eq!(by_events["items"][0]["events"], 5);
}

#[tokio::test]
async fn stats_refuse_unknown_windows_and_sorts_naming_the_allowed_ones() {
    let app = app().await;
    for (path, names) in [
        ("/api/v1/stats/destinations?window=2h", "5m, 1h or 24h"),
        ("/api/v1/stats/sources?window=", "5m, 1h or 24h"),
        (
            "/api/v1/stats/destinations?sort=events",
            "failure_rate, p99, attempts or dead_letters",
        ),
        ("/api/v1/stats/sources?sort=p99", "refused or events"),
        ("/api/v1/stats/sources?limit=5", "unknown field `limit`"),
    ] {
        let answer = app.call("GET", path, Some(VIEWER), &[], None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(answer.body["error"]["code"], "invalid_query", "{path}");
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{path}: {message}");
    }
    let anonymous = app
        .call("GET", "/api/v1/stats/destinations", None, &[], None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let written = app
        .call("POST", "/api/v1/stats/destinations", Some(ADMIN), &[], None)
        .await;
    assert_eq!(written.status, StatusCode::METHOD_NOT_ALLOWED);

    let loading = app_with(1 << 20, false).await;
    for path in ["/api/v1/stats/destinations", "/api/v1/stats/sources"] {
        let answer = loading.call("GET", path, Some(VIEWER), &[], None).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(answer.body["error"]["code"], "not_ready");
        assert_eq!(answer.headers[header::RETRY_AFTER], "1");
    }
}
