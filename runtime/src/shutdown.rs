//! Cooperative shutdown: the first SIGINT or SIGTERM cancels the token every task watches; a
//! second one exits at once. The caller gives running work a deadline after the first.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long stages may take to drain after a shutdown was requested.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Cancels `token` on the first SIGINT/SIGTERM and exits the process on the second.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("Shutting down; a second signal exits at once.");
        token.cancel();
        wait_for_signal().await;
        warn!("Second signal: exiting now.");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
