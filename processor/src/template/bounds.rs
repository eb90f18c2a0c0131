//! Bounds on what a template can make the engine allocate.
//!
//! minijinja 3.1 charges fuel for the bytes it creates and checks most large allocations ahead of
//! time, but a few paths build their whole result before anything is charged. A single render can
//! then ask for gigabytes and abort the process (`memory allocation of ... bytes failed`), or
//! recurse until the stack overflows. The wrappers below work around those upstream gaps: they
//! refuse, with an ordinary template error, what would be larger than the render cap, and leave
//! the rest to the original filter or method.

use std::fmt::{self, Write as _};

use minijinja::value::{Kwargs, Rest, StringInput, ValueKind, ValueOrKwargs};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, Value};

use super::rewrite;

/// Deepest nesting of lists and maps that may be turned into text. JSON payloads nest at most 128
/// levels (serde_json's limit), so real data passes; a value nested deeper was built by the
/// template, or contains itself (a namespace assigned into itself), and writing it out would
/// overflow the stack.
pub(super) const MAX_TEXT_DEPTH: usize = 200;

/// Largest precision in a format spec. minijinja hands precisions to Rust's formatter (integers
/// as `{:0precision$}`, floats as `{:.precision$e}`), which panics on precisions above
/// `u16::MAX`, and at `u16::MAX` itself in `e` notation, which needs one digit more.
const MAX_FORMAT_PRECISION: usize = u16::MAX as usize - 1;

/// One fuel pays for this many bytes, as in minijinja (`UNITS_PER_FUEL`).
const BYTES_PER_FUEL: usize = 64;

/// Extra fuel units per byte that minijinja charges for serializing (`SERIALIZED_BYTE_COST`
/// minus the byte itself): the replaced `tojson` and `pprint` charge the same.
const SERIALIZED_UNITS_PER_BYTE: usize = 15;

