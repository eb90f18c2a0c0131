//! The control plane's embedded store of what happened: events (metadata and payload), refused
//! requests, match records, attempts and dead letters, kept for a retention window and within a
//! size budget.
//!
//! - [`schema`]: the tables, their indexes, and how a file is recognised as a store of this layout.
//! - [`codec`]: record bodies as zstd frames.
//! - [`row`]: a Kafka record as the row the store keeps.
//! - [`activity`]: when each resource was last triggered and delivered to.
//! - [`rollup`]: per-minute and per-hour counts and duration histograms of each destination and
//!   source, written with the records, for the statistics routes.
//! - [`metrics`]: the store's size, lag and readiness.
//! - [`origin`]: whole payloads read back from the events topic when the store kept their start.
//! - [`reader`]: the task that reads the topics into the store and reports its lag.
//! - [`query`]: the questions the API asks (an event's journey, pages of attempts, ...).
//! - [`page`]: time filters and cursors shared by the lists.
//! - [`search`]: events searched by what became of them and by payload text, bounded.
//! - [`sql`]: the connection queries run on, SQLite's or PostgreSQL's, and the rows they read.
//! - [`bind`]: values bound to queries, and their SQL as each engine reads it.
//! - [`postgres`]: the store in PostgreSQL, shared by control instances.
//! - [`pool`]: connections lent one per query.
//! - [`error`]: why the store failed, and which failures pass by themselves.
//!
//! **Why SQLite (rusqlite, `bundled`).** The API asks filtered, time-ranged, paged questions
//! ("attempts of destination X that failed since T, newest first, 50 at a time") and joins by
//! event and delivery id. That is what a relational engine with secondary indexes answers well;
//! a key-value store (sled, redb, fjall) would need hand-built indexes for every filter. SQLite is
//! the most used and tested embedded database, maintained for decades; `bundled` compiles the
//! library into the binary, so no system package is needed.
//!
//! **On disk by default.** `hookline control` keeps the store in a file (WAL mode: one writer, and
//! readers that never wait for it), which survives restarts: every batch of records is written in
//! one transaction with the next offset of each partition it came from, so a restart resumes
//! where the last run stopped, and history answers at once. A file of another layout, or one that
//! SQLite finds corrupt, is deleted and rebuilt from the topics (the store is derived data: Kafka
//! holds the truth). `hookline dev` keeps it in memory.
//!
//! Each control instance keeps its own copy; two instances agree once both have read the topics.

pub mod activity;
pub mod bind;
pub mod codec;
pub mod error;
pub mod metrics;
pub mod origin;
pub mod page;
pub mod pool;
pub mod postgres;
pub mod query;
pub mod reader;
pub mod rollup;
pub mod row;
pub mod schema;
pub mod search;
pub mod sql;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tracing::info;

pub use activity::{Activities, LastActivity};
use codec::{Codec, Family, SqliteDictionaries};
pub use error::StoreError;
pub use metrics::Size;
use pool::{Lent, Pool};
pub use row::{Activity, RecordKind, Row};
pub use sql::Database;

/// Where the store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// In memory: rebuilt from the topics at every start.
    Memory,
    /// In this file, kept across restarts.
    File(PathBuf),
    /// In a PostgreSQL database, which several control instances may share.
    Postgres {
        /// Its connection URL or key=value settings, as libpq takes them.
        url: String,
        /// The schema the store's tables are in (made when missing).
        schema: String,
    },
}

/// Connections that answer queries beside the writer (file stores only).
const READERS: usize = 4;
/// Most records deleted in one transaction, so inserts and queries never wait long.
const DELETE_CHUNK: i64 = 20_000;

/// The store. Cheap to clone; every clone is the same database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    codec: Codec,
    engine: Engine,
    max_payload_bytes: usize,
}

/// The database the store is kept in.
enum Engine {
    Sqlite(Sqlite),
    Postgres(Box<postgres::Engine>),
}

/// A store in SQLite: in memory, or in a file.
struct Sqlite {
    writer: Mutex<Connection>,
    readers: Option<Pool<Connection>>,
    /// The file and its lock, held while the store is open.
    file: Option<(PathBuf, std::fs::File)>,
}

