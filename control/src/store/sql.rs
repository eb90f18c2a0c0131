//! What queries run on: one connection of the store, SQLite's or PostgreSQL's, and its codec.
//!
//! The queries of [`super::query`] are written once ([`super::bind`]) and read their rows
//! through the few shapes here, so the API asks the same questions of either engine.

use std::cell::RefCell;

use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::bind::Bind;
use super::codec::{Codec, SqliteDictionaries};
use super::error::StoreError;
use super::postgres::{PgClient, PgDictionaries};

/// A record's row as read: `partition, position, at_ms, doc, payload_bytes[, payload]`, bodies
/// still packed.
#[derive(Debug)]
pub struct Fetched {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub position: i64,
    /// Its time, Unix milliseconds.
    pub at_ms: i64,
    /// The packed JSON document.
    pub doc: Vec<u8>,
    /// The size of the event's raw value.
    pub payload_bytes: Option<i64>,
    /// The packed payload, when it was asked for and is kept.
    pub payload: Option<Vec<u8>>,
}

/// A connection of the store and its codec: what queries run on.
pub struct Database<'a> {
    link: Link<'a>,
    codec: &'a Codec,
}

enum Link<'a> {
    Sqlite(&'a Connection),
    Postgres(RefCell<&'a mut PgClient>),
}

impl<'a> Database<'a> {
    pub(crate) fn sqlite(connection: &'a Connection, codec: &'a Codec) -> Self {
        Self {
            link: Link::Sqlite(connection),
            codec,
        }
    }

    pub(crate) fn postgres(client: &'a mut PgClient, codec: &'a Codec) -> Self {
        Self {
            link: Link::Postgres(RefCell::new(client)),
            codec,
        }
    }

    /// The SQLite connection, when the store is in SQLite (for tests that look at its tables).
    pub fn sqlite_connection(&self) -> Option<&Connection> {
        match &self.link {
            Link::Sqlite(connection) => Some(connection),
            Link::Postgres(_) => None,
        }
    }

    /// The bytes of a body the store packed.
    pub fn unpack(&self, frame: &[u8]) -> Result<Vec<u8>, StoreError> {
        match &self.link {
            Link::Sqlite(connection) => self
                .codec
                .unpack(&mut SqliteDictionaries(connection), frame),
            Link::Postgres(client) => {
                let mut client = client.borrow_mut();
                self.codec
                    .unpack(&mut PgDictionaries(client.client()), frame)
            }
        }
    }

    /// The rows `sql` selects, whose columns are `partition, position, at_ms, doc,
    /// payload_bytes` and, `with_payload`, `payload`.
    pub fn records(
        &self,
        sql: &str,
        binds: &[Bind],
        with_payload: bool,
    ) -> Result<Vec<Fetched>, StoreError> {
        match &self.link {
            Link::Sqlite(connection) => {
                let mut statement = connection.prepare_cached(sql)?;
                let rows = statement
                    .query_map(params_from_iter(binds.iter().map(Bind::sqlite)), |row| {
                        Ok(Fetched {
                            partition: row.get(0)?,
                            position: row.get(1)?,
                            at_ms: row.get(2)?,
                            doc: row.get(3)?,
                            payload_bytes: row.get(4)?,
                            payload: if with_payload { row.get(5)? } else { None },
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            }
            Link::Postgres(client) => {
                let rows = client.borrow_mut().query(sql, binds)?;
                rows.iter()
                    .map(|row| {
                        Ok(Fetched {
                            partition: row.try_get(0)?,
                            position: row.try_get(1)?,
                            at_ms: row.try_get(2)?,
                            doc: row.try_get(3)?,
                            payload_bytes: row.try_get(4)?,
                            payload: if with_payload { row.try_get(5)? } else { None },
                        })
                    })
                    .collect()
            }
        }
    }

    /// The text in the first column of the first row `sql` selects.
    pub fn text(&self, sql: &str, binds: &[Bind]) -> Result<Option<String>, StoreError> {
        match &self.link {
            Link::Sqlite(connection) => Ok(connection
                .prepare_cached(sql)?
                .query_row(params_from_iter(binds.iter().map(Bind::sqlite)), |row| {
                    row.get(0)
                })
                .optional()?),
            Link::Postgres(client) => {
                let rows = client.borrow_mut().query(sql, binds)?;
                Ok(rows.first().map(|row| row.try_get(0)).transpose()?)
            }
        }
    }

    /// The rows `sql` selects, whose columns are two texts and an integer (`id, measure,
    /// count` of the rollups).
    pub fn sums(
        &self,
        sql: &str,
        binds: &[Bind],
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        match &self.link {
            Link::Sqlite(connection) => Ok(connection
                .prepare_cached(sql)?
                .query_map(params_from_iter(binds.iter().map(Bind::sqlite)), |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?),
            Link::Postgres(client) => client
                .borrow_mut()
                .query(sql, binds)?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect(),
        }
    }

    /// The integer and the text in the first two columns of the first row `sql` selects
    /// (a time and an outcome).
    pub fn time_and_text(
        &self,
        sql: &str,
        binds: &[Bind],
    ) -> Result<Option<(i64, Option<String>)>, StoreError> {
        match &self.link {
            Link::Sqlite(connection) => Ok(connection
                .prepare_cached(sql)?
                .query_row(params_from_iter(binds.iter().map(Bind::sqlite)), |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?),
            Link::Postgres(client) => {
                let rows = client.borrow_mut().query(sql, binds)?;
                Ok(rows
                    .first()
                    .map(|row| Ok::<_, StoreError>((row.try_get(0)?, row.try_get(1)?)))
                    .transpose()?)
            }
        }
    }

    /// Whether `sql` selects a row.
    pub fn exists(&self, sql: &str, binds: &[Bind]) -> Result<bool, StoreError> {
        match &self.link {
            Link::Sqlite(connection) => Ok(connection
                .prepare_cached(sql)?
                .exists(params_from_iter(binds.iter().map(Bind::sqlite)))?),
            Link::Postgres(client) => Ok(!client.borrow_mut().query(sql, binds)?.is_empty()),
        }
    }
}
