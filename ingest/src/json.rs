//! Checking that a body is JSON without building it.
//!
//! `serde::de::IgnoredAny` would skip values without recursion limits, letting through nesting
//! the processor then refuses to parse. Visiting every value with `deserialize_any` keeps
//! serde_json's recursion limit, at the same cost and without allocating: a value may nest 127
//! arrays or objects, and one at 128 levels is refused, exactly as the processor would refuse it.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Checks `body` is one JSON value with at most 127 levels of nested arrays and objects; the
/// error says where not.
pub fn check(body: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<AnyJson>(body).map(drop)
}

/// Any JSON value, discarded as it is read.
struct AnyJson;

impl<'de> Deserialize<'de> for AnyJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyVisitor)
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = AnyJson;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_unit<E: de::Error>(self) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyJson, A::Error> {
        while seq.next_element::<AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyJson, A::Error> {
        while map.next_entry::<IgnoredAny, AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_json_values() {
        for body in [
            r#"{"a": [1, 2.5, "x", null, true, {"b": {}}]}"#,
            "[]",
            "3",
            r#""s""#,
        ] {
            assert!(check(body.as_bytes()).is_ok(), "{body}");
        }
    }

    #[test]
    fn says_where_invalid_json_breaks() {
        let error = check(b"{\n  \"a\": }").unwrap_err().to_string();
        assert!(error.contains("line 2 column"), "{error}");
        assert!(check(b"{} {}").is_err(), "trailing data");
    }

    #[test]
    fn accepts_127_levels_of_nesting_and_refuses_128() {
        let ok = format!("{}{}", "[".repeat(127), "]".repeat(127));
        assert!(check(ok.as_bytes()).is_ok());
        let limit = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(check(limit.as_bytes()).is_err());
        // The processor parses events with serde_json too: what passes here parses there.
        assert!(serde_json::from_str::<serde_json::Value>(&ok).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&limit).is_err());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let error = check(deep.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("recursion limit"), "{error}");
        let deep_object = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        assert!(check(deep_object.as_bytes()).is_err());
    }
}
