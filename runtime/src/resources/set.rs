//! An immutable snapshot of all resources.

use std::collections::BTreeMap;
use std::sync::Arc;

use hookline_schemas::{
    Destination, Resource, ResourceId, ResourceKey, ResourceKind, Source, Trigger,
};
use time::OffsetDateTime;

/// All resources at one point of the resources topic.
#[derive(Clone, Debug, Default)]
pub struct ResourceSet {
    /// Sources by id.
    pub sources: BTreeMap<ResourceId, Arc<Source>>,
    /// Destinations by id.
    pub destinations: BTreeMap<ResourceId, Arc<Destination>>,
    /// Triggers by id.
    pub triggers: BTreeMap<ResourceId, Arc<Trigger>>,
    /// Where each resource's record is and when it was written; only for resources read from
    /// the topic.
    records: BTreeMap<ResourceKey, RecordInfo>,
    /// The offset of the last record applied, per partition of the topic, so a writer can wait
    /// until its own write is visible.
    applied: BTreeMap<i32, i64>,
}

/// The record that holds a resource on the resources topic. Resources keep their history in
/// the record rather than in their own fields, so a file applied twice stays unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// The partition of the record.
    pub partition: i32,
    /// The offset of the record: it changes with every write, even one that writes the same
    /// value again.
    pub offset: i64,
    /// When the resource was first written: the record's `hookline-created-at` header, or else
    /// the first record of the key this reader saw.
    pub created_at: Option<OffsetDateTime>,
    /// When the resource was last written: the record's timestamp.
    pub updated_at: Option<OffsetDateTime>,
}

impl ResourceSet {
    /// Inserts or replaces a resource read from the record described by `record`.
    pub fn put_record(&mut self, resource: Resource, record: RecordInfo) {
        let key = resource.key();
        self.put(resource);
        self.records.insert(key, record);
    }

    /// Where the resource's record is and when it was written; `None` for a resource that was
    /// not read from the topic.
    pub fn record(&self, key: &ResourceKey) -> Option<&RecordInfo> {
        self.records.get(key)
    }

    /// Notes that every record of `partition` up to `offset` is applied.
    pub fn mark_applied(&mut self, partition: i32, offset: i64) {
        let applied = self.applied.entry(partition).or_insert(offset);
        *applied = (*applied).max(offset);
    }

    /// The offset of the last record of `partition` applied to this set; `None` before the
    /// first.
    pub fn applied(&self, partition: i32) -> Option<i64> {
        self.applied.get(&partition).copied()
    }

    /// Inserts or replaces a resource.
    pub fn put(&mut self, resource: Resource) {
        self.records.remove(&resource.key());
        match resource {
            Resource::Source(source) => {
                self.sources.insert(source.id.clone(), Arc::new(source));
            }
            Resource::Destination(destination) => {
                self.destinations
                    .insert(destination.id.clone(), Arc::new(destination));
            }
            Resource::Trigger(trigger) => {
                self.triggers.insert(trigger.id.clone(), Arc::new(trigger));
            }
        }
    }

    /// Removes a resource; removing one that does not exist is not an error.
    pub fn remove(&mut self, key: &ResourceKey) {
        self.records.remove(key);
        match key.kind {
            ResourceKind::Source => {
                self.sources.remove(&key.id);
            }
            ResourceKind::Destination => {
                self.destinations.remove(&key.id);
            }
            ResourceKind::Trigger => {
                self.triggers.remove(&key.id);
            }
        }
    }

    /// A resource by key.
    pub fn get(&self, key: &ResourceKey) -> Option<Resource> {
        match key.kind {
            ResourceKind::Source => self
                .sources
                .get(&key.id)
                .map(|s| Resource::Source(Source::clone(s))),
            ResourceKind::Destination => self
                .destinations
                .get(&key.id)
                .map(|d| Resource::Destination(Destination::clone(d))),
            ResourceKind::Trigger => self
                .triggers
                .get(&key.id)
                .map(|t| Resource::Trigger(Trigger::clone(t))),
        }
    }

    /// Every resource, in key order.
    pub fn all(&self) -> Vec<Resource> {
        let sources = self
            .sources
            .values()
            .map(|s| Resource::Source(Source::clone(s)));
        let destinations = self
            .destinations
            .values()
            .map(|d| Resource::Destination(Destination::clone(d)));
        let triggers = self
            .triggers
            .values()
            .map(|t| Resource::Trigger(Trigger::clone(t)));
        sources.chain(destinations).chain(triggers).collect()
    }

    /// How many resources there are.
    pub fn len(&self) -> usize {
        self.sources.len() + self.destinations.len() + self.triggers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use hookline_schemas::SourceAuth;

    use super::*;

    fn source(id: &str) -> Resource {
        Resource::Source(Source::new(
            ResourceId::parse(id).unwrap(),
            vec![SourceAuth::Open],
        ))
    }

    #[test]
    fn records_follow_their_resources_and_positions_only_grow() {
        let mut set = ResourceSet::default();
        let key = source("a").key();
        let record = RecordInfo {
            partition: 0,
            offset: 5,
            created_at: None,
            updated_at: None,
        };
        set.put_record(source("a"), record);
        assert_eq!(set.record(&key), Some(&record));
        set.put(source("a"));
        assert_eq!(set.record(&key), None, "a resource not read from the topic");
        set.put_record(source("a"), record);
        set.remove(&key);
        assert_eq!(set.record(&key), None);

        assert_eq!(set.applied(0), None);
        set.mark_applied(0, 7);
        set.mark_applied(0, 3);
        assert_eq!(set.applied(0), Some(7));
        assert_eq!(set.applied(1), None);
    }
}
