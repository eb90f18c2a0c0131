//! A trigger compiled once, when it is created or changed: its event-type expression, its `if`
//! condition and the templates of its actions. Rendering an event then only evaluates.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hookline_schemas::Trigger;
use minijinja::{Environment, Expression, Value};

use crate::template::{self, JSON_SUFFIX, Limits, SourceMap};

/// The trigger's compiled expressions, which borrow its environment.
struct Expressions<'env> {
    event_type: Option<Expression<'env, 'static>>,
    condition: Option<Expression<'env, 'static>>,
}

self_cell::self_cell!(
    /// The trigger's environment (holding its templates) and its expressions.
    struct Compiled {
        owner: Environment<'static>,
        #[covariant]
        dependent: Expressions,
    }
);

/// A trigger ready to evaluate.
pub struct CompiledTrigger {
    trigger: Arc<Trigger>,
    compiled: Compiled,
    /// Per template name or expression field, how positions in what was compiled map back to
    /// what the user wrote (see [`template::rewrite`]).
    maps: BTreeMap<String, SourceMap>,
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
    /// What went wrong, naming the expression that failed (and where) when minijinja knows it.
    pub reason: String,
    /// Line and column in the field's text, when known (also written out in `reason`).
    pub position: Option<(usize, usize)>,
}

/// Whether a trigger fires for an event, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `when` and `if` hold.
    Fired,
    /// The event's type is not one the trigger looks at.
    OtherEventType(String),
    /// The `if` condition is false.
    ConditionFalse,
}

/// One action's rendered request parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedAction {
    /// The body.
    pub body: String,
    /// Rendered header values by name.
    pub headers: BTreeMap<String, String>,
    /// The rendered URL override, if the action has one.
    pub url: Option<String>,
}

fn body_name(action: usize) -> String {
    format!("actions[{action}].body{JSON_SUFFIX}")
}

fn header_name(action: usize, header: &str) -> String {
    format!("actions[{action}].headers.{header}")
}

fn url_name(action: usize) -> String {
    format!("actions[{action}].url")
}

/// The stack templates are compiled on: minijinja's parser and code generator recurse once per
/// operator of a chain (`a + b + c ...`), so a long chain overflowed a thread's usual 2 MiB and
/// aborted the process. The rewrite caps the tokens of a template (see
/// [`template::rewrite::MAX_TOKENS`]); this stack holds the deepest chain that cap allows. It is
/// only reserved address space: pages are used as the recursion reaches them.
const COMPILE_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Runs `work` on a thread with [`COMPILE_STACK_BYTES`] of stack, and returns what it returns;
/// on this thread if no thread can be started.
fn on_large_stack<T: Send, F: FnOnce() -> T + Send>(work: F) -> T {
    let mut work = Some(work);
    let slot = &mut work;
    let done = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("template-compile".into())
            .stack_size(COMPILE_STACK_BYTES)
            .spawn_scoped(scope, move || slot.take().map(|work| work()))
            .ok()
            .and_then(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
    });
    match (done, work) {
        (Some(done), _) => done,
        (None, Some(work)) => work(),
        (None, None) => unreachable!("the work ran on the compile thread or is still here"),
    }
}

/// What a trigger needs besides compiling templates: actions, sources, and `when.event_type`
/// with `when.event_types`.
fn structure(trigger: &Trigger) -> Vec<CompileError> {
    let mut errors = Vec::new();
    if trigger.actions.is_empty() {
        errors.push(invalid("actions", "a trigger needs at least one action"));
    }
    if trigger.when.sources.is_empty() {
        errors.push(invalid(
            "when.sources",
            "a trigger needs at least one source",
        ));
    }
    if trigger.when.event_type.is_some() == trigger.when.event_types.is_empty() {
        errors.push(invalid(
            "when.event_types",
            "set when.event_type (how to read an event's type) and when.event_types (the types to fire on) together",
        ));
    }
    errors
}

fn findings(
    field: &str,
    findings: Vec<template::check::Finding>,
) -> impl Iterator<Item = CompileError> + '_ {
    findings.into_iter().map(move |finding| CompileError {
        field: field.to_owned(),
        position: finding.position,
        reason: finding.reason,
    })
}

fn invalid(field: &str, reason: &str) -> CompileError {
    CompileError {
        field: field.to_owned(),
        position: None,
        reason: reason.to_owned(),
    }
}

