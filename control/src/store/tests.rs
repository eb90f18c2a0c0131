//! The store without Kafka: records built as a consumer would hand them over.

use rdkafka::Timestamp;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use serde_json::{Value, json};

use super::page::Window;
use super::query::{self, Filter};
use super::row::{self, RecordKind, Row};
use super::{Activities, Location, Store};

pub(crate) const T0: i64 = 1_767_323_045_000; // 2026-01-02T03:04:05Z

pub(crate) fn at(ms: i64) -> String {
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
    event_carrying(offset, id, ms, headers, br#"{"type": "user.signed_up"}"#)
}

fn event_carrying(offset: i64, id: &str, ms: i64, headers: OwnedHeaders, payload: &[u8]) -> Row {
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
    row::parse(RecordKind::Event, &message(offset, payload, Some(headers))).unwrap()
}

pub(crate) fn record(kind: RecordKind, offset: i64, value: Value) -> Row {
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

/// The stores the tests of what every engine does run on: SQLite in memory, and PostgreSQL when
/// `HOOKLINE_TEST_POSTGRES` names a server (`scripts/postgres-local start`), each store in a
/// schema of its own. With `HOOKLINE_TEST_POSTGRES_REQUIRED` set (CI), a missing server fails.
pub(crate) fn stores(max_payload_bytes: usize) -> Vec<Store> {
    let mut stores = vec![Store::open(&Location::Memory, max_payload_bytes).unwrap()];
    if let Some(location) = postgres_location() {
        stores.push(Store::open(&location, max_payload_bytes).unwrap());
    }
    stores
}

/// A fresh schema on the test PostgreSQL server, if there is one.
pub(crate) fn postgres_location() -> Option<Location> {
    match std::env::var("HOOKLINE_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Some(Location::Postgres {
            url,
            schema: format!("test_{}", uuid::Uuid::new_v4().simple()),
        }),
        Ok(_) | Err(_) => {
            assert!(
                std::env::var_os("HOOKLINE_TEST_POSTGRES_REQUIRED").is_none(),
                "HOOKLINE_TEST_POSTGRES_REQUIRED is set but HOOKLINE_TEST_POSTGRES names no server"
            );
            None
        }
    }
}

#[test]
fn an_event_s_journey_has_its_payload_match_attempts_and_dead_letters() {
    for store in stores(usize::MAX) {
        journey_on(&store);
    }
}

fn journey_on(store: &Store) {
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

    let journey = crate::journey::journey("evt-1", &records);
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
    for store in stores(usize::MAX) {
        pages_on(&store);
    }
}

