//! Checks that find, before a trigger is saved, what would fail on every event: a filter, test or
//! function that does not exist (minijinja only notices when the expression runs), and a body
//! whose literal text can never be JSON whatever the expressions print.
//!
//! Both read the parsed template (minijinja's `unstable_machinery`, as [`super::rewrite`] does).

use std::collections::BTreeSet;

use minijinja::{Environment, machinery};
use serde_json::Value as Node;

/// What a check found, and where (line and column, from 1) in the source as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Line and column of the construct at fault.
    pub position: Option<(usize, usize)>,
    /// What is wrong.
    pub reason: String,
}

/// The variables every template sees besides its own (see [`crate::context`]), and those
/// minijinja provides inside loops, macros and call blocks.
const PROVIDED: &[&str] = &[
    "payload", "event", "trigger", "now", "loop", "caller", "varargs", "kwargs", "self",
];

/// Most variants of a body (one per choice of `if` branches) whose literal text is checked.
const MAX_VARIANTS: usize = 64;

/// Checks a template; `json` for bodies, which must render to JSON.
pub fn template(env: &Environment<'_>, source: &str, json: bool) -> Vec<Finding> {
    let Ok(ast) = machinery::parse(source, "<template>", Default::default()) else {
        return Vec::new(); // minijinja reports the syntax error when it compiles
    };
    let Ok(tree) = serde_json::to_value(&ast) else {
        return Vec::new();
    };
    let mut findings = unknown_names(env, &tree);
    if json && findings.is_empty() {
        findings.extend(never_json(source, &tree));
    }
    findings
}

/// Checks a standalone expression (`when.event_type`, `if`).
pub fn expression(env: &Environment<'_>, source: &str) -> Vec<Finding> {
    let Ok(ast) = machinery::parse_expr(source) else {
        return Vec::new();
    };
    serde_json::to_value(&ast)
        .map(|tree| unknown_names(env, &tree))
        .unwrap_or_default()
}

