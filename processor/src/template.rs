//! The minijinja environment every trigger compiles in, and its safety limits.
//!
//! Users write these templates, so they run with strict undefined (a missing field is an error,
//! not an empty string), a fuel budget against runaway loops, a recursion limit and a cap on the
//! rendered size. There is no loader: templates cannot read files or include each other.

mod bounds;
pub mod check;
mod namespace;
pub mod rewrite;

use std::ops::Range;

use clap::Args;
use minijinja::value::ValueOrKwargs;
use minijinja::{AutoEscape, Environment, Error, Expression, State, UndefinedBehavior, Value};

pub use self::bounds::check_text;
use self::bounds::install_bounds;
pub use self::rewrite::SourceMap;

/// Template limits.
#[derive(Clone, Debug, Args)]
pub struct Limits {
    /// Fuel of one evaluation (roughly, instructions); a template that runs out fails.
    #[arg(
        long = "template-fuel",
        env = "HOOKLINE_TEMPLATE_FUEL",
        default_value_t = 100_000
    )]
    pub fuel: u64,

    /// Deepest nesting of calls, loops and includes.
    #[arg(
        long = "template-recursion-limit",
        env = "HOOKLINE_TEMPLATE_RECURSION_LIMIT",
        default_value_t = 64
    )]
    pub recursion: usize,

    /// Largest rendered body or header, in bytes.
    #[arg(long = "template-max-bytes", env = "HOOKLINE_TEMPLATE_MAX_BYTES", default_value_t = 256 * 1024)]
    pub max_rendered_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 100_000,
            recursion: 64,
            max_rendered_bytes: 256 * 1024,
        }
    }
}

/// Suffix of template names rendered with JSON auto-escaping: `{{ payload.name }}` prints a JSON
/// string with its quotes, so a body template cannot produce broken JSON by interpolation.
pub const JSON_SUFFIX: &str = ".json";

/// A fresh environment with the limits applied and the filters webhook bodies need: minijinja's
/// built-ins (`default`, `tojson`, `upper`, `replace`, `join`, ...), `truncate`, `pluralize`,
/// `filesizeformat`, Python string methods (`.split()`, `.lower()`, ...), dates (`datetimeformat`,
/// `dateformat`, `timeformat`, strftime-style formats
/// in UTC unless `tz` says otherwise) and `sha256` (hex digest). No loader: nothing is read from
/// disk or network.
///
/// Whatever turns a value into text is bounded before it allocates: widths and precisions of
/// `str.format` and the `format` filter, and the text of lists and maps that are printed, passed
/// to `tojson`, `string`, `join` and other string filters (see [`check_text`]). Templates and
/// expressions must be compiled with [`add_template`] and [`compile_expression`], whose
/// [`rewrite`] routes `~`, comparisons and namespace assignment through bounded versions;
/// `namespace()` is Hookline's (see `namespace`), and `debug()` is removed.
pub fn environment(limits: &Limits) -> Environment<'static> {
    let cap = limits.max_rendered_bytes;
    let mut env = Environment::new();
    env.add_filter("truncate", minijinja_contrib::filters::truncate);
    env.add_filter("pluralize", minijinja_contrib::filters::pluralize);
    env.add_filter("filesizeformat", minijinja_contrib::filters::filesizeformat);
    env.add_filter("datetimeformat", minijinja_contrib::filters::datetimeformat);
    env.add_filter("dateformat", minijinja_contrib::filters::dateformat);
    env.add_filter("timeformat", minijinja_contrib::filters::timeformat);
    env.add_filter("sha256", move |value: &Value| sha256(value, cap));
    install_bounds(&mut env, cap);
    env.add_function(
        "namespace",
        |state: &State, defaults: Option<ValueOrKwargs>| namespace::create(state, defaults),
    );
    env.add_function(
        rewrite::ASSIGN,
        |state: &State, target: Value, attribute: String, value: Value| {
            namespace::assign(state, &target, &attribute, value)
        },
    );
    // `debug()` prints the whole context with `{:#?}`, which nothing bounds; it has no use in a
    // webhook body.
    env.remove_global("debug");
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(limits.fuel));
    env.set_recursion_limit(limits.recursion);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(JSON_SUFFIX) {
            AutoEscape::Json
        } else {
            AutoEscape::None
        }
    });
    env
}

/// The hex SHA-256 digest of a value's text, for example to pseudonymise an e-mail address.
fn sha256(value: &Value, cap: usize) -> Result<String, Error> {
    use sha2::Digest as _;
    check_text(value, cap)?;
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned);
    Ok(hex::encode(sha2::Sha256::digest(text.as_bytes())))
}

/// Adds a template, compiled from its [`rewrite`], and returns how to map its error positions
/// back to `source`.
pub fn add_template(
    env: &mut Environment<'static>,
    name: String,
    source: &str,
) -> Result<SourceMap, Error> {
    let rewritten = rewrite::template(source)?;
    env.add_template_owned(name, rewritten.text)?;
    Ok(rewritten.map)
}

/// Compiles an expression from its [`rewrite`], like [`add_template`].
pub fn compile_expression<'env>(
    env: &'env Environment<'static>,
    source: &str,
) -> Result<(Expression<'env, 'static>, SourceMap), Error> {
    let rewritten = rewrite::expression(source)?;
    let expression = env.compile_expression_owned(rewritten.text)?;
    Ok((expression, rewritten.map))
}

/// The range of `source` an error points at, when minijinja knows it.
pub fn error_range(map: &SourceMap, error: &Error) -> Option<Range<usize>> {
    error.range().map(|range| map.original(range))
}

/// Line and column (both from 1) of a template error in `source`, when minijinja knows where it
/// happened.
pub fn position(source: &str, map: &SourceMap, error: &Error) -> Option<(usize, usize)> {
    if let Some(range) = error_range(map, error) {
        let before = source.get(..range.start)?;
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        return Some((line, column));
    }
    error.line().map(|line| (line, 1))
}
