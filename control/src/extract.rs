//! What handlers read from a request besides its body and its `{id}` ([`crate::path`]): the query
//! string, refused in the API's JSON when it does not parse, and the window of a page of the logs,
//! refused the same way when the store cannot read it ([`PageError`]).

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;

use crate::error::ApiError;
use crate::store::page::PageError;

/// Reads a query string, or says what is wrong with it.
pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))
}

/// A page's parameters (`limit`, `cursor`, `since`, `until`) the store refused are an invalid
/// query, with the store's words.
impl From<PageError> for ApiError {
    fn from(error: PageError) -> Self {
        Self::InvalidQuery(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::page::Window;

    #[test]
    fn a_refused_page_is_an_invalid_query_in_the_store_s_words() {
        for (window, message) in [
            (
                Window::parse(Some(0), None, None, None),
                "invalid query: limit must be between 1 and 500",
            ),
            (
                Window::parse(None, Some("%%"), None, None),
                "invalid query: cursor is not one this API returned",
            ),
            (
                Window::parse(None, None, None, Some("yesterday")),
                "invalid query: until must be an RFC 3339 time such as 2026-01-02T03:04:05Z",
            ),
        ] {
            let error = ApiError::from(window.unwrap_err());
            assert!(matches!(error, ApiError::InvalidQuery(_)), "{error:?}");
            assert_eq!(error.to_string(), message);
        }
    }
}
