//! The questions the API asks the store. Each runs on one connection, off the async workers
//! ([`super::Store::run`]).

use super::bind::Bind;
use super::error::StoreError;
use super::page::{Cursor, Window};
use super::row::RecordKind;
use super::schema;
use super::sql::{Database, Fetched};

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
    /// The event's raw value when asked for: whole, or its first bytes when it was larger than
    /// the store keeps (see [`Self::payload_complete`]).
    pub payload: Option<Vec<u8>>,
    /// The size of the event's raw value as received.
    pub payload_bytes: Option<usize>,
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

    /// Whether [`Self::payload`] holds the whole value.
    pub fn payload_complete(&self) -> bool {
        match (&self.payload, self.payload_bytes) {
            (Some(payload), Some(size)) => payload.len() >= size,
            (Some(_) | None, None) | (None, Some(_)) => false,
        }
    }

    /// The order of lists, newest first: time, kind, place on the topic.
    fn key(&self) -> (i64, &str, i32, i64) {
        (self.at_ms, &self.kind, self.partition, self.position)
    }
}

/// Which records a list shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Of these kinds (every kind when empty).
    pub kinds: Vec<RecordKind>,
    /// Of this source.
    pub source_id: Option<String>,
    /// Of this destination.
    pub destination_id: Option<String>,
    /// With this outcome (attempts), reason (dead letters) or code (refusals).
    pub outcome: Option<String>,
    /// Of this event.
    pub event_id: Option<String>,
    /// With the event's payload (events only).
    pub with_payload: bool,
}

/// One page, newest first, and the cursor of the next one.
#[derive(Clone, Debug)]
pub struct Page {
    /// The records.
    pub items: Vec<Stored>,
    /// Where the next page starts; `None` on the last.
    pub next: Option<Cursor>,
}

const COLUMNS: &str = "partition, position, at_ms, doc, payload_bytes";
const WITH_PAYLOAD: &str = "partition, position, at_ms, doc, payload_bytes, payload";

/// A row of [`COLUMNS`] (and `payload` when it was asked for) of a table of `kind`, unpacked.
fn stored(
    database: &Database<'_>,
    kind: RecordKind,
    fetched: Fetched,
) -> Result<Stored, StoreError> {
    let doc = database.unpack(&fetched.doc)?;
    let payload = fetched
        .payload
        .map(|frame| database.unpack(&frame))
        .transpose()?;
    Ok(Stored {
        kind: kind.as_str().to_owned(),
        partition: fetched.partition,
        position: fetched.position,
        at_ms: fetched.at_ms,
        doc: String::from_utf8_lossy(&doc).into_owned(),
        payload,
        payload_bytes: fetched
            .payload_bytes
            .and_then(|size| usize::try_from(size).ok()),
    })
}

/// The records `sql` selects from the table of `kind`, unpacked.
fn select(
    database: &Database<'_>,
    kind: RecordKind,
    sql: &str,
    binds: &[Bind],
    with_payload: bool,
) -> Result<Vec<Stored>, StoreError> {
    database
        .records(sql, binds, with_payload)?
        .into_iter()
        .map(|fetched| stored(database, kind, fetched))
        .collect()
}

/// The page of records `filter` and `window` select, newest first: the newest of each kind
/// asked for, merged.
pub fn page(
    connection: &Database<'_>,
    filter: &Filter,
    window: &Window,
) -> Result<Page, StoreError> {
    let kinds = if filter.kinds.is_empty() {
        RecordKind::ALL.to_vec()
    } else {
        filter.kinds.clone()
    };
    let mut items = Vec::new();
    for kind in kinds {
        items.extend(page_of(connection, kind, filter, window)?);
    }
    items.sort_by(|a, b| b.key().cmp(&a.key()));
    let more = items.len() > window.limit;
    items.truncate(window.limit);
    let next = items.last().filter(|_| more).map(Stored::cursor);
    Ok(Page { items, next })
}