/// Replaces the constructs that allocate before they are charged with bounded versions.
pub(super) fn install_bounds(env: &mut Environment<'static>, cap: usize) {
    // `{{ value }}`, including inside `{% set %}` blocks: a list or map is written out whole
    // (as JSON in body templates) before its bytes are counted.
    env.set_formatter(move |out, state, value| {
        // A string is copied once more to be escaped, so one longer than any output can be is
        // refused before that copy.
        if value.as_str().is_some_and(|text| text.len() > cap) {
            return Err(too_large(cap));
        }
        check_text(value, cap)?;
        minijinja::escape_formatter(out, state, value)
    });
    // Python's string and dict methods (`.split()`, `.startswith()`, `.items()`), which users
    // coming from Jinja2 expect. Upstream gap (minijinja-contrib 3.1.0): `str.format` pads to
    // the requested width and precision before any fuel is charged, so `"{:>1000000000000000}"`
    // aborted the process; the widths are checked against the cap and paid for first.
    env.set_unknown_method_callback(move |state, value, method, args| {
        // A list's `.count(x)` and `.index(x)` compare `x` with every item, charged by nothing.
        if value.as_str().is_none() && matches!(method, "count" | "index") {
            for compared in std::iter::once(value).chain(args) {
                visit_items(state, compared, &mut |_, _| Ok(()))?;
            }
        }
        if let Some(text) = value.as_str() {
            if method == "format" {
                charge_bytes(state, str_format_request(text, cap)?)?;
            }
            // `.format()` and `.join()` turn their arguments into text.
            for arg in args {
                check_text(arg, cap)?;
            }
        }
        minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
    });
    env.add_filter(
        "format",
        move |state: &mut State, format: &Value, args: Rest<ValueOrKwargs>| {
            if let Some(format) = format.as_str() {
                printf_request(format, cap)?;
            }
            for arg in args.iter() {
                check_text(arg, cap)?;
            }
            minijinja::filters::format(state, format, args)
        },
    );
    env.add_filter(
        "tojson",
        move |state: &State, value: &Value, indent: Option<Value>, kwargs: Kwargs| {
            let spaces = match indent.clone().or(kwargs.peek::<Option<Value>>("indent")?) {
                None => 0,
                Some(indent) if indent.kind() == ValueKind::Bool => {
                    2 * usize::from(indent.is_true())
                }
                Some(indent) => usize::try_from(indent)?,
            };
            measure_text(value, cap, spaces)?;
            let json = minijinja::filters::tojson(value, indent, kwargs)?;
            charge_serialized(state, json.as_str().map_or(0, str::len))?;
            Ok::<_, Error>(json)
        },
    );
    env.add_filter("pprint", move |state: &State, value: &Value| {
        // `{:#?}` indents every level by four spaces.
        measure_text(value, cap, 4)?;
        let text = minijinja::filters::pprint(value);
        charge_serialized(state, text.len())?;
        Ok::<_, Error>(text)
    });
    // `a ~ b`, rewritten into this filter (see `rewrite`): minijinja's operator writes lists and
    // maps out whole, at any depth, before it charges for them.
    env.add_filter(
        rewrite::CONCAT,
        move |state: &mut State, left: Value, right: Value| concat(state, &left, &right, cap),
    );
    // The operands of comparisons, `in`, sorting and the other filters and tests that compare
    // (see `rewrite`): minijinja charges a comparison by the length of the lists compared, not
    // by what is inside them, so two equal lists each standing for a billion items took minutes
    // to compare. The walk charges for everything inside, then the value goes on unchanged.
    env.add_filter(rewrite::COMPARABLE, |state: &State, value: Value| {
        visit_items(state, &value, &mut |_, _| Ok(()))?;
        Ok::<_, Error>(value)
    });
    // List, tuple and map literals that hold variables (see `rewrite`): every nesting is made by
    // one, so refusing the deep ones bounds how deep any value gets, and freeing, printing and
    // comparing it stays within the stack.
    env.add_filter(rewrite::SHALLOW, |state: &State, value: Value| {
        visit_items(state, &value, &mut |_, depth| {
            if depth > MAX_TEXT_DEPTH {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("the value is nested more than {MAX_TEXT_DEPTH} levels deep"),
                ));
            }
            Ok(())
        })?;
        Ok::<_, Error>(value)
    });
    // Containers indexed from their end or sliced (see `rewrite`): minijinja walks a lazily
    // repeated list to its end for `[-1]`, charging for one item.
    env.add_filter(rewrite::INDEXABLE, |value: Value| {
        let lazy = value.downcast_object_ref::<Vec<Value>>().is_none()
            && value.as_object().is_some()
            && value.len().is_some_and(|items| items > MAX_WALK_ITEMS);
        if lazy {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "cannot index a repeated list of more than {MAX_WALK_ITEMS} items from its \
                     end or slice it"
                ),
            ));
        }
        Ok::<_, Error>(value)
    });
    // What `loop.changed(...)` keeps (see `rewrite`): data only, since the loop, a macro or a
    // namespace inside it would make a cycle that is never freed.
    env.add_filter(rewrite::DETACHED, |state: &State, value: Value| {
        visit_items(state, &value, &mut |item, _| {
            // Loops, macros and namespaces act like maps; the maps of data (literals, `dict()`,
            // the event's JSON) are minijinja's own map type.
            let holds_code = item.kind() == ValueKind::Plain
                || (item.kind() == ValueKind::Map
                    && item.as_object().is_some()
                    && item
                        .downcast_object_ref::<std::collections::BTreeMap<Value, Value>>()
                        .is_none());
            if holds_code {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "loop.changed() compares data: not loops, macros or namespaces",
                ));
            }
            Ok(())
        })?;
        Ok::<_, Error>(value)
    });
    // Arguments that filters and tests turn into text (see `rewrite`): the value goes on
    // unchanged once its text is known to fit the cap.
    env.add_filter(rewrite::TEXT, move |value: Value| {
        check_text(&value, cap)?;
        Ok::<_, Error>(value)
    });
    // Filters that turn their input into a string, and are registered as the public function
    // (so wrapping them keeps minijinja's own fuel accounting).
    let text_filters = [
        ("string", Value::from_function(minijinja::filters::string)),
        ("join", Value::from_function(minijinja::filters::join)),
        ("escape", Value::from_function(minijinja::filters::escape)),
        ("e", Value::from_function(minijinja::filters::escape)),
        ("safe", Value::from_function(minijinja::filters::safe)),
        ("upper", Value::from_function(minijinja::filters::upper)),
        ("lower", Value::from_function(minijinja::filters::lower)),
        ("title", Value::from_function(minijinja::filters::title)),
        (
            "capitalize",
            Value::from_function(minijinja::filters::capitalize),
        ),
        ("trim", Value::from_function(minijinja::filters::trim)),
        ("split", Value::from_function(minijinja::filters::split)),
        ("lines", Value::from_function(minijinja::filters::lines)),
    ];
    for (name, filter) in text_filters {
        env.add_filter(name, move |state: &mut State, args: Rest<ValueOrKwargs>| {
            if let Some(input) = args.first() {
                check_text(input, cap)?;
            }
            filter.call(state, &args.into_values())
        });
    }
}

