//! Validated identifiers: a resource id is checked once, where it enters, so the core never
//! re-checks it.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The longest id accepted, so ids stay readable in URLs, Kafka keys and logs.
pub const MAX_ID_LEN: usize = 64;

/// The id of a source, destination or trigger: 1 to 64 characters of ASCII letters, digits, `-`
/// and `_`. It appears in inbound URLs (`/inbound-webhooks/{id}`) and in Kafka keys, so nothing
/// that needs escaping is allowed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceId(String);

impl JsonSchema for ResourceId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ResourceId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_LEN,
            "pattern": "^[A-Za-z0-9_-]+$",
            "description": "A resource id: ASCII letters, digits, '-' and '_'."
        })
    }
}

/// Why a string is not a valid [`ResourceId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    /// The id is empty.
    Empty,
    /// The id is longer than [`MAX_ID_LEN`].
    TooLong(usize),
    /// The id contains a character outside `[A-Za-z0-9_-]`.
    InvalidChar(char),
}

impl std::error::Error for IdError {}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("an id must not be empty"),
            Self::TooLong(len) => {
                write!(
                    f,
                    "an id has at most {MAX_ID_LEN} characters, this one has {len}"
                )
            }
            Self::InvalidChar(c) => write!(
                f,
                "an id may contain only ASCII letters, digits, '-' and '_', not {c:?}"
            ),
        }
    }
}

impl ResourceId {
    /// Checks `value` and wraps it.
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        if value.is_empty() {
            return Err(IdError::Empty);
        }
        if value.len() > MAX_ID_LEN {
            return Err(IdError::TooLong(value.len()));
        }
        if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(IdError::InvalidChar(c));
        }
        Ok(Self(value))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ResourceId {
    type Error = IdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<ResourceId> for String {
    fn from(id: ResourceId) -> Self {
        id.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ResourceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_dash_and_underscore() {
        assert_eq!(
            ResourceId::parse("gh-Push_2").map(String::from),
            Ok("gh-Push_2".into())
        );
    }

    #[test]
    fn rejects_empty_long_and_url_unsafe_ids() {
        assert_eq!(ResourceId::parse(""), Err(IdError::Empty));
        assert_eq!(ResourceId::parse("a".repeat(65)), Err(IdError::TooLong(65)));
        assert_eq!(ResourceId::parse("a/b"), Err(IdError::InvalidChar('/')));
        assert_eq!(ResourceId::parse("a b"), Err(IdError::InvalidChar(' ')));
    }

    #[test]
    fn deserializing_checks_the_id() {
        let error = serde_json::from_str::<ResourceId>("\"no spaces\"").unwrap_err();
        assert!(error.to_string().contains("not ' '"), "{error}");
    }
}
