//! The rollups on every engine: what they count, the percentiles read back, pruning, and a
//! PostgreSQL store shared by instances that offer the same records.

use std::collections::BTreeMap;

use serde_json::json;

use super::rollup::{self, Grain, Totals};
use super::row::{RecordKind, Row};
use super::tests::{T0, at, event, postgres_location, record, stores};
use super::{Location, Store};

/// An attempt of a delivery to `destination` that ended at `ms` after `latency_ms`.
pub(crate) fn attempt_to(
    offset: i64,
    destination: &str,
    outcome: &str,
    ms: i64,
    latency_ms: f64,
) -> Row {
    record(
        RecordKind::Attempt,
        offset,
        json!({
            "schema_version": 1, "delivery_id": format!("msg_{offset}"), "event_id": format!("evt-{offset}"),
            "source_id": "app", "trigger_id": "signups", "destination_id": destination,
            "attempt": 1, "started_at": at(ms - 5), "finished_at": at(ms), "outcome": outcome,
            "status": if outcome == "delivered" { 200 } else { 503 },
            "latency_seconds": latency_ms / 1000.0
        }),
    )
}

/// A dead letter of a job for `destination`.
pub(crate) fn dead_for(offset: i64, destination: &str, ms: i64) -> Row {
    record(
        RecordKind::Dead,
        offset,
        json!({
            "schema_version": 1, "reason": "exhausted", "error": "503 three times",
            "position": {"topic": "t.deliveries", "partition": 0, "offset": offset}, "attempts": 3,
            "dead_at": at(ms),
            "payload": {"kind": "job", "job": {
                "schema_version": 1, "delivery_id": format!("msg_{offset}"), "event_id": format!("evt-{offset}"),
                "source_id": "app", "trigger_id": "signups", "action": 0, "destination_id": destination,
                "attempt": 3, "method": "POST", "url": "http://127.0.0.1:1/", "body": "{}",
                "received_at": at(ms)
            }}
        }),
    )
}

/// A request to `source` ingest refused with `code`.
pub(crate) fn refused(offset: i64, source: &str, code: &str, ms: i64) -> Row {
    record(
        RecordKind::Rejected,
        offset,
        json!({"schema_version": 1, "at": at(ms), "source": source, "status": 401,
               "code": code, "message": "no"}),
    )
}

/// The match record of event `offset` of source `app`, with this outcome.
pub(crate) fn match_of(offset: i64, outcome: &str, ms: i64) -> Row {
    record(
        RecordKind::Match,
        offset,
        json!({"schema_version": 1, "event_id": format!("evt-{offset}"), "source": "app",
               "matched_at": at(ms), "outcome": outcome, "triggers": []}),
    )
}

/// A day's worth of one destination's and one source's traffic within one minute from `start`:
/// `crm` has 90 attempts of 10 ms delivered, 8 of 200 ms retrying, 2 of 3 s dead, one blocked
/// and 2 dead letters; `erp` one delivered attempt of 50 ms; source `app` 5 events, 3 of them
/// matched, and 3 refused requests (and one to a source that does not exist, not counted).
pub(crate) fn traffic(start: i64) -> Vec<Row> {
    let mut rows = Vec::new();
    for n in 0..90 {
        rows.push(attempt_to(n, "crm", "delivered", start + n, 10.0));
    }
    for n in 90..98 {
        rows.push(attempt_to(n, "crm", "retrying", start + n, 200.0));
    }
    for n in 98..100 {
        rows.push(attempt_to(n, "crm", "dead", start + n, 3_000.0));
    }
    rows.push(attempt_to(100, "crm", "blocked", start + 100, 0.0));
    rows.push(attempt_to(101, "erp", "delivered", start + 101, 50.0));
    rows.push(dead_for(0, "crm", start + 200));
    rows.push(dead_for(1, "crm", start + 201));
    for n in 0..5 {
        rows.push(event(n, &format!("evt-{n}"), start + n));
    }
    for n in 0..3 {
        rows.push(match_of(n, "delivered", start + 10 + n));
    }
    rows.push(match_of(3, "no_match", start + 13));
    rows.push(refused(0, "app", "unauthorized", start + 20));
    rows.push(refused(1, "app", "unauthorized", start + 21));
    rows.push(refused(2, "app", "rate_limited", start + 22));
    rows.push(refused(3, "made-up", "source_not_found", start + 23));
    rows
}

/// The totals of `resource`'s rollups of `grain` from `since_ms` on, in id order.
fn totals(
    store: &Store,
    grain: Grain,
    resource: &'static str,
    since_ms: i64,
) -> BTreeMap<String, Totals> {
    store
        .ask(|db| rollup::totals(db, grain, resource, since_ms))
        .unwrap()
        .into_iter()
        .collect()
}