impl CompiledTrigger {
    /// Compiles the trigger's expressions and templates with the given limits.
    pub fn build(trigger: Arc<Trigger>, limits: &Limits) -> Result<Self, CompileError> {
        on_large_stack(|| Self::build_here(trigger, limits))
    }

    fn build_here(trigger: Arc<Trigger>, limits: &Limits) -> Result<Self, CompileError> {
        if let Some(error) = structure(&trigger).into_iter().next() {
            return Err(error);
        }
        let mut env = template::environment(limits);
        let mut maps = BTreeMap::new();
        for (index, action) in trigger.actions.iter().enumerate() {
            add(
                &mut env,
                &mut maps,
                body_name(index),
                &action.body,
                format!("actions[{index}].body"),
            )?;
            for (header, value) in &action.headers {
                let name = header_name(index, header);
                add(&mut env, &mut maps, name.clone(), value, name)?;
            }
            if let Some(url) = &action.url {
                add(&mut env, &mut maps, url_name(index), url, url_name(index))?;
            }
        }
        let event_type = trigger.when.event_type.clone();
        let condition = trigger.condition.clone();
        let compiled = Compiled::try_new(env, |env| {
            Ok::<_, CompileError>(Expressions {
                event_type: compile(env, &mut maps, "when.event_type", event_type)?,
                condition: compile(env, &mut maps, "if", condition)?,
            })
        })?;
        Ok(Self {
            trigger,
            compiled,
            maps,
            max_rendered_bytes: limits.max_rendered_bytes,
        })
    }

    /// Everything that would make `trigger` fail, for validation: what [`Self::build`] refuses,
    /// in every field rather than the first, and what the static checks find in each
    /// ([`template::check`]: unknown filters, tests and functions, bodies that can never be JSON).
    /// The processor only builds: a trigger saved before a check existed still runs.
    pub fn check(trigger: &Trigger, limits: &Limits) -> Vec<CompileError> {
        on_large_stack(|| Self::check_here(trigger, limits))
    }

    fn check_here(trigger: &Trigger, limits: &Limits) -> Vec<CompileError> {
        let mut errors = structure(trigger);
        let mut env = template::environment(limits);
        let mut templates = Vec::new();
        for (index, action) in trigger.actions.iter().enumerate() {
            let field = format!("actions[{index}].body");
            templates.push((body_name(index), field, action.body.as_str(), true));
            for (header, value) in &action.headers {
                let name = header_name(index, header);
                templates.push((name.clone(), name, value.as_str(), false));
            }
            if let Some(url) = &action.url {
                templates.push((url_name(index), url_name(index), url.as_str(), false));
            }
        }
        for (name, field, source, json) in templates {
            match template::add_template(&mut env, name, source) {
                Err(error) => errors.push(compile_error(&field, source, &error)),
                Ok(_) => errors.extend(findings(
                    &field,
                    template::check::template(&env, source, json),
                )),
            }
        }
        let expressions = [
            ("when.event_type", trigger.when.event_type.as_deref()),
            ("if", trigger.condition.as_deref()),
        ];
        for (field, source) in expressions {
            let Some(source) = source else { continue };
            match template::compile_expression(&env, source) {
                Err(error) => errors.push(compile_error(field, source, &error)),
                Ok(_) => errors.extend(findings(field, template::check::expression(&env, source))),
            }
        }
        errors
    }

    /// The trigger as written.
    pub fn trigger(&self) -> &Arc<Trigger> {
        &self.trigger
    }

    /// Evaluates `when.event_type` and the `if` condition against an event's context.
    pub fn matches(&self, context: &Value) -> Result<Match, RenderError> {
        let expressions = self.compiled.borrow_dependent();
        if let Some(event_type) = &expressions.event_type {
            let value = event_type.eval(context.clone()).map_err(|error| {
                self.render_error(
                    "when.event_type",
                    self.trigger.when.event_type.as_deref(),
                    &error,
                )
            })?;
            template::check_text(&value, self.max_rendered_bytes).map_err(|error| {
                self.render_error(
                    "when.event_type",
                    self.trigger.when.event_type.as_deref(),
                    &error,
                )
            })?;
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            if !self
                .trigger
                .when
                .event_types
                .iter()
                .any(|pattern| type_matches(pattern, &value))
            {
                return Ok(Match::OtherEventType(value));
            }
        }
        match &expressions.condition {
            None => Ok(Match::Fired),
            Some(condition) => {
                let value = condition.eval(context.clone()).map_err(|error| {
                    self.render_error("if", self.trigger.condition.as_deref(), &error)
                })?;
                Ok(if value.is_true() {
                    Match::Fired
                } else {
                    Match::ConditionFalse
                })
            }
        }
    }

