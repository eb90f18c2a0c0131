//! The rewrite of `~`, of comparisons and of namespace assignment changes nothing a template
//! renders: random
//! expressions render the same through Hookline's environment as through minijinja as it is,
//! in JSON bodies and in plain text, and namespaces behave as minijinja's do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hookline_processor::template::{Limits, add_template, environment};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};
use proptest::prelude::*;

/// minijinja as it is, with the settings Hookline's environment uses.
fn plain() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".json") {
            AutoEscape::Json
        } else {
            AutoEscape::None
        }
    });
    env
}

fn payload() -> Value {
    context! {
        payload => context! { name => "Zoë \"q\"", count => 3, items => vec![1, 2], meta => context! { k => "v" } },
    }
}

/// Renders `source` as template `name` through minijinja as it is and through Hookline's
/// environment; errors are compared by kind.
fn both(name: &str, source: &str) -> (Result<String, String>, Result<String, String>) {
    let render = |env: &Environment<'static>| {
        env.get_template(name)
            .and_then(|template| template.render(payload()))
            .map_err(|error| format!("{:?}", error.kind()))
    };
    let mut expected = plain();
    let expected = match expected.add_template_owned(name.to_owned(), source.to_owned()) {
        Ok(()) => render(&expected),
        Err(error) => Err(format!("{:?}", error.kind())),
    };
    let mut hookline = environment(&Limits::default());
    let actual = match add_template(&mut hookline, name.to_owned(), source) {
        Ok(_) => render(&hookline),
        Err(error) => Err(format!("{:?}", error.kind())),
    };
    (expected, actual)
}

/// A random expression over strings, numbers, lists, maps, safe strings, the payload, filters,
/// arithmetic, conditionals and (often) `~`.
fn expression() -> impl Strategy<Value = String> {
    let atom = prop::sample::select(vec![
        r#""s""#,
        "'it''s'",
        "1",
        "2.5",
        "none",
        "true",
        r#"[1, "a"]"#,
        r#"{"k": [1]}"#,
        "payload.name",
        "payload.items",
        "payload.meta",
        r#"("<b>"|safe)"#,
        r#"("x"|safe)"#,
        "missing",
    ])
    .prop_map(str::to_owned);
    atom.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            4 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} ~ {b}")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}~{b}")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}\n~ {b})")),
            1 => inner.clone().prop_map(|a| format!("({a})")),
            1 => inner.clone().prop_map(|a| format!("{a}|upper")),
            1 => inner.clone().prop_map(|a| format!("{a}|string|length")),
            1 => inner.clone().prop_map(|a| format!("-{a}")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} + {b}")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, {b}]")),
            1 => (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("{a} if {b} else {c}")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} == {b}")),
            1 => inner.clone().prop_map(|a| format!("{a} is string")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} in {b}")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} not in [{b}]")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} < {b}")),
            1 => (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("{a} <= {b} != {c}")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} is eq({b})")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, {b}]|sort")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, {b}, {a}]|unique|list")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, {b}]|select('eq', {b})|list")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{{{a}: 1, {b}: 2}}|length")),
            // `not` only starts an expression in minijinja's grammar where a comparison can
            // (`a == not b` calls a function named `not`), so it comes parenthesised.
            1 => inner.clone().prop_map(|a| format!("(not {a})")),
            1 => inner.clone().prop_map(|a| format!("-({a})")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("(not ({a}) not in {b})")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("-{a} ~ ({b})")),
            1 => inner.clone().prop_map(|a| format!("({a})[1:]")),
            1 => inner.clone().prop_map(|a| format!("({a})[0]")),
            1 => inner.clone().prop_map(|a| format!("({a})[-1]")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a})[{b}]")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}|default({b})")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}|replace('s', {b}, count=1)")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, 1]|join({b})")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a})|string|trim({b})")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} is startingwith({b})")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}]|map({b})|list")),
            1 => (inner.clone(), inner).prop_map(|(a, b)| format!(r#""{{}}-{{}}".format({a}, {b})"#)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rewritten_expressions_render_as_minijinja_renders_them(expression in expression()) {
        for (name, source) in [
            ("t.json", format!("{{{{ {expression} }}}}")),
            ("t.txt", format!("{{{{ {expression} }}}}")),
            ("t.txt", format!("{{% set v = {expression} %}}[{{{{ v }}}}]")),
            ("t.txt", format!("{{% set ns = namespace(v=0) %}}{{% set ns.v = {expression} %}}[{{{{ ns.v }}}}]")),
            ("t.json", format!("{{% set ns = namespace() %}}{{% set ns.v = ({expression}) %}}{{{{ ns.v }}}}")),
            ("t.txt", format!("{{% set ns = namespace() %}}{{% set ns.v -%}}\n {{{{ {expression} }}}} {{%- endset %}}[{{{{ ns.v }}}}]")),
            ("t.txt", format!("{{% if ({expression}) ~ 'x' %}}yes{{% endif %}}")),
            ("t.txt", format!("{{% for x in [{expression}, 1] if x == ({expression}) %}}{{{{ loop.index ~ x }}}}{{% endfor %}}")),
            ("t.txt", format!("{{% macro m(a={expression}) %}}{{{{ a ~ caller() }}}}{{% endmacro %}}{{% call m() %}}{{{{ {expression} }}}}{{% endcall %}}")),
        ] {
            let (expected, actual) = both(name, &source);
            prop_assert_eq!(expected, actual, "{} in {}", source, name);
        }
    }
}

