//! The console's pages. Each reads what it shows from the API and sends every change to it
//! ([`super::call`]); what a page adds is layout, and the API's own error messages shown where
//! the operator typed.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::call::{Answer, query_string, query_value, segment};
use super::session::{self, Session};
use super::{BASE, Console, Fields, guard};

/// The query of the login page.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// The console page to go back to.
    next: Option<String>,
}

/// Where to go after login: a console page, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with(&format!("{BASE}/"))
                && !next.contains("//")
                && !next
                    .bytes()
                    .any(|byte| byte < 0x21 || byte == 0x7f || byte == b'\\') =>
        {
            next.to_owned()
        }
        _ => format!("{BASE}/"),
    }
}

/// `GET /ui/login`.
pub async fn login_page(
    State(console): State<Console>,
    Query(query): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if session::from_headers(&console.tokens, &headers).is_some() {
        return Redirect::to(&next).into_response();
    }
    console.render("login.html", None, json!({ "next": next }))
}

/// `POST /ui/login`: a control token in, a session cookie out.
pub async fn login(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    let next = safe_next(Some(fields.get("next")));
    if !session::same_origin(&headers) {
        return console.error(
            None,
            StatusCode::FORBIDDEN,
            "Log in from the console's own page.",
        );
    }
    match session::log_in(&console.tokens, fields.get("token")) {
        Some((access, key)) => {
            let value = session::issue(&key, access, time::OffsetDateTime::now_utc());
            let mut response = Redirect::to(&next).into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session::set_cookie(value, &headers));
            response
        }
        None => console.render_status(
            StatusCode::UNAUTHORIZED,
            "login.html",
            None,
            json!({
                "next": next,
                "error": "That token is not accepted. Use a control token \
                          (--control-token or --control-read-token).",
            }),
        ),
    }
}

/// `POST /ui/logout`.
pub async fn logout(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    if !session.posted_here(&headers, fields.get("csrf")) {
        return console.error(
            Some(&session),
            StatusCode::FORBIDDEN,
            "Log out from a console page.",
        );
    }
    let mut response = Redirect::to(&format!("{BASE}/login")).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie(&headers));
    response
}

/// Unknown console paths.
pub async fn not_found(State(console): State<Console>, headers: HeaderMap) -> Response {
    let session = session::from_headers(&console.tokens, &headers);
    console.error(
        session.as_ref(),
        StatusCode::NOT_FOUND,
        "There is no console page here.",
    )
}

/// The page for an API answer that failed: its status and message.
fn failed(console: &Console, session: &Session, answer: &Answer) -> Response {
    let status = if answer.status.is_success() {
        StatusCode::BAD_GATEWAY
    } else {
        answer.status
    };
    console.error(Some(session), status, &answer.message())
}

/// The items of a list answer (empty when it failed).
fn items(answer: &Answer) -> Vec<Value> {
    answer.body["items"].as_array().cloned().unwrap_or_default()
}

/// Stats by resource id, from a stats answer.
fn stats_by_id(answer: &Answer) -> BTreeMap<String, Value> {
    items(answer)
        .into_iter()
        .filter_map(|item| Some((item["id"].as_str()?.to_owned(), item)))
        .collect()
}

/// A notice a redirect asks for, from a fixed set (never text from the link itself).
fn notice(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "saved" => "Saved.",
        "created" => "Created.",
        "enabled" => "Enabled.",
        "disabled" => "Disabled: it keeps its settings and history.",
        "paused" => "Paused: new deliveries are held until you resume.",
        "resumed" => "Resumed: held deliveries go out again.",
        "deleted" => "Deleted.",
        _ => return None,
    })
}

/// The query of most pages: a notice to show.
#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

// ----- Overview -----

