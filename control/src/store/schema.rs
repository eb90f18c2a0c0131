//! The store's tables and indexes, and how a database file is recognised as one of ours, of this
//! layout.
//!
//! One table per record kind, each with the indexes its questions need and no more (every index
//! costs bytes per record): lists run newest first within one resource, so their indexes are
//! `(resource, at_ms, partition, position)`; journeys look records up by event or delivery id.
//! `doc` and `payload` are zstd frames ([`super::codec`]). Retention deletes by `seq` (the order
//! records were stored, which follows their time), so no table needs a time index for that.
//!
//! Three small tables make restarts cheap: `positions` (the next offset of every partition read,
//! written in the same transaction as its records, so a restart resumes exactly there),
//! `activity` (when each resource was last active) and `counts` (records per kind).

use rusqlite::Connection;

use super::{RecordKind, StoreError};

/// The layout this build writes. A file of another layout is rebuilt from the topics.
/// (Layout 1 was a single `records` table, rebuilt at every start.)
pub const LAYOUT: i64 = 2;

/// `PRAGMA application_id` of a Hookline control store ("HkLn").
pub const APPLICATION_ID: i64 = 0x486b_4c6e;

/// The table of `kind`.
pub fn table(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Event => "events",
        RecordKind::Rejected => "rejected",
        RecordKind::Match => "matches",
        RecordKind::Attempt => "attempts",
        RecordKind::Dead => "dead",
    }
}

/// The columns every record table has, after `seq`.
pub const COLUMNS: &str = "partition INTEGER NOT NULL, position INTEGER NOT NULL,
    at_ms INTEGER NOT NULL, source_id TEXT, destination_id TEXT, trigger_id TEXT, event_id TEXT,
    delivery_id TEXT, outcome TEXT, doc BLOB NOT NULL, payload BLOB, payload_bytes INTEGER";

/// The indexes of each table: (name, columns).
const INDEXES: &[(RecordKind, &str, &str)] = &[
    (
        RecordKind::Event,
        "events_by_source",
        "source_id, at_ms, partition, position",
    ),
    (
        RecordKind::Event,
        "events_by_time",
        "at_ms, partition, position",
    ),
    (RecordKind::Event, "events_by_event", "event_id"),
    (
        RecordKind::Rejected,
        "rejected_by_source",
        "source_id, at_ms, partition, position",
    ),
    (RecordKind::Match, "matches_by_event", "event_id"),
    (
        RecordKind::Attempt,
        "attempts_by_destination",
        "destination_id, at_ms, partition, position",
    ),
    (
        RecordKind::Attempt,
        "attempts_by_outcome",
        "destination_id, outcome, at_ms, partition, position",
    ),
    (
        RecordKind::Attempt,
        "attempts_by_delivery",
        "delivery_id, at_ms",
    ),
    (RecordKind::Attempt, "attempts_by_event", "event_id"),
    (
        RecordKind::Dead,
        "dead_by_time",
        "at_ms, partition, position",
    ),
    (RecordKind::Dead, "dead_by_place", "partition, position"),
    (
        RecordKind::Dead,
        "dead_by_destination",
        "destination_id, at_ms, partition, position",
    ),
    (
        RecordKind::Dead,
        "dead_by_source",
        "source_id, at_ms, partition, position",
    ),
    (
        RecordKind::Dead,
        "dead_by_reason",
        "outcome, at_ms, partition, position",
    ),
    (RecordKind::Dead, "dead_by_event", "event_id"),
];

/// Creates the tables of this layout in an empty database.
pub fn create(connection: &Connection) -> Result<(), StoreError> {
    let mut sql = String::from("BEGIN;\n");
    for kind in RecordKind::ALL {
        sql.push_str(&format!(
            "CREATE TABLE {} (seq INTEGER PRIMARY KEY, {COLUMNS});\n",
            table(kind)
        ));
    }
    for (kind, name, columns) in INDEXES {
        sql.push_str(&format!(
            "CREATE INDEX {name} ON {} ({columns});\n",
            table(*kind)
        ));
    }
    sql.push_str(
        "CREATE TABLE positions (topic TEXT NOT NULL, partition INTEGER NOT NULL,
             next INTEGER NOT NULL, PRIMARY KEY (topic, partition)) WITHOUT ROWID;
         CREATE TABLE activity (resource TEXT NOT NULL, id TEXT NOT NULL, triggered_ms INTEGER,
             delivered_ms INTEGER, PRIMARY KEY (resource, id)) WITHOUT ROWID;
         CREATE TABLE counts (kind TEXT PRIMARY KEY, records INTEGER NOT NULL) WITHOUT ROWID;\n",
    );
    for kind in RecordKind::ALL {
        sql.push_str(&format!(
            "INSERT INTO counts VALUES ('{}', 0);\n",
            kind.as_str()
        ));
    }
    sql.push_str(&format!(
        "PRAGMA application_id = {APPLICATION_ID};\nPRAGMA user_version = {LAYOUT};\nCOMMIT;"
    ));
    connection.execute_batch(&sql)?;
    Ok(())
}

/// Why an existing file cannot be used as it is: `None` when it is a store of this layout.
pub fn unusable(connection: &Connection) -> Option<String> {
    let pragma = |name: &str| connection.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0));
    match (pragma("application_id"), pragma("user_version")) {
        (Ok(APPLICATION_ID), Ok(LAYOUT)) => None,
        (Ok(APPLICATION_ID), Ok(layout)) => Some(format!(
            "it has layout {layout}, this version of Hookline uses layout {LAYOUT}"
        )),
        (Ok(other), Ok(_)) => Some(format!(
            "it is not a Hookline control store (application id {other:#x})"
        )),
        (Err(error), _) | (_, Err(error)) => Some(format!("it cannot be read ({error})")),
    }
}
