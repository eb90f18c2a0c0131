//! A trigger compiled once, when it is created or changed: its `if` condition and the templates
//! of its actions. Rendering an event then only evaluates.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hookline_schemas::Trigger;
use minijinja::{Environment, Expression, Value};

use crate::template::{self, JSON_SUFFIX, Limits};

type Condition<'env> = Option<Expression<'env, 'static>>;

self_cell::self_cell!(
    /// The trigger's environment (holding its templates) and its condition, which borrows it.
    struct Compiled {
        owner: Environment<'static>,
        #[covariant]
        dependent: Condition,
    }
);

/// A trigger ready to evaluate.
pub struct CompiledTrigger {
    trigger: Arc<Trigger>,
    compiled: Compiled,
    max_rendered_bytes: usize,
}

impl fmt::Debug for CompiledTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledTrigger")
            .field("id", &self.trigger.id)
            .finish_non_exhaustive()
    }
}

/// Why a trigger does not compile: which field, where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}{}: {reason}", position.map(|(l, c)| format!(" (line {l}, column {c})")).unwrap_or_default())]
pub struct CompileError {
    /// The field, for example `actions[0].body` or `if`.
    pub field: String,
    /// Line and column in the field's text, when known.
    pub position: Option<(usize, usize)>,
    /// What is wrong.
    pub reason: String,
}

/// Why evaluating a trigger against an event failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RenderError {
    /// The field that failed, for example `actions[0].body`.
    pub field: String,
    /// What went wrong.
    pub reason: String,
}

/// One action's rendered request parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedAction {
    /// The body.
    pub body: String,
    /// Rendered header values by name.
    pub headers: BTreeMap<String, String>,
}

fn body_name(action: usize) -> String {
    format!("actions[{action}].body{JSON_SUFFIX}")
}

fn header_name(action: usize, header: &str) -> String {
    format!("actions[{action}].headers.{header}")
}

impl CompiledTrigger {
    /// Compiles the trigger's condition and templates with the given limits.
    pub fn build(trigger: Arc<Trigger>, limits: &Limits) -> Result<Self, CompileError> {
        if trigger.actions.is_empty() {
            return Err(CompileError {
                field: "actions".into(),
                position: None,
                reason: "a trigger needs at least one action".into(),
            });
        }
        if trigger.when.sources.is_empty() {
            return Err(CompileError {
                field: "when.sources".into(),
                position: None,
                reason: "a trigger needs at least one source".into(),
            });
        }
        let mut env = template::environment(limits);
        for (index, action) in trigger.actions.iter().enumerate() {
            add(
                &mut env,
                body_name(index),
                &action.body,
                format!("actions[{index}].body"),
            )?;
            for (header, value) in &action.headers {
                let name = header_name(index, header);
                add(&mut env, name.clone(), value, name)?;
            }
        }
        let condition = trigger.condition.clone();
        let compiled = Compiled::try_new(env, |env| match condition {
            None => Ok(None),
            Some(source) => env
                .compile_expression_owned(source.clone())
                .map(Some)
                .map_err(|error| compile_error("if", &source, &error)),
        })?;
        Ok(Self {
            trigger,
            compiled,
            max_rendered_bytes: limits.max_rendered_bytes,
        })
    }

    /// The trigger as written.
    pub fn trigger(&self) -> &Arc<Trigger> {
        &self.trigger
    }

    /// Evaluates the `if` condition (true when there is none).
    pub fn matches(&self, context: &Value) -> Result<bool, RenderError> {
        match self.compiled.borrow_dependent() {
            None => Ok(true),
            Some(expression) => expression
                .eval(context.clone())
                .map(|value| value.is_true())
                .map_err(|error| render_error("if", &error)),
        }
    }

    /// Renders action `index` (which must exist) against `context`.
    pub fn render(&self, index: usize, context: &Value) -> Result<RenderedAction, RenderError> {
        let action = &self.trigger.actions[index];
        let body = self.render_one(&body_name(index), context)?;
        if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(&body) {
            return Err(RenderError {
                field: format!("actions[{index}].body"),
                reason: format!("rendered body is not valid JSON: {error}"),
            });
        }
        let mut headers = BTreeMap::new();
        for header in action.headers.keys() {
            let value = self.render_one(&header_name(index, header), context)?;
            headers.insert(header.clone(), value);
        }
        Ok(RenderedAction { body, headers })
    }

    fn render_one(&self, name: &str, context: &Value) -> Result<String, RenderError> {
        let field = name.trim_end_matches(JSON_SUFFIX);
        let env = self.compiled.borrow_owner();
        let rendered = env
            .get_template(name)
            .and_then(|template| template.render(context))
            .map_err(|error| render_error(field, &error))?;
        if rendered.len() > self.max_rendered_bytes {
            return Err(RenderError {
                field: field.to_owned(),
                reason: format!(
                    "rendered {} bytes, more than the limit of {}",
                    rendered.len(),
                    self.max_rendered_bytes
                ),
            });
        }
        Ok(rendered)
    }
}

