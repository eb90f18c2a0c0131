//! A dead letter as the API names and shows it: its id is its place on the dead letter topic
//! (`<partition>-<offset>`), and a dead job is shown with its secrets masked as a destination's
//! view masks them (the URL's credential, the values of credential headers): it carries the
//! destination's URL as stored, and any token may read the logs.

use serde_json::Value;

use crate::mask;
use crate::store::query::Stored;

/// A dead letter as the API shows it: its id (its place on the dead letter topic) and fields,
/// with the secrets of a dead job masked.
pub fn dead_letter(record: &Stored) -> Value {
    let mut value = record.json();
    if let Some(job) = value.pointer_mut("/payload/job") {
        mask_job(job);
    }
    if let Value::Object(object) = &mut value {
        object.insert("id".into(), dead_letter_id(record).into());
    }
    value
}

/// Masks the URL's credential and the credential headers of a job as stored. (Replays read the
/// record itself, not this view, so they still send the real values.)
fn mask_job(job: &mut Value) {
    if let Some(Value::String(url)) = job.get_mut("url") {
        *url = mask::mask_url(url);
    }
    if let Some(Value::Object(headers)) = job.get_mut("headers") {
        for (name, value) in headers {
            if let Value::String(value) = value {
                *value = mask::header_value(name, value);
            }
        }
    }
}

/// The id of a dead letter: `<partition>-<offset>` on the dead letter topic.
pub fn dead_letter_id(record: &Stored) -> String {
    format!("{}-{}", record.partition, record.position)
}

/// The place (`<partition>-<offset>`) a dead letter id names.
pub fn parse_id(id: &str) -> Option<(i32, i64)> {
    let (partition, offset) = id.split_once('-')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_ids_name_a_place_on_the_topic() {
        assert_eq!(parse_id("2-41"), Some((2, 41)));
        assert_eq!(parse_id("2"), None);
        assert_eq!(parse_id("a-1"), None);
    }
}
