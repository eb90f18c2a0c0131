//! The resources operators write: sources (inbound webhooks), destinations (outbound endpoints)
//! and triggers (rules that turn events into deliveries).
//!
//! They live on the compacted `hookline.resources` topic, keyed by `<kind>/<id>` ([`ResourceKey`]),
//! with a tombstone on delete. The same types are read from `hookline apply` files, so every field
//! is documented and unknown fields are refused.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::{IdError, ResourceId};

fn schema_version() -> u32 {
    crate::SCHEMA_VERSION
}

fn enabled() -> bool {
    true
}

fn post() -> String {
    "POST".to_owned()
}

/// An inbound webhook: the URL `/inbound-webhooks/{id}` and how callers prove who they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Version of this contract ([`crate::SCHEMA_VERSION`]).
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    /// The id, part of the inbound URL.
    pub id: ResourceId,
    /// A human name for lists and logs.
    #[serde(default)]
    pub name: String,
    /// A disabled source answers 403; its URL stays valid.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Accepted ways to authenticate; a request passing any one of them is accepted. An empty list
    /// is refused: a source without authentication must say so with `{ type = "open" }`.
    pub auth: Vec<SourceAuth>,
    /// Inbound HTTP headers to keep with the event (for example `X-GitHub-Event`), available to
    /// triggers as `event.headers["x-github-event"]`. Matched case-insensitively.
    #[serde(default)]
    pub keep_headers: Vec<String>,
    /// Largest accepted body in bytes; ingest's limit (1 MiB unless configured) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Client addresses allowed to post, as CIDRs (`192.30.252.0/22`, `2001:db8::/32`), for
    /// senders that publish their ranges; any address when empty. Others get 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_cidrs: Vec<String>,
    /// This source's rate limit; ingest's default (100 per minute) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// The organisation the source belongs to: its sources also share the organisation's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// A header that identifies a sender's retry of the same delivery (for example
    /// `X-GitHub-Delivery`); like `Idempotency-Key`, which is always honoured, a repeated value
    /// returns the first event's id instead of creating a second event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_header: Option<String>,
    /// What must stay in order. Absent: nothing, events spread over every partition (keyed by
    /// their id), so a busy source uses every processor and dispatcher. `"source"`: every event
    /// of the source in arrival order. A path into the payload (`payload.customer.id`,
    /// `payload["customer-id"]`, `payload.items[0].id`): events with the same value in order,
    /// and their deliveries to each destination keyed together; an event without the value is
    /// keyed by its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_key: Option<String>,
}

impl Source {
    /// An enabled source with these credentials and every other field at its default.
    pub fn new(id: ResourceId, auth: Vec<SourceAuth>) -> Self {
        Self {
            schema_version: crate::SCHEMA_VERSION,
            id,
            name: String::new(),
            enabled: true,
            auth,
            keep_headers: Vec::new(),
            max_body_bytes: None,
            allowed_cidrs: Vec::new(),
            rate_limit: None,
            org: None,
            idempotency_header: None,
            order_key: None,
        }
    }
}

/// A rate limit: at most `per_minute` requests in any 60 seconds (a sliding window), optionally
/// spread out by a smaller `burst`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Most requests allowed in any 60 seconds.
    pub per_minute: u32,
    /// Most requests allowed at once after a quiet spell, refilled at `per_minute` / 60 per
    /// second; no limit beyond `per_minute` when absent or not below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// One way a caller authenticates to a source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceAuth {
    /// `Authorization: Bearer <token>`; several tokens may be valid at once, for rotation.
    Bearer {
        /// The accepted tokens.
        tokens: Vec<String>,
        /// When these tokens stop being accepted (RFC 3339); never when absent. A rotation
        /// (`hookline sources rotate-token`) gives the old tokens one, a grace period away.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<String>,
    },
    /// The secret itself in the `X-Webhook-Secret` header.
    SharedSecret {
        /// The accepted secrets.
        secrets: Vec<String>,
    },
    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    Github {
        /// The webhook secrets configured at GitHub (several during a rotation).
        secrets: Vec<String>,
    },
    /// Stripe: `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">` (several `v1`
    /// allowed), within a tolerance of the current time.
    Stripe {
        /// The endpoint signing secrets (`whsec_…`, used as given).
        secrets: Vec<String>,
        /// Largest accepted age of the timestamp, in seconds; 300 when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tolerance_seconds: Option<u64>,
    },
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64
    /// HMAC-SHA256 of "id.timestamp.body">`, with `whsec_<base64 key>` secrets.
    Standard {
        /// The signing secrets (`whsec_…`).
        secrets: Vec<String>,
        /// Largest accepted age of the timestamp, in seconds; 300 when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tolerance_seconds: Option<u64>,
    },
    /// Any other HMAC scheme: an HMAC of the body in a header of your choice.
    Hmac {
        /// The header carrying the signature, for example `X-Signature`.
        header: String,
        /// The hash function.
        algorithm: HmacAlgorithm,
        /// How the signature is written.
        encoding: SignatureEncoding,
        /// Text before the signature in the header, for example `sha256=`; none when empty.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        prefix: String,
        /// The accepted secrets.
        secrets: Vec<String>,
    },
    /// No authentication at all. Must be chosen explicitly.
    Open,
}

