//! Control's history in PostgreSQL (`--control-store-postgres`), for installations that want one
//! store shared by their control instances, and SQL access to it.
//!
//! The tables and indexes are those of the SQLite layout ([`super::schema`]), in a schema of
//! their own (`--control-store-postgres-schema`, default `hookline`), and the API's queries are
//! the same statements ([`super::query`], [`super::sql`]). What differs:
//!
//! - **Shared by several instances.** Each control instance reads every partition, as with
//!   SQLite, and offers every record; a unique index on each table's (partition, offset) keeps it
//!   once (`ON CONFLICT DO NOTHING`), and positions and activity only move forward (`greatest`).
//!   So any instance may stop, and a new one resumes from the positions they share. The
//!   rollups ([`super::rollup`]) count only the rows the insert returned (those this instance
//!   stored), in the same transaction, so a record is counted once however many offer it.
//! - **Written in sets.** A batch is one transaction with one `INSERT ... SELECT FROM unnest(...)`
//!   per record kind: a round trip per kind, not per record.
//! - **Budget by what was stored.** PostgreSQL reuses the space of deleted rows (autovacuum) but
//!   does not give it back, so the size budget counts the bytes the store wrote: bodies as
//!   packed, plus [`ROW_OVERHEAD`] per record for its other columns and index entries
//!   (measured by `hookline-bench store --postgres`). The tables' size on disk is exported too.
//! - **Durability like SQLite's.** The writer's session uses `synchronous_commit = off`: a crash
//!   of the server may lose the last transactions, never consistency; positions are in the same
//!   transactions as their records, so the lost records are read again.
//! - **A server away is waited for**: connections that broke are made again at their next use,
//!   and the reader retries a batch until the server takes it ([`transient`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::types::ToSql;
use postgres::{Client, GenericClient, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::info;

use super::activity::{Activities, LastActivity};
use super::bind::{Bind, dollars, postgres_params};
use super::codec::{Codec, Dictionaries, Family};
use super::error::{StoreError, transient};
use super::metrics::Size;
use super::pool::Pool;
use super::rollup::Tally;
use super::row::{RecordKind, Row};
use super::schema::{self, pg_key};

/// The layout of the PostgreSQL tables this build writes; tables of another layout are dropped
/// and made anew (the store is derived data: Kafka holds the truth). Layout 1 had no `rollups`.
pub const LAYOUT: i64 = 2;

/// Bytes counted per record besides its packed bodies: its other columns, tuple header and
/// index entries. Measured with `hookline-bench store --postgres` (the tables' size on disk
/// against the bodies' bytes, before any delete).
pub const ROW_OVERHEAD: i64 = 336;

/// Most records deleted in one transaction.
const DELETE_CHUNK: i64 = 20_000;

/// The advisory lock an instance holds while it shrinks the store (see [`Engine::shrink`]), with
/// the schema's name: one per store.
pub(crate) const SHRINK_LOCK: &str = "hookline control store shrink";

/// How long connecting may take before it is given up (and tried again later).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long unacknowledged data or a silent peer may hold a connection, unless the settings say
/// otherwise: a server whose host vanished must not hold a call (and control's shutdown) for the
/// 15 minutes TCP would otherwise take.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// A lent connection idle at least this long is checked before use.
const IDLE_CHECK_AFTER: Duration = Duration::from_secs(30);

/// How long that check may take.
const IDLE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The tables of a store, in the order they are dropped.
const TABLES: [&str; 11] = [
    "events",
    "rejected",
    "matches",
    "attempts",
    "dead",
    "positions",
    "activity",
    "counts",
    "dictionaries",
    "rollups",
    "store_layout",
];

/// A connection and the statements prepared on it.
pub struct PgClient {
    client: Client,
    statements: HashMap<String, Statement>,
    /// When it was last lent: a connection idle for long is checked before use, since one the
    /// server or a proxy dropped meanwhile still looks open until it is used.
    used: Instant,
}

impl PgClient {
    /// The connection.
    pub(crate) fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// `sql` (SQLite's numbered parameters) prepared on this connection, once.
    fn prepared(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&dollars(sql))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// The rows `sql` selects with `binds`.
    pub(crate) fn query(
        &mut self,
        sql: &str,
        binds: &[Bind],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let statement = self.prepared(sql)?;
        let params = postgres_params(binds);
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(AsRef::as_ref).collect();
        Ok(self.client.query(&statement, &params)?)
    }
}

/// The dictionaries of a PostgreSQL store.
pub struct PgDictionaries<'a, C: GenericClient>(pub &'a mut C);

