//! Templates that ask for huge allocations fail with an ordinary render error, and what the
//! render allocated stays bounded, for each construct that can ask: format widths and
//! precisions, repetition, ranges, concatenation, joins, JSON and the size of the output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use hookline_processor::CompiledTrigger;
use hookline_processor::template::Limits;
use support::{CAP, allocations, render, render_with};

/// Renders `body` and checks that it fails with a reason containing `expected`, and that the
/// render allocated no more than a bounded one can.
fn assert_refused(body: &str, expected: &str) {
    let (result, allocated) = allocations(|| render(body));
    let error = result.expect_err("the render fails");
    assert!(
        error.reason.contains(expected),
        "expected {expected:?} in: {error}"
    );
    allocated.assert_bounded();
}

#[test]
fn a_str_format_width_above_the_cap_is_refused_before_allocating() {
    assert_refused(
        r#"{{ "{:>1000000000000000}".format("x") }}"#,
        "format width 1000000000000000 at offset 0 is larger than the limit of 262144",
    );
    assert_refused(
        r#"{{ "{0:*^100000000,}".format(1) }}"#,
        "format width 100000000",
    );
}

#[test]
fn a_str_format_precision_above_what_rust_can_format_is_refused() {
    // Rust's formatter panics on an integer formatted with this precision.
    assert_refused(
        r#"{{ "{:.100000f}".format(1) }}"#,
        "format precision 100000 at offset 0 is larger than the limit of 65534",
    );
}

#[test]
fn many_str_format_fields_just_under_the_cap_run_out_of_fuel_before_formatting() {
    // 100 fields of 200 KB: each is allowed, together they ask for 20 MB.
    assert_refused(
        &format!(
            r#"{{{{ "{}".format(1)|length }}}}"#,
            "{0:>200000}".repeat(100)
        ),
        "fuel",
    );
}