/// What this process's own metrics say about the roles it runs.
fn health(registry: &prometheus::Registry) -> Value {
    let mut roles = Vec::new();
    let mut kafka = Value::Null;
    let mut lags = Vec::new();
    let mut canary = Value::Null;
    let mut store_ready = Value::Null;
    for family in registry.gather() {
        let label = |metric: &prometheus::proto::Metric, name: &str| {
            metric
                .get_label()
                .iter()
                .find(|pair| pair.name() == name)
                .map(|pair| pair.value().to_owned())
                .unwrap_or_default()
        };
        match family.name() {
            "hookline_build_info" => {
                for metric in family.get_metric() {
                    roles.extend(
                        label(metric, "roles")
                            .split(',')
                            .filter(|role| !role.is_empty())
                            .map(str::to_owned),
                    );
                }
            }
            "hookline_kafka_reachable" => {
                kafka = family.get_metric().first().map_or(Value::Null, |metric| {
                    (metric.get_gauge().get_value() >= 1.0).into()
                });
            }
            "hookline_consumer_lag_seconds" => {
                for metric in family.get_metric() {
                    lags.push(json!({
                        "group": label(metric, "group"),
                        "topic": label(metric, "topic"),
                        "seconds": metric.get_gauge().get_value(),
                    }));
                }
            }
            "hookline_canary_round_trip_seconds" => {
                if let Some(metric) = family.get_metric().first() {
                    let histogram = metric.get_histogram();
                    let count = histogram.get_sample_count();
                    if count > 0 {
                        canary = json!({
                            "probes": count,
                            "mean_ms": histogram.get_sample_sum() / count as f64 * 1000.0,
                        });
                    }
                }
            }
            "hookline_control_store_ready" => {
                store_ready = family.get_metric().first().map_or(Value::Null, |metric| {
                    (metric.get_gauge().get_value() >= 1.0).into()
                });
            }
            _ => {}
        }
    }
    roles.sort();
    roles.dedup();
    json!({
        "roles": roles,
        "kafka_reachable": kafka,
        "lags": lags,
        "canary": canary,
        "store_ready": store_ready,
    })
}

/// `GET /ui/`: is it healthy, and who is hurting.
pub async fn overview(State(console): State<Console>, session: Session) -> Response {
    let caller = &session.caller;
    let (destinations, sources, recent, recent_sources) = tokio::join!(
        console.api.get(
            caller,
            "/api/v1/stats/destinations?window=1h&sort=failure_rate"
        ),
        console
            .api
            .get(caller, "/api/v1/stats/sources?window=24h&sort=refused"),
        console
            .api
            .get(caller, "/api/v1/stats/destinations?window=5m"),
        console.api.get(caller, "/api/v1/stats/sources?window=5m"),
    );
    let sum = |answer: &Answer, field: &str| -> Option<f64> {
        answer.ok().then(|| {
            items(answer)
                .iter()
                .filter_map(|item| item[field].as_f64())
                .sum()
        })
    };
    // The window starts at a whole minute, so it spans a little more than five.
    let minutes = |answer: &Answer| -> f64 {
        let at = |field: &str| {
            answer.body[field]
                .as_str()
                .and_then(hookline_runtime::time::parse_rfc3339)
        };
        match (at("since"), at("until")) {
            (Some(since), Some(until)) => ((until - since).as_seconds_f64() / 60.0).max(1.0),
            (Some(_) | None, None) | (None, Some(_)) => 5.0,
        }
    };
    console.render(
        "overview.html",
        Some(&session),
        json!({
            "page": "overview",
            "health": health(&console.registry),
            "destinations": items(&destinations),
            "destinations_error": (!destinations.ok()).then(|| destinations.message()),
            "sources": items(&sources),
            "sources_error": (!sources.ok()).then(|| sources.message()),
            "per_minute": {
                "events": sum(&recent_sources, "events").map(|events| events / minutes(&recent_sources)),
                "deliveries": sum(&recent, "delivered").map(|delivered| delivered / minutes(&recent)),
                "attempts": sum(&recent, "attempts").map(|attempts| attempts / minutes(&recent)),
            },
        }),
    )
}

// ----- Sources -----

/// A list page of `collection` (`sources` or `destinations`), each row with its statistics
/// over `window`.
async fn listing(
    console: &Console,
    session: &Session,
    collection: &str,
    window: &str,
    notice_code: Option<&str>,
) -> Response {
    let caller = &session.caller;
    let list = format!("/api/v1/{collection}?limit=500");
    let stats = format!("/api/v1/stats/{collection}?window={window}");
    let (list, stats) = tokio::join!(
        console.api.get(caller, &list),
        console.api.get(caller, &stats)
    );
    if !list.ok() {
        return failed(console, session, &list);
    }
    let stats = stats_by_id(&stats);
    let rows: Vec<Value> = items(&list)
        .into_iter()
        .map(|resource| {
            let id = resource["id"].as_str().unwrap_or_default().to_owned();
            json!({ "resource": resource, "stats": stats.get(&id) })
        })
        .collect();
    console.render(
        &format!("{collection}.html"),
        Some(session),
        json!({
            "page": collection,
            "rows": rows,
            "more": list.body["next_cursor"].is_string(),
            "notice": notice(notice_code),
        }),
    )
}