/// Up to one more than a page of records of `kind`, newest first. Each filter names a column
/// that leads an index of the kind's table, so the page is read from the index in order.
fn page_of(
    connection: &Database<'_>,
    kind: RecordKind,
    filter: &Filter,
    window: &Window,
) -> Result<Vec<Stored>, StoreError> {
    let mut conditions = Vec::new();
    let mut values: Vec<Bind> = Vec::new();
    // Each `#` of a condition becomes the number of the next value bound.
    let mut bind = |condition: &str, bound: Vec<Bind>| {
        let mut numbered = String::new();
        let mut bound = bound.into_iter();
        for (index, part) in condition.split('#').enumerate() {
            if index > 0
                && let Some(value) = bound.next()
            {
                values.push(value);
                numbered.push_str(&format!("?{}", values.len()));
            }
            numbered.push_str(part);
        }
        conditions.push(numbered);
    };
    for (column, value) in [
        ("source_id", &filter.source_id),
        ("destination_id", &filter.destination_id),
        ("outcome", &filter.outcome),
    ] {
        if let Some(value) = value {
            bind(&format!("{column} = #"), vec![Bind::Text(value.clone())]);
        }
    }
    if let Some(event_id) = &filter.event_id {
        bind("event_id = #", vec![Bind::Id(event_id.clone())]);
    }
    if let Some(since) = window.since_ms {
        bind("at_ms >= #", vec![Bind::Int(since)]);
    }
    if let Some(until) = window.until_ms {
        bind("at_ms < #", vec![Bind::Int(until)]);
    }
    if let Some(after) = &window.after {
        // Records after the cursor in (time, kind, partition, offset) order, newest first.
        let at = Bind::Int(after.at_ms);
        match kind.as_str().cmp(after.kind.as_str()) {
            std::cmp::Ordering::Less => bind("at_ms <= #", vec![at]),
            std::cmp::Ordering::Greater => bind("at_ms < #", vec![at]),
            std::cmp::Ordering::Equal => bind(
                "(at_ms, partition, position) < (#, #, #)",
                vec![
                    at,
                    Bind::Partition(after.partition),
                    Bind::Int(after.position),
                ],
            ),
        }
    }
    let with_payload = filter.with_payload && kind == RecordKind::Event;
    let columns = if with_payload { WITH_PAYLOAD } else { COLUMNS };
    let mut sql = format!("SELECT {columns} FROM {}", schema::table(kind));
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    // One more than the page, to know whether another page follows.
    values.push(Bind::Int(
        i64::try_from(window.limit).unwrap_or(i64::MAX) + 1,
    ));
    sql.push_str(&format!(
        " ORDER BY at_ms DESC, partition DESC, position DESC LIMIT ?{}",
        values.len()
    ));
    select(connection, kind, &sql, &values, with_payload)
}

/// Every record of an event's journey (the event, its match record, attempts and dead
/// letters), oldest first, with the event's payload.
pub fn journey(connection: &Database<'_>, event_id: &str) -> Result<Vec<Stored>, StoreError> {
    let mut records = Vec::new();
    for kind in [
        RecordKind::Event,
        RecordKind::Match,
        RecordKind::Attempt,
        RecordKind::Dead,
    ] {
        let with_payload = kind == RecordKind::Event;
        let columns = if with_payload { WITH_PAYLOAD } else { COLUMNS };
        records.extend(select(
            connection,
            kind,
            &format!(
                "SELECT {columns} FROM {} WHERE event_id = ?1",
                schema::table(kind)
            ),
            &[Bind::Id(event_id.to_owned())],
            with_payload,
        )?);
    }
    records.sort_by(|a, b| a.key().cmp(&b.key()));
    Ok(records)
}

