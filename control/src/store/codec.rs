//! How the store packs record bodies: every `doc` and `payload` is one zstd frame, made with a
//! dictionary trained on the store's own records once there are enough of them.
//!
//! Records are small (a match record is ~500 bytes of JSON, an event's metadata ~300) and share
//! most of their text: field names, ids' shapes, the payloads' structure. Compressed one by one
//! they shrink by about half; with a dictionary trained on a few thousand of their kind, by three
//! to five times (`hookline-bench store` measures it). Each family (one per record kind for
//! `doc`, one for payloads) collects its first [`SAMPLES`] bodies, trains a dictionary, keeps it
//! in the `dictionaries` table (in the transaction of the records that first use it) and uses it
//! from then on. A frame names its dictionary's id, so reading needs nothing else; frames made
//! before a dictionary existed carry none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{Connection, OptionalExtension, params};
use tracing::{debug, info};
use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::DecoderDictionary;

use super::error::StoreError;
use super::row::RecordKind;

/// zstd's level: 1, its fastest; with a dictionary, level 3 made frames no smaller on the
/// store's records (`hookline-bench store`).
const LEVEL: i32 = 1;
/// Most bytes of one body kept as a training sample: a dictionary helps the start of a body most,
/// and 4,000 samples of a 1 MB payload would take 4 GB.
const SAMPLE_BYTES: usize = 16 * 1024;
/// Bodies a family collects before it trains its dictionary.
const SAMPLES: usize = 4_000;
/// Most bytes of a dictionary (zstd advises about a hundredth of the samples' size).
const DICTIONARY_BYTES: usize = 32 * 1024;
/// Largest body a frame may unpack to: a payload is at most the store's cap, a record far less.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What a body is, which decides the dictionary it is packed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// The JSON document of a record of this kind.
    Doc(RecordKind),
    /// An event's payload.
    Payload,
}

impl Family {
    fn name(self) -> String {
        match self {
            Self::Doc(kind) => format!("doc:{}", kind.as_str()),
            Self::Payload => "payload".to_owned(),
        }
    }
}

/// Packs and unpacks the store's bodies. One per store, shared by its connections.
pub struct Codec {
    packing: Mutex<HashMap<Family, Packer>>,
    dictionaries: RwLock<HashMap<u32, Arc<DecoderDictionary<'static>>>>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

/// How one family packs: with its dictionary, or collecting samples to train one.
enum Packer {
    Collecting {
        compressor: Compressor<'static>,
        samples: Vec<Vec<u8>>,
    },
    Trained(Compressor<'static>),
    /// Training failed (samples too few or too alike); packs without a dictionary.
    Plain(Compressor<'static>),
}

impl Codec {
    /// A codec with the dictionaries stored in `table`.
    pub fn load(table: &mut dyn Dictionaries) -> Result<Self, StoreError> {
        let codec = Self {
            packing: Mutex::new(HashMap::new()),
            dictionaries: RwLock::new(HashMap::new()),
        };
        let stored = table.stored()?;
        let families: Vec<Family> = RecordKind::ALL
            .into_iter()
            .map(Family::Doc)
            .chain([Family::Payload])
            .collect();
        let mut packing = codec.lock_packing();
        for (id, name, bytes) in stored {
            codec.remember(u32::try_from(id).unwrap_or_default(), &bytes);
            if let Some(family) = families.iter().find(|family| family.name() == name) {
                packing.insert(
                    *family,
                    Packer::Trained(
                        Compressor::with_dictionary(LEVEL, &bytes).map_err(StoreError::Codec)?,
                    ),
                );
            }
        }
        drop(packing);
        Ok(codec)
    }

    fn lock_packing(&self) -> std::sync::MutexGuard<'_, HashMap<Family, Packer>> {
        self.packing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remember(&self, id: u32, bytes: &[u8]) {
        self.dictionaries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id, Arc::new(DecoderDictionary::copy(bytes)));
    }

    /// `bytes` of `family` as one zstd frame. May train the family's dictionary and store it
    /// in `table` (the writer's, in the transaction of the records being stored).
    pub fn pack(
        &self,
        table: &mut dyn Dictionaries,
        family: Family,
        bytes: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let mut packing = self.lock_packing();
        let packer = match packing.entry(family) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(Packer::Collecting {
                compressor: Compressor::new(LEVEL).map_err(StoreError::Codec)?,
                samples: Vec::new(),
            }),
        };
        let frame = match packer {
            Packer::Trained(compressor) | Packer::Plain(compressor) => {
                return compressor.compress(bytes).map_err(StoreError::Codec);
            }
            Packer::Collecting {
                compressor,
                samples,
            } => {
                samples.push(bytes[..bytes.len().min(SAMPLE_BYTES)].to_vec());
                let frame = compressor.compress(bytes).map_err(StoreError::Codec)?;
                if samples.len() < SAMPLES {
                    return Ok(frame);
                }
                frame
            }
        };
        let Some(Packer::Collecting { samples, .. }) = packing.remove(&family) else {
            return Ok(frame);
        };
        let trained = self.train(table, family, &samples)?;
        packing.insert(family, trained);
        Ok(frame)
    }