#[test]
fn a_str_format_width_under_the_cap_still_formats() {
    let body = format!(r#"{{{{ "{{:>{CAP}}}".format(1)|length }}}}"#);
    let (result, allocated) = allocations(|| render(&body));
    assert_eq!(result.unwrap().body, CAP.to_string());
    allocated.assert_bounded();
}

#[test]
fn a_printf_format_width_above_the_cap_is_refused() {
    assert_refused(
        r#"{{ "%1000000000s"|format(1) }}"#,
        "format width 1000000000 at offset 0 is larger than the limit of 262144",
    );
}

#[test]
fn a_printf_format_precision_above_what_rust_can_format_is_refused() {
    // Without the check this panics inside minijinja.
    assert_refused(r#"{{ "%.100000f"|format(1) }}"#, "format precision 100000");
    // Rust's float formatting panics at exactly `u16::MAX` digits in `e` notation.
    assert_refused(
        r#"{{ "%.65535e"|format(1.5) }}"#,
        "format precision 65535 at offset 0 is larger than the limit of 65534",
    );
    assert_refused(
        r#"{{ "{:.65535e}".format(1.5) }}"#,
        "format precision 65535",
    );
}

#[test]
fn an_indent_wider_than_the_fuel_can_pay_for_is_refused() {
    assert_refused(r#"{{ "a\nb\nc"|indent(1000000000) }}"#, "fuel");
}

#[test]
fn repeating_a_string_past_the_fuel_is_refused() {
    assert_refused(r#"{{ "x" * 100000000 }}"#, "fuel");
}

#[test]
fn a_lazily_repeated_list_is_refused_before_it_is_written_out() {
    // 99,999,999 items is within minijinja's own limit on repetition; written out as JSON they
    // were 200 MB.
    assert_refused(
        "{{ [1] * 99999999 }}",
        "text would be larger than the limit of 262144 bytes",
    );
    assert_refused(
        "{{ ([1] * 99999999)|tojson }}",
        "text would be larger than the limit",
    );
    assert_refused(
        r#"{{ "{}".format([1] * 99999999) }}"#,
        "text would be larger than the limit",
    );
    assert_refused(
        r#"{{ "%s"|format([1] * 99999999) }}"#,
        "text would be larger than the limit",
    );
    assert_refused(
        "{% set big %}{{ [1] * 99999999 }}{% endset %}{{ big|length }}",
        "text would be larger than the limit",
    );
}

#[test]
fn a_list_sharing_its_items_many_times_over_is_refused_before_it_is_written_out() {
    // Ten levels of ten: 10^10 numbers behind a value of 100 slots.
    let mut body = String::from("{% set v = [1,1,1,1,1,1,1,1,1,1] %}");
    for _ in 0..9 {
        body.push_str("{% set v = [v,v,v,v,v,v,v,v,v,v] %}");
    }
    for sink in ["v", "v|string", "v|join", "v|sha256", "[v]|join(',')"] {
        assert_refused(
            &format!("{body}{{{{ {sink} }}}}"),
            "text would be larger than the limit",
        );
    }
}

#[test]
fn a_range_too_long_to_list_is_refused() {
    // minijinja refuses ranges of more than 100,000 items.
    assert_refused("{{ range(100001)|list }}", "range has too many elements");
    assert_refused(
        "{% for i in range(100000) %}{{ range(100000)|list|length }}{% endfor %}",
        "fuel",
    );
}

#[test]
fn doubling_a_string_by_concatenation_runs_out_of_fuel() {
    let body = format!(
        r#"{{% set s = "0123456789abcdef" %}}{}{{{{ s|length }}}}"#,
        "{% set s = s ~ s %}".repeat(40)
    );
    assert_refused(&body, "fuel");
}

#[test]
fn joins_and_replacements_that_grow_past_the_fuel_are_refused() {
    assert_refused(r#"{{ range(1000)|join("x" * 100000) }}"#, "fuel");
    assert_refused(r#"{{ ("x" * 10000)|replace("x", "y" * 10000) }}"#, "fuel");
    assert_refused(r#"{{ ("x" * 10000).replace("x", "y" * 10000) }}"#, "fuel");
    assert_refused(r#"{{ ("y" * 100000).join(range(1000)) }}"#, "fuel");
}

#[test]
fn pretty_json_with_a_huge_indent_is_refused() {
    // Each nested line is indented by the indent times its depth: 2 GB here.
    assert_refused(
        "{{ [[1]]|tojson(indent=1000000000) }}",
        "text would be larger than the limit",
    );
}

#[test]
fn output_past_the_cap_stops_the_render_where_it_passes_the_cap() {
    let (result, allocated) =
        allocations(|| render(r#"{% for i in range(1000) %}{{ "x" * 1000 }}{% endfor %}"#));
    let error = result.expect_err("the render fails");
    assert_eq!(error.field, "actions[0].body");
    assert!(
        error.reason.starts_with("rendered ")
            && error.reason.ends_with("more than the limit of 262144"),
        "{error}"
    );
    let rendered: usize = error.reason["rendered ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("the reason says how many bytes");
    assert!(rendered > CAP && rendered <= CAP + 1000, "{error}");
    // The buffer never held more than the cap: its largest allocation is the next power of two.
    assert!(allocated.largest <= 2 * CAP, "{allocated:?}");
}

#[test]
fn output_at_the_cap_is_rendered_whole() {
    let limits = Limits {
        max_rendered_bytes: 12,
        ..Limits::default()
    };
    assert_eq!(
        render_with(&limits, r#"{{ "x" * 10 }}"#).unwrap().body,
        r#""xxxxxxxxxx""#
    );
    let error = render_with(&limits, r#"{{ "x" * 11 }}"#).unwrap_err();
    assert_eq!(error.reason, "rendered 13 bytes, more than the limit of 12");
}

#[test]
fn an_event_type_expression_with_a_huge_value_is_refused() {
    let mut trigger = support::trigger("{}").as_ref().clone();
    trigger.when.event_type = Some("[payload.text] * 99999999".into());
    trigger.when.event_types = vec!["*".into()];
    let compiled = CompiledTrigger::build(Arc::new(trigger), &Limits::default()).unwrap();
    let (result, allocated) = allocations(|| compiled.matches(&support::sample()));
    let error = result.expect_err("the match fails");
    assert_eq!(error.field, "when.event_type");
    assert!(error.reason.contains("text would be larger"), "{error}");
    allocated.assert_bounded();
}

#[test]
fn ordinary_templates_render_as_before() {
    let body = r#"{"text": {{ payload.text }}, "upper": {{ payload.text|upper }}, "tags": {{ payload.tags|join(d=",") }}, "json": {{ payload.tags|tojson(indent=2) }}, "padded": {{ "{:>8}|{:.2f}".format(payload.count, 1.5) }}, "printf": {{ "%05d"|format(payload.count) }}, "all": {{ payload }}}"#;
    let (result, allocated) = allocations(|| render(body));
    let body = result.unwrap().body;
    assert!(body.contains("[\n  \"a\",\n  \"b\"\n]"), "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["upper"], "HELLO WEBHOOK WORLD");
    assert_eq!(json["tags"], "a,b");
    assert_eq!(json["json"], serde_json::json!(["a", "b"]));
    assert_eq!(json["padded"], "       3|1.50");
    assert_eq!(json["printf"], "00003");
    assert_eq!(json["all"]["count"], 3);
    allocated.assert_bounded();
}

/// Nine `set`s, each a list of ten references to the one before: a billion items, written out
/// in 3 GB of text by `~` before anything was charged (the process aborted).
const SHARED_LISTS: &str = "{% set a = [1,1,1,1,1,1,1,1,1,1] %}\
    {% set b = [a,a,a,a,a,a,a,a,a,a] %}{% set c = [b,b,b,b,b,b,b,b,b,b] %}\
    {% set d = [c,c,c,c,c,c,c,c,c,c] %}{% set e = [d,d,d,d,d,d,d,d,d,d] %}\
    {% set f = [e,e,e,e,e,e,e,e,e,e] %}{% set g = [f,f,f,f,f,f,f,f,f,f] %}\
    {% set h = [g,g,g,g,g,g,g,g,g,g] %}{% set i = [h,h,h,h,h,h,h,h,h,h] %}";

#[test]
fn concatenating_a_list_larger_than_the_cap_is_refused_before_it_is_written() {
    assert_refused(
        &format!(r#"{SHARED_LISTS}{{{{ i ~ "" }}}}"#),
        "the value's text would be larger than the limit of 262144 bytes",
    );
    assert_refused(
        &format!(r#"{SHARED_LISTS}{{{{ "x" ~ payload.text ~ i }}}}"#),
        "larger than the limit",
    );
}

#[test]
fn a_namespace_cannot_nest_values_deeper_than_anything_can_free() {
    // Twenty thousand levels: freeing them overflowed the stack, even after fuel ran out.
    assert_refused(
        "{% set ns = namespace(a=[1]) %}{% for i in range(20000) %}{% set ns.a = [ns.a] %}\
         {% endfor %}{{ ns.a ~ '' }}",
        "cannot assign a value nested more than 200 levels deep",
    );
}

#[test]
fn a_namespace_cannot_hold_itself_or_another_namespace() {
    let refused = "a namespace cannot hold a namespace";
    // Printing, concatenating or comparing a namespace that holds itself recursed for ever; it
    // is refused where it is assigned, before any of them.
    let body = "{% set ns = namespace() %}{% set ns.me = ns %}";
    for sink in [
        "ns",
        "ns ~ ''",
        "ns == namespace()",
        "ns|tojson",
        r#""{}".format(ns)"#,
    ] {
        assert_refused(&format!("{body}{{{{ {sink} }}}}"), refused);
    }
    assert_refused(
        "{% set a = namespace() %}{% set b = namespace(a=[a]) %}{{ a == b }}",
        refused,
    );
    // A chain of namespaces built from the top, one level per loop.
    assert_refused(
        "{% set top = namespace(v=namespace()) %}{% for i in range(20000) %}\
         {% set next = namespace() %}{% set cur = top.v %}{% set cur.x = next %}\
         {% set top.v = next %}{% endfor %}",
        refused,
    );
}

#[test]
fn assigning_a_huge_shared_list_to_a_namespace_runs_out_of_fuel() {
    assert_refused(
        &format!("{SHARED_LISTS}{{% set ns = namespace() %}}{{% set ns.i = i %}}"),
        "fuel",
    );
}

#[test]
fn debug_is_not_available() {
    // It prints the whole context with `{:#?}`, unbounded.
    assert_refused(
        &format!("{SHARED_LISTS}{{{{ debug() }}}}"),
        "debug is unknown",
    );
}
