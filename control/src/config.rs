//! Control settings.

use std::net::SocketAddr;

use clap::Args;

/// Control settings.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Address of the operator's API.
    #[arg(
        id = "control-addr",
        long = "control-addr",
        env = "HOOKLINE_CONTROL_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub addr: SocketAddr,

    /// Admin tokens accepted as `Authorization: Bearer <token>`, comma separated. With none, every
    /// request is refused.
    #[arg(
        long = "control-token",
        env = "HOOKLINE_CONTROL_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub tokens: Vec<String>,
}
