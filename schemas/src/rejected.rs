//! The rejected request record on `hookline.rejected`: one per inbound request ingest refused
//! (sampled under a flood), so operators can answer "why did my sender's webhooks fail?".
//! Never carries credentials; the body is cut to a short preview.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A refused inbound request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectedRequest {
    /// Version of this contract ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// When the request was refused (RFC 3339).
    pub at: String,
    /// The source id from the URL, as sent (it may name no source).
    pub source: String,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The request id (`x-request-id`), to find the request in logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The stable error code answered (`unauthorized`, `rate_limited`, ...).
    pub code: String,
    /// The error message answered.
    pub message: String,
    /// The start of the body, when it was read (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_preview: Option<String>,
}
