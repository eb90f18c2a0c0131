//! What a connection's watchdog knows and decides: when a silent connection's head is overdue
//! and when an idle one has been idle long enough. Pure, so it is tested on a paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::ConnectionLimits;

/// Why the server closed a connection, as the `reason` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Closed {
    /// No complete request head within the header timeout of accepting it.
    HeaderTimeout,
    /// No request in progress for the idle timeout.
    Idle,
}

impl Closed {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::Idle => "idle",
        }
    }
}

/// What a connection's watchdog knows: when it was accepted, how many requests it has started
/// and has in progress, and when the last one ended.
pub(super) struct Activity {
    pub(super) accepted: Instant,
    started: AtomicU64,
    in_progress: AtomicUsize,
    /// Milliseconds from `accepted` to the end of the last request.
    last_done_ms: AtomicU64,
    /// Wakes the watchdog when a request starts or ends; a wake-up with no watchdog waiting is
    /// kept for the next wait, so none is lost.
    pub(super) changed: Notify,
}

impl Activity {
    pub(super) fn new() -> Self {
        Self {
            accepted: Instant::now(),
            started: AtomicU64::new(0),
            in_progress: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    /// Marks a request as started; the guard marks it done when dropped.
    pub(super) fn begin(self: &Arc<Self>) -> InProgress {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        InProgress(self.clone())
    }

    pub(super) fn in_progress(&self) -> usize {
        self.in_progress.load(Ordering::SeqCst)
    }

    /// When the connection must close and why, unless a request is in progress: the header
    /// timeout from accepting it until its first request, then the idle timeout from the end of
    /// the last one.
    pub(super) fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Closed)> {
        if self.in_progress() > 0 {
            None
        } else if self.started.load(Ordering::SeqCst) == 0 {
            Some((self.accepted + limits.header_timeout, Closed::HeaderTimeout))
        } else {
            Some((self.last_done() + limits.idle_timeout, Closed::Idle))
        }
    }

    /// Why the connection should close now, if it should.
    pub(super) fn expired(&self, limits: &ConnectionLimits) -> Option<Closed> {
        self.deadline(limits)
            .filter(|(at, _)| Instant::now() >= *at)
            .map(|(_, why)| why)
    }

    fn last_done(&self) -> Instant {
        self.accepted + Duration::from_millis(self.last_done_ms.load(Ordering::SeqCst))
    }
}

/// A request in progress on a connection.
pub(super) struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        let activity = &self.0;
        let elapsed = u64::try_from(activity.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.last_done_ms.fetch_max(elapsed, Ordering::SeqCst);
        activity.in_progress.fetch_sub(1, Ordering::SeqCst);
        activity.changed.notify_one();
    }
}