/// minijinja's `~`, with both operands checked by [`check_text`] first: plain strings are
/// joined; anything else is written as `{{ }}` writes it, escaped for the template's
/// auto-escaping when only one side is marked safe (as minijinja does), and the result is safe
/// only if both sides are.
fn concat(state: &mut State, left: &Value, right: &Value, cap: usize) -> Result<Value, Error> {
    for operand in [left, right] {
        if operand.is_undefined() {
            // Refused as minijinja refuses it, naming the undefined expression.
            StringInput::new(state, operand)?;
        }
        check_text(operand, cap)?;
    }
    let mut text = String::new();
    if left.is_safe() != right.is_safe() && !matches!(state.auto_escape(), AutoEscape::None) {
        let mut out = minijinja::machinery::make_string_output(&mut text);
        for operand in [left, right] {
            match operand.as_str() {
                Some(safe) if operand.is_safe() => out.write_str(safe)?,
                _ => minijinja::escape_formatter(&mut out, state, operand)?,
            }
        }
        charge_bytes(state, text.len())?;
        return Ok(Value::from_safe_string(text));
    }
    for operand in [left, right] {
        match operand.as_str() {
            Some(plain) => text.push_str(plain),
            None => write!(text, "{operand}").map_err(|_| too_large(cap))?,
        }
    }
    charge_bytes(state, text.len())?;
    Ok(if left.is_safe() && right.is_safe() {
        Value::from_safe_string(text)
    } else {
        Value::from(text)
    })
}

/// Deepest nesting [`visit_items`] walks. Values are kept shallower than this where they are
/// built (namespaces and list and map literals refuse values nested deeper than
/// [`MAX_TEXT_DEPTH`], JSON payloads nest at most 128 levels); this keeps the walk itself from
/// overflowing should one get through.
const MAX_WALK_DEPTH: usize = 1024;

/// Most items a list or map walked by [`visit_items`] may hold (minijinja's limit for `range`).
const MAX_WALK_ITEMS: usize = 100_000;

/// Most items one walk visits in all: a JSON payload of 1 MiB holds fewer, while a list that
/// holds the same list many times over stands for billions.
const MAX_WALK_TOTAL: u64 = 1_000_000;

/// One fuel pays for visiting this many lists and maps.
const CONTAINERS_PER_FUEL: u64 = 16;

/// One fuel pays for visiting this many strings, numbers and other items that hold nothing.
const SCALARS_PER_FUEL: u64 = 1024;

