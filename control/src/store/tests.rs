//! The store without Kafka: records built as a consumer would hand them over.

use rdkafka::Timestamp;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use serde_json::{Value, json};

use super::page::Window;
use super::query::{self, Filter};
use super::row::{self, RecordKind, Row};
use super::{Activities, Store};

pub(crate) const T0: i64 = 1_767_323_045_000; // 2026-01-02T03:04:05Z

fn at(ms: i64) -> String {
    hookline_runtime::time::rfc3339(
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap(),
    )
}

fn message(offset: i64, value: &[u8], headers: Option<OwnedHeaders>) -> OwnedMessage {
    OwnedMessage::new(
        Some(value.to_vec()),
        None,
        "t.any".into(),
        Timestamp::CreateTime(T0),
        0,
        offset,
        headers,
    )
}

pub(crate) fn event(offset: i64, id: &str, ms: i64) -> Row {
    event_with(offset, id, ms, OwnedHeaders::new())
}

/// The event `id` written back by a replay at `replayed_ms`.
fn replayed(offset: i64, id: &str, ms: i64, replayed_ms: i64) -> Row {
    let replayed_at = at(replayed_ms);
    let headers = OwnedHeaders::new().insert(Header {
        key: "hookline-replayed-at",
        value: Some(replayed_at.as_str()),
    });
    event_with(offset, id, ms, headers)
}

