//! Authenticating senders: a source's `auth` entries compiled into a [`Verifier`] that checks each
//! request's credentials on the raw body bytes, in constant time, before anything parses the body.
//!
//! - [`verifier`]: the compiled entries and the "passes any entry" rule.
//! - [`token`]: bearer tokens and the `X-Webhook-Secret` shared secret.
//! - [`mac`]: HMAC keys, signature encodings and the constant-time match shared by the schemes.
//! - [`github`], [`stripe`], [`standard`], [`generic`]: one signature scheme each.
//! - [`headers`], [`timestamp`]: strict reading of credential headers and signed timestamps.
//!
//! Every parser refuses what it cannot read exactly (empty, truncated or wrong-length signatures,
//! non-numeric timestamps, missing or repeated headers) rather than guessing.

mod generic;
mod github;
mod headers;
mod mac;
mod standard;
mod stripe;
mod timestamp;
mod token;
mod verifier;

#[cfg(test)]
mod vectors;

pub use verifier::Verifier;