impl<C: GenericClient> Dictionaries for PgDictionaries<'_, C> {
    fn stored(&mut self) -> Result<Vec<(i64, String, Vec<u8>)>, StoreError> {
        Ok(self
            .0
            .query(
                "SELECT id, family, bytes FROM dictionaries ORDER BY added",
                &[],
            )?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<_, postgres::Error>>()?)
    }

    fn exists(&mut self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .0
            .query_opt("SELECT 1 FROM dictionaries WHERE id = $1", &[&id])?
            .is_some())
    }

    fn add(&mut self, id: i64, family: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO dictionaries (id, family, bytes) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO NOTHING",
            &[&id, &family, &bytes],
        )?;
        Ok(())
    }

    fn bytes(&mut self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .0
            .query_opt("SELECT bytes FROM dictionaries WHERE id = $1", &[&id])?
            .map(|row| row.try_get(0))
            .transpose()?)
    }
}

/// Whether `error` is the connection's own failure, so the next call needs a new connection.
/// (An error the server answered, a deadlock say, leaves the connection usable.)
pub(crate) fn connection_failed(error: &StoreError) -> bool {
    matches!(error, StoreError::Postgres(error) if error.code().is_none() && transient(error))
}

/// A store in PostgreSQL: one writer connection and a few for queries, made when first needed
/// and again when they broke.
pub struct Engine {
    config: postgres::Config,
    tls: MakeRustlsConnect,
    schema: String,
    writer: Mutex<Option<PgClient>>,
    readers: Pool<PgClient>,
}