    /// Trains `family`'s dictionary on `samples` and stores it; or, when zstd finds nothing to
    /// learn, packs that family without one.
    fn train(
        &self,
        table: &mut dyn Dictionaries,
        family: Family,
        samples: &[Vec<u8>],
    ) -> Result<Packer, StoreError> {
        let plain = || {
            Ok(Packer::Plain(
                Compressor::new(LEVEL).map_err(StoreError::Codec)?,
            ))
        };
        let dictionary = match zstd::dict::from_samples(samples, DICTIONARY_BYTES) {
            Ok(dictionary) => dictionary,
            Err(error) => {
                debug!(family = family.name(), %error, "No dictionary for this family of records.");
                return plain();
            }
        };
        let Some(id) = zstd::zstd_safe::get_dict_id(&dictionary) else {
            return plain();
        };
        if table.exists(i64::from(id.get()))? {
            // Ids are random; a second dictionary under an id in use could not be told apart.
            return plain();
        }
        table.add(i64::from(id.get()), &family.name(), &dictionary)?;
        self.remember(id.get(), &dictionary);
        info!(
            family = family.name(),
            dictionary_bytes = dictionary.len(),
            "Control store trained a compression dictionary for its records."
        );
        Ok(Packer::Trained(
            Compressor::with_dictionary(LEVEL, &dictionary).map_err(StoreError::Codec)?,
        ))
    }

    /// The bytes of a frame [`Self::pack`] made; its dictionary is read from `table` when this
    /// codec has not seen it yet (another process's, or one stored by the writer since).
    pub fn unpack(
        &self,
        table: &mut dyn Dictionaries,
        frame: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Codec(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("stored body: {what}"),
            ))
        };
        let size = match zstd::zstd_safe::get_frame_content_size(frame) {
            Ok(Some(size)) => usize::try_from(size).unwrap_or(usize::MAX),
            Ok(None) | Err(_) => return Err(corrupt("not a frame with its size")),
        };
        if size > MAX_BODY {
            return Err(corrupt("larger than any body the store keeps"));
        }
        let Some(id) = zstd::zstd_safe::get_dict_id_from_frame(frame) else {
            return Decompressor::new()
                .and_then(|mut decompressor| decompressor.decompress(frame, size))
                .map_err(StoreError::Codec);
        };
        let known = self
            .dictionaries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&id.get())
            .cloned();
        let dictionary = match known {
            Some(dictionary) => dictionary,
            None => {
                let bytes = table
                    .bytes(i64::from(id.get()))?
                    .ok_or_else(|| corrupt("its dictionary is missing"))?;
                self.remember(id.get(), &bytes);
                Arc::new(DecoderDictionary::copy(&bytes))
            }
        };
        Decompressor::with_prepared_dictionary(&dictionary)
            .and_then(|mut decompressor| decompressor.decompress(frame, size))
            .map_err(StoreError::Codec)
    }
}

