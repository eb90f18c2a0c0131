//! Commands that work through the control API rather than Kafka: what an operator types to
//! manage a running installation.
//!
//! - [`resources`]: `hookline sources|destinations|triggers list|get|create|delete|enable|disable`,
//!   and `hookline destinations pause|resume`.
//! - [`triggers`]: those for triggers, and `hookline triggers preview`.
//! - [`history`]: `hookline events|attempts|dead …` and `hookline test`, on the event store.
//! - [`output`]: tables for people, JSON for scripts.

pub mod history;
pub mod output;
pub mod resources;
pub mod triggers;

use clap::Args;

use crate::api_client::{ApiClient, ClientError};

/// Where the control API is, how to authenticate, and how to print.
#[derive(Clone, Debug, Args)]
pub struct ApiArgs {
    /// Base URL of the control API (`hookline dev` serves it at http://127.0.0.1:8081).
    // Explicit ids: global arguments share one namespace with every subcommand's (`--url`).
    #[arg(
        id = "api-url",
        long = "api-url",
        env = "HOOKLINE_API_URL",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    pub url: String,

    /// Bearer token of the control API (`hookline dev`: dev-admin-token); a read-only token is
    /// enough for list, get and preview.
    #[arg(
        id = "api-token",
        long = "api-token",
        env = "HOOKLINE_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,

    /// Print the API's JSON instead of a table, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ApiArgs {
    /// A client of the API these arguments name.
    pub fn client(&self) -> Result<ApiClient, ClientError> {
        ApiClient::new(&self.url, self.token.clone())
    }
}
