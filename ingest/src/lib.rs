//! Ingest: the inbound webhook endpoint `POST /inbound-webhooks/{source_id}`.
//!
//! It checks the source, the caller's credentials, the content type, the size and that the body
//! is JSON, then writes the raw body to the events topic with the metadata headers of the contract
//! and answers `202 {"id": ...}` only after the broker acknowledged the write.
//!
//! - [`config`]: listen address and limits.
//! - [`auth`]: credential checks, in constant time.
//! - [`limits`]: rate limits per source and organisation.
//! - [`idempotency`]: answering a sender's retry with the first event's id.
//! - [`error`]: every refusal, with its status and stable error code.
//! - [`handler`]: the endpoint.
//! - [`encoding`]: decoding gzip and zstd bodies within the size limit.
//! - [`json`]: checking a body is JSON, with a nesting limit.
//! - [`rejected`]: the sampled log of refused requests.
//! - [`server`]: binding and serving.
//! - [`metrics`]: what it counts.

pub mod auth;
pub mod config;
pub mod encoding;
pub mod error;
pub mod handler;
pub mod idempotency;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod rejected;
pub mod server;

pub use config::Config;
pub use server::Ingest;

/// The role name in client ids.
pub const ROLE: &str = "ingest";
