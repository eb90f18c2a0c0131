//! Searching events: by source and time (from the indexes), and by what became of them (their
//! match outcome, a trigger that fired, a destination they were sent to) and their payload's
//! text, which are checked event by event.
//!
//! Checking costs a lookup per event (and the payload's decompression for text), so one search
//! looks at a bounded number of events ([`Search::budget`]), newest first. When it stops there
//! with a page not yet full, the answer says how many it looked at and gives a cursor to go on
//! from where it stopped: a search through a month of events is a series of bounded requests,
//! never one that holds the store.

use serde_json::Value;

use super::error::StoreError;
use super::page::{Cursor, Window};
use super::query::{self, Filter, Stored};
use super::row::RecordKind;
use super::sql::Database;

/// How many events are read from the index at a time.
const CHUNK: usize = 200;

/// What a search looks for, besides its window.
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// Events of this source.
    pub source_id: Option<String>,
    /// Whose match outcome is this (`delivered`, `no_trigger`, `no_match`, `dead`), or
    /// `pending` for events without a match record yet.
    pub outcome: Option<String>,
    /// For which this trigger fired.
    pub trigger_id: Option<String>,
    /// That were sent (a delivery job was made) to this destination.
    pub destination_id: Option<String>,
    /// Whose payload contains this text (ASCII case-insensitive; within what the store keeps of
    /// a payload).
    pub text: Option<String>,
    /// Most events looked at.
    pub budget: usize,
}

/// What a search found.
#[derive(Clone, Debug)]
pub struct Found {
    /// The events found, newest first, with their match record's JSON when it was read.
    pub items: Vec<(Stored, Option<Value>)>,
    /// Where to go on: after the last event found when the page is full, or after the last one
    /// looked at when the budget ran out; `None` when nothing older is left.
    pub next: Option<Cursor>,
    /// How many events were looked at.
    pub scanned: usize,
    /// Whether the search stopped at its budget rather than at the end of the window.
    pub stopped_at_budget: bool,
}

impl Search {
    fn needs_match(&self) -> bool {
        self.outcome.is_some() || self.trigger_id.is_some() || self.destination_id.is_some()
    }

    /// Whether the event (and its match record, when read) is one this search looks for.
    fn accepts(&self, event: &Stored, matched: Option<&Value>, needle: Option<&[u8]>) -> bool {
        if let Some(outcome) = &self.outcome {
            let actual = matched.and_then(|record| record["outcome"].as_str());
            let wanted = match actual {
                Some(actual) => actual == outcome,
                None => outcome == "pending",
            };
            if !wanted {
                return false;
            }
        }
        let triggers = || {
            matched
                .and_then(|record| record["triggers"].as_array())
                .into_iter()
                .flatten()
        };
        if let Some(trigger) = &self.trigger_id {
            let fired = triggers()
                .any(|entry| entry["trigger_id"] == trigger.as_str() && entry["result"] == "fired");
            if !fired {
                return false;
            }
        }
        if let Some(destination) = &self.destination_id {
            let sent = triggers()
                .flat_map(|entry| entry["deliveries"].as_array().into_iter().flatten())
                .any(|delivery| delivery["destination_id"] == destination.as_str());
            if !sent {
                return false;
            }
        }
        match needle {
            Some(needle) => event
                .payload
                .as_deref()
                .is_some_and(|payload| contains_ignoring_case(payload, needle)),
            None => true,
        }
    }
}

/// Whether `haystack` contains `needle` (already lower case), ignoring ASCII case.
fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    memchr::memmem::find(&haystack.to_ascii_lowercase(), needle).is_some()
}

/// Up to `window.limit` events `search` looks for, newest first, looking at no more than its
/// budget.
pub fn events(
    connection: &Database<'_>,
    search: &Search,
    window: &Window,
) -> Result<Found, StoreError> {
    let needle = search
        .text
        .as_ref()
        .map(|text| text.to_ascii_lowercase().into_bytes());
    let filter = Filter {
        kinds: vec![RecordKind::Event],
        source_id: search.source_id.clone(),
        with_payload: needle.is_some(),
        ..Filter::default()
    };
    let mut found = Found {
        items: Vec::new(),
        next: None,
        scanned: 0,
        stopped_at_budget: false,
    };
    let mut after = window.after.clone();
    loop {
        let chunk = Window {
            limit: CHUNK.min(search.budget - found.scanned).max(1),
            after: after.clone(),
            since_ms: window.since_ms,
            until_ms: window.until_ms,
        };
        let page = query::page(connection, &filter, &chunk)?;
        let more = page.next.is_some();
        for event in page.items {
            found.scanned += 1;
            after = Some(event.cursor());
            let matched = match search.needs_match() {
                true => match event.json()["event_id"].as_str() {
                    Some(id) => query::match_record(connection, id)?.map(|record| record.json()),
                    None => None,
                },
                false => None,
            };
            if search.accepts(&event, matched.as_ref(), needle.as_deref()) {
                found.items.push((event, matched));
                if found.items.len() == window.limit {
                    // Whether anything older is left is for the next request to find out.
                    found.next = after;
                    return Ok(found);
                }
            }
            // A chunk never reaches past the budget, so the budget ends with a chunk's last
            // event: the search stopped early only if older events are left.
            if found.scanned >= search.budget {
                if more {
                    found.stopped_at_budget = true;
                    found.next = after;
                }
                return Ok(found);
            }
        }
        if !more {
            return Ok(found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_found_ignoring_ascii_case() {
        assert!(contains_ignoring_case(br#"{"Customer": "ACME"}"#, b"acme"));
        assert!(!contains_ignoring_case(
            br#"{"customer": "acme"}"#,
            b"globex"
        ));
        assert!(contains_ignoring_case(b"anything", b""));
    }
}
