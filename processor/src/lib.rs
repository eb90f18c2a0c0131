//! The processor: turns events into delivery jobs.
//!
//! - [`config`]: settings (limits of templates, work in flight).
//! - [`template`]: the minijinja environment, its filters and its safety limits.
//! - [`context`]: the variables templates see.
//! - [`trigger`]: a trigger compiled once: its condition and templates.
//! - [`evaluate`]: what one trigger does with one event, for the pipeline and every preview.
//! - [`rules`]: the compiled triggers of a resource snapshot, indexed by source.
//! - [`event`]: reading an event's metadata from its record headers.
//! - [`job`]: building delivery jobs with deterministic ids.
//! - [`pipeline`]: the consume → match → render → produce loop.
//! - [`preview`]: evaluating a trigger against a sample event without sending anything.
//! - [`validate`]: the checks resources pass before they are written (apply and control).
//! - [`metrics`]: what it counts.

pub mod config;
pub mod context;
pub mod error;
pub mod evaluate;
pub mod event;
pub mod job;
pub mod metrics;
pub mod pipeline;
pub mod preview;
pub mod rules;
pub mod template;
pub mod trigger;
pub mod validate;

pub use config::Config;
pub use error::Error;
pub use pipeline::Processor;
pub use trigger::{CompileError, CompiledTrigger, Match, RenderError};
