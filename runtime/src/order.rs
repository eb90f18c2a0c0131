//! Record keys, which choose partitions and so decide what is processed in order.
//!
//! An event is keyed by its order key: its own id unless its source needs per-entity order and
//! says so with `order_key` (`"source"`, or a path into the payload such as
//! `payload.customer.id`). Events with one key share a partition, so one processor handles them
//! in order; events with different keys spread over every partition, so one busy source uses
//! every processor. A delivery job is keyed by its destination and its event's key
//! ([`job_key`]), so one busy destination uses every dispatcher too, unless the destination is
//! ordered (FIFO): its jobs are keyed by the destination alone ([`ordered_job_key`]), one
//! partition in the order they were made.

use std::borrow::Cow;

use serde_json::Value;

/// The longest order key taken from a payload, in bytes; a longer value is cut (on a character
/// boundary). Events whose values share this prefix share an order, which costs spread, never
/// order.
pub const MAX_KEY_BYTES: usize = 256;

/// What a source's events are keyed by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderKey {
    /// The event's id: no order between events, spread over every partition (the default).
    Event,
    /// The source's id: every event of the source in order, on one partition.
    Source,
    /// A value of the payload: events with the same value in order. An event without the value
    /// (or with `null`) is keyed by its id.
    Path(Vec<Step>),
}

/// One step of a [`OrderKey::Path`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// An object's field: `.name` or `["name"]`.
    Field(String),
    /// An array's element: `[0]`.
    Index(usize),
}

impl OrderKey {
    /// Reads a source's `order_key`: absent means [`OrderKey::Event`], `"source"`
    /// [`OrderKey::Source`], otherwise a path that starts with `payload` and goes on with
    /// `.field`, `["field"]` and `[index]` steps, as in a template.
    pub fn parse(text: Option<&str>) -> Result<Self, String> {
        let Some(text) = text.map(str::trim) else {
            return Ok(Self::Event);
        };
        match text {
            "source" => Ok(Self::Source),
            "event" | "event.id" => Ok(Self::Event),
            _ => parse_path(text).map(Self::Path),
        }
    }

    /// The order key of `source`; an unreadable one (refused when resources are written)
    /// counts as none.
    pub fn of(source: &hookline_schemas::Source) -> Self {
        Self::parse(source.order_key.as_deref()).unwrap_or(Self::Event)
    }

    /// Whether finding the key needs the parsed payload.
    pub fn reads_payload(&self) -> bool {
        matches!(self, Self::Path(_))
    }

    /// The record key of an event of source `source` with id `event_id`, given its parsed
    /// payload when [`Self::reads_payload`].
    pub fn event_key<'a>(
        &self,
        source: &'a str,
        event_id: &'a str,
        payload: Option<&Value>,
    ) -> Cow<'a, str> {
        match self {
            Self::Event => Cow::Borrowed(event_id),
            Self::Source => Cow::Borrowed(source),
            Self::Path(steps) => payload
                .and_then(|payload| find(payload, steps))
                .and_then(key_text)
                .map_or(Cow::Borrowed(event_id), Cow::Owned),
        }
    }
}

/// The record key of a delivery job to `destination` for an event keyed `event_key`: jobs of one
/// destination and one order key share a partition; a destination's jobs for different keys
/// spread over every partition.
pub fn job_key(destination: &str, event_key: &str) -> String {
    format!("{destination}/{event_key}")
}

/// The record key of a delivery job to an ordered (FIFO) destination: the destination alone, so
/// all its jobs share one partition in the order the processors made them.
pub fn ordered_job_key(destination: &str) -> String {
    destination.to_owned()
}

/// Whether `key` is the key [`ordered_job_key`] gives the jobs of `destination`: the dispatcher
/// takes such a job for an ordered destination's even before it has read the destination.
pub fn is_ordered_job_key(key: &[u8], destination: &str) -> bool {
    key == destination.as_bytes()
}

fn find<'v>(mut value: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    for step in steps {
        value = match (step, value) {
            (Step::Field(name), Value::Object(fields)) => fields.get(name)?,
            (Step::Index(index), Value::Array(items)) => items.get(*index)?,
            (Step::Field(_) | Step::Index(_), _) => return None,
        };
    }
    Some(value)
}

/// A value as key text: strings as they are, numbers and booleans as written in JSON, objects
/// and arrays as compact JSON; `null` is no key.
fn key_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(text) => text.clone(),
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => value.to_string(),
    };
    Some(cut(text))
}

