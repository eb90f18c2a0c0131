//! When each source, trigger and destination was last active, as the records the store read
//! show it: kept in memory (one small entry per resource), so showing a resource never waits for
//! the database.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::row::{Activity, Row};

/// When a resource was last active.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastActivity {
    /// Last event (source), firing (trigger) or job made (destination), Unix milliseconds.
    pub triggered_ms: Option<i64>,
    /// Last successful delivery, Unix milliseconds.
    pub delivered_ms: Option<i64>,
}

/// The last activity of every resource seen. Cheap to clone; clones share the map.
#[derive(Clone, Debug, Default)]
pub struct Activities {
    by_resource: Arc<RwLock<HashMap<&'static str, HashMap<String, LastActivity>>>>,
}

impl Activities {
    /// Takes note of what `rows` show.
    pub fn note(&self, rows: &[Row]) {
        let mut map = self
            .by_resource
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for row in rows {
            for (resource, id, what) in &row.activity {
                let entry = map
                    .entry(*resource)
                    .or_default()
                    .entry(id.clone())
                    .or_default();
                let slot = match what {
                    Activity::Triggered => &mut entry.triggered_ms,
                    Activity::Delivered => &mut entry.delivered_ms,
                };
                *slot = Some(slot.map_or(row.at_ms, |known| known.max(row.at_ms)));
            }
        }
    }

    /// The last activity of `id`, a `resource` (`source`, `trigger`, `destination`).
    pub fn get(&self, resource: &str, id: &str) -> LastActivity {
        self.by_resource
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(resource)
            .and_then(|ids| ids.get(id))
            .copied()
            .unwrap_or_default()
    }
}
