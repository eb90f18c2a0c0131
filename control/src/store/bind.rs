//! Values bound to the store's queries, and the queries' SQL as each engine reads it.
//!
//! The queries of [`super::query`] are written once, in the SQL both engines read (numbered
//! parameters `?1`, `?2`, ... become PostgreSQL's `$1`, `$2`, ...).

use postgres::types::ToSql;
use rusqlite::types::Value as SqlValue;

use super::schema::{id_key, pg_key};

/// A value bound to a query's parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bind {
    /// A 64-bit integer (times, offsets, limits).
    Int(i64),
    /// A partition number.
    Partition(i32),
    /// Text (resource ids, outcomes).
    Text(String),
    /// An event or delivery id, bound as the engine keeps ids.
    Id(String),
}

impl Bind {
    pub(super) fn sqlite(&self) -> SqlValue {
        match self {
            Self::Int(value) => SqlValue::Integer(*value),
            Self::Partition(value) => SqlValue::Integer(i64::from(*value)),
            Self::Text(value) => SqlValue::Text(value.clone()),
            Self::Id(id) => id_key(id),
        }
    }

    pub(super) fn postgres(&self) -> Box<dyn ToSql + Sync> {
        match self {
            Self::Int(value) => Box::new(*value),
            Self::Partition(value) => Box::new(*value),
            Self::Text(value) => Box::new(value.clone()),
            Self::Id(id) => Box::new(pg_key(id)),
        }
    }
}

/// `binds` as PostgreSQL parameters.
pub(crate) fn postgres_params(binds: &[Bind]) -> Vec<Box<dyn ToSql + Sync>> {
    binds.iter().map(Bind::postgres).collect()
}

/// `sql` with its SQLite parameters (`?1`) written as PostgreSQL's (`$1`). The store's queries
/// have no `?` in literals or identifiers.
pub(crate) fn dollars(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_postgres_ones() {
        assert_eq!(
            dollars("SELECT a FROM t WHERE b = ?1 AND (c, d) < (?2, ?13) LIMIT ?14"),
            "SELECT a FROM t WHERE b = $1 AND (c, d) < ($2, $13) LIMIT $14"
        );
    }
}