/// `text` cut to at most [`MAX_KEY_BYTES`] on a character boundary.
fn cut(mut text: String) -> String {
    if text.len() > MAX_KEY_BYTES {
        let mut end = MAX_KEY_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn parse_path(text: &str) -> Result<Vec<Step>, String> {
    let usage = "order_key must be \"source\" or a path into the payload such as \
                 payload.customer.id, payload[\"customer-id\"] or payload.items[0].id";
    let Some(mut rest) = text.strip_prefix("payload") else {
        return Err(format!("{usage}; {text:?} does not start with payload"));
    };
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!(
                    "{usage}; a field name is expected after '.' in {text:?}"
                ));
            }
            steps.push(Step::Field(name.to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let close = after
                .find(']')
                .ok_or_else(|| format!("{usage}; '[' without ']' in {text:?}"))?;
            let inside = after[..close].trim();
            let step = if let Ok(index) = inside.parse::<usize>() {
                Step::Index(index)
            } else {
                let quoted = |quote: char| {
                    inside
                        .strip_prefix(quote)
                        .and_then(|inner| inner.strip_suffix(quote))
                        .filter(|inner| !inner.contains(quote))
                };
                let name = quoted('"').or_else(|| quoted('\'')).ok_or_else(|| {
                    format!("{usage}; [{inside}] is neither an index nor a quoted name")
                })?;
                Step::Field(name.to_owned())
            };
            steps.push(step);
            rest = &after[close + 1..];
        } else {
            return Err(format!("{usage}; unexpected {rest:?} in {text:?}"));
        }
    }
    if steps.is_empty() {
        return Err(format!(
            "{usage}; the whole payload is not an order key, name a field of it"
        ));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(order_key: &str, payload: &Value) -> String {
        OrderKey::parse(Some(order_key))
            .unwrap()
            .event_key("src", "evt", Some(payload))
            .into_owned()
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(OrderKey::parse(None), Ok(OrderKey::Event));
        assert_eq!(OrderKey::parse(Some("source")), Ok(OrderKey::Source));
        assert_eq!(
            OrderKey::parse(Some("payload.customer.id")),
            Ok(OrderKey::Path(vec![
                Step::Field("customer".into()),
                Step::Field("id".into())
            ]))
        );
        assert_eq!(
            OrderKey::parse(Some("payload[\"customer-id\"].items[2]['a b']")),
            Ok(OrderKey::Path(vec![
                Step::Field("customer-id".into()),
                Step::Field("items".into()),
                Step::Index(2),
                Step::Field("a b".into()),
            ]))
        );
    }

    #[test]
    fn refuses_what_is_not_a_path_into_the_payload() {
        for bad in [
            "payload",
            "customer.id",
            "payload.",
            "payload.0",
            "payload[",
            "payload[x]",
            "payload[\"a]",
            "payload.a-b",
            "payload.a | upper",
            "event.headers.x",
        ] {
            let error = OrderKey::parse(Some(bad)).unwrap_err();
            assert!(error.contains("order_key must be"), "{bad}: {error}");
        }
    }

    #[test]
    fn keys_events_by_id_source_or_payload_value() {
        let payload = json!({"customer": {"id": "cus_1", "n": 7, "tags": ["a"]}, "none": null});
        let by = |order: OrderKey| order.event_key("src", "evt", Some(&payload)).into_owned();
        assert_eq!(by(OrderKey::Event), "evt");
        assert_eq!(by(OrderKey::Source), "src");
        assert_eq!(key("payload.customer.id", &payload), "cus_1");
        assert_eq!(key("payload.customer.n", &payload), "7");
        assert_eq!(key("payload.customer.tags", &payload), "[\"a\"]");
        assert_eq!(key("payload.customer.tags[0]", &payload), "a");
        // No value: no order to keep, so the event's own id.
        assert_eq!(key("payload.none", &payload), "evt");
        assert_eq!(key("payload.missing.id", &payload), "evt");
        assert_eq!(key("payload.customer.id.deeper", &payload), "evt");
        assert_eq!(key("payload.customer.tags[3]", &payload), "evt");
    }

    #[test]
    fn cuts_long_values_on_a_character_boundary() {
        let long = "é".repeat(MAX_KEY_BYTES);
        let cut = key("payload.k", &json!({ "k": long }));
        assert!(cut.len() <= MAX_KEY_BYTES && cut.len() >= MAX_KEY_BYTES - 1);
        assert!(long.starts_with(&cut));
    }

    #[test]
    fn job_keys_join_destination_and_event_key() {
        assert_eq!(job_key("orders", "cus_1"), "orders/cus_1");
    }

    #[test]
    fn only_an_ordered_destination_s_key_reads_as_ordered() {
        assert!(is_ordered_job_key(
            ordered_job_key("orders").as_bytes(),
            "orders"
        ));
        // Released held jobs are keyed with an empty order key, so they stay unordered.
        assert!(!is_ordered_job_key(
            job_key("orders", "").as_bytes(),
            "orders"
        ));
        assert!(!is_ordered_job_key(
            job_key("orders", "cus_1").as_bytes(),
            "orders"
        ));
        assert!(!is_ordered_job_key(b"order", "orders"));
    }
}
