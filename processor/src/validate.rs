//! The checks resources pass before they are written, by `hookline apply` and the control API
//! alike: the runtime's checks of each resource and of the references between them, plus
//! compiling every trigger's condition and templates here, where they are compiled to run.

use hookline_runtime::validate::{self, Problem};
use hookline_schemas::{Resource, Trigger};

use crate::CompiledTrigger;
use crate::template::Limits;

/// Checks `resources`, the complete set that will exist: structure, references, and every
/// trigger's condition and templates (see [`trigger`]).
pub fn resources(resources: &[Resource], limits: &Limits) -> Vec<Problem> {
    let mut problems = validate::resources(resources);
    for resource in resources {
        if let Resource::Trigger(trigger) = resource {
            problems.extend(self::trigger(trigger, limits));
        }
    }
    problems
}

/// Every problem of `trigger`'s condition and templates: those that do not compile, and those
/// that would fail on every event (an unknown filter, test or function, a body that can never be
/// JSON). Each names the field and, when known, the line and column.
pub fn trigger(trigger: &Trigger, limits: &Limits) -> Vec<Problem> {
    let resource = Resource::Trigger(trigger.clone()).key().to_string();
    CompiledTrigger::check(trigger, limits)
        .into_iter()
        .map(|error| {
            let position = error
                .position
                .map(|(line, column)| format!(" (line {line}, column {column})"))
                .unwrap_or_default();
            Problem {
                resource: resource.clone(),
                field: error.field,
                message: format!("does not compile{position}: {}", error.reason),
            }
        })
        .collect()
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
    fn every_broken_field_is_reported_with_its_position() {
        let trigger: Trigger = serde_json::from_value(serde_json::json!({
            "id": "t",
            "when": {"sources": ["s"]},
            "if": "payload.kind is nosuch",
            "actions": [
                {"destination": "d", "body": "{\"a\": {{ payload.a|nosuch }}}",
                 "headers": {"x-a": "{{ payload.a"}},
                {"destination": "d", "body": "{\"a\": {{ payload.a }}", "url": "{{ nosuch() }}"},
            ],
        }))
        .unwrap();
        let problems: Vec<_> = self::trigger(&trigger, &Limits::default())
            .into_iter()
            .map(|problem| format!("{}: {}", problem.field, problem.message))
            .collect();
        assert_eq!(
            problems,
            [
                "actions[0].body: does not compile (line 1, column 20): unknown filter `nosuch`",
                "actions[0].headers.x-a: does not compile (line 1, column 12): syntax error: \
                 unexpected end of input, expected end of variable block",
                "actions[1].body: does not compile (line 1, column 22): the body can never be \
                 JSON, whatever its expressions print: EOF while parsing an object",
                "actions[1].url: does not compile (line 1, column 4): unknown function `nosuch`",
                "if: does not compile (line 1, column 17): unknown test `nosuch`",
            ]
        );
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