/// Visits `value` and every item and map entry inside it, depth first, charging fuel for what it
/// visits: a small value that stands for a huge one (a list holding the same list many times
/// over) runs out of fuel instead of being walked for ever. Lists and maps cost more than
/// scalars, so a flat list of numbers built up one `set` at a time stays cheap; walks of fewer
/// items than one fuel pays for cost nothing. `check` sees each value with its depth before
/// what is inside it.
pub(super) fn visit_items(
    state: &State,
    value: &Value,
    check: &mut dyn FnMut(&Value, usize) -> Result<(), Error>,
) -> Result<(), Error> {
    /// Lists and maps, and scalars, visited so far.
    #[derive(Default)]
    struct Visited {
        containers: u64,
        scalars: u64,
    }
    fn visit(
        state: &State,
        value: &Value,
        depth: usize,
        visited: &mut Visited,
        check: &mut dyn FnMut(&Value, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        check(value, depth)?;
        if visited.containers + visited.scalars >= MAX_WALK_TOTAL {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("the value holds more than {MAX_WALK_TOTAL} items in all"),
            ));
        }
        let container = matches!(
            value.kind(),
            ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
        );
        if value.as_object().is_none() || !container {
            visited.scalars += 1;
            if visited.scalars.is_multiple_of(SCALARS_PER_FUEL) {
                state.consume_fuel(1)?;
            }
            return Ok(());
        }
        visited.containers += 1;
        if visited.containers.is_multiple_of(CONTAINERS_PER_FUEL) {
            state.consume_fuel(1)?;
        }
        // `[x] * 99999999` is a small value that claims a hundred million items: refused before
        // they are walked, as minijinja refuses such a `range`.
        if let Some(items) = value.len().filter(|items| *items > MAX_WALK_ITEMS) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("the value holds {items} items, more than {MAX_WALK_ITEMS}"),
            ));
        }
        if depth >= MAX_WALK_DEPTH {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("the value is nested more than {MAX_WALK_DEPTH} levels deep"),
            ));
        }
        for item in value.try_iter()? {
            visit(state, &item, depth + 1, visited, check)?;
            if value.kind() == ValueKind::Map {
                visit(state, &value.get_item(&item)?, depth + 1, visited, check)?;
            }
        }
        Ok(())
    }
    visit(state, value, 0, &mut Visited::default(), check)
}

/// Refuses a list, map or other object whose text (as printed, or as JSON) would be longer than
/// `limit` bytes or nested deeper than [`MAX_TEXT_DEPTH`], before anything turns it into text.
/// Strings and numbers pass: they exist already and were paid for.
///
/// Lists can hold the same list many times over (`{% set b = [a, a, a] %}`) or repeat it lazily
/// (`[x] * 99999999`), so a small value can stand for a huge text; minijinja writes that text out
/// whole before charging fuel for it.
pub fn check_text(value: &Value, limit: usize) -> Result<(), Error> {
    if value.as_object().is_none() {
        return Ok(());
    }
    measure_text(value, limit, 0)
}

/// [`check_text`] for any value, counting `indent` spaces per level for each item as pretty
/// printing does.
fn measure_text(value: &Value, limit: usize, indent: usize) -> Result<(), Error> {
    let mut budget = limit;
    measure(value, indent, 0, &mut budget).map_err(|refusal| match refusal {
        Refusal::TooLarge => too_large(limit),
        Refusal::TooDeep => Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "the value is nested more than {MAX_TEXT_DEPTH} levels deep (or contains itself)"
            ),
        ),
    })
}

fn too_large(limit: usize) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("the value's text would be larger than the limit of {limit} bytes"),
    )
}

/// Why [`measure`] stopped.
enum Refusal {
    TooLarge,
    TooDeep,
}

/// Takes a lower bound of `value`'s text length from `budget`: each item costs at least its own
/// text, one separator and its indentation. Stops as soon as the budget is spent, so it visits at
/// most `limit` items however large the value claims to be.
fn measure(value: &Value, indent: usize, depth: usize, budget: &mut usize) -> Result<(), Refusal> {
    fn spend(budget: &mut usize, bytes: usize) -> Result<(), Refusal> {
        *budget = budget.checked_sub(bytes).ok_or(Refusal::TooLarge)?;
        Ok(())
    }
    let container = matches!(
        value.kind(),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
    );
    match (value.as_str(), value.as_object()) {
        (Some(text), _) => spend(budget, text.len().saturating_add(2)),
        (None, Some(_)) if container => {
            if depth >= MAX_TEXT_DEPTH {
                return Err(Refusal::TooDeep);
            }
            spend(budget, 2)?;
            let per_item = indent.saturating_mul(depth + 1).saturating_add(1);
            let items = value.try_iter().map_err(|_| Refusal::TooLarge)?;
            for item in items {
                spend(budget, per_item)?;
                measure(&item, indent, depth + 1, budget)?;
                if value.kind() == ValueKind::Map {
                    let entry = value.get_item(&item).map_err(|_| Refusal::TooLarge)?;
                    spend(budget, 1)?;
                    measure(&entry, indent, depth + 1, budget)?;
                }
            }
            Ok(())
        }
        // Numbers, booleans and opaque objects (macros, loops): count their text without
        // keeping it, and stop once the budget is spent.
        _ => {
            fmt::write(&mut Counter(budget), format_args!("{value}")).map_err(|_| Refusal::TooLarge)
        }
    }
}