/// The hash function of a generic HMAC signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HmacAlgorithm {
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// How a generic HMAC signature is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    /// Lower- or upper-case hexadecimal.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// An outbound endpoint that receives webhooks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// Version of this contract ([`crate::SCHEMA_VERSION`]).
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    /// The id, the key of its jobs.
    pub id: ResourceId,
    /// A human name for lists and logs.
    #[serde(default)]
    pub name: String,
    /// A disabled destination gets no new jobs.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// A paused destination's jobs are held, in arrival order, until it is resumed; they are then
    /// delivered with their original delivery ids. Unlike disabling, nothing is dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// FIFO: one delivery at a time, in the order the jobs were made, and a failing one holds
    /// back the destination's later jobs (only this destination's) until it is delivered or
    /// dead-lettered. Its jobs wait in line in the held topic (one extra write each) and one
    /// dispatcher of the group delivers them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ordered: bool,
    /// The URL requests go to (http or https).
    pub url: String,
    /// HTTP method; `POST` unless set.
    #[serde(default = "post")]
    pub method: String,
    /// Static headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Total deadline of one attempt in milliseconds, including a slow body; 15000 unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Standard Webhooks signing secrets (`whsec_` followed by a base64 key). Every request
    /// carries one signature per secret, so a new secret can be added before the old one is
    /// removed. Unsigned when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// When failed attempts are retried; the dispatcher's default (the Standard Webhooks
    /// schedule) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Most requests in progress to this destination at once; more jobs wait on the retry path
    /// instead of holding others up. The dispatcher's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Most requests sent to this destination in any 60 seconds; unlimited when absent. Jobs over
    /// the limit wait on the retry path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Why the dispatcher disabled this destination (it answered 410 Gone, or failed for too
    /// long); cleared when it is enabled again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
}

impl Destination {
    /// An enabled destination for `url` with every other field at its default.
    pub fn new(id: ResourceId, url: impl Into<String>) -> Self {
        Self {
            schema_version: crate::SCHEMA_VERSION,
            id,
            name: String::new(),
            enabled: true,
            paused: false,
            ordered: false,
            url: url.into(),
            method: post(),
            headers: BTreeMap::new(),
            timeout_ms: None,
            secrets: Vec::new(),
            retry: None,
            max_in_flight: None,
            rate_limit: None,
            disabled_reason: None,
        }
    }
}

/// When failed attempts of a destination's jobs are retried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RetryPolicy {
    /// Fixed waits: `waits_seconds = [5, 300, 1800]` retries 5 s, 5 min and 30 min after the
    /// failures before, so a job gets four attempts in all.
    Schedule {
        /// The wait before each retry, in seconds (fractions allowed).
        waits_seconds: Vec<f64>,
        /// Add up to 10% to each wait at random, so receivers coming back from an outage are not
        /// hit in lockstep; on unless set to false.
        #[serde(default = "enabled")]
        jitter: bool,
    },
    /// Waits that grow by a factor from an initial one up to a maximum.
    Exponential {
        /// The wait before the first retry, in seconds.
        initial_seconds: f64,
        /// The factor between consecutive waits; 2 unless set.
        #[serde(default = "two")]
        multiplier: f64,
        /// The longest wait, in seconds.
        max_interval_seconds: f64,
        /// The most attempts of one job, the first included.
        max_attempts: u32,
        /// Randomise each wait by up to one more interval; on unless set to false.
        #[serde(default = "enabled")]
        jitter: bool,
    },
}

fn two() -> f64 {
    2.0
}

impl RetryPolicy {
    /// The Standard Webhooks recommendation: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h,
    /// 10 h, 14 h, 20 h and 24 h after the attempt before (ten attempts over about 3.3 days).
    pub fn standard_webhooks() -> Self {
        Self::Schedule {
            waits_seconds: vec![
                5.0, 300.0, 1_800.0, 7_200.0, 18_000.0, 36_000.0, 50_400.0, 72_000.0, 86_400.0,
            ],
            jitter: true,
        }
    }
}

/// A rule: which events matter, under what condition, and what each destination receives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Version of this contract ([`crate::SCHEMA_VERSION`]).
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    /// The id, part of every delivery id it produces.
    pub id: ResourceId,
    /// A human name, available to templates as `trigger.name`.
    #[serde(default)]
    pub name: String,
    /// A disabled trigger fires no more.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Which events the trigger looks at.
    pub when: When,
    /// A minijinja expression over `payload`, `event`, `trigger` and `now` that must be true for
    /// the trigger to fire, for example `payload.severity == "high"`. Absent means always.
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// What to send, one delivery per action.
    pub actions: Vec<Action>,
}

