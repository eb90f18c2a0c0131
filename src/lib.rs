//! The `hookline` command's library: one subcommand per role, `dev` for all of them on an
//! embedded broker, and the resource file commands.
//!
//! - [`cli`]: the command line and its dispatch.
//! - [`commands`]: the commands on the control API (`hookline sources|destinations|triggers …`),
//!   through [`api_client`].
//! - [`pipeline`]: runs any set of roles in one process, with the shared resource store, admin
//!   endpoints and shutdown; the end-to-end tests start stages through it too.
//! - [`dev`]: `hookline dev`.
//! - [`echo`]: the built-in echo receiver `hookline dev` delivers to.
//! - [`preview`]: `hookline preview`.
//! - [`resource_file`]: loading, validating and applying `hooks.toml` files.

pub mod api_client;
pub mod canary;
pub mod cli;
pub mod commands;
pub mod dev;
pub mod echo;
pub mod pipeline;
pub mod preview;
pub mod resource_file;
