//! The destination health record on the compacted `hookline.destination-health` topic: since when
//! a destination has failed without a single success, so the dispatcher can disable it after a
//! window that outlasts its own restarts. Keyed by destination id; a tombstone once it succeeds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::ResourceId;

/// A destination that is failing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationHealth {
    /// Version of this contract ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The destination, also the record key.
    pub destination_id: ResourceId,
    /// The first failed attempt (RFC 3339) since the last successful one.
    pub failing_since: String,
}
