//! The answers operations share: a JSON body of a named schema, the error body, the 401 with its
//! challenge, the 503 with its `Retry-After`, and a described string header.

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, Header, Ref, ResponseBuilder};

/// An answer whose JSON body is the schema named `schema`.
pub(super) fn body(description: &str, schema: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name(schema))),
    )
}

/// A string header, described.
pub(super) fn string_header(description: &str) -> Header {
    let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
    header.description = Some(description.to_owned());
    header
}

/// An answer with the error body.
pub(super) fn error(description: &str) -> ResponseBuilder {
    body(description, "Error")
}

/// The answer without a valid token.
pub(super) fn unauthorized() -> ResponseBuilder {
    error("No valid token.").header(
        "WWW-Authenticate",
        string_header("`Bearer realm=\"hookline\"`."),
    )
}

/// The answer while resources load or a write is not acknowledged or visible.
pub(super) fn unavailable() -> ResponseBuilder {
    error("Resources are loading, the broker did not acknowledge the write, or it is not visible yet.")
        .header("Retry-After", string_header("Seconds to wait."))
}
