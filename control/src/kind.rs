//! The three kinds of resource as the API names them, and the fields every kind has.

use hookline_schemas::{Resource, ResourceId, ResourceKind};

/// Every kind, in the order the API lists them.
pub const KINDS: [ResourceKind; 3] = [
    ResourceKind::Source,
    ResourceKind::Destination,
    ResourceKind::Trigger,
];

/// The collection's name in URLs: `sources`, `destinations`, `triggers`.
pub fn plural(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Source => "sources",
        ResourceKind::Destination => "destinations",
        ResourceKind::Trigger => "triggers",
    }
}

/// The prefix of generated ids.
pub fn id_prefix(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Source => "src",
        ResourceKind::Destination => "dst",
        ResourceKind::Trigger => "trg",
    }
}

/// The resource's id.
pub fn id(resource: &Resource) -> &ResourceId {
    match resource {
        Resource::Source(source) => &source.id,
        Resource::Destination(destination) => &destination.id,
        Resource::Trigger(trigger) => &trigger.id,
    }
}

/// The resource's human name.
pub fn name(resource: &Resource) -> &str {
    match resource {
        Resource::Source(source) => &source.name,
        Resource::Destination(destination) => &destination.name,
        Resource::Trigger(trigger) => &trigger.name,
    }
}

/// Whether the resource is enabled.
pub fn enabled(resource: &Resource) -> bool {
    match resource {
        Resource::Source(source) => source.enabled,
        Resource::Destination(destination) => destination.enabled,
        Resource::Trigger(trigger) => trigger.enabled,
    }
}

/// Enables or disables the resource. Enabling a destination clears why the dispatcher disabled
/// it.
pub fn set_enabled(resource: &mut Resource, enabled: bool) {
    match resource {
        Resource::Source(source) => source.enabled = enabled,
        Resource::Destination(destination) => {
            destination.enabled = enabled;
            if enabled {
                destination.disabled_reason = None;
            }
        }
        Resource::Trigger(trigger) => trigger.enabled = enabled,
    }
}
