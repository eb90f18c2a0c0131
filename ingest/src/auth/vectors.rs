//! The independent signature vectors (`tests/fixtures/signatures.json`, made with the official
//! Standard Webhooks library and Python's hmac) run through [`Verifier`] exactly as they are.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use hookline_schemas::SourceAuth;
use serde::Deserialize;

use super::Verifier;

/// A copy of the shared vectors kept in the repository, so a clone without `shared/` runs them.
const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/signatures.json"
));

#[derive(Deserialize)]
struct Vectors {
    tolerance_seconds: u64,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    scheme: String,
    secret: String,
    headers: BTreeMap<String, String>,
    body: String,
    now: i64,
    expect: String,
    why: String,
}

impl Vector {
    fn auth(&self) -> SourceAuth {
        let secrets = vec![self.secret.clone()];
        match self.scheme.as_str() {
            "standard" => SourceAuth::Standard {
                secrets,
                tolerance_seconds: None,
            },
            "github" => SourceAuth::Github { secrets },
            "stripe" => SourceAuth::Stripe {
                secrets,
                tolerance_seconds: None,
            },
            other => panic!("unknown scheme {other:?} in the vectors"),
        }
    }

    fn headers(&self) -> HeaderMap {
        self.headers
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }
}

#[test]
fn every_independent_signature_vector_gets_the_expected_verdict() {
    let vectors: Vectors = serde_json::from_str(VECTORS).unwrap();
    assert_eq!(
        vectors.tolerance_seconds, 300,
        "the vectors assume the default tolerance"
    );
    let mut failures = Vec::new();
    for (index, vector) in vectors.vectors.iter().enumerate() {
        let expected = match vector.expect.as_str() {
            "valid" => true,
            "invalid" => false,
            other => panic!("vector {index}: unknown expectation {other:?}"),
        };
        let verifier = Verifier::new(&[vector.auth()]).unwrap();
        let verdict = verifier.verify(&vector.headers(), vector.body.as_bytes(), vector.now);
        if verdict != expected {
            failures.push(format!(
                "vector {index} ({} {}): {}; verifier said {}",
                vector.scheme,
                vector.expect,
                vector.why,
                if verdict { "valid" } else { "invalid" }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for scheme in ["standard", "github", "stripe"] {
        assert!(
            vectors.vectors.iter().any(|vector| vector.scheme == scheme),
            "no {scheme} vector: the fixture is not the one expected"
        );
    }
}
