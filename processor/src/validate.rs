//! The checks resources pass before they are written, by `hookline apply` and the control API
//! alike: the runtime's checks of each resource and of the references between them, plus
//! compiling every trigger's condition and templates here, where they are compiled to run.

use std::sync::Arc;

use hookline_runtime::validate::{self, Problem};
use hookline_schemas::{Resource, Trigger};

use crate::CompiledTrigger;
use crate::template::Limits;

/// Checks `resources`, the complete set that will exist: structure, references, and that every
/// trigger's condition and templates compile.
pub fn resources(resources: &[Resource], limits: &Limits) -> Vec<Problem> {
    let mut problems = validate::resources(resources);
    problems.extend(resources.iter().filter_map(|resource| match resource {
        Resource::Trigger(trigger) => self::trigger(trigger, limits),
        Resource::Source(_) | Resource::Destination(_) => None,
    }));
    problems
}

/// Whether `trigger`'s condition and templates compile; the problem names the field and, when
/// minijinja knows them, the line and column.
pub fn trigger(trigger: &Trigger, limits: &Limits) -> Option<Problem> {
    let error = CompiledTrigger::build(Arc::new(trigger.clone()), limits).err()?;
    let position = error
        .position
        .map(|(line, column)| format!(" (line {line}, column {column})"))
        .unwrap_or_default();
    Some(Problem {
        resource: Resource::Trigger(trigger.clone()).key().to_string(),
        field: error.field,
        message: format!("does not compile{position}: {}", error.reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(condition: &str) -> Vec<Resource> {
        serde_json::from_value(serde_json::json!([
            {"kind": "source", "id": "s", "auth": [{"type": "open"}]},
            {"kind": "destination", "id": "d", "url": "https://example.com/hook"},
            {"kind": "trigger", "id": "t", "when": {"sources": ["s"]}, "if": condition,
             "actions": [{"destination": "d", "body": "{}"}]}
        ]))
        .unwrap()
    }

    #[test]
    fn a_condition_that_does_not_compile_names_the_field_and_position() {
        assert_eq!(resources(&set("payload.ok"), &Limits::default()), []);
        let problems = resources(&set("payload.ok and"), &Limits::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            (problems[0].resource.as_str(), problems[0].field.as_str()),
            ("trigger/t", "if")
        );
        assert!(
            problems[0].message.starts_with("does not compile"),
            "{}",
            problems[0].message
        );
    }
}
