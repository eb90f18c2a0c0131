//! How a resource is shown: its own fields with secrets masked, plus `created_at`, `updated_at`
//! and, for a source, the `ingest_url` senders post to; and the `ETag` of what is stored.

use hookline_runtime::resources::RecordInfo;
use hookline_runtime::time::rfc3339;
use hookline_schemas::{Resource, ResourceId};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::held::HeldJobs;
use crate::mask::masked;
use crate::store::LastActivity;

/// Whether secrets are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secrets {
    /// Masked: every answer but one.
    Masked,
    /// In full: only the answer to the create, so generated tokens can be read once.
    Shown,
}

/// The JSON of `resource` as the API shows it.
pub fn render(
    resource: &Resource,
    record: Option<&RecordInfo>,
    ingest_base: &str,
    secrets: Secrets,
) -> Value {
    let shown = match secrets {
        Secrets::Masked => masked(resource.clone()),
        Secrets::Shown => resource.clone(),
    };
    let mut value = fields(&shown);
    if let Value::Object(object) = &mut value {
        let time =
            |at: Option<time::OffsetDateTime>| at.map_or(Value::Null, |at| rfc3339(at).into());
        object.insert(
            "created_at".into(),
            time(record.and_then(|record| record.created_at)),
        );
        object.insert(
            "updated_at".into(),
            time(record.and_then(|record| record.updated_at)),
        );
        if let Resource::Source(source) = resource {
            object.insert(
                "ingest_url".into(),
                ingest_url(ingest_base, &source.id).into(),
            );
        }
    }
    value
}

/// The resource's own fields as JSON, secrets included, without the `kind` tag.
pub fn fields(resource: &Resource) -> Value {
    // Plain data with string keys always serializes.
    match resource {
        Resource::Source(source) => serde_json::to_value(source),
        Resource::Destination(destination) => serde_json::to_value(destination),
        Resource::Trigger(trigger) => serde_json::to_value(trigger),
    }
    .unwrap_or_default()
}

/// The URL senders post a source's events to.
pub fn ingest_url(base: &str, id: &ResourceId) -> String {
    format!("{base}/inbound-webhooks/{id}")
}

/// The entity tag of a stored resource: a digest of its record's place on the topic (which
/// changes with every write, secrets included) and of its masked JSON. Secrets are not hashed,
/// so a reader cannot test guesses of a secret against the tag; every control instance computes
/// the same tag, since they read the same records.
pub fn etag(resource: &Resource, record: Option<&RecordInfo>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(resource.key().to_string().as_bytes());
    if let Some(record) = record {
        hasher.update(format!("@{}:{}", record.partition, record.offset).as_bytes());
    }
    hasher.update(serde_json::to_vec(&masked(resource.clone())).unwrap_or_default());
    let digest = hasher.finalize();
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Adds `last_triggered_at` and `last_delivered_at`, as the store of what happened saw them, to
/// the view of a resource.
pub fn annotate_activity(view: &mut Value, last: LastActivity) {
    if let Value::Object(object) = view {
        object.insert("last_triggered_at".into(), millis(last.triggered_ms));
        object.insert("last_delivered_at".into(), millis(last.delivered_ms));
    }
}

/// Adds the jobs a destination has on hold: how many, and since when the oldest waits.
pub fn annotate_held(view: &mut Value, held: Option<HeldJobs>) {
    if let Value::Object(object) = view {
        let oldest = millis(held.map(|held| held.oldest_ms));
        object.insert("held_jobs".into(), held.map_or(0, |held| held.jobs).into());
        object.insert("oldest_held_at".into(), oldest);
    }
}

/// Unix milliseconds as RFC 3339, or null.
pub(crate) fn millis(ms: Option<i64>) -> Value {
    ms.and_then(|ms| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
    })
    .map_or(Value::Null, |at| rfc3339(at).into())
}

#[cfg(test)]
mod tests {
    use hookline_schemas::{Source, SourceAuth};

    use super::*;

    fn source(token: &str) -> Resource {
        Resource::Source(Source::new(
            ResourceId::parse("app").unwrap(),
            vec![SourceAuth::Bearer {
                tokens: vec![token.into()],
                expires_at: None,
            }],
        ))
    }

    fn record(offset: i64) -> RecordInfo {
        RecordInfo {
            partition: 0,
            offset,
            created_at: Some(time::macros::datetime!(2026-01-02 03:04:05 UTC)),
            updated_at: Some(time::macros::datetime!(2026-02-03 04:05:06 UTC)),
        }
    }

    #[test]
    fn shows_times_the_inbound_url_and_masked_secrets() {
        let view = render(
            &source("tok_0123456789abcdef"),
            Some(&record(7)),
            "http://127.0.0.1:8080",
            Secrets::Masked,
        );
        assert_eq!(view["created_at"], "2026-01-02T03:04:05Z");
        assert_eq!(view["updated_at"], "2026-02-03T04:05:06Z");
        assert_eq!(
            view["ingest_url"],
            "http://127.0.0.1:8080/inbound-webhooks/app"
        );
        assert_eq!(view["auth"][0]["tokens"][0], "tok_…");
        assert!(view.get("kind").is_none());
        let shown = render(&source("secret"), None, "http://h", Secrets::Shown);
        assert_eq!(shown["auth"][0]["tokens"][0], "secret");
        assert_eq!(shown["created_at"], Value::Null);
    }

    #[test]
    fn the_etag_changes_with_every_write_but_hides_secrets() {
        let tag = etag(&source("a"), Some(&record(1)));
        assert!(
            tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34,
            "{tag}"
        );
        assert_eq!(tag, etag(&source("a"), Some(&record(1))));
        assert_ne!(tag, etag(&source("a"), Some(&record(2))));
        // Two short secrets mask alike: only the record tells the versions apart.
        assert_eq!(etag(&source("a"), None), etag(&source("b"), None));
    }
}
