//! The JSON Schemas of the contracts, generated from the Rust types.
//!
//! They are checked in under `schemas/json/` for producers and consumers in other languages. The
//! test `checked_in_schemas_match_the_types` fails when the files drift from the types; run it with
//! `HOOKLINE_BLESS=1` to rewrite them after a deliberate change.

use schemars::{JsonSchema, Schema, schema_for};

use crate::{
    AttemptRecord, DeadLetter, DeadLetterState, DeliveryJob, DestinationHealth, EventMetadata,
    MatchRecord, RejectedRequest, Resource,
};

/// Every schema, by file name (under `schemas/json/`).
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("event-metadata.json", generate::<EventMetadata>()),
        ("delivery-job.json", generate::<DeliveryJob>()),
        ("attempt-record.json", generate::<AttemptRecord>()),
        ("dead-letter.json", generate::<DeadLetter>()),
        ("dead-letter-state.json", generate::<DeadLetterState>()),
        ("resource.json", generate::<Resource>()),
        ("rejected-request.json", generate::<RejectedRequest>()),
        ("destination-health.json", generate::<DestinationHealth>()),
        ("match-record.json", generate::<MatchRecord>()),
    ]
}

fn generate<T: JsonSchema>() -> Schema {
    schema_for!(T)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn checked_in_schemas_match_the_types() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
        let bless = std::env::var_os("HOOKLINE_BLESS").is_some();
        for (name, schema) in all() {
            let path = dir.join(name);
            let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            if bless {
                std::fs::write(&path, &generated).unwrap();
                continue;
            }
            let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                checked_in == generated,
                "{} is out of date with the Rust types; rerun with HOOKLINE_BLESS=1 and commit it",
                path.display()
            );
        }
    }

    #[test]
    fn every_schema_carries_schema_version() {
        for (name, schema) in all() {
            let text = serde_json::to_string(&schema).unwrap();
            assert!(
                text.contains("\"schema_version\""),
                "{name} has no schema_version"
            );
        }
    }
}
