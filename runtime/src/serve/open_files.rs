//! The process's open-file limit, which every listener's connection cap assumes.

use std::net::SocketAddr;

use tracing::{info, warn};

use super::ConnectionLimits;

/// Descriptors kept for what is not a connection (Kafka sockets, files, other listeners) when
/// comparing a cap with the process's open-file limit.
const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises the soft limit of open files to the hard limit, as Go's runtime does at start: the
/// default soft limit (often 1,024) is far below what a server with thousands of connections
/// needs, and the hard limit is what the operator allowed.
pub fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), hard) = (limit.current, limit.maximum) {
        let wanted = hard.unwrap_or(u64::MAX);
        if wanted > current {
            limit.current = Some(wanted);
            if setrlimit(Resource::Nofile, limit).is_ok() {
                info!(
                    from = current,
                    to = wanted,
                    "Raised the open-file limit to the hard limit."
                );
            }
        }
    }
}

/// Says once at start when a listener's cap is more than the open-file limit allows, since the
/// cap then protects nothing: accepts fail with "too many open files" first.
pub(super) fn warn_if_over_file_limit(addr: Option<SocketAddr>, limits: &ConnectionLimits) {
    let Some(open_files) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    else {
        return;
    };
    let wanted = limits.max_connections as u64 + RESERVED_DESCRIPTORS;
    if wanted > open_files {
        warn!(
            addr = ?addr,
            max_connections = limits.max_connections,
            open_files,
            "The open-file limit is below this listener's connection cap plus room for Kafka and files; lower the cap or raise the limit (ulimit -n)."
        );
    }
}