/// Creates a resource of `collection` from the form's `names` fields (the empty ones left out,
/// for the API to fill in): the API's answer, or the form again with its error.
async fn create_from(
    console: &Console,
    session: &Session,
    headers: &HeaderMap,
    fields: &Fields,
    collection: &str,
    names: &[&str],
) -> Result<Answer, Response> {
    if let Some(refused) = guard(console, session, headers, fields.get("csrf")) {
        return Err(refused);
    }
    let body: Map<String, Value> = names
        .iter()
        .filter(|name| !fields.get(name).is_empty())
        .map(|name| ((*name).to_owned(), fields.get(name).into()))
        .collect();
    let answer = console
        .api
        .call(
            &session.caller,
            Method::POST,
            &format!("/api/v1/{collection}"),
            Some(&Value::Object(body)),
            None,
        )
        .await;
    if answer.ok() {
        return Ok(answer);
    }
    let mut context = json!({"page": collection, "error": answer.message()});
    for name in names {
        context[*name] = fields.get(name).into();
    }
    let form = format!("{}_new.html", collection.trim_end_matches('s'));
    Err(console.render_status(answer.status, &form, Some(session), context))
}

/// `GET /ui/sources`.
pub async fn sources(
    State(console): State<Console>,
    session: Session,
    Query(query): Query<NoticeQuery>,
) -> Response {
    listing(
        &console,
        &session,
        "sources",
        "24h",
        query.notice.as_deref(),
    )
    .await
}

/// `GET /ui/sources/new`.
pub async fn new_source(State(console): State<Console>, session: Session) -> Response {
    console.render(
        "source_new.html",
        Some(&session),
        json!({"page": "sources"}),
    )
}

/// `POST /ui/sources`: creates a source; its URL and token are shown this once.
pub async fn create_source(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    match create_from(
        &console,
        &session,
        &headers,
        &fields,
        "sources",
        &["id", "name"],
    )
    .await
    {
        Ok(answer) => {
            let token = created_token(&answer.body);
            token_page(&console, &session, &answer.body, token, "created", None)
        }
        Err(response) => response,
    }
}

/// The page that shows a source's URL and its new bearer `token` once, with a ready curl.
fn token_page(
    console: &Console,
    session: &Session,
    source: &Value,
    token: Option<&Value>,
    what: &str,
    previous_expire_at: Option<&Value>,
) -> Response {
    console.render(
        "token.html",
        Some(session),
        json!({
            "page": "sources",
            "what": what,
            "source": source,
            "token": token,
            "previous_expire_at": previous_expire_at,
        }),
    )
}

/// The bearer token a create answer shows in full (a source the API gave a token).
fn created_token(source: &Value) -> Option<&Value> {
    source["auth"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["type"] == "bearer")
        .find_map(|entry| entry["tokens"].as_array()?.first())
}

/// `GET /ui/sources/{id}`: the source, and its recent requests (refused ones included).
pub async fn source(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let caller = &session.caller;
    let path = format!("/api/v1/sources/{}", segment(&id));
    let requests = format!("{path}/events?limit=50");
    let (view, requests, stats) = tokio::join!(
        console.api.get(caller, &path),
        console.api.get(caller, &requests),
        console.api.get(caller, "/api/v1/stats/sources?window=24h"),
    );
    if !view.ok() {
        return failed(&console, &session, &view);
    }
    console.render(
        "source.html",
        Some(&session),
        json!({
            "page": "sources",
            "source": view.body,
            "requests": items(&requests),
            "requests_error": (!requests.ok()).then(|| requests.message()),
            "stats": stats_by_id(&stats).remove(&id),
            "notice": notice(query.notice.as_deref()),
        }),
    )
}

/// `POST /ui/sources/{id}/{action}`: enable, disable, rotate-token, delete.
pub async fn source_action(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    if let Some(refused) = guard(&console, &session, &headers, fields.get("csrf")) {
        return refused;
    }
    let path = format!("/api/v1/sources/{}", segment(&id));
    let back = format!("{BASE}/sources/{}", segment(&id));
    match action.as_str() {
        "enable" | "disable" => switch(&console, &session, &path, &action, &back).await,
        "rotate-token" => {
            let body = json!({});
            let answer = console
                .api
                .call(
                    &session.caller,
                    Method::POST,
                    &format!("{path}/rotate-token"),
                    Some(&body),
                    None,
                )
                .await;
            if !answer.ok() {
                return failed(&console, &session, &answer);
            }
            // The new token is shown in full this once; the source's view masks every token.
            token_page(
                &console,
                &session,
                &answer.body["source"],
                answer.body.get("token"),
                "rotated",
                answer.body.get("previous_tokens_expire_at"),
            )
        }
        "delete" => delete(&console, &session, &path, &format!("{BASE}/sources")).await,
        _ => not_found(State(console), headers).await,
    }
}

/// Posts `path/action` (`enable`, `disable`, `pause`, `resume`) and goes back to `back` saying
/// it is done (`enabled`, ...), or shows why not.
async fn switch(
    console: &Console,
    session: &Session,
    path: &str,
    action: &str,
    back: &str,
) -> Response {
    let answer = console
        .api
        .call(
            &session.caller,
            Method::POST,
            &format!("{path}/{action}"),
            None,
            None,
        )
        .await;
    if !answer.ok() {
        return failed(console, session, &answer);
    }
    Redirect::to(&format!("{back}?notice={action}d")).into_response()
}