fn add(
    env: &mut Environment<'static>,
    name: String,
    source: &str,
    field: String,
) -> Result<(), CompileError> {
    env.add_template_owned(name, source.to_owned())
        .map_err(|error| compile_error(&field, source, &error))
}

fn compile_error(field: &str, source: &str, error: &minijinja::Error) -> CompileError {
    CompileError {
        field: field.to_owned(),
        position: template::position(source, error),
        reason: describe(error),
    }
}

fn render_error(field: &str, error: &minijinja::Error) -> RenderError {
    RenderError {
        field: field.to_owned(),
        reason: describe(error),
    }
}

/// The error's text without minijinja's template name (the field says where).
fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use hookline_schemas::{Action, ResourceId, When};
    use minijinja::context;

    use super::*;

    fn trigger(condition: Option<&str>, body: &str) -> Arc<Trigger> {
        Arc::new(Trigger {
            schema_version: 1,
            id: ResourceId::parse("t").unwrap(),
            name: "T".into(),
            enabled: true,
            when: When {
                sources: vec![ResourceId::parse("s").unwrap()],
            },
            condition: condition.map(str::to_owned),
            actions: vec![Action {
                destination: ResourceId::parse("d").unwrap(),
                body: body.into(),
                headers: BTreeMap::from([("x-kind".into(), "{{ payload.kind }}".into())]),
            }],
        })
    }

    fn payload(json: &str) -> Value {
        context! { payload => serde_json::from_str::<Value>(json).unwrap() }
    }

    #[test]
    fn renders_json_bodies_with_json_escaping() {
        let compiled = CompiledTrigger::build(
            trigger(None, r#"{"text": {{ payload.msg }}}"#),
            &Limits::default(),
        )
        .unwrap();
        let rendered = compiled
            .render(0, &payload(r#"{"msg": "say \"hi\"", "kind": "note"}"#))
            .unwrap();
        assert_eq!(rendered.body, r#"{"text": "say \"hi\""}"#);
        assert_eq!(rendered.headers["x-kind"], "note");
    }

    #[test]
    fn evaluates_conditions() {
        let compiled = CompiledTrigger::build(
            trigger(
                Some(r#"payload.severity == "high" and payload.count > 3"#),
                "{}",
            ),
            &Limits::default(),
        )
        .unwrap();
        assert!(
            compiled
                .matches(&payload(r#"{"severity": "high", "count": 4}"#))
                .unwrap()
        );
        assert!(
            !compiled
                .matches(&payload(r#"{"severity": "high", "count": 3}"#))
                .unwrap()
        );
    }

    #[test]
    fn a_missing_field_is_an_error_not_an_empty_string() {
        let compiled =
            CompiledTrigger::build(trigger(None, "{{ payload.nope }}"), &Limits::default())
                .unwrap();
        let error = compiled
            .render(0, &payload(r#"{"kind": "x"}"#))
            .unwrap_err();
        assert_eq!(error.field, "actions[0].body");
        assert!(error.reason.contains("undefined"), "{error}");
    }

    #[test]
    fn compile_errors_name_the_field_and_position() {
        let error = CompiledTrigger::build(trigger(None, "{}\n{{ payload. }}"), &Limits::default())
            .unwrap_err();
        assert_eq!(error.field, "actions[0].body");
        assert_eq!(error.position.map(|(line, _)| line), Some(2), "{error}");

        let error = CompiledTrigger::build(trigger(Some("payload.x =="), "{}"), &Limits::default())
            .unwrap_err();
        assert_eq!(error.field, "if");
    }

    #[test]
    fn rendered_bodies_must_be_json() {
        let compiled =
            CompiledTrigger::build(trigger(None, "not json"), &Limits::default()).unwrap();
        let error = compiled
            .render(0, &payload(r#"{"kind": "x"}"#))
            .unwrap_err();
        assert!(error.reason.contains("not valid JSON"), "{error}");
    }

    #[test]
    fn runaway_templates_run_out_of_fuel_and_size() {
        let limits = Limits {
            fuel: 1_000,
            ..Limits::default()
        };
        let looping = "[{% for i in range(100000) %}{{ i }},{% endfor %}0]";
        let compiled = CompiledTrigger::build(trigger(None, looping), &limits).unwrap();
        let error = compiled
            .render(0, &payload(r#"{"kind": "x"}"#))
            .unwrap_err();
        assert!(error.reason.contains("fuel"), "{error}");

        let limits = Limits {
            max_rendered_bytes: 10,
            ..Limits::default()
        };
        let compiled =
            CompiledTrigger::build(trigger(None, r#""{{ "x" * 100 }}""#), &limits).unwrap();
        let error = compiled
            .render(0, &payload(r#"{"kind": "x"}"#))
            .unwrap_err();
        assert!(error.reason.contains("limit"), "{error}");
    }
}
