//! An immutable snapshot of all resources.

use std::collections::BTreeMap;
use std::sync::Arc;

use hookline_schemas::{
    Destination, Resource, ResourceId, ResourceKey, ResourceKind, Source, Trigger,
};

/// All resources at one point of the resources topic.
#[derive(Clone, Debug, Default)]
pub struct ResourceSet {
    /// Sources by id.
    pub sources: BTreeMap<ResourceId, Arc<Source>>,
    /// Destinations by id.
    pub destinations: BTreeMap<ResourceId, Arc<Destination>>,
    /// Triggers by id.
    pub triggers: BTreeMap<ResourceId, Arc<Trigger>>,
}

impl ResourceSet {
    /// Inserts or replaces a resource.
    pub fn put(&mut self, resource: Resource) {
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