/// A `fmt::Write` that keeps nothing and fails once its budget is spent.
struct Counter<'a>(&'a mut usize);

impl fmt::Write for Counter<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        *self.0 = self.0.checked_sub(text.len()).ok_or(fmt::Error)?;
        Ok(())
    }
}

/// Charges fuel for `bytes` that are about to be created (minijinja charges them again once
/// they exist: paying twice keeps many fields just under the cap from adding up unpaid).
fn charge_bytes(state: &State, bytes: usize) -> Result<(), Error> {
    state.consume_fuel((bytes / BYTES_PER_FUEL) as u64)
}

/// Charges the extra fuel minijinja's own `tojson` and `pprint` charge for walking a value.
fn charge_serialized(state: &State, bytes: usize) -> Result<(), Error> {
    charge_bytes(state, bytes.saturating_mul(SERIALIZED_UNITS_PER_BYTE))
}

/// Refuses a width or precision above its limit; both name the field's position.
fn check_spec(
    width: Option<usize>,
    precision: Option<usize>,
    offset: usize,
    cap: usize,
) -> Result<usize, Error> {
    let refuse = |what: &str, value: usize, limit: usize| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("format {what} {value} at offset {offset} is larger than the limit of {limit}"),
        )
    };
    let width = width.unwrap_or(0);
    let precision = precision.unwrap_or(0);
    if width > cap {
        return Err(refuse("width", width, cap));
    }
    let precision_limit = cap.min(MAX_FORMAT_PRECISION);
    if precision > precision_limit {
        return Err(refuse("precision", precision, precision_limit));
    }
    Ok(width.saturating_add(precision))
}

/// A cursor over a format string, for the two spec parsers below.
struct Specs<'a> {
    text: &'a str,
    at: usize,
}

impl Specs<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    fn eat_any(&mut self, bytes: &[u8]) -> bool {
        match self.peek() {
            Some(byte) if bytes.contains(&byte) => self.at += 1,
            _ => return false,
        }
        true
    }

    /// A run of digits; a number too large for `usize` saturates, which the caller refuses.
    fn number(&mut self) -> Option<usize> {
        let digits = self.text.as_bytes()[self.at..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        let number = self.text[self.at..self.at + digits]
            .bytes()
            .fold(0usize, |n, digit| {
                n.saturating_mul(10)
                    .saturating_add(usize::from(digit - b'0'))
            });
        self.at += digits;
        Some(number)
    }

    /// Skips past `end`; false if it never comes.
    fn skip_past(&mut self, end: u8) -> bool {
        match self.text.as_bytes()[self.at..]
            .iter()
            .position(|&b| b == end)
        {
            Some(position) => {
                self.at += position + 1;
                true
            }
            None => false,
        }
    }
}

