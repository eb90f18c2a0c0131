//! Retried deliveries: a request with an `Idempotency-Key` (or the header a source names, such
//! as `X-GitHub-Delivery`) seen before within the window gets the first event's id back instead
//! of creating a second event.
//!
//! The memory is per ingest instance and bounded; two copies of one request arriving at the same
//! moment, or at different instances, can still both be accepted. Deliveries stay identifiable
//! downstream either way, so receivers deduplicate what slips through.

use std::time::Duration;

use axum::http::HeaderMap;
use clap::Args;
use hookline_schemas::{ResourceId, Source};
use moka::sync::Cache;

/// The header every source honours.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Longest key kept; longer ones are not remembered (and not refused).
const MAX_KEY_LEN: usize = 256;

/// Window and size of the memory.
#[derive(Clone, Debug, Args)]
pub struct IdempotencySettings {
    /// How long a key is remembered, in seconds.
    #[arg(long = "idempotency-window-seconds", env = "HOOKLINE_IDEMPOTENCY_WINDOW_SECONDS", default_value_t = 24 * 3600)]
    pub window_seconds: u64,

    /// Most keys remembered; the least recently used go first.
    #[arg(
        long = "idempotency-max-keys",
        env = "HOOKLINE_IDEMPOTENCY_MAX_KEYS",
        default_value_t = 100_000
    )]
    pub max_keys: u64,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            window_seconds: 24 * 3600,
            max_keys: 100_000,
        }
    }
}

/// Keys seen recently, with the event id each produced.
pub struct Idempotency {
    seen: Cache<(ResourceId, String), String>,
}

impl Idempotency {
    /// An empty memory.
    pub fn new(settings: &IdempotencySettings) -> Self {
        Self {
            seen: Cache::builder()
                .max_capacity(settings.max_keys)
                .time_to_live(Duration::from_secs(settings.window_seconds))
                .build(),
        }
    }

    /// The request's key for `source`, if it has one worth remembering.
    pub fn key(source: &Source, headers: &HeaderMap) -> Option<(ResourceId, String)> {
        let value = source
            .idempotency_header
            .as_deref()
            .and_then(|name| headers.get(name))
            .or_else(|| headers.get(IDEMPOTENCY_KEY))?
            .to_str()
            .ok()?
            .trim();
        (!value.is_empty() && value.len() <= MAX_KEY_LEN)
            .then(|| (source.id.clone(), value.to_owned()))
    }

    /// The event id first accepted under `key`.
    pub fn get(&self, key: &(ResourceId, String)) -> Option<String> {
        self.seen.get(key)
    }

    /// Remembers the event id accepted under `key`.
    pub fn remember(&self, key: (ResourceId, String), event_id: String) {
        self.seen.insert(key, event_id);
    }
}

#[cfg(test)]
mod tests {
    use hookline_schemas::SourceAuth;

    use super::*;

    fn github() -> Source {
        Source {
            idempotency_header: Some("X-GitHub-Delivery".into()),
            ..Source::new(ResourceId::parse("gh").unwrap(), vec![SourceAuth::Open])
        }
    }

    #[test]
    fn the_source_header_or_idempotency_key_identifies_a_retry() {
        let mut headers = HeaderMap::new();
        assert_eq!(Idempotency::key(&github(), &headers), None);
        headers.insert(IDEMPOTENCY_KEY, "k1".parse().unwrap());
        assert_eq!(Idempotency::key(&github(), &headers).unwrap().1, "k1");
        headers.insert("x-github-delivery", "d-42".parse().unwrap());
        assert_eq!(Idempotency::key(&github(), &headers).unwrap().1, "d-42");
    }

    #[test]
    fn remembers_the_first_event_id_per_source_and_key() {
        let memory = Idempotency::new(&IdempotencySettings::default());
        let key = (ResourceId::parse("gh").unwrap(), "k".to_owned());
        assert_eq!(memory.get(&key), None);
        memory.remember(key.clone(), "evt-1".into());
        assert_eq!(memory.get(&key).as_deref(), Some("evt-1"));
        let other_source = (ResourceId::parse("other").unwrap(), "k".to_owned());
        assert_eq!(memory.get(&other_source), None);
    }
}