#[test]
fn namespaces_behave_as_minijinjas_do() {
    let cases = [
        "{% set ns = namespace(total=0) %}{% for i in payload.items %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }}",
        "{% set ns = namespace(l=[]) %}{% for i in range(5) %}{% set ns.l = ns.l + [i] %}{% endfor %}{{ ns.l }}",
        "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }} {{ ns.b }} {{ ns }} {{ ns|tojson }}",
        "{% set ns = namespace() %}{% set ns.x | upper -%}\n  hi {{ 'a' ~ 'b' }}\n{%- endset %}[{{ ns.x }}]",
        "{% set ns = namespace() %}{% set ns.x %}a{% endset -%}\n  [{{ ns.x }}]",
        "{% set ns = namespace(found=false) %}{% for i in payload.items if i > 1 %}{% set ns.found = true %}{% endfor %}{{ ns.found }}",
        "{% set ns = namespace(a=1) %}{% macro m() %}{% set ns.a = ns.a + 1 %}{% endmacro %}{{ m() }}{{ m() }}{{ ns.a }}",
        "{% set ns = namespace(a=1) %}{{ ns.a is defined }} {{ ns.b is defined }} {{ 'a' in ns }} {{ ns|length }}",
        "{% set x = 1 %}{% set x.y = 2 %}",
        "{% set ns = namespace() %}{{ ns.missing }}",
    ];
    for source in cases {
        for name in ["t.txt", "t.json"] {
            let (expected, actual) = both(name, source);
            assert_eq!(expected, actual, "{source} in {name}");
        }
    }
}

#[test]
fn errors_point_at_what_was_written() {
    use hookline_processor::CompiledTrigger;
    use hookline_schemas::Trigger;
    use std::sync::Arc;

    let trigger: Trigger = serde_json::from_value(serde_json::json!({
        "schema_version": 1,
        "id": "t",
        "name": "T",
        "when": {"sources": ["s"]},
        "if": "payload.kind ~ payload.missing",
        "actions": [{
            "destination": "d",
            "body": "{% set ns = namespace() %}\n{% set ns.x = 1 %}\n{{ {\"a\": ns.x ~ payload.gone} }}",
        }],
    }))
    .unwrap();
    let compiled = CompiledTrigger::build(Arc::new(trigger), &Limits::default()).unwrap();
    let context = context! { payload => context! { kind => "k" } };
    let error = compiled.matches(&context).unwrap_err();
    assert_eq!(error.field, "if");
    // As minijinja names it, at the `~` (the filter that replaced it) of the source as written.
    assert_eq!(
        error.reason,
        "undefined value: `payload.missing` is undefined in `~ payload.missing` (line 1, column 14)"
    );
    let error = compiled.render(0, &context).unwrap_err();
    assert_eq!(error.field, "actions[0].body");
    assert_eq!(
        error.reason,
        "undefined value: `payload.gone` is undefined in `~ payload.gone` (line 3, column 15)"
    );
}
