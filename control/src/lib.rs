//! Control: the operator's API, on its own address (ingest never serves it).
//!
//! For now it is read-only: it lists and shows the resources every stage sees, behind admin
//! tokens. Creating, changing and deleting resources goes through `hookline apply`; the full API
//! (writes, delivery logs, replay, test sends, previews) is the control plane's own issue.
//!
//! - [`config`]: listen address and tokens.
//! - [`api`]: the routes, their authentication and their errors.
//! - [`server`]: binding and serving.

pub mod api;
pub mod config;
pub mod server;

pub use config::Config;
pub use server::Control;
