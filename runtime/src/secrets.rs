//! Secret formats shared by the stages that sign and those that verify.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The prefix of Standard Webhooks secrets.
pub const STANDARD_PREFIX: &str = "whsec_";

/// The HMAC key of a Standard Webhooks secret: the base64 after `whsec_` (the prefix is optional,
/// as in the reference libraries).
pub fn standard_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix(STANDARD_PREFIX).unwrap_or(secret);
    let key = STANDARD.decode(encoded).map_err(|error| {
        format!("is not a Standard Webhooks secret (whsec_ followed by base64): {error}")
    })?;
    if key.is_empty() {
        return Err("is an empty Standard Webhooks secret".to_owned());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_whsec_secrets_with_or_without_prefix() {
        assert_eq!(standard_key("whsec_aGVsbG8=").unwrap(), b"hello");
        assert_eq!(standard_key("aGVsbG8=").unwrap(), b"hello");
        assert!(standard_key("whsec_not base64!").is_err());
        assert!(standard_key("whsec_").is_err());
    }
}
