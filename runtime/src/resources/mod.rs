//! The resource store: every process's view of the compacted resources topic.
//!
//! - [`set`]: an immutable snapshot of all sources, destinations and triggers.
//! - [`store`]: reads the topic to its end before the stage reports ready, then applies changes
//!   live, publishing a new snapshot per change so a reader sees the old set or the new one, never
//!   half of a change.
//! - [`writer`]: writes and deletes resources, answering after the broker acknowledged, with
//!   where the record went, so a writer can wait until its store applied it.

pub mod set;
pub mod store;
pub mod writer;

pub use set::{RecordInfo, ResourceSet};
pub use store::{ResourceStore, StoreStopped};
pub use writer::{ResourceWriter, Written};