impl Engine {
    /// Connects to the database at `url`, makes the store's tables in `schema` when missing
    /// (or when they are of another layout), and loads the codec's dictionaries.
    pub fn open(url: &str, schema: &str, readers: usize) -> Result<(Self, Codec), StoreError> {
        if !valid_identifier(schema) {
            return Err(StoreError::PostgresSettings(format!(
                "the schema name {schema:?} is not a plain lowercase identifier \
                 (letters, digits and _, starting with a letter or _)"
            )));
        }
        let (url, wish) = take_tls_settings(url);
        let mut config: postgres::Config = url.parse().map_err(|error| {
            StoreError::PostgresSettings(format!("cannot read the connection settings: {error}"))
        })?;
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(SILENCE_TIMEOUT);
        }
        if !url.contains("keepalives_idle") {
            config.keepalives_idle(SILENCE_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("hookline-control");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let engine = Self {
            config,
            tls: MakeRustlsConnect::new(tls_config(&wish)?),
            schema: schema.to_owned(),
            writer: Mutex::new(None),
            readers: Pool::lazy(readers),
        };
        let codec = engine.with_writer(|writer| {
            prepare(writer.client(), &engine.schema)?;
            Codec::load(&mut PgDictionaries(writer.client()))
        })?;
        Ok((engine, codec))
    }

    /// The schema the store's tables are in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The connections queries are lent.
    pub(crate) fn readers(&self) -> &Pool<PgClient> {
        &self.readers
    }

    fn connect(&self, writer: bool) -> Result<PgClient, StoreError> {
        let mut client = self.config.connect(self.tls.clone())?;
        let session = if writer {
            "SET synchronous_commit = off"
        } else {
            "SET default_transaction_read_only = on"
        };
        client.batch_execute(&format!("SET search_path = \"{}\"; {session}", self.schema))?;
        Ok(PgClient {
            client,
            statements: HashMap::new(),
            used: Instant::now(),
        })
    }

    /// The connection in `slot`, made (again) when there is none or it broke.
    pub(crate) fn ready<'a>(
        &self,
        slot: &'a mut Option<PgClient>,
    ) -> Result<&'a mut PgClient, StoreError> {
        self.ready_as(slot, false)
    }

    fn ready_as<'a>(
        &self,
        slot: &'a mut Option<PgClient>,
        writer: bool,
    ) -> Result<&'a mut PgClient, StoreError> {
        let broken = slot.as_mut().is_some_and(|held| {
            held.client.is_closed()
                || (held.used.elapsed() >= IDLE_CHECK_AFTER
                    && held.client.is_valid(IDLE_CHECK_TIMEOUT).is_err())
        });
        if broken {
            *slot = None;
        }
        let client = match slot {
            Some(client) => client,
            None => slot.insert(self.connect(writer)?),
        };
        client.used = Instant::now();
        Ok(client)
    }

    /// Runs `work` on the writer's connection; a connection that broke on the way is made anew
    /// at the next call.
    pub(crate) fn with_writer<T>(
        &self,
        work: impl FnOnce(&mut PgClient) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = work(self.ready_as(&mut slot, true)?);
        if result.as_ref().is_err_and(connection_failed) {
            *slot = None;
        }
        result
    }

    /// Adds `rows` and moves the positions forward, in one transaction: see
    /// [`super::Store::insert`].
    pub fn insert(
        &self,
        codec: &Codec,
        max_payload: usize,
        rows: &[Row],
        positions: &[(&str, i32, i64)],
    ) -> Result<(), StoreError> {
        self.with_writer(|pg| {
            // Bodies are packed before the transaction: a dictionary trained on the way is
            // stored at once, so a frame never names one that a failed transaction took back.
            let mut sets = Vec::new();
            for kind in RecordKind::ALL {
                // In place order, so instances inserting the same records lock them in the same
                // order and never deadlock each other.
                let mut of_kind: Vec<&Row> = rows.iter().filter(|row| row.kind == kind).collect();
                of_kind.sort_by_key(|row| (row.partition, row.offset));
                if !of_kind.is_empty() {
                    let set = Columns::pack(codec, pg.client(), max_payload, &of_kind)?;
                    sets.push((kind, pg.prepared(&insert_sql(kind))?, set, of_kind));
                }
            }
            let mut transaction = pg.client.transaction()?;
            // Only the rows this transaction stored count toward the rollups: another instance
            // that stored a row first has counted it.
            let mut stored: Vec<&Row> = Vec::new();
            for (kind, statement, set, of_kind) in &sets {
                let inserted = transaction.query(statement, &set.params())?;
                let mut bytes = 0;
                let mut places = HashSet::with_capacity(inserted.len());
                for row in &inserted {
                    places.insert((row.try_get::<_, i32>(0)?, row.try_get::<_, i64>(1)?));
                    bytes += i64::from(row.try_get::<_, i32>(2)?);
                }
                stored.extend(
                    of_kind
                        .iter()
                        .filter(|row| places.contains(&(row.partition, row.offset))),
                );
                add_counts(&mut transaction, *kind, inserted.len() as i64, bytes)?;
            }
            add_rollups(&mut transaction, &Tally::of(stored))?;
            let mut positions = positions.to_vec();
            positions.sort_unstable();
            if !positions.is_empty() {
                let topics: Vec<&str> = positions.iter().map(|place| place.0).collect();
                let partitions: Vec<i32> = positions.iter().map(|place| place.1).collect();
                let nexts: Vec<i64> = positions.iter().map(|place| place.2).collect();
                transaction.execute(
                    "INSERT INTO positions (topic, partition, next)
                     SELECT * FROM unnest($1::text[], $2::int4[], $3::int8[])
                     ON CONFLICT (topic, partition)
                     DO UPDATE SET next = greatest(positions.next, excluded.next)",
                    &[&topics, &partitions, &nexts],
                )?;
            }
            let mut latest: Vec<_> = Activities::latest(rows).into_iter().collect();
            latest.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if !latest.is_empty() {
                let mut resources = Vec::new();
                let mut ids = Vec::new();
                let mut triggered = Vec::new();
                let mut delivered = Vec::new();
                for ((resource, id), last) in latest {
                    resources.push(resource);
                    ids.push(id);
                    triggered.push(last.triggered_ms);
                    delivered.push(last.delivered_ms);
                }
                // `greatest` skips nulls: a time only moves forward, whichever instance wrote.
                transaction.execute(
                    "INSERT INTO activity (resource, id, triggered_ms, delivered_ms)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[])
                     ON CONFLICT (resource, id) DO UPDATE SET
                     triggered_ms = greatest(activity.triggered_ms, excluded.triggered_ms),
                     delivered_ms = greatest(activity.delivered_ms, excluded.delivered_ms)",
                    &[&resources, &ids, &triggered, &delivered],
                )?;
            }
            transaction.commit()?;
            Ok(())
        })
    }

    /// See [`super::Store::claim`].
    pub fn claim(&self, installation: &str) -> Result<(), StoreError> {
        let holder: Option<String> = self.with_writer(|pg| {
            pg.client.execute(
                "UPDATE store_layout SET installation = $1 WHERE installation IS NULL",
                &[&installation],
            )?;
            Ok(pg
                .client
                .query_one("SELECT installation FROM store_layout", &[])?
                .try_get(0)?)
        })?;
        match holder {
            Some(holder) if holder != installation => Err(StoreError::PostgresSettings(format!(
                "the schema {} holds the history of the installation with topic prefix \
                     {holder:?}, not {installation:?}: give each installation its own \
                     --control-store-postgres-schema",
                self.schema
            ))),
            Some(_) | None => Ok(()),
        }
    }

    /// See [`super::Store::positions`].
    pub fn positions(&self) -> Result<HashMap<(String, i32), i64>, StoreError> {
        self.with_writer(|pg| {
            pg.client
                .query("SELECT topic, partition, next FROM positions", &[])?
                .iter()
                .map(|row| Ok(((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?)))
                .collect()
        })
    }

    /// See [`super::Store::activities`].
    pub fn activities(&self) -> Result<Vec<(String, String, LastActivity)>, StoreError> {
        self.with_writer(|pg| {
            pg.client
                .query(
                    "SELECT resource, id, triggered_ms, delivered_ms FROM activity",
                    &[],
                )?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get(0)?,
                        row.try_get(1)?,
                        LastActivity {
                            triggered_ms: row.try_get(2)?,
                            delivered_ms: row.try_get(3)?,
                        },
                    ))
                })
                .collect()
        })
    }

    /// See [`super::Store::forget`].
    pub fn forget(
        &self,
        kind: RecordKind,
        topic: &str,
        partition: i32,
    ) -> Result<usize, StoreError> {
        self.with_writer(|pg| {
            let mut transaction = pg.client.transaction()?;
            let records = delete_counted(&mut transaction, kind, "partition = $1", &[&partition])?;
            transaction.execute(
                "DELETE FROM positions WHERE topic = $1 AND partition = $2",
                &[&topic, &partition],
            )?;
            transaction.commit()?;
            Ok(records)
        })
    }

    /// The seq of the first record of `kind` at or after `cutoff_ms` (in the order stored), or
    /// past the last when there is none; `None` when the table is empty.
    pub(crate) fn first_kept(
        &self,
        kind: RecordKind,
        cutoff_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let table = schema::table(kind);
        self.with_writer(|pg| {
            let row = pg.client.query_one(
                &format!(
                    "SELECT coalesce(
                         (SELECT seq FROM {table} WHERE at_ms >= $1 ORDER BY seq LIMIT 1),
                         (SELECT max(seq) + 1 FROM {table}))"
                ),
                &[&cutoff_ms],
            )?;
            Ok(row.try_get(0)?)
        })
    }

    /// The first and last seq of `kind`'s records. Sequence numbers here may have gaps (a
    /// record another instance stored first still takes a number), so a share of the range is
    /// about that share of the records.
    pub(crate) fn seq_range(&self, kind: RecordKind) -> Result<Option<(i64, i64)>, StoreError> {
        let table = schema::table(kind);
        self.with_writer(|pg| {
            let row = pg
                .client
                .query_one(&format!("SELECT min(seq), max(seq) FROM {table}"), &[])?;
            Ok(row.try_get::<_, Option<i64>>(0)?.zip(row.try_get(1)?))
        })
    }

    /// The time of the first record of `kind` in the order stored.
    pub(crate) fn first_at_ms(&self, kind: RecordKind) -> Result<Option<i64>, StoreError> {
        let table = schema::table(kind);
        self.with_writer(|pg| {
            Ok(pg
                .client
                .query_opt(
                    &format!("SELECT at_ms FROM {table} ORDER BY seq LIMIT 1"),
                    &[],
                )?
                .map(|row| row.try_get(0))
                .transpose()?)
        })
    }

    /// This instance's turn to shrink the store, or `None` while another instance sharing it
    /// shrinks: they see the same size over budget, and the share must be deleted once, not
    /// once per instance.
    pub(crate) fn shrink_turn(&self) -> Result<Option<ShrinkTurn<'_>>, StoreError> {
        let taken = self.with_writer(|pg| {
            Ok(pg
                .client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))",
                    &[&SHRINK_LOCK, &self.schema],
                )?
                .try_get::<_, bool>(0)?)
        })?;
        Ok(taken.then_some(ShrinkTurn(self)))
    }

    /// Deletes the records of `kind` stored before `seq`, a chunk per transaction.
    pub(crate) fn delete_before(&self, kind: RecordKind, seq: i64) -> Result<usize, StoreError> {
        let table = schema::table(kind);
        let mut deleted = 0;
        loop {
            let chunk = self.with_writer(|pg| {
                let mut transaction = pg.client.transaction()?;
                let records = delete_counted(
                    &mut transaction,
                    kind,
                    &format!("seq < least($1, (SELECT min(seq) FROM {table}) + $2)"),
                    &[&seq, &DELETE_CHUNK],
                )?;
                transaction.commit()?;
                Ok(records)
            })?;
            deleted += chunk;
            if chunk == 0 {
                return Ok(deleted);
            }
        }
    }

    /// Deletes the rollups of grain `grain_ms` whose bucket starts before `before_ms`; see
    /// [`super::Store::prune_rollups`].
    pub(crate) fn prune_rollups(&self, grain_ms: i64, before_ms: i64) -> Result<usize, StoreError> {
        self.with_writer(|pg| {
            let deleted = pg.client.execute(
                "DELETE FROM rollups WHERE grain = $1 AND bucket < $2",
                &[&grain_ms, &before_ms],
            )?;
            Ok(usize::try_from(deleted).unwrap_or_default())
        })
    }

    /// See [`super::Store::counts`].
    pub fn counts(&self) -> Result<Vec<(RecordKind, i64)>, StoreError> {
        let counted = self.with_writer(|pg| {
            pg.client
                .query("SELECT kind, records FROM counts", &[])?
                .iter()
                .map(|row| Ok((row.try_get::<_, String>(0)?, row.try_get::<_, i64>(1)?)))
                .collect::<Result<HashMap<_, _>, StoreError>>()
        })?;
        Ok(RecordKind::ALL
            .into_iter()
            .map(|kind| {
                (
                    kind,
                    counted.get(kind.as_str()).copied().unwrap_or_default(),
                )
            })
            .collect())
    }

    /// See [`super::Store::size`]: what the store wrote (bodies and [`ROW_OVERHEAD`] per record)
    /// as used, the tables and indexes on disk as the file.
    pub fn size(&self) -> Result<Size, StoreError> {
        self.with_writer(|pg| {
            let used = pg.client.query_one(
                "SELECT coalesce(sum(bytes + records * $1), 0)::int8 FROM counts",
                &[&ROW_OVERHEAD],
            )?;
            let disk = pg.client.query_one(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relkind = 'r'",
                &[&self.schema],
            )?;
            let bytes = |row: &postgres::Row| -> Result<u64, StoreError> {
                Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or_default())
            };
            Ok(Size {
                used_bytes: bytes(&used)?,
                file_bytes: bytes(&disk)?,
            })
        })
    }
}

