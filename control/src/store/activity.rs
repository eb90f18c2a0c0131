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
    /// The latest activity `rows` show, by (resource, id).
    pub fn latest(rows: &[Row]) -> HashMap<(&'static str, String), LastActivity> {
        let mut latest: HashMap<(&'static str, String), LastActivity> = HashMap::new();
        for row in rows {
            for (resource, id, what) in &row.activity {
                latest
                    .entry((*resource, id.clone()))
                    .or_default()
                    .merge(*what, row.at_ms);
            }
        }
        latest
    }

    /// Takes note of what `rows` show.
    pub fn note(&self, rows: &[Row]) {
        let mut map = self.write();
        for ((resource, id), last) in Self::latest(rows) {
            map.entry(resource)
                .or_default()
                .entry(id)
                .or_default()
                .join(last);
        }
    }

    /// Takes note of activities stored earlier: (resource, id, activity).
    pub fn load(&self, stored: Vec<(String, String, LastActivity)>) {
        let mut map = self.write();
        for (resource, id, last) in stored {
            let Some(resource) = RESOURCES.into_iter().find(|known| *known == resource) else {
                continue;
            };
            map.entry(resource)
                .or_default()
                .entry(id)
                .or_default()
                .join(last);
        }
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<&'static str, HashMap<String, LastActivity>>> {
        self.by_resource
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// The resources activity is kept for.
const RESOURCES: [&str; 3] = ["source", "trigger", "destination"];

impl LastActivity {
    /// Takes note of `what` at `at_ms`.
    fn merge(&mut self, what: Activity, at_ms: i64) {
        let slot = match what {
            Activity::Triggered => &mut self.triggered_ms,
            Activity::Delivered => &mut self.delivered_ms,
        };
        *slot = Some(slot.map_or(at_ms, |known| known.max(at_ms)));
    }

    /// Keeps the later of each time.
    fn join(&mut self, other: Self) {
        if let Some(at_ms) = other.triggered_ms {
            self.merge(Activity::Triggered, at_ms);
        }
        if let Some(at_ms) = other.delivered_ms {
            self.merge(Activity::Delivered, at_ms);
        }
    }
}
