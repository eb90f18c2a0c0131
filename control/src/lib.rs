//! Control: the operator's API, on its own address (ingest never serves it).
//!
//! Creates, reads, lists, changes, enables, disables, pauses and deletes sources, destinations and
//! triggers behind bearer tokens. Writes go to the compacted resources topic, are validated as
//! `hookline apply` validates, and are answered once this process reads them back.
//!
//! Serving:
//! - [`config`]: listen address, tokens, the public ingest URL, limits.
//! - [`server`]: binding and serving.
//! - [`state`]: what every handler shares: the API's state and the store of what happened.
//! - [`routes`]: every route and the layers around them, in one place.
//! - [`handlers`]: the handlers, grouped by what they serve.
//! - [`console`]: the web console at `/ui/`, which calls the API for everything.
//! - [`auth`]: the middleware that lets a token in, or not.
//! - [`tokens`]: admin and read-only tokens, compared in constant time.
//! - [`metrics`]: requests by route and status, and their duration.
//! - [`openapi`]: the OpenAPI document.
//!
//! What handlers share:
//! - [`error`]: why a request failed, as one JSON shape with stable codes.
//! - [`path`]: the `{id}` of a route, refused in JSON when it does not decode.
//! - [`extract`]: the query string, refused in JSON when it does not parse.
//! - [`body`]: reading request bodies into resources, with errors that name the field.
//! - [`write`]: one change at a time: preconditions, validation, write, read back.
//! - [`precondition`]: `If-Match` and `If-None-Match`.
//! - [`view`]: how a resource is shown, and its `ETag`.
//! - [`mask`]: secrets masked on the way out and restored on the way in.
//! - [`credentials`]: tokens, secrets and ids made up for new resources.
//! - [`list`]: filters and pages.
//! - [`kind`]: the three kinds and the fields they share.
//! - [`plan`]: what an apply changes, field by field.
//!
//! What happened:
//! - [`store`]: the embedded store of events, match records, attempts, refusals and dead letters.
//! - [`journey`]: an event's journey out of its stored records.
//! - [`dead_letter`]: a dead letter's id (its place on the topic) and how it is shown.
//! - [`dead_states`]: what operators did with dead letters (replayed, discarded), from Kafka.
//! - [`held`]: the jobs paused destinations have on hold, from Kafka.
//! - [`failing`]: since when destinations fail without a success, from Kafka.
//! - [`send`]: what control writes besides resources (jobs and events).

pub mod auth;
pub mod body;
pub mod config;
pub mod console;
pub mod credentials;
pub mod dead_letter;
pub mod dead_states;
pub mod error;
pub mod extract;
pub mod failing;
pub mod handlers;
pub mod held;
pub mod journey;
pub mod kind;
pub mod list;
pub mod mask;
pub mod metrics;
pub mod openapi;
pub mod path;
pub mod plan;
pub mod precondition;
pub mod routes;
pub mod send;
pub mod server;
pub mod state;
pub mod store;
pub mod tokens;
pub mod view;
pub mod write;

pub use config::Config;
pub use error::Error;
pub use server::Control;