impl Drop for Engine {
    /// Closing a connection blocks on its own runtime, which may not happen on an async worker
    /// (where the last clone of a store may be dropped): the connections close on a thread of
    /// their own.
    fn drop(&mut self) {
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let readers = std::mem::take(
            self.readers
                .idle
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let (send, receive) = std::sync::mpsc::channel();
        let closing = std::thread::Builder::new()
            .name("postgres-close".to_owned())
            .spawn(move || drop(receive.recv()));
        match closing {
            Ok(_) => {
                let _ = send.send((writer, readers));
            }
            // No thread to be had: the connections are left open until the process ends.
            Err(_) => std::mem::forget((writer, readers)),
        }
    }
}

/// An instance's turn to shrink a shared store ([`Engine::shrink_turn`]); ends when dropped.
pub(crate) struct ShrinkTurn<'a>(&'a Engine);

impl Drop for ShrinkTurn<'_> {
    fn drop(&mut self) {
        let unlocked = self.0.with_writer(|pg| {
            pg.client.execute(
                "SELECT pg_advisory_unlock(hashtext($1), hashtext($2))",
                &[&SHRINK_LOCK, &self.0.schema],
            )?;
            Ok(())
        });
        // A connection that broke took the lock with it.
        if let Err(error) = unlocked {
            tracing::debug!(%error, "The shrink lock was not given back explicitly.");
        }
    }
}