    /// An expression's run-time error, located in its source as written.
    fn render_error(
        &self,
        field: &str,
        source: Option<&str>,
        error: &minijinja::Error,
    ) -> RenderError {
        let map = self
            .maps
            .get(field)
            .unwrap_or(&template::rewrite::AS_WRITTEN);
        render_error(field, source.map(|source| (source, map)), error)
    }

    /// Renders action `index` (which must exist) against `context`.
    pub fn render(&self, index: usize, context: &Value) -> Result<RenderedAction, RenderError> {
        let action = &self.trigger.actions[index];
        let body = self.render_one(&body_name(index), &action.body, context)?;
        if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(&body) {
            return Err(RenderError {
                field: format!("actions[{index}].body"),
                reason: format!("rendered body is not valid JSON: {error}"),
                position: None,
            });
        }
        let mut headers = BTreeMap::new();
        for (header, source) in &action.headers {
            let value = self.render_one(&header_name(index, header), source, context)?;
            headers.insert(header.clone(), value);
        }
        let url = match &action.url {
            Some(source) => Some(self.render_one(&url_name(index), source, context)?),
            None => None,
        };
        Ok(RenderedAction { body, headers, url })
    }

    fn render_one(&self, name: &str, source: &str, context: &Value) -> Result<String, RenderError> {
        let field = name.trim_end_matches(JSON_SUFFIX);
        let env = self.compiled.borrow_owner();
        // Written into a buffer that refuses to grow past the limit, so output that is too large
        // stops the render as it passes the limit instead of being built whole and then checked.
        let mut out = CappedOutput {
            text: String::new(),
            limit: self.max_rendered_bytes,
            refused: None,
        };
        let result = env
            .get_template(name)
            .and_then(|template| template.render_captured_to(context, &mut out));
        if let Some(rendered) = out.refused {
            return Err(RenderError {
                field: field.to_owned(),
                reason: format!(
                    "rendered {rendered} bytes, more than the limit of {}",
                    self.max_rendered_bytes
                ),
                position: None,
            });
        }
        result.map_err(|error| {
            let map = self
                .maps
                .get(name)
                .unwrap_or(&template::rewrite::AS_WRITTEN);
            render_error(field, Some((source, map)), &error)
        })?;
        Ok(out.text)
    }
}

/// A render's output, refused once it would pass `limit` bytes.
struct CappedOutput {
    text: String,
    limit: usize,
    /// How many bytes the render had produced when it was refused.
    refused: Option<usize>,
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let total = self.text.len().saturating_add(bytes.len());
        if total > self.limit {
            self.refused = Some(total);
            return Err(std::io::Error::other("rendered output is over the limit"));
        }
        // minijinja writes whole `str`s, so each chunk is valid UTF-8 on its own.
        let chunk = std::str::from_utf8(bytes).map_err(std::io::Error::other)?;
        self.text.push_str(chunk);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether an event type matches a pattern: equal, or a prefix before a trailing `*`.
fn type_matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

fn compile<'env>(
    env: &'env Environment<'static>,
    maps: &mut BTreeMap<String, SourceMap>,
    field: &str,
    source: Option<String>,
) -> Result<Option<Expression<'env, 'static>>, CompileError> {
    let Some(source) = source else {
        return Ok(None);
    };
    let (expression, map) = template::compile_expression(env, &source)
        .map_err(|error| compile_error(field, &source, &error))?;
    maps.insert(field.to_owned(), map);
    Ok(Some(expression))
}

fn add(
    env: &mut Environment<'static>,
    maps: &mut BTreeMap<String, SourceMap>,
    name: String,
    source: &str,
    field: String,
) -> Result<(), CompileError> {
    let map = template::add_template(env, name.clone(), source)
        .map_err(|error| compile_error(&field, source, &error))?;
    maps.insert(name, map);
    Ok(())
}

/// A compile error: minijinja reports syntax errors against the source as written (a source that
/// does not parse is not rewritten), and the rewrite reports its own without a position.
fn compile_error(field: &str, source: &str, error: &minijinja::Error) -> CompileError {
    CompileError {
        field: field.to_owned(),
        position: template::position(source, &template::rewrite::AS_WRITTEN, error),
        reason: describe(error),
    }
}

