//! The handlers of the API, grouped by what they serve; [`crate::routes`] mounts them. They
//! share the state of [`crate::state`] and the helpers of [`crate::error`], [`crate::extract`]
//! and [`crate::path`], and never import each other.
//!
//! - [`resources`]: create, read, list, change, enable, disable, pause and delete sources,
//!   destinations and triggers; rotate a source's token.
//! - [`apply`]: `hookline apply` through the API.
//! - [`preview`]: what a saved or unsaved trigger would send for a sample event.
//! - [`history`]: what happened: an event's journey, a source's events, attempts, dead letters.
//! - [`test_send`]: a test webhook through the real dispatcher.
//! - [`replay`]: dead letters and events sent through the pipeline again, or discarded.
//! - [`stats`]: how each destination and source is doing over a recent window.

pub mod apply;
pub mod history;
pub mod preview;
pub mod replay;
pub mod resources;
pub mod stats;
pub mod test_send;
