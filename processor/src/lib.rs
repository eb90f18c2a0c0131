//! The processor: turns events into delivery jobs.
//!
//! - [`config`]: settings (limits of templates, work in flight).
//! - [`template`]: the minijinja environment and its safety limits.
//! - [`trigger`]: a trigger compiled once: its condition and templates.
//! - [`rules`]: the compiled triggers of a resource snapshot, indexed by source.
//! - [`event`]: reading an event's metadata from its record headers.
//! - [`job`]: building delivery jobs with deterministic ids.
//! - [`pipeline`]: the consume → match → render → produce loop.
//! - [`metrics`]: what it counts.

pub mod config;
pub mod error;
pub mod event;
pub mod job;
pub mod metrics;
pub mod pipeline;
pub mod rules;
pub mod template;
pub mod trigger;

pub use config::Config;
pub use error::Error;
pub use pipeline::Processor;
pub use trigger::{CompileError, CompiledTrigger};
