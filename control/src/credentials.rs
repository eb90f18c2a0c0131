//! Credentials and ids Hookline makes up when a new resource does not bring its own: 256 random
//! bits from the operating system, shown once in the answer to the create.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hookline_schemas::ResourceKind;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::kind;

fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes)
        .map_err(|_| ApiError::Internal("the random number generator failed"))?;
    Ok(bytes)
}

/// A new bearer token or shared secret: `hl_` and 32 random bytes in URL-safe base64.
pub fn token() -> Result<String, ApiError> {
    Ok(format!("hl_{}", URL_SAFE_NO_PAD.encode(random::<32>()?)))
}

/// A new Standard Webhooks secret: `whsec_` and 32 random bytes in base64.
pub fn standard_secret() -> Result<String, ApiError> {
    Ok(format!("whsec_{}", STANDARD.encode(random::<32>()?)))
}

/// A new id for a resource of `kind`, such as `src_3f9a1c2b7d4e5f60`.
pub fn id(kind: ResourceKind) -> Result<String, ApiError> {
    Ok(format!(
        "{}_{}",
        kind::id_prefix(kind),
        hex::encode(random::<8>()?)
    ))
}

/// Fills in what a new source's JSON leaves out: without `auth`, the source gets a bearer
/// token; a `bearer`, `shared_secret`, `github`, `hmac` or `standard` entry without tokens or
/// secrets gets one. Stripe's secrets are made by Stripe, so they are never made up here.
pub fn fill_source(body: &mut Map<String, Value>) -> Result<(), ApiError> {
    let auth = body
        .entry("auth")
        .or_insert_with(|| json!([{ "type": "bearer" }]));
    let Some(entries) = auth.as_array_mut() else {
        return Ok(());
    };
    for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
        let (field, secret) = match entry.get("type").and_then(Value::as_str) {
            Some("bearer") => ("tokens", token as fn() -> Result<String, ApiError>),
            Some("shared_secret" | "github" | "hmac") => ("secrets", token as _),
            Some("standard") => ("secrets", standard_secret as _),
            _ => continue,
        };
        let missing = entry
            .get(field)
            .is_none_or(|list| list.as_array().is_some_and(Vec::is_empty));
        if missing {
            entry.insert(field.to_owned(), json!([secret()?]));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_distinct() {
        let (a, b) = (token().unwrap(), token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 43);
        assert!(hookline_runtime::secrets::standard_key(&standard_secret().unwrap()).is_ok());
        assert!(id(ResourceKind::Trigger).unwrap().starts_with("trg_"));
    }

    #[test]
    fn a_source_without_credentials_gets_a_bearer_token() {
        let mut body = Map::new();
        fill_source(&mut body).unwrap();
        let tokens = &body["auth"][0]["tokens"];
        assert_eq!(body["auth"][0]["type"], "bearer");
        assert!(tokens[0].as_str().unwrap().starts_with("hl_"), "{body:?}");
    }

    #[test]
    fn only_missing_credentials_are_made_up() {
        let mut body = json!({"auth": [
            {"type": "bearer", "tokens": ["mine"]},
            {"type": "standard"},
            {"type": "stripe"},
            {"type": "open"}
        ]});
        fill_source(body.as_object_mut().unwrap()).unwrap();
        assert_eq!(body["auth"][0]["tokens"], json!(["mine"]));
        assert!(
            body["auth"][1]["secrets"][0]
                .as_str()
                .unwrap()
                .starts_with("whsec_")
        );
        assert!(body["auth"][2].get("secrets").is_none());
        assert!(body["auth"][3].get("secrets").is_none());
    }
}