/// The events a trigger looks at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Events of any of these sources.
    pub sources: Vec<ResourceId>,
    /// A minijinja expression giving an event's type, for example
    /// `event.headers["x-github-event"]` or `payload.type`. Set it together with `event_types`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The event types the trigger fires on; a trailing `*` matches any suffix (`invoice.*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
}

/// One delivery a trigger produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The destination that receives it.
    pub destination: ResourceId,
    /// minijinja template of the request body.
    pub body: String,
    /// minijinja templates of extra request headers, by header name.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A minijinja template of the URL, replacing the destination's (for example to put an id
    /// from the event in the path). The destination's own URL when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The kinds of resource, the first part of a resource key.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// An inbound webhook.
    Source,
    /// An outbound endpoint.
    Destination,
    /// A rule.
    Trigger,
}

impl ResourceKind {
    /// The kind's name in keys and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Destination => "destination",
            Self::Trigger => "trigger",
        }
    }
}

/// The Kafka key of a resource record: `<kind>/<id>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    /// The kind.
    pub kind: ResourceKind,
    /// The id.
    pub id: ResourceId,
}

/// Why a record key is not a resource key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The key has no `/`.
    MissingSlash,
    /// The part before `/` is not a known kind.
    UnknownKind(String),
    /// The part after `/` is not a valid id.
    Id(IdError),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingSlash => f.write_str("a resource key has the form <kind>/<id>"),
            Self::UnknownKind(kind) => write!(f, "unknown resource kind {kind:?}"),
            Self::Id(error) => write!(f, "invalid resource id: {error}"),
        }
    }
}

impl std::error::Error for KeyError {}

impl ResourceKey {
    /// Parses `<kind>/<id>`.
    pub fn parse(key: &str) -> Result<Self, KeyError> {
        let (kind, id) = key.split_once('/').ok_or(KeyError::MissingSlash)?;
        let kind = match kind {
            "source" => ResourceKind::Source,
            "destination" => ResourceKind::Destination,
            "trigger" => ResourceKind::Trigger,
            other => return Err(KeyError::UnknownKind(other.to_owned())),
        };
        let id = ResourceId::parse(id).map_err(KeyError::Id)?;
        Ok(Self { kind, id })
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.id)
    }
}

/// Any resource, as stored on the resources topic (tagged by `kind`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// An inbound webhook.
    Source(Source),
    /// An outbound endpoint.
    Destination(Destination),
    /// A rule.
    Trigger(Trigger),
}

impl Resource {
    /// The record key of this resource.
    pub fn key(&self) -> ResourceKey {
        let (kind, id) = match self {
            Self::Source(s) => (ResourceKind::Source, &s.id),
            Self::Destination(d) => (ResourceKind::Destination, &d.id),
            Self::Trigger(t) => (ResourceKind::Trigger, &t.id),
        };
        ResourceKey {
            kind,
            id: id.clone(),
        }
    }

    /// The version the resource was written with.
    pub fn schema_version(&self) -> u32 {
        match self {
            Self::Source(s) => s.schema_version,
            Self::Destination(d) => d.schema_version,
            Self::Trigger(t) => t.schema_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let key = ResourceKey::parse("trigger/push-to-chat").unwrap();
        assert_eq!(key.kind, ResourceKind::Trigger);
        assert_eq!(key.to_string(), "trigger/push-to-chat");
        assert_eq!(ResourceKey::parse("nope"), Err(KeyError::MissingSlash));
        assert!(matches!(
            ResourceKey::parse("widget/x"),
            Err(KeyError::UnknownKind(_))
        ));
    }

    #[test]
    fn resources_are_tagged_by_kind_and_refuse_unknown_fields() {
        let json = r#"{"kind":"destination","id":"echo","url":"http://127.0.0.1:1/"}"#;
        let resource: Resource = serde_json::from_str(json).unwrap();
        assert_eq!(resource.key().to_string(), "destination/echo");
        let Resource::Destination(destination) = &resource else {
            panic!("expected a destination, got {resource:?}");
        };
        assert!(destination.enabled);
        assert_eq!(destination.method, "POST");

        let typo = r#"{"kind":"destination","id":"echo","url":"http://x/","hedaers":{}}"#;
        let error = serde_json::from_str::<Resource>(typo)
            .unwrap_err()
            .to_string();
        assert!(error.contains("hedaers"), "{error}");
    }

    #[test]
    fn source_auth_is_tagged_by_type() {
        let json = r#"{"id":"gh","auth":[{"type":"bearer","tokens":["t"]},{"type":"open"}]}"#;
        let source: Source = serde_json::from_str(json).unwrap();
        assert_eq!(
            source.auth,
            [
                SourceAuth::Bearer {
                    tokens: vec!["t".into()],
                    expires_at: None,
                },
                SourceAuth::Open
            ]
        );
    }
}
