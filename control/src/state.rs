//! What every handler shares: the state the router hands each request, and the store of what
//! happened it holds. Handlers depend on this module, not on each other.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use hookline_runtime::resources::ResourceStore;

use crate::dead_states::DeadStates;
use crate::error::ApiError;
use crate::failing::Failing;
use crate::held::Held;
use crate::metrics::Metrics;
use crate::send::Sender;
use crate::store::reader::Logs;
use crate::tokens::Tokens;
use crate::write::Writes;

/// What the routes need.
#[derive(Clone)]
pub struct ApiState {
    /// Resources, live.
    pub store: ResourceStore,
    /// Accepted tokens.
    pub tokens: Arc<Tokens>,
    /// Where changes are written.
    pub writes: Arc<Writes>,
    /// The base of inbound URLs, without a trailing `/`.
    pub ingest_base: Arc<str>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// What the API counts.
    pub metrics: Metrics,
    /// The store of what happened, and what writes test sends and replays.
    pub history: Arc<History>,
}

/// What the log routes need.
pub struct History {
    /// The store, filled from the topics.
    pub logs: Logs,
    /// Writes test jobs and replays.
    pub sender: Sender,
    /// How long a test send waits for its attempt.
    pub test_timeout: Duration,
    /// Most records one replay sends.
    pub max_replay: usize,
    /// What operators did with dead letters.
    pub dead_states: Arc<DeadStates>,
    /// The jobs paused destinations have on hold.
    pub held: Arc<Held>,
    /// Since when destinations fail without a success.
    pub failing: Arc<Failing>,
}

impl History {
    /// Why event `id` is not in the store: not read yet while the store is still reading the
    /// topics (503), unknown after (404).
    pub fn missing_event(&self, id: String) -> ApiError {
        if self.logs.is_ready() {
            ApiError::NotFound { kind: "event", id }
        } else {
            ApiError::StoreNotReady
        }
    }
}

/// A request body, or why it could not be read.
pub(crate) type BodyResult = Result<Bytes, BytesRejection>;