/// Deletes the records of `kind` that `condition` selects (its parameters `params`) and takes
/// them and their bodies' bytes off the counts; returns how many.
fn delete_counted(
    transaction: &mut postgres::Transaction<'_>,
    kind: RecordKind,
    condition: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<usize, StoreError> {
    let row = transaction.query_one(
        &format!(
            "WITH gone AS (
                 DELETE FROM {} WHERE {condition}
                 RETURNING octet_length(doc) + coalesce(octet_length(payload), 0) AS bytes)
             SELECT count(*), coalesce(sum(bytes), 0)::int8 FROM gone",
            schema::table(kind)
        ),
        params,
    )?;
    let (records, bytes): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    add_counts(transaction, kind, -records, -bytes)?;
    Ok(usize::try_from(records).unwrap_or_default())
}

/// The columns of one kind's records in a batch, bodies packed, as `unnest` takes them.
struct Columns {
    partitions: Vec<i32>,
    positions: Vec<i64>,
    times: Vec<i64>,
    sources: Vec<Option<String>>,
    destinations: Vec<Option<String>>,
    triggers: Vec<Option<String>>,
    events: Vec<Option<Vec<u8>>>,
    deliveries: Vec<Option<Vec<u8>>>,
    outcomes: Vec<Option<String>>,
    docs: Vec<Vec<u8>>,
    payloads: Vec<Option<Vec<u8>>>,
    payload_sizes: Vec<Option<i64>>,
}