impl Sqlite {
    /// The writer's connection (the only one of a store in memory).
    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (statements are atomic).
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Store");
        match &self.inner.engine {
            Engine::Sqlite(sqlite) => {
                debug.field("file", &sqlite.file.as_ref().map(|(path, _)| path));
            }
            Engine::Postgres(postgres) => {
                debug.field("postgres_schema", &postgres.schema());
            }
        }
        debug.finish_non_exhaustive()
    }
}

const MEMORY_PRAGMAS: &str = "
PRAGMA journal_mode = MEMORY;
PRAGMA synchronous = OFF;
PRAGMA temp_store = MEMORY;
";

// WAL: queries read beside the writer. `synchronous = NORMAL` may lose the last transactions on
// a power cut, never consistency: positions are in the same transactions as their records, so
// the lost ones are read again.
const FILE_PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA journal_size_limit = 67108864;
PRAGMA cache_size = -32768;
PRAGMA temp_store = MEMORY;
PRAGMA busy_timeout = 10000;
";

const READER_PRAGMAS: &str = "
PRAGMA cache_size = -16384;
PRAGMA temp_store = MEMORY;
PRAGMA busy_timeout = 10000;
PRAGMA query_only = ON;
";

impl Store {
    /// An empty store in memory, keeping payloads whole.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::open(&Location::Memory, usize::MAX)
    }

    /// The store at `location`. A file of this layout is opened as it is, to resume where it
    /// stopped; a file of another layout, or one SQLite cannot read, is deleted and made anew (and
    /// a log line says why). Payloads above `max_payload_bytes` keep only their first bytes.
    pub fn open(location: &Location, max_payload_bytes: usize) -> Result<Self, StoreError> {
        let sqlite = |writer: Connection, readers, file| -> Result<Self, StoreError> {
            Ok(Self {
                inner: Arc::new(Inner {
                    codec: Codec::load(&mut SqliteDictionaries(&writer))?,
                    engine: Engine::Sqlite(Sqlite {
                        writer: Mutex::new(writer),
                        readers,
                        file,
                    }),
                    max_payload_bytes,
                }),
            })
        };
        match location {
            Location::Memory => {
                let connection = Connection::open_in_memory()?;
                connection.execute_batch(MEMORY_PRAGMAS)?;
                schema::create(&connection)?;
                sqlite(connection, None, None)
            }
            Location::File(path) => {
                let held = lock(path)?;
                let writer = open_file(path)?;
                let readers = (0..READERS)
                    .map(|_| {
                        let reader = Connection::open_with_flags(
                            path,
                            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                        )?;
                        reader.execute_batch(READER_PRAGMAS)?;
                        Ok(reader)
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                sqlite(writer, Some(Pool::new(readers)), Some((path.clone(), held)))
            }
            Location::Postgres { url, schema } => {
                let (engine, codec) = postgres::Engine::open(url, schema, READERS)?;
                Ok(Self {
                    inner: Arc::new(Inner {
                        codec,
                        engine: Engine::Postgres(Box::new(engine)),
                        max_payload_bytes,
                    }),
                })
            }
        }
    }

    /// Runs the query `work` off the async workers, on a reader connection when the store has
    /// them (so it never waits for a write), else on the writer's. On PostgreSQL a query whose
    /// connection turns out broken (the server restarted since it was last used) is asked once
    /// more on a new connection.
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Database<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        let free = match &self.inner.engine {
            Engine::Sqlite(sqlite) => sqlite.readers.as_ref().map(|readers| &readers.free),
            Engine::Postgres(postgres) => Some(&postgres.readers().free),
        };
        let permit = match free {
            Some(free) => Some(
                free.clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| StoreError::Panicked)?,
            ),
            None => None,
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let codec = &store.inner.codec;
            match &store.inner.engine {
                Engine::Sqlite(sqlite) => match &sqlite.readers {
                    Some(readers) => {
                        let lent = Lent::take(readers);
                        work(&Database::sqlite(lent.connection(), codec))
                    }
                    None => work(&Database::sqlite(&sqlite.lock(), codec)),
                },
                Engine::Postgres(postgres) => {
                    let mut lent = Lent::take(postgres.readers());
                    let client = postgres.ready(lent.slot())?;
                    match work(&Database::postgres(client, codec)) {
                        Err(error) if postgres::connection_failed(&error) => {
                            *lent.slot() = None;
                            let client = postgres.ready(lent.slot())?;
                            work(&Database::postgres(client, codec))
                        }
                        answer => answer,
                    }
                }
            }
        })
        .await
        .map_err(|_| StoreError::Panicked)?
    }

    /// Runs the query `work` on the writer's connection, in this thread.
    pub fn ask<T>(
        &self,
        work: impl FnOnce(&Database<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let codec = &self.inner.codec;
        match &self.inner.engine {
            Engine::Sqlite(sqlite) => work(&Database::sqlite(&sqlite.lock(), codec)),
            Engine::Postgres(postgres) => {
                postgres.with_writer(|client| work(&Database::postgres(client, codec)))
            }
        }
    }

    /// Adds `rows` and moves each partition's position to the offset after the last record
    /// read from it (`positions`: topic, partition, next offset), in one transaction.
    pub fn insert(&self, rows: &[Row], positions: &[(&str, i32, i64)]) -> Result<(), StoreError> {
        let max_payload = self.inner.max_payload_bytes;
        let codec = &self.inner.codec;
        let sqlite = match &self.inner.engine {
            Engine::Sqlite(sqlite) => sqlite,
            Engine::Postgres(postgres) => {
                return postgres.insert(codec, max_payload, rows, positions);
            }
        };
        let mut connection = sqlite.lock();
        let transaction = connection.transaction()?;
        let mut added: HashMap<RecordKind, i64> = HashMap::new();
        for row in rows {
            let mut insert = transaction.prepare_cached(&format!(
                "INSERT INTO {} (partition, position, at_ms, source_id, destination_id, trigger_id,
                 event_id, delivery_id, outcome, doc, payload, payload_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                schema::table(row.kind)
            ))?;
            let mut dictionaries = SqliteDictionaries(&transaction);
            let payload = row
                .payload
                .as_deref()
                .map(|payload| {
                    let kept = &payload[..payload.len().min(max_payload)];
                    codec.pack(&mut dictionaries, Family::Payload, kept)
                })
                .transpose()?;
            let doc = codec.pack(&mut dictionaries, Family::Doc(row.kind), row.doc.as_bytes())?;
            insert.execute(params![
                row.partition,
                row.offset,
                row.at_ms,
                row.source_id,
                row.destination_id,
                row.trigger_id,
                row.event_id.as_deref().map(schema::id_key),
                row.delivery_id.as_deref().map(schema::id_key),
                row.outcome,
                doc,
                payload,
                row.payload.as_ref().map(|payload| payload.len() as i64),
            ])?;
            *added.entry(row.kind).or_default() += 1;
        }
        for (kind, records) in added {
            count(&transaction, kind, records)?;
        }
        {
            let mut position = transaction.prepare_cached(
                "INSERT INTO positions VALUES (?1, ?2, ?3)
                 ON CONFLICT (topic, partition) DO UPDATE SET next = excluded.next",
            )?;
            for (topic, partition, next) in positions {
                position.execute(params![topic, partition, next])?;
            }
            let mut activity = transaction.prepare_cached(
                "INSERT INTO activity VALUES (?1, ?2, ?3, ?4) ON CONFLICT (resource, id) DO UPDATE SET
                 triggered_ms = max(coalesce(triggered_ms, excluded.triggered_ms),
                                    coalesce(excluded.triggered_ms, triggered_ms)),
                 delivered_ms = max(coalesce(delivered_ms, excluded.delivered_ms),
                                    coalesce(excluded.delivered_ms, delivered_ms))",
            )?;
            for ((resource, id), last) in Activities::latest(rows) {
                activity.execute(params![resource, id, last.triggered_ms, last.delivered_ms])?;
            }
            // One writer: every row offered is stored, so all of them count.
            let mut rollup = transaction.prepare_cached(
                "INSERT INTO rollups VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (grain, bucket, resource, id, measure)
                 DO UPDATE SET count = count + excluded.count",
            )?;
            for ((grain, bucket, resource, id, measure), count) in rollup::Tally::of(rows).entries()
            {
                rollup.execute(params![grain.ms(), bucket, resource, id, measure, count])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// Marks the store as the history of the installation whose topics have this prefix, or
    /// refuses when it holds another's: a PostgreSQL schema that two installations share would
    /// mix their records (their offsets collide). A SQLite store is one instance's own.
    pub fn claim(&self, installation: &str) -> Result<(), StoreError> {
        match &self.inner.engine {
            Engine::Sqlite(_) => Ok(()),
            Engine::Postgres(postgres) => postgres.claim(installation),
        }
    }

    /// The next offset to read of every partition read before: (topic, partition) to offset.
    pub fn positions(&self) -> Result<HashMap<(String, i32), i64>, StoreError> {
        let sqlite = match &self.inner.engine {
            Engine::Sqlite(sqlite) => sqlite,
            Engine::Postgres(postgres) => return postgres.positions(),
        };
        let connection = sqlite.lock();
        let mut statement = connection.prepare("SELECT topic, partition, next FROM positions")?;
        let positions = statement
            .query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(positions)
    }

    /// The last activity of every resource, as stored: (resource, id, activity).
    pub fn activities(&self) -> Result<Vec<(String, String, LastActivity)>, StoreError> {
        let sqlite = match &self.inner.engine {
            Engine::Sqlite(sqlite) => sqlite,
            Engine::Postgres(postgres) => return postgres.activities(),
        };
        let connection = sqlite.lock();
        let mut statement =
            connection.prepare("SELECT resource, id, triggered_ms, delivered_ms FROM activity")?;
        let activities = statement
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    LastActivity {
                        triggered_ms: row.get(2)?,
                        delivered_ms: row.get(3)?,
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(activities)
    }

    /// Deletes, in each table, the records stored before its first one at or after `cutoff_ms`;
    /// returns how many. (Records are stored in about the order of their times; one that came
    /// late goes with the records stored around it.)
    pub fn purge(&self, cutoff_ms: i64) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for kind in RecordKind::ALL {
            let first_kept = match &self.inner.engine {
                Engine::Sqlite(sqlite) => sqlite.first_kept(kind, cutoff_ms)?,
                Engine::Postgres(postgres) => postgres.first_kept(kind, cutoff_ms)?,
            };
            if let Some(first_kept) = first_kept {
                deleted += self.delete_before(kind, first_kept)?;
            }
        }
        Ok(deleted)
    }

    /// Deletes the rollups older than their grain keeps them ([`rollup::Grain::keep_ms`]) at
    /// `now_ms`; returns how many rows. (Rollups outlive the records they counted when the
    /// retention window is shorter than a day, and go with their buckets, not with them.)
    pub fn prune_rollups(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for grain in rollup::Grain::ALL {
            let before = grain.bucket(now_ms - grain.keep_ms());
            deleted += match &self.inner.engine {
                Engine::Sqlite(sqlite) => sqlite.lock().execute(
                    "DELETE FROM rollups WHERE grain = ?1 AND bucket < ?2",
                    [grain.ms(), before],
                )?,
                Engine::Postgres(postgres) => postgres.prune_rollups(grain.ms(), before)?,
            };
        }
        Ok(deleted)
    }

    /// Deletes the records of `kind` read from `partition` of `topic`, and its position: that
    /// partition now holds other records at those offsets (a topic made anew). Returns how many.
    pub fn forget(
        &self,
        kind: RecordKind,
        topic: &str,
        partition: i32,
    ) -> Result<usize, StoreError> {
        let sqlite = match &self.inner.engine {
            Engine::Sqlite(sqlite) => sqlite,
            Engine::Postgres(postgres) => return postgres.forget(kind, topic, partition),
        };
        let mut connection = sqlite.lock();
        let transaction = connection.transaction()?;
        let deleted = transaction.execute(
            &format!("DELETE FROM {} WHERE partition = ?1", schema::table(kind)),
            [partition],
        )?;
        count(&transaction, kind, -(deleted as i64))?;
        transaction.execute(
            "DELETE FROM positions WHERE topic = ?1 AND partition = ?2",
            params![topic, partition],
        )?;
        transaction.commit()?;
        Ok(deleted)
    }

    /// Deletes the oldest `fraction` (0 to 1) of each table's records; returns how many. On
    /// PostgreSQL, nothing while another instance sharing the store shrinks it.
    pub fn shrink(&self, fraction: f64) -> Result<usize, StoreError> {
        let _turn = match &self.inner.engine {
            Engine::Sqlite(_) => None,
            Engine::Postgres(postgres) => match postgres.shrink_turn()? {
                Some(turn) => Some(turn),
                None => return Ok(0),
            },
        };
        let mut deleted = 0;
        for kind in RecordKind::ALL {
            let range = match &self.inner.engine {
                Engine::Sqlite(sqlite) => sqlite.seq_range(kind)?,
                Engine::Postgres(postgres) => postgres.seq_range(kind)?,
            };
            if let Some((first, last)) = range {
                // Each record takes the next sequence number and deletes take the oldest, so a
                // share of the range is about that share of the records.
                let span = (last - first + 1) as f64;
                let boundary = first + (span * fraction.clamp(0.0, 1.0)).ceil() as i64;
                deleted += self.delete_before(kind, boundary)?;
            }
        }
        Ok(deleted)
    }

    /// Deletes the records of `kind` stored before `seq`, a chunk per transaction.
    fn delete_before(&self, kind: RecordKind, seq: i64) -> Result<usize, StoreError> {
        match &self.inner.engine {
            Engine::Sqlite(sqlite) => sqlite.delete_before(kind, seq),
            Engine::Postgres(postgres) => postgres.delete_before(kind, seq),
        }
    }

    /// How many records of each kind the store holds.
    pub fn counts(&self) -> Result<Vec<(RecordKind, i64)>, StoreError> {
        let sqlite = match &self.inner.engine {
            Engine::Sqlite(sqlite) => sqlite,
            Engine::Postgres(postgres) => return postgres.counts(),
        };
        let connection = sqlite.lock();
        let mut statement =
            connection.prepare_cached("SELECT records FROM counts WHERE kind = ?1")?;
        RecordKind::ALL
            .into_iter()
            .map(|kind| {
                let count: i64 = statement.query_row([kind.as_str()], |row| row.get(0))?;
                Ok((kind, count))
            })
            .collect()
    }

    /// The space the store takes.
    pub fn size(&self) -> Result<Size, StoreError> {
        let sqlite = match &self.inner.engine {
            Engine::Sqlite(sqlite) => sqlite,
            Engine::Postgres(postgres) => return postgres.size(),
        };
        let connection = sqlite.lock();
        let pragma = |name: &str| {
            connection
                .query_row(&format!("PRAGMA {name}"), [], |row| row.get::<_, i64>(0))
                .map(|value| u64::try_from(value).unwrap_or_default())
        };
        let page_size = pragma("page_size")?;
        let pages = pragma("page_count")?;
        let free = pragma("freelist_count")?;
        Ok(Size {
            used_bytes: pages.saturating_sub(free) * page_size,
            file_bytes: pages * page_size,
        })
    }

    /// The time of the first record each table still holds (in the order they were stored, so
    /// about the oldest), the earliest of them; Unix milliseconds.
    pub fn oldest_ms(&self) -> Result<Option<i64>, StoreError> {
        let mut oldest: Option<i64> = None;
        for kind in RecordKind::ALL {
            let first = match &self.inner.engine {
                Engine::Sqlite(sqlite) => sqlite.first_at_ms(kind)?,
                Engine::Postgres(postgres) => postgres.first_at_ms(kind)?,
            };
            oldest = match (oldest, first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(oldest)
    }

    /// Deletes the database files (a damaged store), so the next start rebuilds it. The open
    /// connections go on working on the deleted file until the process ends.
    pub fn discard(&self) -> Result<(), StoreError> {
        match &self.inner.engine {
            Engine::Sqlite(Sqlite {
                file: Some((path, _)),
                ..
            }) => remove_database(path),
            // Only SQLite says a database is damaged; PostgreSQL keeps its own.
            Engine::Sqlite(Sqlite { file: None, .. }) | Engine::Postgres(_) => Ok(()),
        }
    }
}

impl Sqlite {
    /// See [`postgres::Engine::first_kept`]. (`NOT INDEXED`: the first match in stored order
    /// is near the start, which the rowid order finds at once.)
    fn first_kept(&self, kind: RecordKind, cutoff_ms: i64) -> Result<Option<i64>, StoreError> {
        let table = schema::table(kind);
        Ok(self.lock().query_row(
            &format!(
                "SELECT coalesce(
                     (SELECT seq FROM {table} NOT INDEXED WHERE at_ms >= ?1 ORDER BY seq LIMIT 1),
                     (SELECT max(seq) + 1 FROM {table}))"
            ),
            [cutoff_ms],
            |row| row.get(0),
        )?)
    }

    /// The first and last seq of `kind`'s records (dense here: deletes take the oldest).
    fn seq_range(&self, kind: RecordKind) -> Result<Option<(i64, i64)>, StoreError> {
        let table = schema::table(kind);
        Ok(self.lock().query_row(
            &format!("SELECT min(seq), max(seq) FROM {table}"),
            [],
            |row| Ok(row.get::<_, Option<i64>>(0)?.zip(row.get(1)?)),
        )?)
    }

    /// The time of the first record of `kind` in the order stored.
    fn first_at_ms(&self, kind: RecordKind) -> Result<Option<i64>, StoreError> {
        let table = schema::table(kind);
        Ok(self
            .lock()
            .query_row(
                &format!("SELECT at_ms FROM {table} ORDER BY seq LIMIT 1"),
                [],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Deletes the records of `kind` stored before `seq`, a chunk per transaction.
    fn delete_before(&self, kind: RecordKind, seq: i64) -> Result<usize, StoreError> {
        let table = schema::table(kind);
        let mut deleted = 0;
        loop {
            let mut connection = self.lock();
            let transaction = connection.transaction()?;
            let chunk = transaction.execute(
                &format!(
                    "DELETE FROM {table} WHERE seq < min(?1, (SELECT min(seq) FROM {table}) + ?2)"
                ),
                [seq, DELETE_CHUNK],
            )?;
            count(&transaction, kind, -(chunk as i64))?;
            transaction.commit()?;
            deleted += chunk;
            if chunk == 0 {
                return Ok(deleted);
            }
        }
    }
}

/// Adds `records` (negative: takes away) to the count of `kind`.
fn count(connection: &Connection, kind: RecordKind, records: i64) -> Result<(), StoreError> {
    connection
        .prepare_cached("UPDATE counts SET records = records + ?2 WHERE kind = ?1")?
        .execute(params![kind.as_str(), records])?;
    Ok(())
}

/// Opens the writer's connection on the store file at `path`: the file as it is when it is a
/// store of this layout, else a new one.
fn open_file(path: &Path) -> Result<Connection, StoreError> {
    if path.exists() {
        let found = match Connection::open(path) {
            Ok(connection) => match schema::judge(&connection) {
                schema::Found::Usable => {
                    connection.execute_batch(FILE_PRAGMAS)?;
                    info!(path = %path.display(), "Control store opened; resuming where it stopped.");
                    return Ok(connection);
                }
                found @ (schema::Found::Rebuild(_) | schema::Found::Refuse(_)) => found,
            },
            Err(error) if error::damaged(&error) => {
                schema::Found::Rebuild(format!("SQLite cannot open it ({error})"))
            }
            Err(error) => return Err(error.into()),
        };
        match found {
            schema::Found::Rebuild(reason) => {
                info!(path = %path.display(), %reason,
                      "Control store rebuilt from the topics: the file there is not one this version can use.");
                remove_database(path)?;
            }
            schema::Found::Refuse(reason) => {
                return Err(StoreError::Foreign {
                    path: path.display().to_string(),
                    reason,
                });
            }
            schema::Found::Usable => {}
        }
    } else {
        info!(path = %path.display(), "Control store created; it is filled from the topics.");
    }
    let connection = Connection::open(path)?;
    connection.execute_batch(FILE_PRAGMAS)?;
    schema::create(&connection)?;
    Ok(connection)
}

/// Makes the store's directory and takes the lock file beside the store at `path` for this
/// process's lifetime: two control instances on one file would store every record twice and
/// overwrite each other's positions.
fn lock(path: &Path) -> Result<std::fs::File, StoreError> {
    if let Some(directory) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(directory).map_err(|source| StoreError::File {
            path: directory.display().to_string(),
            source,
        })?;
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| StoreError::File {
            path: lock_path.display().to_string(),
            source,
        })?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::Foreign {
            path: path.display().to_string(),
            reason: "another control instance uses it; give each instance its own \
                     --data-dir or --control-store-path"
                .to_owned(),
        }),
        Err(errno) => Err(StoreError::File {
            path: lock_path.display().to_string(),
            source: errno.into(),
        }),
    }
}

/// Deletes a database file and its WAL and shared-memory files.
fn remove_database(path: &Path) -> Result<(), StoreError> {
    let mut files = vec![path.to_owned()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    for file in files {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::File {
                    path: file.display().to_string(),
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
pub(crate) mod rollup_tests;