fn pages_on(store: &Store) {
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

#[test]
fn events_are_searched_by_outcome_trigger_destination_and_text_within_a_budget() {
    for store in stores(usize::MAX) {
        search_on(&store);
    }
}

fn search_on(store: &Store) {
    use super::search::{self, Search};
    let customers = ["ACME", "globex", "Acme Corp", "initech", "umbrella"];
    let mut rows: Vec<Row> = customers
        .iter()
        .enumerate()
        .map(|(n, customer)| {
            let payload = json!({"customer": customer}).to_string();
            event_carrying(
                n as i64,
                &format!("evt-{n}"),
                T0 + n as i64 * 1000,
                OwnedHeaders::new(),
                payload.as_bytes(),
            )
        })
        .collect();
    // evt-0 and evt-2 were sent to crm by signups; evt-1 matched nothing; the others have no
    // match record yet.
    rows.push(matched(0, "evt-0", T0 + 1));
    rows.push(matched(1, "evt-2", T0 + 2001));
    rows.push(record(
        RecordKind::Match,
        2,
        json!({
            "schema_version": 1, "event_id": "evt-1", "source": "app", "matched_at": at(T0 + 1001),
            "outcome": "no_match",
            "triggers": [{"trigger_id": "signups", "result": "condition_false"}]
        }),
    ));
    store.insert(&rows, &[]).unwrap();
    let find = |search: &Search, window: &Window| {
        let found = store.ask(|db| search::events(db, search, window)).unwrap();
        let ids: Vec<String> = found
            .items
            .iter()
            .map(|(event, _)| event.json()["event_id"].as_str().unwrap().to_owned())
            .collect();
        (ids, found)
    };
    let everything = || Search {
        budget: 100,
        ..Search::default()
    };
    let (ids, found) = find(
        &Search {
            text: Some("acme".into()),
            ..everything()
        },
        &Window::latest(10),
    );
    assert_eq!(ids, ["evt-2", "evt-0"]);
    assert_eq!(found.scanned, 5);
    assert!(!found.stopped_at_budget && found.next.is_none());
    for (search, expected) in [
        (
            Search {
                outcome: Some("pending".into()),
                ..everything()
            },
            vec!["evt-4", "evt-3"],
        ),
        (
            Search {
                outcome: Some("no_match".into()),
                ..everything()
            },
            vec!["evt-1"],
        ),
        (
            Search {
                destination_id: Some("crm".into()),
                text: Some("ACME".into()),
                ..everything()
            },
            vec!["evt-2", "evt-0"],
        ),
        (
            Search {
                trigger_id: Some("signups".into()),
                ..everything()
            },
            vec!["evt-2", "evt-0"],
        ),
        (
            Search {
                destination_id: Some("other".into()),
                ..everything()
            },
            vec![],
        ),
    ] {
        assert_eq!(find(&search, &Window::latest(10)).0, expected, "{search:?}");
    }
    // A full page stops at its last event; the cursor goes on from there.
    let (ids, found) = find(&everything(), &Window::latest(2));
    assert_eq!(ids, ["evt-4", "evt-3"]);
    let mut window = Window::latest(2);
    window.after = found.next;
    assert_eq!(find(&everything(), &window).0, ["evt-2", "evt-1"]);
    // A budget of two events finds nothing older yet, says so, and goes on where it stopped.
    let acme = Search {
        text: Some("acme".into()),
        budget: 2,
        ..Search::default()
    };
    let (ids, found) = find(&acme, &Window::latest(10));
    assert!(ids.is_empty());
    assert_eq!(found.scanned, 2);
    assert!(found.stopped_at_budget);
    let mut window = Window::latest(10);
    window.after = found.next;
    let (ids, found) = find(&acme, &window);
    assert_eq!(ids, ["evt-2"]);
    assert!(found.stopped_at_budget);
    // A budget that ends on the window's last event ends the search: complete, no cursor.
    let exact = Search { budget: 5, ..acme };
    let (ids, found) = find(&exact, &Window::latest(10));
    assert_eq!(ids, ["evt-2", "evt-0"]);
    assert!(!found.stopped_at_budget && found.next.is_none());
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
    for store in stores(usize::MAX) {
        purge_on(&store);
    }
}

fn purge_on(store: &Store) {
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
    assert_eq!(count(store, RecordKind::Event), 2);
    assert_eq!(store.oldest_ms().unwrap(), Some(T0));
    assert_eq!(store.purge(T0 + 11).unwrap(), 2);
    assert_eq!(count(store, RecordKind::Event), 1);
    assert_eq!(count(store, RecordKind::Attempt), 0);
    assert!(store.ask(|db| query::event(db, "evt-1")).unwrap().is_none());
    assert!(store.ask(|db| query::event(db, "evt-2")).unwrap().is_some());
    assert_eq!(store.oldest_ms().unwrap(), Some(T0 + 60_000));
    assert_eq!(store.purge(T0 + 11).unwrap(), 0);
}

#[test]
fn shrinking_forgets_the_oldest_share_of_each_kind() {
    for store in stores(usize::MAX) {
        shrink_on(&store);
    }
}

fn shrink_on(store: &Store) {
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
    assert_eq!(count(store, RecordKind::Attempt), 7);
}

#[test]
fn payloads_above_the_cap_keep_their_first_bytes_and_size() {
    for store in stores(8) {
        store.insert(&[event(0, "evt-1", T0)], &[]).unwrap();
        let stored = store.ask(|db| query::event(db, "evt-1")).unwrap().unwrap();
        assert_eq!(stored.payload.as_deref(), Some(&br#"{"type":"#[..]));
        assert_eq!(stored.payload_bytes, Some(26));
        assert!(!stored.payload_complete());
    }
    for whole in stores(usize::MAX) {
        whole.insert(&[event(0, "evt-1", T0)], &[]).unwrap();
        assert!(
            whole
                .ask(|db| query::event(db, "evt-1"))
                .unwrap()
                .unwrap()
                .payload_complete()
        );
    }
}

#[test]
fn a_file_store_resumes_with_its_records_positions_and_activity() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("control").join("history.sqlite3");
    let location = Location::File(path.clone());
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
    let store = Store::open(&Location::File(path.clone()), usize::MAX).unwrap();
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
    let store = Store::open(&Location::File(path), usize::MAX).unwrap();
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

/// A TCP relay to the test PostgreSQL server that can cut every connection and refuse new ones
/// for a while, as a server restart or a network failure would.
struct Relay {
    port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn to(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let streams = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (accepting, held) = (open.clone(), streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                let mut all = held.lock().unwrap();
                all.push(client.try_clone().unwrap());
                all.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self {
            port,
            open,
            streams,
        }
    }

    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_postgres_store_says_its_server_is_away_and_reconnects_when_it_is_back() {
    let Some(Location::Postgres { url, schema }) = postgres_location() else {
        eprintln!("No HOOKLINE_TEST_POSTGRES: the PostgreSQL store is not tested here.");
        return;
    };
    let config: postgres::Config = url.parse().unwrap();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let relay = Relay::to(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let relayed = Location::Postgres {
        url: format!(
            "postgres://{}@127.0.0.1:{}/{}",
            config.get_user().unwrap_or("postgres"),
            relay.port,
            config.get_dbname().unwrap_or("postgres")
        ),
        schema,
    };
    let store = Store::open(&relayed, usize::MAX).unwrap();
    store.insert(&[event(0, "evt-1", T0)], &[]).unwrap();
    assert!(store.ask(|db| query::event(db, "evt-1")).unwrap().is_some());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(
        runtime
            .block_on(store.run(|db| query::event(db, "evt-1")))
            .unwrap()
            .is_some()
    );

    relay.cut();
    let away = store
        .insert(&[event(1, "evt-2", T0 + 1)], &[("t.any", 0, 2)])
        .unwrap_err();
    assert!(away.is_transient(), "{away}");
    let still_away = store.ask(|db| query::event(db, "evt-1")).unwrap_err();
    assert!(still_away.is_transient(), "{still_away}");

    relay.restore();
    store
        .insert(&[event(1, "evt-2", T0 + 1)], &[("t.any", 0, 2)])
        .unwrap();
    // A reader connection made before the cut is found broken when next used, and the query
    // is asked again on a new one: no error reaches the API.
    let read = runtime
        .block_on(store.run(|db| query::event(db, "evt-2")))
        .unwrap();
    assert!(read.is_some());
    assert!(store.ask(|db| query::event(db, "evt-2")).unwrap().is_some());
    assert_eq!(count(&store, RecordKind::Event), 2);
    assert_eq!(store.positions().unwrap()[&("t.any".to_owned(), 0)], 2);
}

#[test]
fn a_partition_made_anew_is_forgotten_and_its_new_records_are_kept() {
    for store in stores(usize::MAX) {
        store
            .insert(
                &[event(0, "old-0", T0), event(1, "old-1", T0 + 1)],
                &[("t.events", 0, 2)],
            )
            .unwrap();
        assert_eq!(
            store.forget(RecordKind::Event, "t.events", 0).unwrap(),
            2,
            "{store:?}"
        );
        assert_eq!(count(&store, RecordKind::Event), 0);
        assert!(store.positions().unwrap().is_empty());
        // The new topic's first record has the old one's offset; it is stored.
        store
            .insert(&[event(0, "new-0", T0 + 2)], &[("t.events", 0, 1)])
            .unwrap();
        assert!(store.ask(|db| query::event(db, "new-0")).unwrap().is_some());
        assert!(store.ask(|db| query::event(db, "old-0")).unwrap().is_none());
        assert_eq!(count(&store, RecordKind::Event), 1);
    }
}

#[test]
fn a_shared_postgres_store_is_shrunk_by_one_instance_at_a_time_and_is_one_installation_s() {
    let Some(Location::Postgres { url, schema }) = postgres_location() else {
        eprintln!("No HOOKLINE_TEST_POSTGRES: the PostgreSQL store is not tested here.");
        return;
    };
    let location = Location::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    };
    let store = Store::open(&location, usize::MAX).unwrap();
    let rows: Vec<Row> = (0..10)
        .map(|n| event(n, &format!("evt-{n}"), T0 + n))
        .collect();
    store.insert(&rows, &[]).unwrap();
    // Another instance is shrinking: this one leaves it alone.
    let mut other = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let lock = (super::postgres::SHRINK_LOCK, schema.as_str());
    other
        .execute(
            "SELECT pg_advisory_lock(hashtext($1), hashtext($2))",
            &[&lock.0, &lock.1],
        )
        .unwrap();
    assert_eq!(store.shrink(0.5).unwrap(), 0);
    assert_eq!(count(&store, RecordKind::Event), 10);
    other
        .execute(
            "SELECT pg_advisory_unlock(hashtext($1), hashtext($2))",
            &[&lock.0, &lock.1],
        )
        .unwrap();
    assert_eq!(store.shrink(0.5).unwrap(), 5);
    assert_eq!(count(&store, RecordKind::Event), 5);

    // The schema is this installation's: another one (other topics) is refused.
    store.claim("hookline.").unwrap();
    store.claim("hookline.").unwrap();
    let other = Store::open(&location, usize::MAX).unwrap();
    let refused = other.claim("staging.").unwrap_err().to_string();
    assert!(refused.contains("\"hookline.\""), "{refused}");
}