impl Columns {
    fn pack(
        codec: &Codec,
        client: &mut Client,
        max_payload: usize,
        rows: &[&Row],
    ) -> Result<Self, StoreError> {
        let mut columns = Self {
            partitions: Vec::with_capacity(rows.len()),
            positions: Vec::with_capacity(rows.len()),
            times: Vec::with_capacity(rows.len()),
            sources: Vec::with_capacity(rows.len()),
            destinations: Vec::with_capacity(rows.len()),
            triggers: Vec::with_capacity(rows.len()),
            events: Vec::with_capacity(rows.len()),
            deliveries: Vec::with_capacity(rows.len()),
            outcomes: Vec::with_capacity(rows.len()),
            docs: Vec::with_capacity(rows.len()),
            payloads: Vec::with_capacity(rows.len()),
            payload_sizes: Vec::with_capacity(rows.len()),
        };
        let mut dictionaries = PgDictionaries(client);
        for row in rows {
            columns.partitions.push(row.partition);
            columns.positions.push(row.offset);
            columns.times.push(row.at_ms);
            columns.sources.push(row.source_id.clone());
            columns.destinations.push(row.destination_id.clone());
            columns.triggers.push(row.trigger_id.clone());
            columns.events.push(row.event_id.as_deref().map(pg_key));
            columns
                .deliveries
                .push(row.delivery_id.as_deref().map(pg_key));
            columns.outcomes.push(row.outcome.clone());
            columns.docs.push(codec.pack(
                &mut dictionaries,
                Family::Doc(row.kind),
                row.doc.as_bytes(),
            )?);
            columns.payloads.push(
                row.payload
                    .as_deref()
                    .map(|payload| {
                        let kept = &payload[..payload.len().min(max_payload)];
                        codec.pack(&mut dictionaries, Family::Payload, kept)
                    })
                    .transpose()?,
            );
            columns
                .payload_sizes
                .push(row.payload.as_ref().map(|payload| payload.len() as i64));
        }
        Ok(columns)
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 12] {
        [
            &self.partitions,
            &self.positions,
            &self.times,
            &self.sources,
            &self.destinations,
            &self.triggers,
            &self.events,
            &self.deliveries,
            &self.outcomes,
            &self.docs,
            &self.payloads,
            &self.payload_sizes,
        ]
    }
}

/// The statement that inserts a batch of `kind`'s records, keeping a record stored before
/// (by this instance or another) as it is, and returns the place and the bodies' bytes of each
/// it stored.
fn insert_sql(kind: RecordKind) -> String {
    format!(
        "INSERT INTO {} (partition, position, at_ms, source_id, destination_id, trigger_id,
             event_id, delivery_id, outcome, doc, payload, payload_bytes)
         SELECT * FROM unnest(?1::int4[], ?2::int8[], ?3::int8[], ?4::text[], ?5::text[],
             ?6::text[], ?7::bytea[], ?8::bytea[], ?9::text[], ?10::bytea[], ?11::bytea[],
             ?12::int8[])
         ON CONFLICT (partition, position) DO NOTHING
         RETURNING partition, position, octet_length(doc) + coalesce(octet_length(payload), 0)",
        schema::table(kind)
    )
}

/// Adds `tally` to the rollups, in one statement; its rows are locked in key order.
fn add_rollups(client: &mut impl GenericClient, tally: &Tally) -> Result<(), StoreError> {
    if tally.is_empty() {
        return Ok(());
    }
    let mut grains = Vec::new();
    let mut buckets = Vec::new();
    let mut resources = Vec::new();
    let mut ids = Vec::new();
    let mut measures = Vec::new();
    let mut counts = Vec::new();
    for ((grain, bucket, resource, id, measure), count) in tally.entries() {
        grains.push(grain.ms());
        buckets.push(*bucket);
        resources.push(*resource);
        ids.push(id.as_str());
        measures.push(measure.as_str());
        counts.push(count);
    }
    client.execute(
        "INSERT INTO rollups (grain, bucket, resource, id, measure, count)
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[],
             $6::int8[])
         ON CONFLICT (grain, bucket, resource, id, measure)
         DO UPDATE SET count = rollups.count + excluded.count",
        &[&grains, &buckets, &resources, &ids, &measures, &counts],
    )?;
    Ok(())
}

/// Adds `records` and `bytes` (negative: takes away) to the counts of `kind`.
fn add_counts(
    client: &mut impl GenericClient,
    kind: RecordKind,
    records: i64,
    bytes: i64,
) -> Result<(), StoreError> {
    if records != 0 {
        client.execute(
            "UPDATE counts SET records = records + $2, bytes = bytes + $3 WHERE kind = $1",
            &[&kind.as_str(), &records, &bytes],
        )?;
    }
    Ok(())
}

