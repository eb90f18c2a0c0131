//! What handlers read from a request besides its body and its `{id}` ([`crate::path`]): the query
//! string, refused in the API's JSON when it does not parse.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;

use crate::error::ApiError;

/// Reads a query string, or says what is wrong with it.
pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))
}