/// Deletes `path` and goes to `back`.
async fn delete(console: &Console, session: &Session, path: &str, back: &str) -> Response {
    let answer = console
        .api
        .call(&session.caller, Method::DELETE, path, None, None)
        .await;
    if !answer.ok() {
        return failed(console, session, &answer);
    }
    Redirect::to(&format!("{back}?notice=deleted")).into_response()
}

// ----- Destinations -----

/// `GET /ui/destinations`.
pub async fn destinations(
    State(console): State<Console>,
    session: Session,
    Query(query): Query<NoticeQuery>,
) -> Response {
    listing(
        &console,
        &session,
        "destinations",
        "1h",
        query.notice.as_deref(),
    )
    .await
}

/// `GET /ui/destinations/new`.
pub async fn new_destination(State(console): State<Console>, session: Session) -> Response {
    console.render(
        "destination_new.html",
        Some(&session),
        json!({"page": "destinations"}),
    )
}

/// `POST /ui/destinations`.
pub async fn create_destination(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    let names = ["id", "name", "url"];
    match create_from(
        &console,
        &session,
        &headers,
        &fields,
        "destinations",
        &names,
    )
    .await
    {
        Ok(answer) => {
            let id = answer.body["id"].as_str().unwrap_or_default();
            Redirect::to(&format!(
                "{BASE}/destinations/{}?notice=created",
                segment(id)
            ))
            .into_response()
        }
        Err(response) => response,
    }
}

/// The query of a destination's page: the attempts filter.
#[derive(Debug, Default, Deserialize)]
pub struct DestinationQuery {
    notice: Option<String>,
    outcome: Option<String>,
    cursor: Option<String>,
}

/// `GET /ui/destinations/{id}`: the destination, its health and its attempts.
pub async fn destination(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<DestinationQuery>,
) -> Response {
    let caller = &session.caller;
    let path = format!("/api/v1/destinations/{}", segment(&id));
    let attempts = format!(
        "{path}/attempts?limit=50{}",
        query_string(&[("outcome", &query.outcome), ("cursor", &query.cursor)])
    );
    let (view, attempts, stats) = tokio::join!(
        console.api.get(caller, &path),
        console.api.get(caller, &attempts),
        console
            .api
            .get(caller, "/api/v1/stats/destinations?window=1h"),
    );
    if !view.ok() {
        return failed(&console, &session, &view);
    }
    console.render(
        "destination.html",
        Some(&session),
        json!({
            "page": "destinations",
            "destination": view.body,
            "attempts": items(&attempts),
            "attempts_error": (!attempts.ok()).then(|| attempts.message()),
            "next_cursor": attempts.body["next_cursor"],
            "outcome": query.outcome,
            "stats": stats_by_id(&stats).remove(&id),
            "notice": notice(query.notice.as_deref()),
        }),
    )
}

/// `POST /ui/destinations/{id}/{action}`: enable, disable, pause, resume, test, delete.
pub async fn destination_action(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    if let Some(refused) = guard(&console, &session, &headers, fields.get("csrf")) {
        return refused;
    }
    let path = format!("/api/v1/destinations/{}", segment(&id));
    let back = format!("{BASE}/destinations/{}", segment(&id));
    match action.as_str() {
        "enable" | "disable" | "pause" | "resume" => {
            switch(&console, &session, &path, &action, &back).await
        }
        "test" => {
            let mut body = Map::new();
            let sample = fields.get("body");
            if !sample.is_empty() {
                match serde_json::from_str::<Value>(sample) {
                    Ok(value) => {
                        body.insert("body".into(), value);
                    }
                    Err(error) => {
                        return console.error(
                            Some(&session),
                            StatusCode::BAD_REQUEST,
                            &format!("The test body is not JSON: {error}."),
                        );
                    }
                }
            }
            let answer = console
                .api
                .call(
                    &session.caller,
                    Method::POST,
                    &format!("{path}/test"),
                    Some(&Value::Object(body)),
                    None,
                )
                .await;
            // A test that went out answers 200 or 202; the page says which.
            let status = if answer.ok() {
                StatusCode::OK
            } else {
                answer.status
            };
            console.render_status(
                status,
                "test_result.html",
                Some(&session),
                json!({
                    "page": "destinations",
                    "id": id,
                    "ok": answer.ok(),
                    "error": (!answer.ok()).then(|| answer.message()),
                    "result": answer.body,
                }),
            )
        }
        "delete" => delete(&console, &session, &path, &format!("{BASE}/destinations")).await,
        _ => not_found(State(console), headers).await,
    }
}

// ----- Triggers -----

