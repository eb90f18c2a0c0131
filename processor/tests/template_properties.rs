//! Random templates built from the constructs that can ask for huge allocations, with random
//! (often huge) numbers and random junk in between: whatever they ask, rendering returns `Ok` or
//! `Err`, never panics, never writes more than the cap, and allocates no more than a bounded
//! render can.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use hookline_processor::CompiledTrigger;
use hookline_processor::template::Limits;
use proptest::prelude::*;
use support::{CAP, allocations, sample, trigger};

/// Numbers around the limits that matter (the cap, `u16::MAX`, minijinja's repeat limit) and
/// anywhere up to `u64::MAX`.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..20u64,
        0..100_000u64,
        any::<u64>(),
        Just(CAP as u64),
        Just(CAP as u64 + 1),
        Just(65_535),
        Just(65_536),
        Just(99_999_999),
        Just(1_000_000_000_000_000),
    ]
}

/// One expression that can ask for a lot, given `n` and a random format type.
fn risky() -> impl Strategy<Value = String> {
    let types = prop::sample::select(vec!["", "s", "d", "f", "e", "g", "x", "c", ","]);
    (number(), number(), types, 0..18usize).prop_map(|(n, m, ty, pick)| match pick {
        0 => format!(r#""{{:>{n}{ty}}}".format(payload.count)"#),
        1 => format!(r#""{{:*^{n}.{m}{ty}}}".format(1.5)"#),
        2 => format!(r#""{{0:{n}}}{{0:.{m}}}".format(payload.text)"#),
        3 => format!(r#""%{n}.{m}{ty}"|format(payload.count)"#),
        4 => format!(r#""%-{n}s"|format(payload.tags)"#),
        5 => format!(r#""x" * {n}"#),
        6 => format!("[payload] * {n}"),
        7 => format!("range({n})|list"),
        8 => format!(r#""a\nb"|indent({n})"#),
        9 => format!("payload|tojson(indent={n})"),
        10 => format!(r#"payload.text|replace("o", "o" * {n})"#),
        11 => format!(r#"([payload.text] * {n})|join("-" * {m})"#),
        12 => format!(r#"payload.text|truncate({n})"#),
        13 => format!("(payload.tags * {n})|string"),
        14 => format!(r#""{{}}".format([payload.tags] * {n})"#),
        15 => format!(r#"payload.text ~ ("y" * {n})"#),
        16 => format!("payload.count|filesizeformat ~ {n}"),
        _ => format!(r#"("ab" * {m}).center({n})"#),
    })
}

/// A piece of template: a risky expression printed, assigned, concatenated, looped, or junk.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        risky().prop_map(|e| format!("{{{{ {e} }}}}")),
        risky().prop_map(|e| format!("{{% set v = {e} %}}{{{{ v }}}}")),
        // `~` writes a list out whole before charging for it, and operators cannot be
        // wrapped: lists are turned into strings by the (bounded) `string` filter first.
        (risky(), risky()).prop_map(|(a, b)| format!("{{{{ ({a})|string ~ ({b})|string }}}}")),
        (risky(), 0..50u32)
            .prop_map(|(e, n)| format!("{{% for i in range({n}) %}}{{{{ {e} }}}}{{% endfor %}}")),
        "[ -~]{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_template_renders_or_fails_within_the_limits(pieces in prop::collection::vec(piece(), 1..4)) {
        let body = pieces.concat();
        // Junk may not compile; that is an answer too.
        let Ok(compiled) = CompiledTrigger::build(trigger(&body), &Limits::default()) else {
            return Ok(());
        };
        let (result, allocated) = allocations(|| compiled.render(0, &sample()));
        if let Ok(rendered) = result {
            prop_assert!(rendered.body.len() <= CAP, "{} bytes from {body}", rendered.body.len());
        }
        allocated.assert_bounded();
    }
}
