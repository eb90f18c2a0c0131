//! The store's tables and indexes, and how a database file is recognised as one of ours, of this
//! layout.
//!
//! One table per record kind, each with the indexes its questions need and no more (every index
//! costs bytes per record): lists run newest first within one resource, so their indexes are
//! `(resource, at_ms, partition, position)`; journeys look records up by event or delivery id.
//! `doc` and `payload` are zstd frames ([`super::codec`]). Retention deletes by `seq` (the order
//! records were stored, which follows their time), so no table needs a time index for that.
//!
//! Small tables make restarts cheap: `positions` (the next offset of every partition read,
//! written in the same transaction as its records, so a restart resumes exactly there),
//! `activity` (when each resource was last active) and `counts` (records per kind);
//! `dictionaries` holds the compression dictionaries of [`super::codec`]; `rollups` holds the
//! counts per resource and time bucket of [`super::rollup`].

use rusqlite::Connection;
use rusqlite::types::Value;

use super::error::{StoreError, damaged};
use super::row::RecordKind;

/// The layout this build writes. A file of another layout is rebuilt from the topics.
/// (Layout 1 was a single `records` table, rebuilt at every start; layout 2 had no `rollups`,
/// so its statistics would start empty: it is rebuilt too.)
pub const LAYOUT: i64 = 3;

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
pub(crate) const INDEXES: &[(RecordKind, &str, &str)] = &[
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
         CREATE TABLE counts (kind TEXT PRIMARY KEY, records INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE dictionaries (id INTEGER PRIMARY KEY, family TEXT NOT NULL,
             bytes BLOB NOT NULL);
         CREATE TABLE rollups (grain INTEGER NOT NULL, bucket INTEGER NOT NULL,
             resource TEXT NOT NULL, id TEXT NOT NULL, measure TEXT NOT NULL,
             count INTEGER NOT NULL, PRIMARY KEY (grain, bucket, resource, id, measure))
             WITHOUT ROWID;\n",
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

/// What to do with an existing database file.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// A store of this layout: resume it.
    Usable,
    /// Ours but unusable (another layout, damaged, or empty): delete it and rebuild, for this
    /// reason.
    Rebuild(String),
    /// Not ours, or unreadable for a reason deleting would not cure (permissions, a lock): leave
    /// it alone and say why.
    Refuse(String),
}

/// Judges the existing file `connection` has open.
pub fn judge(connection: &Connection) -> Found {
    let pragma = |name: &str| connection.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0));
    let tables = || {
        connection.query_row("SELECT count(*) FROM sqlite_schema", [], |row| {
            row.get::<_, i64>(0)
        })
    };
    match (pragma("application_id"), pragma("user_version")) {
        (Ok(APPLICATION_ID), Ok(LAYOUT)) => Found::Usable,
        (Ok(APPLICATION_ID), Ok(layout)) => Found::Rebuild(format!(
            "it has layout {layout}, this version of Hookline uses layout {LAYOUT}"
        )),
        (Ok(0), Ok(0)) if tables().is_ok_and(|count| count == 0) => {
            Found::Rebuild("it is empty".to_owned())
        }
        (Ok(other), Ok(_)) => Found::Refuse(format!(
            "it is not a Hookline control store (application id {other:#x}); \
             name another --control-store-path"
        )),
        (Err(error), _) | (_, Err(error)) => match damaged(&error) {
            true => Found::Rebuild(format!("SQLite cannot read it ({error})")),
            false => Found::Refuse(format!("it cannot be read ({error})")),
        },
    }
}

/// How an event or delivery id is kept in its column: a canonical UUID (the ids ingest gives)
/// as its 16 bytes, a delivery id (`msg_` and 32 hex digits) as a marker byte and its 16 bytes,
/// any other id as its text. Ids appear in a row and in its index, in several tables, so this
/// saves about a sixth of the store. Every query binds ids through it; the mapping is one to one
/// (the three forms differ in type or length).
pub fn id_key(id: &str) -> Value {
    if id.len() == 36
        && let Ok(uuid) = uuid::Uuid::parse_str(id)
        && uuid.hyphenated().to_string() == id
    {
        return Value::Blob(uuid.as_bytes().to_vec());
    }
    if let Some(hex) = id.strip_prefix("msg_")
        && hex.len() == 32
        && let Ok(uuid) = uuid::Uuid::parse_str(hex)
        && uuid.simple().to_string() == hex
    {
        let mut key = Vec::with_capacity(17);
        key.push(DELIVERY_MARKER);
        key.extend_from_slice(uuid.as_bytes());
        return Value::Blob(key);
    }
    Value::Text(id.to_owned())
}

/// The first byte of a delivery id's key.
const DELIVERY_MARKER: u8 = 1;

/// How an event or delivery id is kept in PostgreSQL (a `bytea` column): the key SQLite keeps
/// ([`id_key`]) behind a tag byte that tells its form, so that a text id can never equal
/// a UUID's bytes.
pub fn pg_key(id: &str) -> Vec<u8> {
    match id_key(id) {
        Value::Blob(bytes) => {
            let mut key = Vec::with_capacity(bytes.len() + 1);
            key.push(0);
            key.extend_from_slice(&bytes);
            key
        }
        Value::Text(_) | Value::Null | Value::Integer(_) | Value::Real(_) => {
            let mut key = Vec::with_capacity(id.len() + 1);
            key.push(1);
            key.extend_from_slice(id.as_bytes());
            key
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_short_when_they_can_be_and_never_collide() {
        let event = "0190f3c2-7d4e-7a10-9b2c-3f4e5d6c7b8a";
        assert!(matches!(id_key(event), Value::Blob(bytes) if bytes.len() == 16));
        let delivery = "msg_0190f3c27d4e7a109b2c3f4e5d6c7b8a";
        assert!(matches!(id_key(delivery), Value::Blob(bytes) if bytes.len() == 17));
        assert_ne!(id_key(event), id_key(delivery));
        // Not canonical: kept as written, so it can only match itself.
        for text in [
            "0190F3C2-7D4E-7A10-9B2C-3F4E5D6C7B8A",
            "0190f3c27d4e7a109b2c3f4e5d6c7b8a",
            "msg_0190F3C27D4E7A109B2C3F4E5D6C7B8A",
            "evt_42",
        ] {
            assert_eq!(id_key(text), Value::Text(text.to_owned()));
        }
    }
}