/// `GET /ui/triggers`.
pub async fn triggers(
    State(console): State<Console>,
    session: Session,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let list = console
        .api
        .get(&session.caller, "/api/v1/triggers?limit=500")
        .await;
    if !list.ok() {
        return failed(&console, &session, &list);
    }
    console.render(
        "triggers.html",
        Some(&session),
        json!({
            "page": "triggers",
            "triggers": items(&list),
            "more": list.body["next_cursor"].is_string(),
            "notice": notice(query.notice.as_deref()),
        }),
    )
}

/// A view without the fields the API sets, as pretty JSON for an editor.
fn editable(view: &Value) -> String {
    let mut view = view.clone();
    if let Value::Object(object) = &mut view {
        for field in crate::body::READ_ONLY {
            object.remove(field);
        }
    }
    serde_json::to_string_pretty(&view).unwrap_or_default()
}

/// A sample event for the trigger editor: the stored event `chosen`, or else the newest stored
/// event of the trigger's first source (its payload and headers), or a small example when there
/// is none. Answers the sample and the id of the event it came from (empty for the example).
async fn sample_for(
    console: &Console,
    session: &Session,
    trigger: &Value,
    chosen: Option<&str>,
) -> (String, String) {
    let example = || (example_sample(), String::new());
    let event_id = match chosen {
        Some(chosen) => chosen.to_owned(),
        None => {
            let Some(source) = trigger["when"]["sources"]
                .as_array()
                .and_then(|sources| sources.first())
                .and_then(Value::as_str)
            else {
                return example();
            };
            let list = console
                .api
                .get(
                    &session.caller,
                    &format!(
                        "/api/v1/sources/{}/events?kind=event&limit=1",
                        segment(source)
                    ),
                )
                .await;
            let Some(event_id) = items(&list)
                .first()
                .and_then(|event| event["event_id"].as_str().map(str::to_owned))
            else {
                return example();
            };
            event_id
        }
    };
    let event = console
        .api
        .get(
            &session.caller,
            &format!("/api/v1/events/{}", segment(&event_id)),
        )
        .await;
    if !event.ok() {
        return example();
    }
    let sample = json!({
        "payload": event.body["payload"],
        "headers": event.body["headers"],
        "source": event.body["source"],
    });
    (
        serde_json::to_string_pretty(&sample).unwrap_or_default(),
        event_id,
    )
}

/// The sample event of a trigger with no stored event to preview against.
fn example_sample() -> String {
    serde_json::to_string_pretty(&json!({"payload": {"type": "example"}})).unwrap_or_default()
}

/// A trigger to start from.
const NEW_TRIGGER: &str = r#"{
  "name": "New trigger",
  "when": {"sources": []},
  "if": "true",
  "actions": [
    {"destination": "", "body": "{{ payload | tojson }}"}
  ]
}"#;

/// `GET /ui/triggers/new`.
pub async fn new_trigger(State(console): State<Console>, session: Session) -> Response {
    console.render(
        "trigger.html",
        Some(&session),
        json!({
            "page": "triggers",
            "new": true,
            "code": NEW_TRIGGER,
            "sample": example_sample(),
        }),
    )
}

/// The query of the trigger editor.
#[derive(Debug, Default, Deserialize)]
pub struct TriggerQuery {
    notice: Option<String>,
    /// A stored event to use as the sample.
    event: Option<String>,
}

/// `GET /ui/triggers/{id}`: the editor, with a preview against a stored event: the one asked
/// for, or the newest of its source.
pub async fn trigger(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<TriggerQuery>,
) -> Response {
    let view = console
        .api
        .get(
            &session.caller,
            &format!("/api/v1/triggers/{}", segment(&id)),
        )
        .await;
    if !view.ok() {
        return failed(&console, &session, &view);
    }
    let chosen = query
        .event
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty());
    let (sample, sample_event) = sample_for(&console, &session, &view.body, chosen).await;
    console.render(
        "trigger.html",
        Some(&session),
        json!({
            "page": "triggers",
            "id": id,
            "trigger": view.body,
            "etag": view.etag,
            "code": editable(&view.body),
            "sample": sample,
            "sample_event": sample_event,
            "chosen_missing": chosen.is_some_and(|chosen| chosen != sample_event),
            "notice": notice(query.notice.as_deref()),
        }),
    )
}

/// The trigger and sample of an editor's form, parsed; or what is wrong with them.
fn editor_input(fields: &Fields) -> Result<(Value, Value), String> {
    let trigger = serde_json::from_str::<Value>(fields.get("code"))
        .map_err(|error| format!("The trigger is not JSON: {error}."))?;
    let sample = match fields.get("sample") {
        "" => json!({"payload": {}}),
        text => serde_json::from_str::<Value>(text)
            .map_err(|error| format!("The sample event is not JSON: {error}."))?,
    };
    Ok((trigger, sample))
}

