//! The compiled triggers of one resource snapshot, indexed by source so the cost of an event grows
//! with the triggers of its own source, not with all triggers.
//!
//! A new snapshot reuses the compiled form of every trigger that did not change, so a change
//! compiles only what changed. Each event is matched against one `Rules` value: it sees the old
//! rule set or the new one, never half of a change.

use std::collections::HashMap;
use std::sync::Arc;

use hookline_runtime::resources::ResourceSet;
use hookline_schemas::{Destination, ResourceId, Trigger};
use tracing::error;

use crate::template::Limits;
use crate::trigger::CompiledTrigger;

/// The rules in force.
#[derive(Debug, Default)]
pub struct Rules {
    by_source: HashMap<ResourceId, Vec<Arc<CompiledTrigger>>>,
    compiled: HashMap<ResourceId, Arc<CompiledTrigger>>,
    resources: Arc<ResourceSet>,
}

impl Rules {
    /// Compiles the enabled triggers of `resources`, reusing those of `previous` that did not
    /// change. A trigger that does not compile is logged and left out; `hookline apply` and the
    /// API refuse such triggers, so this happens only to records written around them.
    pub fn build(resources: Arc<ResourceSet>, previous: &Rules, limits: &Limits) -> Self {
        let mut by_source: HashMap<ResourceId, Vec<Arc<CompiledTrigger>>> = HashMap::new();
        let mut compiled = HashMap::new();
        for trigger in resources.triggers.values().filter(|t| t.enabled) {
            let Some(ready) = reuse(previous, trigger).or_else(|| compile(trigger, limits)) else {
                continue;
            };
            for source in &trigger.when.sources {
                by_source
                    .entry(source.clone())
                    .or_default()
                    .push(ready.clone());
            }
            compiled.insert(trigger.id.clone(), ready);
        }
        Self {
            by_source,
            compiled,
            resources,
        }
    }

    /// The enabled triggers that look at events of `source`.
    pub fn triggers_for(&self, source: &ResourceId) -> &[Arc<CompiledTrigger>] {
        self.by_source.get(source).map_or(&[], Vec::as_slice)
    }

    /// A destination by id, if it exists.
    pub fn destination(&self, id: &ResourceId) -> Option<&Arc<Destination>> {
        self.resources.destinations.get(id)
    }
}

fn reuse(previous: &Rules, trigger: &Arc<Trigger>) -> Option<Arc<CompiledTrigger>> {
    previous
        .compiled
        .get(&trigger.id)
        .filter(|old| old.trigger().as_ref() == trigger.as_ref())
        .cloned()
}

fn compile(trigger: &Arc<Trigger>, limits: &Limits) -> Option<Arc<CompiledTrigger>> {
    match CompiledTrigger::build(trigger.clone(), limits) {
        Ok(compiled) => Some(Arc::new(compiled)),
        Err(error) => {
            error!(%error, trigger = %trigger.id, "Trigger does not compile; it is ignored.");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use hookline_schemas::{Action, Resource, When};

    use super::*;

    fn id(text: &str) -> ResourceId {
        ResourceId::parse(text).unwrap()
    }

    fn trigger(name: &str, source: &str, enabled: bool) -> Resource {
        Resource::Trigger(Trigger {
            schema_version: 1,
            id: id(name),
            name: String::new(),
            enabled,
            when: When {
                sources: vec![id(source)],
                event_type: None,
                event_types: Vec::new(),
            },
            condition: None,
            actions: vec![Action {
                destination: id("d"),
                body: "{}".into(),
                headers: Default::default(),
                url: None,
            }],
        })
    }

    #[test]
    fn indexes_enabled_triggers_by_source() {
        let mut set = ResourceSet::default();
        set.put(trigger("a", "github", true));
        set.put(trigger("b", "github", false));
        set.put(trigger("c", "stripe", true));
        let rules = Rules::build(Arc::new(set), &Rules::default(), &Limits::default());
        let ids = |source| -> Vec<String> {
            rules
                .triggers_for(&id(source))
                .iter()
                .map(|t| t.trigger().id.to_string())
                .collect()
        };
        assert_eq!(ids("github"), ["a"]);
        assert_eq!(ids("stripe"), ["c"]);
        assert!(ids("other").is_empty());
    }

    #[test]
    fn unchanged_triggers_are_not_recompiled() {
        let mut set = ResourceSet::default();
        set.put(trigger("a", "github", true));
        set.put(trigger("c", "stripe", true));
        let first = Rules::build(Arc::new(set.clone()), &Rules::default(), &Limits::default());
        set.put(trigger("c", "gitlab", true));
        let second = Rules::build(Arc::new(set), &first, &Limits::default());
        assert!(Arc::ptr_eq(
            &first.triggers_for(&id("github"))[0],
            &second.triggers_for(&id("github"))[0]
        ));
        assert!(second.triggers_for(&id("stripe")).is_empty());
        assert_eq!(second.triggers_for(&id("gitlab")).len(), 1);
    }
}
