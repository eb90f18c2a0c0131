//! The control plane's embedded store of what happened: events (metadata and payload), refused
//! requests, match records, attempts and dead letters, kept for a retention window and rebuilt
//! from their topics at every start.
//!
//! - [`row`]: a Kafka record as the row the store keeps.
//! - [`activity`]: when each resource was last triggered and delivered to.
//! - [`metrics`]: the store's size, lag and readiness.
//! - [`reader`]: the task that reads the topics into the store and reports its lag.
//! - [`query`]: the questions the API asks (an event's journey, pages of attempts, ...).
//! - [`page`]: time filters and cursors shared by the lists.
//!
//! **Why SQLite (rusqlite, `bundled`).** The API asks filtered, time-ranged, paged questions
//! ("attempts of destination X that failed since T, newest first, 50 at a time") and joins by
//! event and delivery id. That is what a relational engine with secondary indexes answers well;
//! a key-value store (sled, redb, fjall) would need hand-built indexes for every filter. SQLite is
//! the most used and tested embedded database, maintained for decades; `bundled` compiles the
//! library into the binary, so no system package is needed. The store is derived data: Kafka holds
//! the truth, so the database lives in memory by default (or in a file that is deleted and
//! rebuilt at start, `--control-store-path`), and a lost store costs a re-read, nothing more.
//!
//! Each control instance keeps its own copy; two instances agree once both have read the topics.

pub mod activity;
pub mod metrics;
pub mod page;
pub mod query;
pub mod reader;
pub mod row;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, params};

pub use activity::{Activities, LastActivity};
pub use row::{Activity, RecordKind, Row};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("store database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database file could not be replaced at start.
    #[error("cannot replace the store file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task of the store panicked.
    #[error("a store task panicked")]
    Panicked,
}

const SCHEMA: &str = "
PRAGMA journal_mode = MEMORY;
PRAGMA synchronous = OFF;
PRAGMA temp_store = MEMORY;
CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    partition INTEGER NOT NULL,
    position INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    source_id TEXT,
    destination_id TEXT,
    trigger_id TEXT,
    event_id TEXT,
    delivery_id TEXT,
    outcome TEXT,
    doc TEXT NOT NULL,
    payload BLOB,
    UNIQUE (kind, partition, position)
);
CREATE INDEX records_by_source ON records (source_id, kind, at_ms);
CREATE INDEX records_by_destination ON records (destination_id, kind, at_ms);
CREATE INDEX records_by_kind ON records (kind, at_ms);
CREATE INDEX records_by_event ON records (event_id);
CREATE INDEX records_by_delivery ON records (delivery_id);
CREATE INDEX records_by_time ON records (at_ms);
";

/// The store. Cheap to clone; every clone is the same database.
#[derive(Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// An empty store in memory.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::with(Connection::open_in_memory()?)
    }

    /// An empty store in the file at `path`; a file left from an earlier run is deleted first,
    /// since the store is rebuilt from the topics anyway.
    pub fn in_file(path: &Path) -> Result<Self, StoreError> {
        for stale in [path.to_owned(), path.with_extension("db-journal")] {
            match std::fs::remove_file(&stale) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::File {
                        path: stale.display().to_string(),
                        source,
                    });
                }
            }
        }
        Self::with(Connection::open(path)?)
    }

    fn with(connection: Connection) -> Result<Self, StoreError> {
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (statements are atomic).
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `work` on the database off the async workers.
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store.lock()))
            .await
            .map_err(|_| StoreError::Panicked)?
    }

    /// Adds `rows` in one transaction; rows read before (same topic, partition and offset) are
    /// ignored, so reading a record twice stores it once.
    pub fn insert(&self, rows: &[Row]) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        {
            let mut insert = transaction.prepare_cached(
                "INSERT OR IGNORE INTO records (kind, partition, position, at_ms, source_id,
                 destination_id, trigger_id, event_id, delivery_id, outcome, doc, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for row in rows {
                insert.execute(params![
                    row.kind.as_str(),
                    row.partition,
                    row.offset,
                    row.at_ms,
                    row.source_id,
                    row.destination_id,
                    row.trigger_id,
                    row.event_id,
                    row.delivery_id,
                    row.outcome,
                    row.doc,
                    row.payload,
                ])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// Deletes the records older than `cutoff_ms`; returns how many.
    pub fn purge(&self, cutoff_ms: i64) -> Result<usize, StoreError> {
        Ok(self
            .lock()
            .execute("DELETE FROM records WHERE at_ms < ?1", [cutoff_ms])?)
    }

    /// Deletes the oldest records (in the order they were stored) beyond the newest `max`;
    /// returns how many.
    pub fn cap(&self, max: u64) -> Result<usize, StoreError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        Ok(self.lock().execute(
            "DELETE FROM records WHERE seq <= (SELECT max(seq) FROM records) - ?1",
            [max],
        )?)
    }

    /// How many records of each kind the store holds.
    pub fn counts(&self) -> Result<Vec<(RecordKind, i64)>, StoreError> {
        let connection = self.lock();
        let mut statement =
            connection.prepare_cached("SELECT count(*) FROM records WHERE kind = ?1")?;
        RecordKind::ALL
            .into_iter()
            .map(|kind| {
                let count: i64 = statement.query_row([kind.as_str()], |row| row.get(0))?;
                Ok((kind, count))
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