/// Previews `trigger` on `sample` through the API.
async fn run_preview(
    console: &Console,
    session: &Session,
    trigger: &Value,
    sample: &Value,
) -> Answer {
    // The API drops the fields it shows but takes no change of (`created_at`, ...).
    let body = json!({"trigger": trigger, "event": sample});
    console
        .api
        .call(
            &session.caller,
            Method::POST,
            "/api/v1/triggers/preview",
            Some(&body),
            None,
        )
        .await
}

/// `POST /ui/preview`: the live preview of the editor (its script posts the form as the operator
/// types; read-only sessions may preview). Answers the API's preview, as JSON.
pub async fn preview(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    if !session.posted_here(&headers, fields.get("csrf")) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": {"code": "forbidden", "message": "reload the page"}})),
        )
            .into_response();
    }
    let (trigger, sample) = match editor_input(&fields) {
        Ok(input) => input,
        Err(message) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"code": "invalid_json", "message": message}})),
            )
                .into_response();
        }
    };
    let answer = run_preview(&console, &session, &trigger, &sample).await;
    (answer.status, axum::Json(answer.body)).into_response()
}

/// Renders the editor again with what was typed, the preview of it, and `error`.
async fn editor_again(
    console: &Console,
    session: &Session,
    fields: &Fields,
    id: Option<&str>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let preview = match editor_input(fields) {
        Ok((trigger, sample)) => {
            let answer = run_preview(console, session, &trigger, &sample).await;
            Some(json!({"status": answer.status.as_u16(), "body": answer.body}))
        }
        Err(_) => None,
    };
    console.render_status(
        status,
        "trigger.html",
        Some(session),
        json!({
            "page": "triggers",
            "new": id.is_none(),
            "id": id,
            "etag": fields.get("etag"),
            "code": fields.get("code"),
            "sample": fields.get("sample"),
            "error": error,
            "preview": preview,
        }),
    )
}

/// `POST /ui/triggers`: creates the trigger in the editor (or previews it, for `preview`).
pub async fn create_trigger(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    save(console, session, headers, Fields(fields), None).await
}

/// `POST /ui/triggers/{id}`: saves the trigger in the editor (or previews it, for `preview`).
pub async fn save_trigger(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    save(console, session, headers, Fields(fields), Some(id)).await
}