/// Filters, tests and functions the template uses that the environment does not have.
fn unknown_names(env: &Environment<'_>, tree: &Node) -> Vec<Finding> {
    let state = env.empty_state();
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    let mut defined = BTreeSet::new();
    collect_defined(tree, &mut defined);
    let mut findings = Vec::new();
    visit(tree, &mut |kind, fields, node| {
        let name = fields["name"].as_str();
        // A call is found at its function's name.
        let at = if kind == "Call" {
            &fields["expr"]
        } else {
            node
        };
        let unknown = match (kind, name) {
            ("Filter", Some(name)) if !minijinja::tests::is_filter(&state, name) => {
                Some(format!("unknown filter `{name}`"))
            }
            ("Test", Some(name)) if !minijinja::tests::is_test(&state, name) => {
                Some(format!("unknown test `{name}`"))
            }
            ("Call", _) => {
                let callee = &fields["expr"];
                let name = callee["inner"][0]["id"].as_str();
                match (callee["expr"].as_str(), name) {
                    (Some("Var"), Some(name))
                        if !globals.contains(name)
                            && !defined.contains(name)
                            && !PROVIDED.contains(&name) =>
                    {
                        Some(format!("unknown function `{name}`"))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(reason) = unknown {
            findings.push(Finding {
                position: start(at),
                reason,
            });
        }
    });
    findings
}

/// Names the template defines: assigned, looped over, macros and their arguments, imports.
fn collect_defined<'t>(tree: &'t Node, defined: &mut BTreeSet<&'t str>) {
    visit(tree, &mut |kind, fields, _| match kind {
        "Set" | "SetBlock" | "ForLoop" | "WithBlock" => {
            for key in ["target", "assignments"] {
                collect_vars(&fields[key], defined);
            }
        }
        "Macro" | "Import" | "FromImport" => {
            if let Some(name) = fields["name"].as_str() {
                defined.insert(name);
            }
            for key in ["args", "name", "names"] {
                collect_vars(&fields[key], defined);
            }
        }
        _ => {}
    });
}

/// Every variable name inside `node`.
fn collect_vars<'t>(node: &'t Node, defined: &mut BTreeSet<&'t str>) {
    visit(node, &mut |kind, fields, _| {
        if kind == "Var"
            && let Some(id) = fields["id"].as_str()
        {
            defined.insert(id);
        }
    });
}

/// Calls `f(kind, fields, node)` for every node of the serialized tree, outer nodes first.
fn visit<'t>(node: &'t Node, f: &mut dyn FnMut(&str, &'t Node, &'t Node)) {
    match node {
        Node::Array(items) => items.iter().for_each(|item| visit(item, f)),
        Node::Object(map) => {
            let kind = map.get("expr").or_else(|| map.get("stmt"));
            if let (Some(kind), Some(fields)) = (
                kind.and_then(Node::as_str),
                map.get("inner").and_then(|inner| inner.get(0)),
            ) {
                f(kind, fields, node);
            }
            map.values().for_each(|value| visit(value, f));
        }
        Node::Null | Node::Bool(_) | Node::Number(_) | Node::String(_) => {}
    }
}

/// Line and column (from 1) where a node's span starts.
fn start(node: &Node) -> Option<(usize, usize)> {
    let span = &node["inner"][1];
    let line = usize::try_from(span["start_line"].as_u64()?).ok()?;
    let column = usize::try_from(span["start_col"].as_u64()?).ok()?;
    Some((line, column + 1))
}

/// A body whose literal text is not JSON whatever its expressions print: each `{{ }}` is
/// replaced by `0` (in a body every expression prints one JSON value) and each choice of `if`
/// branches is tried. Bodies whose output is not literal text and JSON values (loops, macros,
/// captured blocks, `|safe`) are not judged.
fn never_json(source: &str, tree: &Node) -> Option<Finding> {
    let body = tree["inner"][0]["children"].as_array()?;
    let variants = skeletons(body)?;
    let mut first = None;
    for variant in &variants {
        match serde_json::from_str::<serde::de::IgnoredAny>(&variant.text) {
            Ok(_) => return None,
            Err(error) => {
                first.get_or_insert((variant, error));
            }
        }
    }
    let (variant, error) = first?;
    let offset = offset_of(&variant.text, error.line(), error.column());
    // An unfinished body is reported at its end.
    let at = if error.is_eof() || offset >= variant.text.len() {
        source.len()
    } else {
        variant.source_offset(offset)
    };
    let before = &source[..at.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some(Finding {
        position: Some((line, column)),
        reason: format!(
            "the body can never be JSON, whatever its expressions print: {}",
            without_position(&error)
        ),
    })
}

/// One way a body's literal text can come out, with `0` for each expression.
#[derive(Clone, Default)]
struct Skeleton {
    text: String,
    /// `(offset in text, offset in source, raw)` where each piece starts; raw text maps byte for
    /// byte, a placeholder to its expression's start.
    pieces: Vec<(usize, usize, bool)>,
}

impl Skeleton {
    fn push(&mut self, text: &str, source_offset: usize, raw: bool) {
        self.pieces.push((self.text.len(), source_offset, raw));
        self.text.push_str(text);
    }

    /// The source offset a text offset came from.
    fn source_offset(&self, offset: usize) -> usize {
        let index = self.pieces.partition_point(|&(at, _, _)| at <= offset);
        match index.checked_sub(1).map(|index| self.pieces[index]) {
            Some((at, source, true)) => source + (offset - at),
            Some((_, source, false)) => source,
            None => 0,
        }
    }
}

/// The skeletons of a list of statements, or `None` if one of them is not modelled.
fn skeletons(statements: &[Node]) -> Option<Vec<Skeleton>> {
    let mut variants = vec![Skeleton::default()];
    for statement in statements {
        let kind = statement["stmt"].as_str()?;
        let fields = &statement["inner"][0];
        let span = &statement["inner"][1];
        let at = usize::try_from(span["start_offset"].as_u64()?).ok()?;
        match kind {
            "EmitRaw" => {
                let raw = fields["raw"].as_str()?;
                variants.iter_mut().for_each(|v| v.push(raw, at, true));
            }
            "EmitExpr" => {
                if uses_safe(fields) {
                    return None;
                }
                variants.iter_mut().for_each(|v| v.push("0", at, false));
            }
            // Statements that print nothing.
            "Set" | "Do" => {}
            "IfCond" => {
                let mut branches = skeletons(fields["true_body"].as_array()?)?;
                branches.extend(skeletons(fields["false_body"].as_array()?)?);
                variants = variants
                    .iter()
                    .flat_map(|variant| {
                        branches.iter().map(move |branch| {
                            let mut joined = variant.clone();
                            let base = joined.text.len();
                            joined.text.push_str(&branch.text);
                            joined.pieces.extend(
                                branch
                                    .pieces
                                    .iter()
                                    .map(|&(at, s, raw)| (base + at, s, raw)),
                            );
                            joined
                        })
                    })
                    .collect();
                if variants.len() > MAX_VARIANTS {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(variants)
}

/// Whether an expression prints raw text through `|safe`.
fn uses_safe(node: &Node) -> bool {
    let mut found = false;
    visit(node, &mut |kind, fields, _| {
        found |= kind == "Filter" && fields["name"] == "safe";
    });
    found
}

/// The byte offset of a 1-based line and column in `text`.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// serde_json's message without its own `at line … column …`, which counts in the skeleton.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.find(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Limits, environment};

    fn body(source: &str) -> Vec<Finding> {
        template(&environment(&Limits::default()), source, true)
    }

    #[test]
    fn unknown_filters_tests_and_functions_are_named_with_their_position() {
        let findings = body(
            "{\"a\": {{ payload.x|nosuch }},\n \"b\": {{ 1 is nosuch }}, \"c\": {{ nosuch(1) }}}",
        );
        let reasons: Vec<_> = findings
            .iter()
            .map(|f| (f.reason.as_str(), f.position))
            .collect();
        assert_eq!(
            reasons,
            [
                ("unknown filter `nosuch`", Some((1, 20))),
                ("unknown test `nosuch`", Some((2, 15))),
                ("unknown function `nosuch`", Some((2, 34))),
            ]
        );
    }

    #[test]
    fn what_the_template_defines_and_the_environment_has_is_known() {
        let source = "{% macro m(x) %}{{ x }}{% endmacro %}{% set f = m %}\
            {% set ns = namespace(a=range(3)|list) %}\
            {\"a\": {{ m(1)|length }}, \"b\": {{ f(2)|string|upper }}, \"c\": {{ 1 is odd }}, \
            \"d\": {{ payload|tojson }}, \"e\": {{ \"x\".upper() }}, \"f\": {{ now|datetimeformat }}}";
        assert_eq!(body(source), []);
        let env = environment(&Limits::default());
        assert_eq!(
            expression(&env, "payload.a is defined and lipsum(1)"),
            [Finding {
                position: Some((1, 26)),
                reason: "unknown function `lipsum`".into(),
            }]
        );
    }

    #[test]
    fn a_body_missing_a_closing_brace_can_never_be_json() {
        let findings = body("{\"text\": {{ payload.text }},\n \"n\": {{ payload.n }}");
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].reason.starts_with("the body can never be JSON"),
            "{findings:?}"
        );
        // At the end, where the brace is missing.
        assert_eq!(findings[0].position, Some((2, 22)));
        // An `if` whose every branch leaves it broken.
        let findings = body("[{% if payload.a %}1{% else %}2,{% endif %}");
        assert_eq!(findings.len(), 1, "{findings:?}");
    }

    #[test]
    fn a_body_that_can_be_json_is_accepted() {
        for source in [
            "{\"text\": {{ payload.text }}}",
            "{\"a\": 1{% if payload.b %}, \"b\": {{ payload.b }}{% endif %}}",
            "{% if payload.a %}[{% endif %}1{% if payload.a %}]{% endif %}",
            // Not judged: what a loop or `|safe` prints is not known.
            "[{% for x in payload %}{{ x }},{% endfor %}",
            "{{ payload.raw|safe }}",
            "{\"quoted\": \"{{ payload.text }}\"}",
        ] {
            assert_eq!(body(source), [], "{source}");
        }
    }
}
