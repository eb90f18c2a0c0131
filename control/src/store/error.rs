//! Why the store failed, and which failures pass by themselves.

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("store database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// PostgreSQL refused an operation, or could not be reached.
    #[error("PostgreSQL store error: {0}")]
    Postgres(#[from] postgres::Error),
    /// The PostgreSQL store's settings are not usable.
    #[error("PostgreSQL store: {0}")]
    PostgresSettings(String),
    /// The database file or its directory could not be made or replaced.
    #[error("cannot prepare the store file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file at the store's path is not one to use or rebuild.
    #[error("cannot use the store file {path}: {reason}")]
    Foreign {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A stored body could not be packed or unpacked.
    #[error("store body codec failed: {0}")]
    Codec(#[source] std::io::Error),
    /// A blocking task of the store panicked.
    #[error("a store task panicked")]
    Panicked,
    /// The store was told to stop while it waited for its database.
    #[error("the store stopped while waiting for its database")]
    Stopped,
}

impl StoreError {
    /// Whether SQLite found the file damaged: then it is rebuilt at the next start.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Database(error) if damaged(error))
    }

    /// Whether the error may pass by itself (PostgreSQL unreachable or restarting): the work
    /// is tried again rather than given up.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Postgres(error) if transient(error))
    }
}

/// Whether SQLite says the file is damaged or not a database at all.
pub fn damaged(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(
                failure.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            )
    )
}

/// Whether `error` may pass by itself: the connection broke or could not be made, or the server
/// is starting or shutting down.
pub fn transient(error: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                ]
                .contains(code)
        }
        None => {
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                    // A TLS failure (a certificate refused, say) does not pass by waiting.
                    return !io
                        .get_ref()
                        .is_some_and(|inner| inner.is::<rustls::Error>());
                }
                source = cause.source();
            }
            false
        }
    }
}