async fn save(
    console: Console,
    session: Session,
    headers: HeaderMap,
    fields: Fields,
    id: Option<String>,
) -> Response {
    let previewing = fields.get("do") == "preview";
    if previewing {
        if !session.posted_here(&headers, fields.get("csrf")) {
            return console.error(Some(&session), StatusCode::FORBIDDEN, "Reload the page.");
        }
        return editor_again(
            &console,
            &session,
            &fields,
            id.as_deref(),
            None,
            StatusCode::OK,
        )
        .await;
    }
    if let Some(refused) = guard(&console, &session, &headers, fields.get("csrf")) {
        return refused;
    }
    let (trigger, _) = match editor_input(&fields) {
        Ok(input) => input,
        Err(message) => {
            return editor_again(
                &console,
                &session,
                &fields,
                id.as_deref(),
                Some(message),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    // A saved trigger is replaced if nobody changed it since it was opened; a new one created.
    let (method, path, tag) = match &id {
        Some(id) => (
            Method::PUT,
            format!("/api/v1/triggers/{}", segment(id)),
            Some(fields.get("etag")).filter(|tag| !tag.is_empty()),
        ),
        None => (Method::POST, "/api/v1/triggers".to_owned(), None),
    };
    let answer = console
        .api
        .call(&session.caller, method, &path, Some(&trigger), tag)
        .await;
    if !answer.ok() {
        let status = answer.status;
        let message = match answer.code() {
            Some("precondition_failed") => format!(
                "{} Someone changed this trigger since you opened it: open it again to see \
                 their change.",
                answer.message()
            ),
            _ => answer.message(),
        };
        return editor_again(
            &console,
            &session,
            &fields,
            id.as_deref(),
            Some(message),
            status,
        )
        .await;
    }
    let saved = answer.body["id"].as_str().unwrap_or_default();
    let notice = if id.is_some() { "saved" } else { "created" };
    Redirect::to(&format!(
        "{BASE}/triggers/{}?notice={notice}",
        segment(saved)
    ))
    .into_response()
}

/// `POST /ui/triggers/{id}/delete`.
pub async fn delete_trigger(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    if let Some(refused) = guard(&console, &session, &headers, fields.get("csrf")) {
        return refused;
    }
    delete(
        &console,
        &session,
        &format!("/api/v1/triggers/{}", segment(&id)),
        &format!("{BASE}/triggers"),
    )
    .await
}

// ----- Any resource as JSON -----

/// The API's collection named in a console path (`sources`, `destinations`, `triggers`).
fn collection(name: &str) -> Option<&'static str> {
    crate::kind::KINDS
        .into_iter()
        .map(crate::kind::plural)
        .find(|plural| *plural == name)
}

/// `GET /ui/edit/{kind}/{id}`: every field of a resource, as JSON (secrets stay masked; a masked
/// value sent back unchanged keeps the secret).
pub async fn edit(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    let Some(collection) = collection(&kind) else {
        return not_found(State(console), headers).await;
    };
    let view = console
        .api
        .get(
            &session.caller,
            &format!("/api/v1/{collection}/{}", segment(&id)),
        )
        .await;
    if !view.ok() {
        return failed(&console, &session, &view);
    }
    console.render(
        "edit.html",
        Some(&session),
        json!({
            "page": collection,
            "kind": collection,
            "id": id,
            "etag": view.etag,
            "code": editable(&view.body),
        }),
    )
}

/// `POST /ui/edit/{kind}/{id}`: replaces the resource with the JSON typed, if nobody changed it
/// since it was opened.
pub async fn save_edit(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path((kind, id)): Path<(String, String)>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    if let Some(refused) = guard(&console, &session, &headers, fields.get("csrf")) {
        return refused;
    }
    let Some(collection) = collection(&kind) else {
        return not_found(State(console), headers).await;
    };
    let again = |error: String, status: StatusCode| {
        console.render_status(
            status,
            "edit.html",
            Some(&session),
            json!({
                "page": collection,
                "kind": collection,
                "id": id,
                "etag": fields.get("etag"),
                "code": fields.get("code"),
                "error": error,
            }),
        )
    };
    let resource = match serde_json::from_str::<Value>(fields.get("code")) {
        Ok(resource) => resource,
        Err(error) => {
            return again(
                format!("This is not JSON: {error}."),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let tag = Some(fields.get("etag")).filter(|tag| !tag.is_empty());
    let answer = console
        .api
        .call(
            &session.caller,
            Method::PUT,
            &format!("/api/v1/{collection}/{}", segment(&id)),
            Some(&resource),
            tag,
        )
        .await;
    if !answer.ok() {
        return again(answer.message(), answer.status);
    }
    Redirect::to(&format!(
        "{BASE}/{collection}/{}?notice=saved",
        segment(&id)
    ))
    .into_response()
}

// ----- Events -----

/// The search of the events page.
#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    source: Option<String>,
    outcome: Option<String>,
    trigger: Option<String>,
    destination: Option<String>,
    q: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    id: Option<String>,
}

/// `GET /ui/events`: events searched by source, time, outcome, trigger, destination and payload
/// text; or one event by id.
pub async fn events(
    State(console): State<Console>,
    session: Session,
    Query(query): Query<EventsQuery>,
) -> Response {
    if let Some(id) = query
        .id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        return Redirect::to(&format!("{BASE}/events/{}", segment(id))).into_response();
    }
    let caller = &session.caller;
    // The search as a query string, for the API and for the link that goes on.
    let search = query_string(&[
        ("source", &query.source),
        ("outcome", &query.outcome),
        ("trigger", &query.trigger),
        ("destination", &query.destination),
        ("q", &query.q),
        ("since", &query.since),
        ("until", &query.until),
    ]);
    let path = format!(
        "/api/v1/events?limit=50{search}{}",
        query_string(&[("cursor", &query.cursor)])
    );
    let (found, sources, triggers, destinations) = tokio::join!(
        console.api.get(caller, &path),
        console.api.get(caller, "/api/v1/sources?limit=500"),
        console.api.get(caller, "/api/v1/triggers?limit=500"),
        console.api.get(caller, "/api/v1/destinations?limit=500"),
    );
    console.render(
        "events.html",
        Some(&session),
        json!({
            "page": "events",
            "sources": items(&sources),
            "triggers": items(&triggers),
            "destinations": items(&destinations),
            "filter": {
                "source": query.source,
                "outcome": query.outcome,
                "trigger": query.trigger,
                "destination": query.destination,
                "q": query.q,
                "since": query.since,
                "until": query.until,
            },
            "events": items(&found),
            "error": (!found.ok()).then(|| found.message()),
            "scanned": found.body["scanned"],
            "complete": found.body["complete"],
            "more": found.body["next_cursor"].as_str().map(|cursor| {
                format!("{BASE}/events?cursor={}{search}", query_value(cursor))
            }),
        }),
    )
}

/// `GET /ui/events/{id}`: the event's timeline.
pub async fn event(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let answer = console
        .api
        .get(&session.caller, &format!("/api/v1/events/{}", segment(&id)))
        .await;
    if !answer.ok() {
        return failed(&console, &session, &answer);
    }
    let payload = serde_json::to_string_pretty(&answer.body["payload"]).unwrap_or_default();
    console.render(
        "event.html",
        Some(&session),
        json!({
            "page": "events",
            "event": answer.body,
            "payload": payload,
        }),
    )
}

/// `POST /ui/events/{id}/replay`: sends the event through the triggers again (what did not
/// deliver; `all` for everything), or shows what would go (`dry_run`).
pub async fn replay_event(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    if let Some(refused) = guard(&console, &session, &headers, fields.get("csrf")) {
        return refused;
    }
    let body = json!({
        "ids": [id],
        "dry_run": fields.get("do") == "dry-run",
        "all": fields.get("all") == "on",
    });
    let answer = console
        .api
        .call(
            &session.caller,
            Method::POST,
            "/api/v1/events/replay",
            Some(&body),
            None,
        )
        .await;
    outcome(
        &console,
        &session,
        &answer,
        "events",
        &format!("{BASE}/events/{}", segment(&id)),
    )
}

/// The page of a replay's or discard's answer.
fn outcome(
    console: &Console,
    session: &Session,
    answer: &Answer,
    page: &str,
    back: &str,
) -> Response {
    if !answer.ok() {
        return failed(console, session, answer);
    }
    console.render(
        "outcome.html",
        Some(session),
        json!({
            "page": page,
            "back": back,
            "outcome": answer.body,
            "text": serde_json::to_string_pretty(&answer.body).unwrap_or_default(),
        }),
    )
}

// ----- Dead letters -----

/// The filter of the dead letters page.
#[derive(Debug, Default, Deserialize)]
pub struct DeadQuery {
    destination: Option<String>,
    source: Option<String>,
    reason: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

/// `GET /ui/dead-letters`.
pub async fn dead_letters(
    State(console): State<Console>,
    session: Session,
    Query(query): Query<DeadQuery>,
) -> Response {
    // The filter as a query string, for the API and for the link to older letters.
    let filter = query_string(&[
        ("destination", &query.destination),
        ("source", &query.source),
        ("reason", &query.reason),
        ("since", &query.since),
        ("until", &query.until),
    ]);
    let path = format!(
        "/api/v1/dead-letters?limit=50{filter}{}",
        query_string(&[("cursor", &query.cursor)])
    );
    let answer = console.api.get(&session.caller, &path).await;
    console.render(
        "dead_letters.html",
        Some(&session),
        json!({
            "page": "dead-letters",
            "letters": items(&answer),
            "error": (!answer.ok()).then(|| answer.message()),
            "older": answer.body["next_cursor"].as_str().map(|cursor| {
                format!("{BASE}/dead-letters?cursor={}{filter}", query_value(cursor))
            }),
            "filter": {
                "destination": query.destination,
                "source": query.source,
                "reason": query.reason,
                "since": query.since,
                "until": query.until,
            },
        }),
    )
}

/// `POST /ui/dead-letters`: replays, dry-runs or discards the selected letters.
pub async fn dead_letter_action(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    if let Some(refused) = guard(&console, &session, &headers, fields.get("csrf")) {
        return refused;
    }
    let ids = fields.all("id");
    if ids.is_empty() {
        return console.error(
            Some(&session),
            StatusCode::BAD_REQUEST,
            "Select at least one dead letter.",
        );
    }
    let (path, dry_run) = match fields.get("do") {
        "replay" => ("/api/v1/dead-letters/replay", false),
        "dry-run" => ("/api/v1/dead-letters/replay", true),
        "discard" => ("/api/v1/dead-letters/discard", false),
        _ => {
            return console.error(
                Some(&session),
                StatusCode::BAD_REQUEST,
                "Choose replay, dry run or discard.",
            );
        }
    };
    let body = json!({"ids": ids, "dry_run": dry_run});
    let answer = console
        .api
        .call(&session.caller, Method::POST, path, Some(&body), None)
        .await;
    outcome(
        &console,
        &session,
        &answer,
        "dead-letters",
        &format!("{BASE}/dead-letters"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_only_returns_to_console_pages() {
        assert_eq!(safe_next(Some("/ui/sources?x=1")), "/ui/sources?x=1");
        assert_eq!(safe_next(Some("https://evil.test/ui/")), "/ui/");
        assert_eq!(safe_next(Some("//evil.test/ui/")), "/ui/");
        assert_eq!(safe_next(Some("/ui//evil.test")), "/ui/");
        assert_eq!(safe_next(Some("/ui/\nSet-Cookie: x")), "/ui/");
        assert_eq!(safe_next(Some("/ui/\\evil.test")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn notices_come_from_a_fixed_set() {
        assert_eq!(notice(Some("saved")), Some("Saved."));
        assert_eq!(notice(Some("<script>")), None);
    }
}