/// A run-time error naming the expression that failed (`payload.user.email`) and where, so a
/// missing field is found without guessing.
fn render_error(
    field: &str,
    source: Option<(&str, &SourceMap)>,
    error: &minijinja::Error,
) -> RenderError {
    let mut reason = describe(error);
    let mut position = None;
    if let Some((source, map)) = source {
        let snippet = template::error_range(map, error).and_then(|range| source.get(range));
        if let Some(snippet) = snippet.map(str::trim).filter(|snippet| !snippet.is_empty()) {
            reason.push_str(&format!(" in `{snippet}`"));
        }
        position = template::position(source, map, error);
        if let Some((line, column)) = position {
            reason.push_str(&format!(" (line {line}, column {column})"));
        }
    }
    RenderError {
        field: field.to_owned(),
        reason,
        position,
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
                event_type: None,
                event_types: Vec::new(),
            },
            condition: condition.map(str::to_owned),
            actions: vec![Action {
                destination: ResourceId::parse("d").unwrap(),
                body: body.into(),
                headers: BTreeMap::from([("x-kind".into(), "{{ payload.kind }}".into())]),
                url: None,
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
        let high = payload(r#"{"severity": "high", "count": 4}"#);
        assert_eq!(compiled.matches(&high).unwrap(), Match::Fired);
        let low = payload(r#"{"severity": "high", "count": 3}"#);
        assert_eq!(compiled.matches(&low).unwrap(), Match::ConditionFalse);
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
        assert!(
            error.reason.contains("payload.nope"),
            "the error names the expression: {error}"
        );
        assert_eq!(error.position, Some((1, 4)), "{error}");
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

    #[test]
    fn event_types_select_events_with_trailing_wildcards() {
        let mut written = Trigger::clone(&trigger(None, "{}"));
        written.when.event_type = Some("payload.type".into());
        written.when.event_types = vec!["invoice.*".into(), "customer.created".into()];
        let compiled = CompiledTrigger::build(Arc::new(written), &Limits::default()).unwrap();
        let of_type = |kind: &str| payload(&format!(r#"{{"type": "{kind}"}}"#));
        assert_eq!(
            compiled
                .matches(&of_type("invoice.payment_failed"))
                .unwrap(),
            Match::Fired
        );
        assert_eq!(
            compiled.matches(&of_type("customer.created")).unwrap(),
            Match::Fired
        );
        assert_eq!(
            compiled.matches(&of_type("customer.deleted")).unwrap(),
            Match::OtherEventType("customer.deleted".into())
        );
    }

    #[test]
    fn event_type_and_event_types_go_together() {
        let mut written = Trigger::clone(&trigger(None, "{}"));
        written.when.event_types = vec!["push".into()];
        let error = CompiledTrigger::build(Arc::new(written), &Limits::default()).unwrap_err();
        assert_eq!(error.field, "when.event_types");
    }

    #[test]
    fn the_url_can_be_templated() {
        let mut written = Trigger::clone(&trigger(None, "{}"));
        written.actions[0].url =
            Some("https://crm.example.com/accounts/{{ payload.account }}".into());
        let compiled = CompiledTrigger::build(Arc::new(written), &Limits::default()).unwrap();
        let rendered = compiled
            .render(0, &payload(r#"{"account": "acme", "kind": "k"}"#))
            .unwrap();
        assert_eq!(
            rendered.url.as_deref(),
            Some("https://crm.example.com/accounts/acme")
        );
    }

    #[test]
    fn webhook_filters_are_available() {
        let body = r#"{"short": {{ payload.text | truncate(length=8) }}, "hash": {{ payload.text | sha256 }}, "when": {{ payload.at | datetimeformat(format="%Y-%m-%d") }}, "raw": {{ payload | tojson }}, "fallback": {{ payload.missing | default("none") }}}"#;
        let compiled = CompiledTrigger::build(trigger(None, body), &Limits::default()).unwrap();
        let rendered = compiled
            .render(
                0,
                &payload(
                    r#"{"text": "hello webhook world", "at": "2026-11-23T10:00:00Z", "kind": "k"}"#,
                ),
            )
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&rendered.body).unwrap();
        assert_eq!(json["short"], "hello...");
        // sha256("hello webhook world"), computed with Python's hashlib.
        assert_eq!(
            json["hash"],
            "513026bb11e0907ff1442ea3fa22bb86fac5c387a8be7953ff5800685e83afff"
        );
        assert_eq!(json["when"], "2026-11-23");
        assert_eq!(json["raw"]["kind"], "k");
        assert_eq!(json["fallback"], "none");
    }
}
