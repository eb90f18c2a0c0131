//! Connections lent one per query.

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

/// A few connections that answer queries, lent one per query.
pub(crate) struct Pool<C> {
    pub(super) idle: Mutex<Vec<C>>,
    pub(super) free: Arc<Semaphore>,
}

impl<C> Pool<C> {
    pub(crate) fn new(connections: Vec<C>) -> Self {
        let free = Arc::new(Semaphore::new(connections.len()));
        Self {
            idle: Mutex::new(connections),
            free,
        }
    }

    /// A pool of `size` connections made when first lent.
    pub(crate) fn lazy(size: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::with_capacity(size)),
            free: Arc::new(Semaphore::new(size)),
        }
    }
}

/// A connection lent to one query; it goes back to the idle ones when dropped, even if the
/// query panicked.
pub(crate) struct Lent<'a, C> {
    pool: &'a Pool<C>,
    connection: Option<C>,
}

impl<'a, C> Lent<'a, C> {
    /// Takes an idle connection; the caller holds a permit, so there is one.
    pub(crate) fn take(pool: &'a Pool<C>) -> Self {
        let connection = pool
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        Self { pool, connection }
    }

    pub(super) fn connection(&self) -> &C {
        self.connection
            .as_ref()
            .expect("a permit guarantees an idle connection")
    }

    /// The connection's place, which the caller may fill again when the connection broke.
    pub(crate) fn slot(&mut self) -> &mut Option<C> {
        &mut self.connection
    }
}

impl<C> Drop for Lent<'_, C> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(connection);
        }
    }
}
