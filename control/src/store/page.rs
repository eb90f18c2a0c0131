//! Time windows and pages of the logs: `since` and `until` (RFC 3339), `limit`, and an opaque
//! `cursor` naming the last record shown. Lists run newest first; the cursor is the record's time
//! and its place on its topic, so it means the same on every control instance and survives a
//! rebuild of the store.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::list::{DEFAULT_LIMIT, MAX_LIMIT};

/// Why a page cannot be read as asked: the parameters a client sent are wrong. The HTTP layer
/// answers each as an invalid query ([`crate::extract`]).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The cursor does not decode into one this API gave out.
    #[error("cursor is not one this API returned")]
    Cursor,
    /// The limit is outside `1..=MAX_LIMIT`.
    #[error("limit must be between 1 and {MAX_LIMIT}")]
    Limit,
    /// A time parameter is not RFC 3339.
    #[error("{name} must be an RFC 3339 time such as 2026-01-02T03:04:05Z")]
    Time {
        /// The parameter: `since` or `until`.
        name: String,
    },
}

/// Where a page starts: after this record, in newest-first order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The record's time, Unix milliseconds.
    pub at_ms: i64,
    /// Its kind's name.
    pub kind: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub position: i64,
}

impl Cursor {
    /// The opaque form given to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}/{}/{}/{}",
            self.at_ms, self.kind, self.partition, self.position
        ))
    }

    /// Reads a cursor this API gave out.
    pub fn decode(text: &str) -> Result<Self, PageError> {
        let invalid = || PageError::Cursor;
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = text.split('/');
        let mut next = || parts.next().ok_or_else(invalid);
        let at_ms = next()?.parse().map_err(|_| invalid())?;
        let kind = next()?.to_owned();
        let partition = next()?.parse().map_err(|_| invalid())?;
        let position = next()?.parse().map_err(|_| invalid())?;
        Ok(Self {
            at_ms,
            kind,
            partition,
            position,
        })
    }
}

/// A page request: how many, after which record, within which times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Most records in the page.
    pub limit: usize,
    /// Start after this record.
    pub after: Option<Cursor>,
    /// Only records at or after this time (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Only records before this time (Unix milliseconds).
    pub until_ms: Option<i64>,
}

impl Window {
    /// Checks and reads the common query parameters.
    pub fn parse(
        limit: Option<usize>,
        cursor: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
    ) -> Result<Self, PageError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(PageError::Limit);
        }
        Ok(Self {
            limit,
            after: cursor.map(Cursor::decode).transpose()?,
            since_ms: since.map(|text| time("since", text)).transpose()?,
            until_ms: until.map(|text| time("until", text)).transpose()?,
        })
    }

    /// Every record of the last `limit` ones, for internal use.
    pub fn latest(limit: usize) -> Self {
        Self {
            limit,
            after: None,
            since_ms: None,
            until_ms: None,
        }
    }
}

/// Unix milliseconds of an RFC 3339 query parameter.
pub fn time(name: &str, text: &str) -> Result<i64, PageError> {
    super::row::millis(text).ok_or_else(|| PageError::Time {
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let cursor = Cursor {
            at_ms: 1_700_000_000_123,
            kind: "attempt".into(),
            partition: 2,
            position: 41,
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        assert!(Cursor::decode("bm9wZQ").is_err());
        assert!(Cursor::decode("%%").is_err());
    }

    #[test]
    fn windows_check_limits_and_times() {
        let window = Window::parse(Some(5), None, Some("2026-01-02T03:04:05Z"), None).unwrap();
        assert_eq!(window.limit, 5);
        assert_eq!(window.since_ms, Some(1_767_323_045_000));
        assert!(Window::parse(Some(0), None, None, None).is_err());
        assert!(Window::parse(None, None, Some("yesterday"), None).is_err());
    }
}
