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
    // Ten levels of ten: 10^10 numbers behind a value of 100 slots. Built from list literals it
    // is refused as it is built (each literal is checked); repeated, it is not, and every
    // sink refuses it.
    let mut literals = String::from("{% set v = [1,1,1,1,1,1,1,1,1,1] %}");
    for _ in 0..9 {
        literals.push_str("{% set v = [v,v,v,v,v,v,v,v,v,v] %}");
    }
    assert_refused(&format!("{literals}{{{{ 1 }}}}"), "items in all");
    let body = "{% set v = [[1] * 99999] * 99999 %}";
    for sink in ["v", "v|string", "v|join", "v|sha256", "v|join(',')"] {
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

/// A list of 99,999 references to one list of 99,999 numbers: ten billion items, which `~`
/// wrote out in gigabytes of text before anything was charged (the process aborted). Built of
/// nine nested literals instead, the same value is refused as it is built.
const SHARED_LISTS: &str = "{% set i = [[1] * 99999] * 99999 %}";

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
        "nested more than 200 levels deep",
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
fn assigning_a_huge_shared_list_to_a_namespace_is_refused() {
    assert_refused(
        &format!("{SHARED_LISTS}{{% set ns = namespace() %}}{{% set ns.i = i %}}"),
        "items in all",
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

#[test]
fn filter_and_test_arguments_turned_into_text_are_bounded() {
    // 99,999 strings of 200 KB, held as one: minijinja wrote the list out as text (3 GB) where
    // these filters and tests expect a string.
    let huge = r#"{% set l = [("x" * 200000)] * 99999 %}"#;
    for use_ in [
        r#""a"|replace("a", l)"#,
        r#"l|replace("a", "b")"#,
        r#"[1, 2]|join(l)"#,
        r#"[1, 2]|join(d=l)"#,
        r#""abc"|trim(l)"#,
        r#"l|indent"#,
        r#""a,b"|split(l)|list"#,
        r#""a" is startingwith(l)"#,
        r#""a" is endingwith(l)"#,
        r#"[1]|select(l)|list"#,
        r#"[1]|selectattr(l)|list"#,
        r#"l in "abc""#,
    ] {
        let (result, allocated) = allocations(|| render(&format!("{huge}{{{{ {use_} }}}}")));
        let error = result.expect_err(use_);
        assert!(
            error.reason.contains("larger than the limit") || error.reason.contains("fuel"),
            "{use_}: {error}"
        );
        allocated.assert_bounded();
    }
}

#[test]
fn nesting_built_one_set_at_a_time_is_refused_before_it_is_too_deep_to_free() {
    // Freeing six hundred levels of ten overflowed the stack, without a namespace.
    let body = format!(
        "{{% set a = 1 %}}{}{{{{ 1 }}}}",
        "{% set a = [[[[[[[[[[a]]]]]]]]]] %}".repeat(600)
    );
    assert_refused(&body, "nested more than 200 levels deep");
}

#[test]
fn a_long_operator_chain_compiles_and_a_longer_one_is_refused() {
    // Parsing and compiling recurse once per operator: 9,000 overflowed a test thread's stack.
    let long = format!("{{{{ 1{} }}}}", " + 1".repeat(9_000));
    assert_eq!(render(&long).unwrap().body, "9001");
    let longer = format!("{{{{ 1{} }}}}", " + 1".repeat(20_000));
    let error =
        CompiledTrigger::build(support::trigger(&longer), &Limits::default()).expect_err("refused");
    assert!(error.reason.contains("more than 20000 tokens"), "{error}");
}

#[test]
fn lists_that_claim_millions_of_items_are_not_walked() {
    assert_refused(
        "{{ [[[1]*99999999]*99999999].count([[1]*99999999]*99999999) }}",
        "items, more than 100000",
    );
}

#[test]
fn loop_changed_keeps_data_only() {
    // The loop kept itself: a cycle that was never freed, 200 KB per render.
    assert_refused(
        r#"{% set big = "x" * 200000 %}{% for i in [1] %}{{ loop.changed(loop, big) }}{% endfor %}"#,
        "loop.changed() compares data",
    );
    let body = r#"[{% for i in [1, 1, 2] %}{{ loop.changed(i) }}{% if not loop.last %},{% endif %}{% endfor %}]"#;
    assert_eq!(render(body).unwrap().body, "[true,false,true]");
}

#[test]
fn a_repeated_list_is_not_walked_to_its_end_by_an_index_or_a_slice() {
    // Each `[-1]` took seconds: minijinja walks the repetition item by item, charging for one.
    for sink in ["x[-1]", "x[99999990:]|length", "x[i]"] {
        assert_refused(
            &format!("{{% set x = [1] * 99999999 %}}{{% set i = -1 %}}{{{{ {sink} }}}}"),
            "cannot index a repeated list",
        );
    }
    assert_eq!(
        render("{% set x = [1, 2] * 3 %}{{ x[-1] }}").unwrap().body,
        "2"
    );
}
