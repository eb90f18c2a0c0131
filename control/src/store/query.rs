//! The questions the API asks the store. Each runs on one connection, off the async workers
//! ([`super::Store::run`]).

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row as SqlRow, params, params_from_iter};

use super::page::{Cursor, Window};
use super::{RecordKind, StoreError};

/// A stored record, as queries return it.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// Which topic it came from (the kind's name).
    pub kind: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub position: i64,
    /// Its time, Unix milliseconds.
    pub at_ms: i64,
    /// The record as JSON.
    pub doc: String,
    /// The event's raw value, when asked for.
    pub payload: Option<Vec<u8>>,
}

impl Stored {
    /// The cursor of a page that ends with this record.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at_ms: self.at_ms,
            kind: self.kind.clone(),
            partition: self.partition,
            position: self.position,
        }
    }

    /// The record's JSON, parsed.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.doc).unwrap_or_default()
    }
}

/// Which records a list shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Of these kinds.
    pub kinds: Vec<RecordKind>,
    /// Of this source.
    pub source_id: Option<String>,
    /// Of this destination.
    pub destination_id: Option<String>,
    /// With this outcome (attempts), reason (dead letters) or code (refusals).
    pub outcome: Option<String>,
    /// Of this event.
    pub event_id: Option<String>,
}

/// One page, newest first, and the cursor of the next one.
#[derive(Clone, Debug)]
pub struct Page {
    /// The records.
    pub items: Vec<Stored>,
    /// Where the next page starts; `None` on the last.
    pub next: Option<Cursor>,
}

const COLUMNS: &str = "kind, partition, position, at_ms, doc";

fn stored(row: &SqlRow<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        kind: row.get(0)?,
        partition: row.get(1)?,
        position: row.get(2)?,
        at_ms: row.get(3)?,
        doc: row.get(4)?,
        payload: None,
    })
}

/// The page of records `filter` and `window` select, newest first.
pub fn page(connection: &Connection, filter: &Filter, window: &Window) -> Result<Page, StoreError> {
    let mut conditions = Vec::new();
    if !filter.kinds.is_empty() {
        // Fixed names from the code, never from the client.
        let kinds: Vec<String> = filter
            .kinds
            .iter()
            .map(|kind| format!("'{}'", kind.as_str()))
            .collect();
        conditions.push(format!("kind IN ({})", kinds.join(", ")));
    }
    let mut values: Vec<SqlValue> = Vec::new();
    let mut bind = |condition: &str, value: SqlValue| {
        values.push(value);
        conditions.push(condition.replace('?', &format!("?{}", values.len())));
    };
    for (column, value) in [
        ("source_id", &filter.source_id),
        ("destination_id", &filter.destination_id),
        ("outcome", &filter.outcome),
        ("event_id", &filter.event_id),
    ] {
        if let Some(value) = value {
            bind(&format!("{column} = ?"), SqlValue::Text(value.clone()));
        }
    }
    if let Some(since) = window.since_ms {
        bind("at_ms >= ?", SqlValue::Integer(since));
    }
    if let Some(until) = window.until_ms {
        bind("at_ms < ?", SqlValue::Integer(until));
    }
    if let Some(after) = &window.after {
        values.extend([
            SqlValue::Integer(after.at_ms),
            SqlValue::Text(after.kind.clone()),
            SqlValue::Integer(i64::from(after.partition)),
            SqlValue::Integer(after.position),
        ]);
        let n = values.len();
        conditions.push(format!(
            "(at_ms, kind, partition, position) < (?{}, ?{}, ?{}, ?{n})",
            n - 3,
            n - 2,
            n - 1
        ));
    }
    let mut sql = format!("SELECT {COLUMNS} FROM records");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    // One more than the page, to know whether another page follows.
    values.push(SqlValue::Integer(
        i64::try_from(window.limit).unwrap_or(i64::MAX) + 1,
    ));
    sql.push_str(&format!(
        " ORDER BY at_ms DESC, kind DESC, partition DESC, position DESC LIMIT ?{}",
        values.len()
    ));
    let mut statement = connection.prepare_cached(&sql)?;
    let mut items = statement
        .query_map(params_from_iter(values), stored)?
        .collect::<Result<Vec<_>, _>>()?;
    let more = items.len() > window.limit;
    items.truncate(window.limit);
    let next = items.last().filter(|_| more).map(Stored::cursor);
    Ok(Page { items, next })
}

/// Every record of an event's journey (the event, its match record, attempts and dead
/// letters), oldest first, with the event's payload.
pub fn journey(connection: &Connection, event_id: &str) -> Result<Vec<Stored>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {COLUMNS}, payload FROM records WHERE event_id = ?1
         ORDER BY at_ms, kind, partition, position"
    ))?;
    let rows = statement.query_map([event_id], |row| {
        let mut record = stored(row)?;
        record.payload = row.get(5)?;
        Ok(record)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The match outcome (`delivered`, `no_trigger`, ...) of each of these events that has a match
/// record.
pub fn match_outcomes(
    connection: &Connection,
    event_ids: &[String],
) -> Result<std::collections::HashMap<String, String>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT outcome FROM records WHERE event_id = ?1 AND kind = 'match'
         ORDER BY at_ms DESC LIMIT 1",
    )?;
    let mut outcomes = std::collections::HashMap::new();
    for id in event_ids {
        if let Some(outcome) = statement
            .query_row([id], |row| row.get::<_, String>(0))
            .optional()?
        {
            outcomes.insert(id.clone(), outcome);
        }
    }
    Ok(outcomes)
}

/// The newest attempt record of a delivery.
pub fn latest_attempt(
    connection: &Connection,
    delivery_id: &str,
) -> Result<Option<Stored>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM records WHERE delivery_id = ?1 AND kind = 'attempt'
         ORDER BY at_ms DESC, partition DESC, position DESC LIMIT 1"
    ))?;
    Ok(statement.query_row([delivery_id], stored).optional()?)
}

/// The record of `kind` at this place on its topic.
pub fn at(
    connection: &Connection,
    kind: RecordKind,
    partition: i32,
    position: i64,
) -> Result<Option<Stored>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {COLUMNS}, payload FROM records WHERE kind = ?1 AND partition = ?2 AND position = ?3"
    ))?;
    Ok(statement
        .query_row(params![kind.as_str(), partition, position], |row| {
            let mut record = stored(row)?;
            record.payload = row.get(5)?;
            Ok(record)
        })
        .optional()?)
}

/// Whether an attempt of `delivery_id` that finished at or after `since_ms` delivered it.
pub fn delivered_since(
    connection: &Connection,
    delivery_id: &str,
    since_ms: i64,
) -> Result<bool, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT 1 FROM records WHERE delivery_id = ?1 AND kind = 'attempt'
         AND outcome = 'delivered' AND at_ms >= ?2 LIMIT 1",
    )?;
    Ok(statement.exists(rusqlite::params![delivery_id, since_ms])?)
}

/// The stored event with this id, with its payload.
pub fn event(connection: &Connection, event_id: &str) -> Result<Option<Stored>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {COLUMNS}, payload FROM records WHERE event_id = ?1 AND kind = 'event'
         ORDER BY at_ms LIMIT 1"
    ))?;
    Ok(statement
        .query_row([event_id], |row| {
            let mut record = stored(row)?;
            record.payload = row.get(5)?;
            Ok(record)
        })
        .optional()?)
}