/// What the rollups of `traffic` say, checked at both grains.
fn assert_traffic(store: &Store, since_ms: i64, times: i64) {
    for grain in Grain::ALL {
        let destinations = totals(store, grain, rollup::DESTINATION, since_ms);
        assert_eq!(
            destinations.keys().collect::<Vec<_>>(),
            ["crm", "erp"],
            "{grain:?}"
        );
        let crm = &destinations["crm"];
        assert_eq!(crm.count(rollup::ATTEMPTS), 101 * times);
        assert_eq!(crm.count(rollup::DELIVERED), 90 * times);
        assert_eq!(crm.count(rollup::FAILED), 11 * times);
        assert_eq!(crm.count(rollup::DEAD_LETTERS), 2 * times);
        let durations = crm.durations();
        // 100 durations (the blocked attempt sent nothing): the 50th is 10 ms, the 99th 3 s.
        let p50 = durations.quantile(0.5).unwrap();
        let p95 = durations.quantile(0.95).unwrap();
        let p99 = durations.quantile(0.99).unwrap();
        assert!((p50 - 10.0).abs() <= 0.45, "{p50}");
        assert!((p95 - 200.0).abs() <= 9.0, "{p95}");
        assert!((p99 - 3_000.0).abs() <= 135.0, "{p99}");
        let erp = &destinations["erp"];
        assert_eq!(erp.count(rollup::ATTEMPTS), times);
        assert_eq!(erp.count(rollup::FAILED), 0);
        let p99 = erp.durations().quantile(0.99).unwrap();
        assert!((p99 - 50.0).abs() <= 2.25, "{p99}");

        let sources = totals(store, grain, rollup::SOURCE, since_ms);
        assert_eq!(sources.keys().collect::<Vec<_>>(), ["app"], "{grain:?}");
        let app = &sources["app"];
        assert_eq!(app.count(rollup::EVENTS), 5 * times);
        assert_eq!(app.count(rollup::MATCHED), 3 * times);
        assert_eq!(
            app.refused(),
            BTreeMap::from([
                ("rate_limited".to_owned(), times),
                ("unauthorized".to_owned(), 2 * times)
            ])
        );
    }
}

#[test]
fn rollups_count_attempts_durations_dead_letters_events_and_refusals() {
    for store in stores(usize::MAX) {
        // Whole minutes: a window from the start holds every row at both grains.
        let start = Grain::Hour.bucket(T0) + 60_000;
        let rows = traffic(start);
        // Two batches, as the reader stores them: counts add up across transactions.
        let (first, second) = rows.split_at(40);
        store.insert(first, &[]).unwrap();
        store.insert(second, &[]).unwrap();
        assert_traffic(&store, start, 1);
        // A minute later, the minute buckets hold nothing; the hour still holds it all.
        let later = start + 60_000;
        assert!(totals(&store, Grain::Minute, rollup::DESTINATION, later).is_empty());
        assert_eq!(
            totals(&store, Grain::Hour, rollup::DESTINATION, later)["crm"].count(rollup::ATTEMPTS),
            101
        );
    }
}

#[test]
fn rollups_past_their_grain_s_keep_are_pruned() {
    for store in stores(usize::MAX) {
        let start = Grain::Hour.bucket(T0) + 60_000;
        store.insert(&traffic(start), &[]).unwrap();
        let since = start - 3_600_000;
        // Two hours on, the minutes are gone and the hours kept.
        // One minute's rows: crm's 4 counts and 3 duration bins, erp's 2 and 1, app's 4.
        assert_eq!(
            store.prune_rollups(start + 2 * 3_600_000 + 60_000).unwrap(),
            14
        );
        assert!(totals(&store, Grain::Minute, rollup::DESTINATION, since).is_empty());
        assert_eq!(
            totals(&store, Grain::Hour, rollup::SOURCE, since)["app"].count(rollup::EVENTS),
            5
        );
        // A day and three hours on, the hours too.
        store.prune_rollups(start + 27 * 3_600_000).unwrap();
        assert!(totals(&store, Grain::Hour, rollup::SOURCE, since).is_empty());
        assert_eq!(store.prune_rollups(start + 27 * 3_600_000).unwrap(), 0);
    }
}

#[test]
fn instances_sharing_a_postgres_store_count_each_record_once() {
    let Some(location @ Location::Postgres { .. }) = postgres_location() else {
        eprintln!("No HOOKLINE_TEST_POSTGRES: the PostgreSQL store is not tested here.");
        return;
    };
    let one = Store::open(&location, usize::MAX).unwrap();
    let two = Store::open(&location, usize::MAX).unwrap();
    let start = Grain::Hour.bucket(T0) + 60_000;
    let rows = traffic(start);
    // Both offer every record, at once and again one after the other, in other batches.
    std::thread::scope(|scope| {
        for store in [&one, &two] {
            let rows = &rows;
            scope.spawn(move || store.insert(rows, &[]).unwrap());
        }
    });
    for chunk in rows.chunks(17) {
        one.insert(chunk, &[]).unwrap();
    }
    two.insert(&rows, &[]).unwrap();
    assert_traffic(&one, start, 1);
    assert_traffic(&two, start, 1);
    // A new record adds once, whoever offers it first.
    let more = [attempt_to(500, "erp", "delivered", start + 500, 50.0)];
    two.insert(&more, &[]).unwrap();
    one.insert(&more, &[]).unwrap();
    assert_eq!(
        totals(&one, Grain::Minute, rollup::DESTINATION, start)["erp"].count(rollup::ATTEMPTS),
        2
    );
}