fn event_with(offset: i64, id: &str, ms: i64, headers: OwnedHeaders) -> Row {
    let received = at(ms);
    let headers = headers
        .insert(Header {
            key: "hookline-event-id",
            value: Some(id),
        })
        .insert(Header {
            key: "hookline-source",
            value: Some("app"),
        })
        .insert(Header {
            key: "hookline-received-at",
            value: Some(received.as_str()),
        })
        .insert(Header {
            key: "hookline-client",
            value: Some("192.0.2.7"),
        });
    row::parse(
        RecordKind::Event,
        &message(offset, br#"{"type": "user.signed_up"}"#, Some(headers)),
    )
    .unwrap()
}

fn record(kind: RecordKind, offset: i64, value: Value) -> Row {
    row::parse(kind, &message(offset, value.to_string().as_bytes(), None)).unwrap()
}

pub(crate) fn attempt(offset: i64, event: &str, outcome: &str, ms: i64) -> Row {
    record(
        RecordKind::Attempt,
        offset,
        json!({
            "schema_version": 1, "delivery_id": "msg_1", "event_id": event, "source_id": "app",
            "trigger_id": "signups", "destination_id": "crm", "attempt": offset + 1,
            "started_at": at(ms - 5), "finished_at": at(ms), "outcome": outcome,
            "status": if outcome == "delivered" { 200 } else { 503 }, "latency_seconds": 0.005,
            "response_body": "ok"
        }),
    )
}

pub(crate) fn matched(offset: i64, event: &str, ms: i64) -> Row {
    record(
        RecordKind::Match,
        offset,
        json!({
            "schema_version": 1, "event_id": event, "source": "app", "matched_at": at(ms),
            "outcome": "delivered",
            "triggers": [{"trigger_id": "signups", "result": "fired",
                          "deliveries": [{"delivery_id": "msg_1", "action": 0, "destination_id": "crm"}]}]
        }),
    )
}

pub(crate) fn dead(offset: i64, event: &str, reason: &str, ms: i64) -> Row {
    record(
        RecordKind::Dead,
        offset,
        json!({
            "schema_version": 1, "reason": reason, "error": "503 three times",
            "position": {"topic": "t.deliveries", "partition": 0, "offset": 3}, "attempts": 3,
            "dead_at": at(ms),
            "payload": {"kind": "job", "job": {
                "schema_version": 1, "delivery_id": "msg_1", "event_id": event, "source_id": "app",
                "trigger_id": "signups", "action": 0, "destination_id": "crm", "attempt": 3,
                "method": "POST", "url": "http://127.0.0.1:1/", "body": "{}", "received_at": at(ms)
            }}
        }),
    )
}

#[test]
fn an_event_s_journey_has_its_payload_match_attempts_and_dead_letters() {
    let store = Store::in_memory().unwrap();
    store
        .insert(
            &[
                event(0, "evt-1", T0),
                matched(0, "evt-1", T0 + 1),
                attempt(0, "evt-1", "retrying", T0 + 10),
                attempt(1, "evt-1", "delivered", T0 + 20),
                dead(0, "evt-1", "exhausted", T0 + 30),
                event(1, "evt-2", T0 + 40),
                replayed(2, "evt-1", T0, T0 + 60_000),
            ],
            &[],
        )
        .unwrap();
    let records = store.ask(|db| query::journey(db, "evt-1")).unwrap();
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["event", "event", "match", "attempt", "attempt", "dead"]
    );

    let journey = crate::history::journey("evt-1", &records);
    assert_eq!(journey["source"], "app");
    assert_eq!(journey["client"], "192.0.2.7");
    assert_eq!(journey["received_at"], "2026-01-02T03:04:05Z");
    assert_eq!(journey["payload"]["type"], "user.signed_up");
    assert_eq!(journey["replayed_at"], Value::Null, "the original is shown");
    assert_eq!(
        journey["replays"],
        json!([{"at": "2026-01-02T03:05:05Z", "by": null}])
    );
    assert_eq!(journey["match"]["outcome"], "delivered");
    let delivery = &journey["deliveries"][0];
    assert_eq!(delivery["delivery_id"], "msg_1");
    assert_eq!(delivery["destination_id"], "crm");
    assert_eq!(delivery["status"], "delivered");
    assert_eq!(delivery["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(delivery["attempts"][0]["status"], 503);
    assert_eq!(journey["dead_letters"][0]["id"], "0-0");
    assert_eq!(journey["dead_letters"][0]["reason"], "exhausted");
}

#[test]
fn pages_run_newest_first_filtered_and_resume_at_the_cursor() {
    let store = Store::in_memory().unwrap();
    let rows: Vec<Row> = (0..5)
        .map(|n| {
            let outcome = if n % 2 == 0 { "delivered" } else { "retrying" };
            attempt(n, "evt-1", outcome, T0 + n * 1000)
        })
        .collect();
    store.insert(&rows, &[]).unwrap();
    let filter = Filter {
        kinds: vec![RecordKind::Attempt],
        destination_id: Some("crm".into()),
        outcome: Some("delivered".into()),
        ..Filter::default()
    };
    let first = store
        .ask(|db| query::page(db, &filter, &Window::latest(2)))
        .unwrap();
    let offsets = |page: &query::Page| page.items.iter().map(|r| r.position).collect::<Vec<_>>();
    assert_eq!(offsets(&first), [4, 2]);
    let mut window = Window::latest(2);
    window.after = first.next.clone();
    let second = store.ask(|db| query::page(db, &filter, &window)).unwrap();
    assert_eq!(offsets(&second), [0]);
    assert!(second.next.is_none());

    let mut recent = Window::latest(10);
    recent.since_ms = Some(T0 + 2_000);
    recent.until_ms = Some(T0 + 4_000);
    let all = Filter {
        kinds: vec![RecordKind::Attempt],
        ..Filter::default()
    };
    assert_eq!(
        offsets(&store.ask(|db| query::page(db, &all, &recent)).unwrap()),
        [3, 2]
    );
    let other = Filter {
        destination_id: Some("other".into()),
        ..all
    };
    assert!(
        store
            .ask(|db| query::page(db, &other, &recent))
            .unwrap()
            .items
            .is_empty()
    );
}

fn count(store: &Store, kind: RecordKind) -> i64 {
    store
        .counts()
        .unwrap()
        .into_iter()
        .find(|(counted, _)| *counted == kind)
        .map_or(0, |(_, count)| count)
}

#[test]
fn records_past_the_window_are_purged_and_counted() {
    let store = Store::in_memory().unwrap();
    store
        .insert(
            &[
                event(0, "evt-1", T0),
                attempt(0, "evt-1", "delivered", T0 + 10),
                event(1, "evt-2", T0 + 60_000),
            ],
            &[],
        )
        .unwrap();
    assert_eq!(count(&store, RecordKind::Event), 2);
    assert_eq!(store.oldest_ms().unwrap(), Some(T0));
    assert_eq!(store.purge(T0 + 11).unwrap(), 2);
    assert_eq!(count(&store, RecordKind::Event), 1);
    assert_eq!(count(&store, RecordKind::Attempt), 0);
    assert!(store.ask(|db| query::event(db, "evt-1")).unwrap().is_none());
    assert!(store.ask(|db| query::event(db, "evt-2")).unwrap().is_some());
    assert_eq!(store.oldest_ms().unwrap(), Some(T0 + 60_000));
    assert_eq!(store.purge(T0 + 11).unwrap(), 0);
}

#[test]
fn shrinking_forgets_the_oldest_share_of_each_kind() {
    let store = Store::in_memory().unwrap();
    let rows: Vec<Row> = (0..10)
        .flat_map(|n| {
            [
                event(n, &format!("evt-{n}"), T0 + n),
                attempt(n, &format!("evt-{n}"), "delivered", T0 + n),
            ]
        })
        .collect();
    store.insert(&rows, &[]).unwrap();
    let before = store.size().unwrap();
    assert!(before.used_bytes > 0 && before.file_bytes >= before.used_bytes);
    assert_eq!(store.shrink(0.3).unwrap(), 6);
    let kept: Vec<i64> = store
        .ask(|db| query::page(db, &Filter::default(), &Window::latest(20)))
        .unwrap()
        .items
        .iter()
        .filter(|record| record.kind == "event")
        .map(|record| record.position)
        .collect();
    assert_eq!(kept, [9, 8, 7, 6, 5, 4, 3]);
    assert_eq!(count(&store, RecordKind::Attempt), 7);
}

#[test]
fn payloads_above_the_cap_keep_their_first_bytes_and_size() {
    let store = Store::open(&super::Location::Memory, 8).unwrap();
    store.insert(&[event(0, "evt-1", T0)], &[]).unwrap();
    let stored = store.ask(|db| query::event(db, "evt-1")).unwrap().unwrap();
    assert_eq!(stored.payload.as_deref(), Some(&br#"{"type":"#[..]));
    assert_eq!(stored.payload_bytes, Some(26));
    assert!(!stored.payload_complete());
    let whole = Store::in_memory().unwrap();
    whole.insert(&[event(0, "evt-1", T0)], &[]).unwrap();
    assert!(
        whole
            .ask(|db| query::event(db, "evt-1"))
            .unwrap()
            .unwrap()
            .payload_complete()
    );
}

#[test]
fn a_file_store_resumes_with_its_records_positions_and_activity() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("control").join("history.sqlite3");
    let location = super::Location::File(path.clone());
    {
        let store = Store::open(&location, usize::MAX).unwrap();
        store
            .insert(
                &[
                    event(0, "evt-1", T0),
                    attempt(0, "evt-1", "delivered", T0 + 50),
                ],
                &[("t.events", 0, 1), ("t.attempts", 2, 7)],
            )
            .unwrap();
        store.insert(&[], &[("t.attempts", 2, 9)]).unwrap();
    }
    let store = Store::open(&location, usize::MAX).unwrap();
    let positions = store.positions().unwrap();
    assert_eq!(positions.get(&("t.events".to_owned(), 0)), Some(&1));
    assert_eq!(positions.get(&("t.attempts".to_owned(), 2)), Some(&9));
    assert_eq!(positions.len(), 2);
    assert_eq!(count(&store, RecordKind::Event), 1);
    let activities = Activities::default();
    activities.load(store.activities().unwrap());
    assert_eq!(activities.get("source", "app").triggered_ms, Some(T0));
    assert_eq!(
        activities.get("destination", "crm").delivered_ms,
        Some(T0 + 50)
    );
    // Queries run on the reader connections, beside the writer.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let found = runtime
        .block_on(store.run(|connection| query::event(connection, "evt-1")))
        .unwrap();
    assert_eq!(found.unwrap().position, 0);
}

#[test]
fn a_file_of_another_layout_or_no_database_is_rebuilt() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("history.sqlite3");
    std::fs::write(
        &path,
        b"this is not a database, and far too short to look like one",
    )
    .unwrap();
    let store = Store::open(&super::Location::File(path.clone()), usize::MAX).unwrap();
    store
        .insert(&[event(0, "evt-1", T0)], &[("t.events", 0, 1)])
        .unwrap();
    drop(store);

    let older = rusqlite::Connection::open(&path).unwrap();
    older
        .execute_batch(&format!(
            "PRAGMA user_version = {};",
            super::schema::LAYOUT - 1
        ))
        .unwrap();
    drop(older);
    let store = Store::open(&super::Location::File(path), usize::MAX).unwrap();
    assert!(
        store.positions().unwrap().is_empty(),
        "rebuilt from nothing"
    );
    assert_eq!(count(&store, RecordKind::Event), 0);
}

#[test]
fn records_that_are_not_what_their_topic_holds_are_refused() {
    let invalid = row::parse(RecordKind::Attempt, &message(0, b"{}", None));
    assert!(invalid.is_err());
    let no_source = row::parse(RecordKind::Event, &message(0, b"{}", None));
    assert!(no_source.is_err());
    let newer = row::parse(
        RecordKind::Rejected,
        &message(
            0,
            br#"{"schema_version": 99, "at": "2026-01-02T03:04:05Z", "source": "app", "status": 401, "code": "unauthorized", "message": "no"}"#,
            None,
        ),
    );
    assert!(matches!(newer, Err(row::RowError::Newer(99))));
}

#[test]
fn activity_keeps_the_latest_trigger_and_delivery_times() {
    let activities = Activities::default();
    activities.note(&[
        event(0, "evt-1", T0),
        matched(0, "evt-1", T0 + 5),
        attempt(0, "evt-1", "delivered", T0 + 50),
        attempt(1, "evt-1", "retrying", T0 + 90),
    ]);
    activities.note(&[event(1, "evt-0", T0 - 1_000)]);
    let source = activities.get("source", "app");
    assert_eq!(source.triggered_ms, Some(T0));
    assert_eq!(source.delivered_ms, Some(T0 + 50));
    let destination = activities.get("destination", "crm");
    assert_eq!(destination.triggered_ms, Some(T0 + 5));
    assert_eq!(destination.delivered_ms, Some(T0 + 50));
    assert_eq!(
        activities.get("trigger", "signups").triggered_ms,
        Some(T0 + 5)
    );
    assert_eq!(activities.get("trigger", "other"), Default::default());
}
