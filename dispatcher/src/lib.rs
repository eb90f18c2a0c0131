//! The dispatcher: delivers jobs over HTTP, records every attempt, retries what is worth
//! retrying and dead-letters the rest.
//!
//! - [`config`]: settings and defaults.
//! - [`retry`]: the pure retry decision.
//! - [`deliver`]: one HTTP attempt, with a deadline and a capped response body.
//! - [`pipeline`]: the consume → deliver → record loop.
//! - [`hold`]: jobs of paused destinations, held until they resume.
//! - [`metrics`]: what it counts.

pub mod config;
pub mod deliver;
pub mod error;
pub mod guard;
pub mod health;
pub mod hold;
pub mod isolation;
pub mod metrics;
pub mod pipeline;
pub mod retry;
pub mod share;
pub mod sign;

pub use config::Config;
pub use error::Error;
pub use pipeline::Dispatcher;
