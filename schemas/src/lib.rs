//! Hookline's contracts: the messages that travel between stages and the resources operators write.
//!
//! Stages never import each other; they meet only through Kafka topics, and this crate is what they
//! agree on. It depends on serde and schemars only, so it compiles fast and stays free of runtime
//! concerns.
//!
//! - [`topics`]: topic names and the configurable prefix.
//! - [`event`]: the event on `hookline.events` (raw JSON value, metadata in record headers).
//! - [`delivery`]: the delivery job on `hookline.deliveries` (and the `hookline.retry.<tier>` topics).
//! - [`attempt`]: the attempt record on `hookline.attempts`.
//! - [`dead`]: the dead letter on `hookline.dead`.
//! - [`rejected`]: the record of a refused inbound request on `hookline.rejected`.
//! - [`matched`]: the processor's match result per event on `hookline.matches`.
//! - [`resource`]: sources, destinations and triggers on the compacted `hookline.resources`.
//! - [`health`]: since when a destination fails, on the compacted `hookline.destination-health`.
//! - [`headers`]: the request headers only the dispatcher sets, refused in resources.
//! - [`id`]: validated identifiers shared by all of them.
//! - [`json_schema`]: the JSON Schemas generated from these types, checked in under `json/`.

pub mod attempt;
pub mod dead;
pub mod delivery;
pub mod event;
pub mod headers;
pub mod health;
pub mod id;
pub mod json_schema;
pub mod matched;
pub mod rejected;
pub mod resource;
pub mod topics;

/// The version of every message and resource format defined here. Readers refuse records with a
/// newer version than they know, so a rolling upgrade never misreads a field.
pub const SCHEMA_VERSION: u32 = 1;

pub use attempt::{AttemptOutcome, AttemptRecord};
pub use dead::{DeadLetter, DeadLetterState, DeadPayload, DeadReason, DeadState, SourcePosition};
pub use delivery::DeliveryJob;
pub use event::EventMetadata;
pub use health::DestinationHealth;
pub use id::{IdError, ResourceId};
pub use matched::{
    MatchOutcome, MatchRecord, ProducedDelivery, SkipReason, SkippedAction, TriggerMatch,
    TriggerResult,
};
pub use rejected::RejectedRequest;
pub use resource::{
    Action, Destination, HmacAlgorithm, RateLimit, Resource, ResourceKey, ResourceKind,
    RetryPolicy, SignatureEncoding, Source, SourceAuth, Trigger, When,
};
pub use topics::{RetryTier, TopicKind, Topics};