/// Makes the store's schema and tables when missing, or anew when they are of another layout;
/// refuses a schema that holds tables of the same names that are not a store. Instances that
/// start together take turns (an advisory lock).
fn prepare(client: &mut Client, schema_name: &str) -> Result<(), StoreError> {
    let mut transaction = client.transaction()?;
    transaction.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&schema::APPLICATION_ID],
    )?;
    // Only when missing: CREATE SCHEMA needs a right on the database that an installation with
    // the schema made for it may not grant.
    let exists = transaction
        .query_opt(
            "SELECT 1 FROM pg_namespace WHERE nspname = $1",
            &[&schema_name],
        )?
        .is_some();
    if !exists {
        transaction.batch_execute(&format!("CREATE SCHEMA \"{schema_name}\""))?;
    }
    let found: Option<String> = transaction
        .query_one(
            "SELECT to_regclass($1)::text",
            &[&format!("\"{schema_name}\".store_layout")],
        )?
        .try_get(0)?;
    if found.is_some() {
        let row = transaction.query_one("SELECT application, layout FROM store_layout", &[])?;
        let (application, layout): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if application != schema::APPLICATION_ID {
            return Err(StoreError::PostgresSettings(format!(
                "the schema {schema_name} holds another application's tables; name another \
                 --control-store-postgres-schema"
            )));
        }
        if layout > LAYOUT {
            return Err(StoreError::PostgresSettings(format!(
                "the schema {schema_name} holds a store of layout {layout}, newer than this \
                 version's {LAYOUT}: run the newer version, or name another \
                 --control-store-postgres-schema"
            )));
        }
        if layout == LAYOUT {
            info!(
                schema = schema_name,
                "Control store opened in PostgreSQL; resuming where it stopped."
            );
            return Ok(transaction.commit()?);
        }
        info!(
            schema = schema_name,
            layout,
            current = LAYOUT,
            "Control store rebuilt from the topics: its PostgreSQL tables are of another layout."
        );
        transaction.batch_execute(&format!("DROP TABLE IF EXISTS {}", TABLES.join(", ")))?;
    } else {
        let names: Vec<&str> = TABLES.to_vec();
        let taken: i64 = transaction
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = ANY($2)",
                &[&schema_name, &names],
            )?
            .try_get(0)?;
        if taken > 0 {
            return Err(StoreError::PostgresSettings(format!(
                "the schema {schema_name} holds tables named as the store's ({}) that are not a \
                 Hookline store; name another --control-store-postgres-schema",
                TABLES.join(", ")
            )));
        }
        info!(
            schema = schema_name,
            "Control store created in PostgreSQL; it is filled from the topics."
        );
    }
    transaction.batch_execute(&create_sql())?;
    transaction.execute(
        "INSERT INTO store_layout (application, layout) VALUES ($1, $2)",
        &[&schema::APPLICATION_ID, &LAYOUT],
    )?;
    Ok(transaction.commit()?)
}

/// The tables and indexes of [`LAYOUT`]. Rollups are updated in place at every batch, and
/// every update leaves a dead row version behind: half-empty pages let an update that changes
/// only `count` stay on its page, without a new index entry, and be cleaned up there (a "HOT"
/// update), and autovacuum visits the small table often. (With full pages a day's fill at 12,000
/// events/s left 127 MB for 28,000 live rows.)
fn create_sql() -> String {
    let mut sql = String::new();
    for kind in RecordKind::ALL {
        let table = schema::table(kind);
        // Bodies are zstd frames already: PostgreSQL stores them without compressing again.
        sql.push_str(&format!(
            "CREATE TABLE {table} (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 partition integer NOT NULL, position bigint NOT NULL, at_ms bigint NOT NULL,
                 source_id text, destination_id text, trigger_id text, event_id bytea,
                 delivery_id bytea, outcome text, doc bytea NOT NULL, payload bytea,
                 payload_bytes bigint);
             ALTER TABLE {table} ALTER COLUMN doc SET STORAGE EXTERNAL,
                 ALTER COLUMN payload SET STORAGE EXTERNAL;
             CREATE UNIQUE INDEX {table}_by_place ON {table} (partition, position);\n"
        ));
    }
    for (kind, name, columns) in schema::INDEXES {
        // Every table has its unique index by place already.
        if *columns != "partition, position" {
            sql.push_str(&format!(
                "CREATE INDEX {name} ON {} ({columns});\n",
                schema::table(*kind)
            ));
        }
    }
    sql.push_str(
        "CREATE TABLE positions (topic text NOT NULL, partition integer NOT NULL,
             next bigint NOT NULL, PRIMARY KEY (topic, partition));
         CREATE TABLE activity (resource text NOT NULL, id text NOT NULL, triggered_ms bigint,
             delivered_ms bigint, PRIMARY KEY (resource, id));
         CREATE TABLE counts (kind text PRIMARY KEY, records bigint NOT NULL,
             bytes bigint NOT NULL);
         CREATE TABLE dictionaries (id bigint PRIMARY KEY, family text NOT NULL,
             bytes bytea NOT NULL, added bigint GENERATED ALWAYS AS IDENTITY);
         CREATE TABLE rollups (grain bigint NOT NULL, bucket bigint NOT NULL,
             resource text NOT NULL, id text NOT NULL, measure text NOT NULL,
             count bigint NOT NULL, PRIMARY KEY (grain, bucket, resource, id, measure))
             WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.02,
                   autovacuum_vacuum_threshold = 1000);
         CREATE TABLE store_layout (application bigint NOT NULL, layout bigint NOT NULL,
             installation text);\n",
    );
    for kind in RecordKind::ALL {
        sql.push_str(&format!(
            "INSERT INTO counts VALUES ('{}', 0, 0);\n",
            kind.as_str()
        ));
    }
    sql
}