/// The newest match record of an event, if it has one.
pub fn match_record(
    connection: &Database<'_>,
    event_id: &str,
) -> Result<Option<Stored>, StoreError> {
    Ok(select(
        connection,
        RecordKind::Match,
        &format!(
            "SELECT {COLUMNS} FROM matches WHERE event_id = ?1
             ORDER BY at_ms DESC, partition DESC, position DESC LIMIT 1"
        ),
        &[Bind::Id(event_id.to_owned())],
        false,
    )?
    .pop())
}

/// The match outcome (`delivered`, `no_trigger`, ...) of each of these events that has a match
/// record.
pub fn match_outcomes(
    connection: &Database<'_>,
    event_ids: &[String],
) -> Result<std::collections::HashMap<String, String>, StoreError> {
    let mut outcomes = std::collections::HashMap::new();
    for id in event_ids {
        if let Some(outcome) = connection.text(
            "SELECT outcome FROM matches WHERE event_id = ?1 ORDER BY at_ms DESC LIMIT 1",
            &[Bind::Id(id.clone())],
        )? {
            outcomes.insert(id.clone(), outcome);
        }
    }
    Ok(outcomes)
}

/// The newest attempt record of delivery `delivery_id` of event `event_id`. (Attempts are
/// found by their event, which has few; no index by delivery id is kept.)
pub fn latest_attempt(
    connection: &Database<'_>,
    event_id: &str,
    delivery_id: &str,
) -> Result<Option<Stored>, StoreError> {
    Ok(select(
        connection,
        RecordKind::Attempt,
        &format!(
            "SELECT {COLUMNS} FROM attempts WHERE event_id = ?1 AND delivery_id = ?2
             ORDER BY at_ms DESC, partition DESC, position DESC LIMIT 1"
        ),
        &[
            Bind::Id(event_id.to_owned()),
            Bind::Id(delivery_id.to_owned()),
        ],
        false,
    )?
    .pop())
}

/// The record of `kind` at this place on its topic (dead letters, which are named by it).
pub fn dead_at(
    connection: &Database<'_>,
    partition: i32,
    position: i64,
) -> Result<Option<Stored>, StoreError> {
    Ok(select(
        connection,
        RecordKind::Dead,
        &format!("SELECT {COLUMNS} FROM dead WHERE partition = ?1 AND position = ?2 LIMIT 1"),
        &[Bind::Partition(partition), Bind::Int(position)],
        false,
    )?
    .pop())
}

/// Whether an attempt of delivery `delivery_id` of event `event_id` that finished at or after
/// `since_ms` delivered it.
pub fn delivered_since(
    connection: &Database<'_>,
    event_id: &str,
    delivery_id: &str,
    since_ms: i64,
) -> Result<bool, StoreError> {
    connection.exists(
        "SELECT 1 FROM attempts WHERE event_id = ?1 AND delivery_id = ?2 AND at_ms >= ?3
         AND outcome = 'delivered' LIMIT 1",
        &[
            Bind::Id(event_id.to_owned()),
            Bind::Id(delivery_id.to_owned()),
            Bind::Int(since_ms),
        ],
    )
}

/// The stored event with this id, with its payload.
pub fn event(connection: &Database<'_>, event_id: &str) -> Result<Option<Stored>, StoreError> {
    Ok(select(
        connection,
        RecordKind::Event,
        &format!(
            "SELECT {WITH_PAYLOAD} FROM events WHERE event_id = ?1
             ORDER BY at_ms, partition, position LIMIT 1"
        ),
        &[Bind::Id(event_id.to_owned())],
        true,
    )?
    .pop())
}

/// The time and outcome of destination `destination_id`'s newest attempt (read backwards from
/// the index by destination and time: one row, however many attempts it has).
pub fn last_attempt(
    connection: &Database<'_>,
    destination_id: &str,
) -> Result<Option<(i64, Option<String>)>, StoreError> {
    connection.time_and_text(
        "SELECT at_ms, outcome FROM attempts WHERE destination_id = ?1
         ORDER BY at_ms DESC LIMIT 1",
        &[Bind::Text(destination_id.to_owned())],
    )
}