/// The bytes a `str.format` string asks for through widths and precisions, refusing any above
/// the cap. Follows the grammar of minijinja's `formatting::str_format_style`:
/// `{[field_name][:[[fill]align][sign][#][0][width][,|_][.precision][type]]}`, with `{{` and `}}`
/// as escapes. It stops at the first malformed field, where minijinja stops with an error too.
fn str_format_request(format: &str, cap: usize) -> Result<usize, Error> {
    let mut specs = Specs {
        text: format,
        at: 0,
    };
    let mut requested = 0usize;
    while let Some(byte) = specs.peek() {
        let offset = specs.at;
        specs.at += 1;
        match byte {
            b'{' if specs.eat(b'{') => {}
            b'}' if specs.eat(b'}') => {}
            b'}' => break,
            b'{' => {
                // field_name: a number or an identifier, then `.attr` and `[key]` parts.
                if specs.number().is_none() {
                    let ident = specs.text.as_bytes()[specs.at..]
                        .iter()
                        .enumerate()
                        .take_while(|&(i, &b)| {
                            b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
                        })
                        .count();
                    specs.at += ident;
                }
                loop {
                    if specs.eat(b'.') {
                        let ident = specs.text.as_bytes()[specs.at..]
                            .iter()
                            .take_while(|&&b| b == b'_' || b.is_ascii_alphanumeric())
                            .count();
                        specs.at += ident;
                    } else if specs.eat(b'[') {
                        if !specs.skip_past(b']') {
                            return Ok(requested);
                        }
                    } else {
                        break;
                    }
                }
                let (mut width, mut precision) = (None, None);
                if specs.eat(b':') {
                    // [[fill]align]: the fill is any character before an alignment.
                    let mut chars = specs.text[specs.at..].chars();
                    match (chars.next(), chars.next()) {
                        (Some(fill), Some('<' | '>' | '^')) => specs.at += fill.len_utf8() + 1,
                        (Some('<' | '>' | '^'), _) => specs.at += 1,
                        _ => {}
                    }
                    specs.eat_any(b"+- ");
                    specs.eat(b'#');
                    specs.eat(b'0');
                    width = specs.number();
                    specs.eat_any(b",_");
                    if specs.eat(b'.') {
                        precision = specs.number();
                    }
                    specs.eat_any(b"bdoxXeEfFgGcs");
                }
                if !specs.eat(b'}') {
                    return Ok(requested);
                }
                requested = requested.saturating_add(check_spec(width, precision, offset, cap)?);
            }
            _ => {}
        }
    }
    Ok(requested)
}

/// Refuses widths and precisions above the cap in a printf-style string (the `format` filter):
/// `%[(key)][#0- +][width][.precision][hlL]type`, with `%%` as escape. minijinja already checks
/// that the fuel can pay for the widths, but formats integers with a precision above `u16::MAX`
/// through Rust's formatter, which panics.
fn printf_request(format: &str, cap: usize) -> Result<usize, Error> {
    let mut specs = Specs {
        text: format,
        at: 0,
    };
    let mut requested = 0usize;
    while specs.skip_past(b'%') {
        let offset = specs.at - 1;
        if specs.eat(b'%') {
            continue;
        }
        if specs.eat(b'(') && !specs.skip_past(b')') {
            break;
        }
        while specs.eat_any(b"#0- +") {}
        let width = specs.number();
        let precision = if specs.eat(b'.') {
            specs.number()
        } else {
            None
        };
        requested = requested.saturating_add(check_spec(width, precision, offset, cap)?);
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_format_specs_are_read_like_minijinja_reads_them() {
        assert_eq!(str_format_request("{{:>99999999}} {}", 10).unwrap(), 0);
        // Widths plus precisions; a key in brackets may hold braces; `!r` is not minijinja's
        // grammar, so the field where it appears and those after it are never formatted.
        assert_eq!(
            str_format_request("{:>4}{a.b[}x]:*^5.2f}{c!r:>99}", 10).unwrap(),
            11
        );
        assert_eq!(str_format_request("{:}>6}|{:>>7,}", 10).unwrap(), 13);
        assert_eq!(str_format_request("{:é<8.3}", 10).unwrap(), 11);
        let error = str_format_request("{x:011}", 10).unwrap_err();
        assert_eq!(
            error.detail(),
            Some("format width 11 at offset 0 is larger than the limit of 10")
        );
        // minijinja stops at a malformed field, so later ones are never formatted.
        assert_eq!(str_format_request("{:>4} } {:>99}", 10).unwrap(), 4);
    }

    #[test]
    fn printf_specs_are_read_like_minijinja_reads_them() {
        assert_eq!(
            printf_request("100%% %-5.2f %(key)#08x %s", 10).unwrap(),
            15
        );
        let error = printf_request("%.70000f", 100_000).unwrap_err();
        assert_eq!(
            error.detail(),
            Some("format precision 70000 at offset 0 is larger than the limit of 65534")
        );
    }
}