/// Whether `name` can be used as a schema name as written (no quoting rules to get wrong).
fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// What the connection settings ask of TLS beyond what the client reads itself: libpq's
/// `sslmode=verify-ca` or `verify-full` (the server's certificate is checked) and `sslrootcert`
/// (a CA file to trust besides the system's).
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsWish {
    verify: bool,
    root_cert: Option<String>,
}

/// Takes libpq's TLS settings the client does not read out of `settings` (a URL or key=value
/// pairs): a `verify-*` mode becomes `require`, with [`TlsWish::verify`] set.
fn take_tls_settings(settings: &str) -> (String, TlsWish) {
    let mut wish = TlsWish::default();
    let mut keep = |key: &str, value: &str| -> Option<String> {
        match (key, value) {
            ("sslmode", "verify-ca" | "verify-full") => {
                wish.verify = true;
                Some("require".to_owned())
            }
            ("sslrootcert", path) => {
                wish.root_cert = Some(path.to_owned());
                None
            }
            (_, value) => Some(value.to_owned()),
        }
    };
    if settings.starts_with("postgres://") || settings.starts_with("postgresql://") {
        let Ok(mut url) = url::Url::parse(settings) else {
            return (settings.to_owned(), wish);
        };
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter_map(|(key, value)| Some((key.to_string(), keep(&key, &value)?)))
            .collect();
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return (url.to_string(), wish);
    }
    let kept: Vec<String> = settings
        .split_whitespace()
        .filter_map(|pair| match pair.split_once('=') {
            Some((key, value)) => Some(format!("{key}={}", keep(key, value)?)),
            None => Some(pair.to_owned()),
        })
        .collect();
    (kept.join(" "), wish)
}

/// TLS for connections whose settings ask for it, as libpq does: `sslmode=prefer` (the
/// default) and `require` encrypt without checking the server's certificate; `verify-ca` and
/// `verify-full` check it (against the system's roots and `sslrootcert`, host name included).
fn tls_config(wish: &TlsWish) -> Result<rustls::ClientConfig, StoreError> {
    let tls_error = |error: rustls::Error| StoreError::PostgresSettings(format!("TLS: {error}"));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    if !wish.verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth());
    }
    let mut extra = Vec::new();
    if let Some(path) = &wish.root_cert {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let unreadable = |error: &dyn std::fmt::Display| {
            StoreError::PostgresSettings(format!("cannot read sslrootcert {path}: {error}"))
        };
        for certificate in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
            extra.push(certificate.map_err(|e| unreadable(&e))?);
        }
    }
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
        .map_err(tls_error)?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// libpq's `prefer` and `require`: the connection is encrypted and the handshake's signatures
/// checked, but the certificate is not (use `verify-full` for that).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_form_apart() {
        let uuid = "0190f3c2-7d4e-7a10-9b2c-3f4e5d6c7b8a";
        assert_eq!(pg_key(uuid).len(), 17);
        assert_eq!(pg_key(uuid)[0], 0);
        // A 16-character text id whose bytes could be a UUID's still differs by its tag.
        let text = "abcdefghijklmnop";
        assert_eq!(pg_key(text)[0], 1);
        assert_ne!(pg_key(text)[1..], pg_key(uuid)[1..]);
        assert_eq!(pg_key("msg_0190f3c27d4e7a109b2c3f4e5d6c7b8a").len(), 18);
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_identifier("hookline"));
        assert!(valid_identifier("_history_2"));
        for bad in ["", "Hookline", "2x", "a-b", "a\"b", "a;drop"] {
            assert!(!valid_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn libpq_tls_settings_the_client_does_not_read_are_taken_out() {
        let (url, wish) = take_tls_settings(
            "postgres://u:p@db.example:5432/h?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        );
        assert_eq!(
            url,
            "postgres://u:p@db.example:5432/h?sslmode=require&application_name=x"
        );
        assert_eq!(
            wish,
            TlsWish {
                verify: true,
                root_cert: Some("/ca.pem".to_owned())
            }
        );
        let (url, wish) = take_tls_settings("postgres://u@h/db?sslrootcert=/ca.pem");
        assert_eq!(url, "postgres://u@h/db");
        assert!(!wish.verify);
        let (settings, wish) = take_tls_settings("host=h dbname=d sslmode=verify-ca");
        assert_eq!(settings, "host=h dbname=d sslmode=require");
        assert!(wish.verify);
        let (settings, wish) = take_tls_settings("host=h sslmode=disable");
        assert_eq!(settings, "host=h sslmode=disable");
        assert_eq!(wish, TlsWish::default());
        // What the client reads parses after the change.
        for settings in [
            "postgres://u@h/db?sslmode=verify-full",
            "host=h sslmode=verify-ca",
        ] {
            assert!(
                take_tls_settings(settings)
                    .0
                    .parse::<postgres::Config>()
                    .is_ok()
            );
        }
    }
}