/// Where a store keeps its compression dictionaries: its `dictionaries` table, seen through one
/// connection (SQLite's, or PostgreSQL's in [`super::postgres`]).
pub trait Dictionaries {
    /// Every stored dictionary, oldest first: (id, family name, bytes).
    fn stored(&mut self) -> Result<Vec<(i64, String, Vec<u8>)>, StoreError>;
    /// Whether a dictionary has this id.
    fn exists(&mut self, id: i64) -> Result<bool, StoreError>;
    /// Stores a dictionary (one stored meanwhile under the same id, by another control instance
    /// sharing the store, is kept).
    fn add(&mut self, id: i64, family: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// The bytes of the dictionary with this id.
    fn bytes(&mut self, id: i64) -> Result<Option<Vec<u8>>, StoreError>;
}

/// The dictionaries of a SQLite store.
pub struct SqliteDictionaries<'a>(pub &'a Connection);

impl Dictionaries for SqliteDictionaries<'_> {
    fn stored(&mut self) -> Result<Vec<(i64, String, Vec<u8>)>, StoreError> {
        let mut statement = self
            .0
            .prepare("SELECT id, family, bytes FROM dictionaries ORDER BY rowid")?;
        let stored = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(stored)
    }

    fn exists(&mut self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .0
            .query_row("SELECT 1 FROM dictionaries WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn add(&mut self, id: i64, family: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT OR IGNORE INTO dictionaries (id, family, bytes) VALUES (?1, ?2, ?3)",
            params![id, family, bytes],
        )?;
        Ok(())
    }

    fn bytes(&mut self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .0
            .query_row(
                "SELECT bytes FROM dictionaries WHERE id = ?1",
                [id],
                |row| row.get(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        super::super::schema::create(&connection).unwrap();
        connection
    }

    #[test]
    fn frames_round_trip_before_and_after_the_dictionary() {
        let connection = database();
        let codec = Codec::load(&mut SqliteDictionaries(&connection)).unwrap();
        let other = Codec::load(&mut SqliteDictionaries(&connection)).unwrap();
        let json = include_bytes!("../../../tests/fixtures/payloads/github-push.json");
        let plain = codec
            .pack(&mut SqliteDictionaries(&connection), Family::Payload, json)
            .unwrap();
        assert!(
            plain.len() * 2 < json.len(),
            "{} of {}",
            plain.len(),
            json.len()
        );
        assert_eq!(
            codec
                .unpack(&mut SqliteDictionaries(&connection), &plain)
                .unwrap(),
            json
        );

        let record = |n: usize| {
            format!(
                r#"{{"schema_version":1,"event_id":"evt-{n:08}","source":"app","matched_at":"2026-01-02T03:04:{:02}Z","outcome":"delivered"}}"#,
                n % 60
            )
        };
        let family = Family::Doc(RecordKind::Match);
        let mut before = 0;
        for n in 0..SAMPLES {
            before = codec
                .pack(
                    &mut SqliteDictionaries(&connection),
                    family,
                    record(n).as_bytes(),
                )
                .unwrap()
                .len();
        }
        let trained: i64 = connection
            .query_row("SELECT count(*) FROM dictionaries", [], |row| row.get(0))
            .unwrap();
        assert_eq!(trained, 1);
        let after = codec
            .pack(
                &mut SqliteDictionaries(&connection),
                family,
                record(SAMPLES).as_bytes(),
            )
            .unwrap();
        assert!(
            after.len() * 2 < before,
            "with the dictionary {} bytes, without {before}",
            after.len()
        );
        // A codec that has not seen the dictionary reads it from the database.
        assert_eq!(
            other
                .unpack(&mut SqliteDictionaries(&connection), &after)
                .unwrap(),
            record(SAMPLES).as_bytes()
        );
        assert_eq!(
            Codec::load(&mut SqliteDictionaries(&connection))
                .unwrap()
                .unpack(&mut SqliteDictionaries(&connection), &after)
                .unwrap(),
            record(SAMPLES).as_bytes()
        );
        assert!(
            codec
                .unpack(&mut SqliteDictionaries(&connection), b"not a frame")
                .is_err()
        );
    }
}
