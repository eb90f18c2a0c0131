//! Routes the two constructs minijinja evaluates without bounds through Hookline's own code, by
//! rewriting a template's source before it is compiled.
//!
//! - `a ~ b` becomes `(a)|__hookline_concat(b)`. minijinja's `~` turns a list or map into text
//!   before it charges fuel, and recurses without a depth limit: a list that holds the same list
//!   many times over stood for gigabytes of text, and a namespace holding itself overflowed the
//!   stack. Operators cannot be replaced from outside the crate; filters can.
//! - `{% set ns.attr = value %}` becomes `{% do __hookline_assign(ns, "attr", (value)) %}`, and the
//!   block form `{% set ns.attr %}…{% endset %}` captures into a variable that is then assigned
//!   the same way. minijinja's namespaces accept any value, so a loop could nest lists twenty
//!   thousand deep (freeing them overflowed the stack) or make a namespace contain itself;
//!   [`super::namespace`] refuses both.
//!
//! - The operands of comparisons (`==`, `<`, `in`, ...), of the filters and tests that compare
//!   (`sort`, `unique`, `selectattr`, `eq`, ...) and the keys of map literals pass through
//!   `__hookline_comparable`, which charges fuel for what is inside them: minijinja charges a
//!   comparison by the length of the outer lists only, so comparing two lists that each stood
//!   for a billion items took minutes.
//!
//! The rewrite works on the parsed syntax tree (minijinja's `unstable_machinery`, which is why the
//! workspace pins minijinja's exact version), so text inside strings, comments and raw blocks is
//! never touched. It only inserts text around expressions and replaces the `~` and `set ... =`
//! tokens, keeping every line break, so line numbers stay those of the source as written;
//! [`SourceMap`] takes error positions back to it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;

use minijinja::{Error, ErrorKind, machinery};
use serde_json::Value as Node;

/// The filter that replaces `~`.
pub(super) const CONCAT: &str = "__hookline_concat";

/// The filter the operands of comparisons pass through.
pub(super) const COMPARABLE: &str = "__hookline_comparable";

/// Filters and tests that compare their input or arguments with each other (or, for `map`,
/// `select` and the like, may call one that does).
const COMPARING: &[&str] = &[
    "sort",
    "unique",
    "min",
    "max",
    "dictsort",
    "groupby",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "map",
    "eq",
    "equalto",
    "==",
    "ne",
    "!=",
    "lt",
    "lessthan",
    "<",
    "le",
    "<=",
    "gt",
    "greaterthan",
    ">",
    "ge",
    ">=",
    "in",
    "sameas",
];

/// List, tuple and map literals that hold variables pass through, to be refused when nested
/// deeper than anything can free: `{% set a = [[a]] %}` repeated nests one more level each time.
pub(super) const SHALLOW: &str = "__hookline_shallow";

/// What `loop.changed(...)` keeps until the next iteration passes through, to be refused if it
/// holds the loop itself, a macro or a namespace (which would make a cycle that is never freed).
pub(super) const DETACHED: &str = "__hookline_detached";

/// Lists indexed from their end or sliced pass through, to be refused when lazily repeated past
/// what may be walked: minijinja walks `([1] * 99999999)[-1]` item by item, charging for one.
pub(super) const INDEXABLE: &str = "__hookline_indexable";

/// The filter arguments that minijinja turns into text pass through, to be refused (like printed
/// values) before a list standing for gigabytes is written out.
pub(super) const TEXT: &str = "__hookline_text";

/// Filters and tests whose arguments minijinja turns into text: whether the input is text too,
/// how many positional arguments are, and which keyword arguments.
const TEXT_ARGUMENTS: &[(&str, bool, usize, &[&str])] = &[
    ("replace", true, 2, &[]),
    ("join", false, 1, &["d", "attribute"]),
    ("trim", true, 1, &["chars"]),
    ("indent", true, 0, &[]),
    ("split", true, 1, &["sep"]),
    ("attr", false, 1, &[]),
    ("map", false, 1, &["attribute"]),
    ("select", false, 1, &[]),
    ("reject", false, 1, &[]),
    ("selectattr", false, 2, &[]),
    ("rejectattr", false, 2, &[]),
    ("startingwith", true, 1, &[]),
    ("endingwith", true, 1, &[]),
];

/// Binary operators that compare their operands (chains like `a < b < c` are `Compare` nodes).
const COMPARING_OPERATORS: &[&str] = &["Eq", "Ne", "Lt", "Lte", "Gt", "Gte", "In"];

/// The function that replaces assignment to a namespace attribute.
pub(super) const ASSIGN: &str = "__hookline_assign";

/// The variable a `{% set ns.attr %}` block captures into before it is assigned.
const CAPTURE: &str = "__hookline_capture";

/// A source as minijinja compiles it, and how to find positions in it in the source as written.
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// The text to compile.
    pub text: String,
    /// How to map its offsets back.
    pub map: SourceMap,
}

/// The edits a rewrite made, in order, to map offsets in the rewritten text back to the source.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    edits: Vec<Edit>,
}

/// At `at` in the source, `removed` bytes were replaced by `inserted`.
#[derive(Debug, Clone)]
struct Edit {
    at: usize,
    removed: usize,
    inserted: String,
}

/// The map of a source compiled as written.
pub static AS_WRITTEN: SourceMap = SourceMap { edits: Vec::new() };

impl SourceMap {
    /// The range of the source as written that a range of the rewritten text came from. A range
    /// that starts or ends inside inserted text is widened to the text the insertion stands for
    /// (for an error in `__hookline_concat`, the `~` it replaced).
    pub fn original(&self, range: Range<usize>) -> Range<usize> {
        let start = self.offset(range.start, false);
        let end = self.offset(range.end, true).max(start);
        start..end
    }

    /// The source offset of a rewritten offset: inside an insertion, the start of what it
    /// replaced, or its end if `end` is set.
    fn offset(&self, offset: usize, end: bool) -> usize {
        // Rewritten minus source offsets, after the edits seen so far.
        let mut shift = 0isize;
        for edit in &self.edits {
            let rewritten_at = edit.at.saturating_add_signed(shift);
            if offset < rewritten_at {
                break;
            }
            if offset < rewritten_at + edit.inserted.len() {
                return if end { edit.at + edit.removed } else { edit.at };
            }
            shift += edit.inserted.len() as isize - edit.removed as isize;
        }
        offset.saturating_add_signed(-shift)
    }
}

/// Most tokens a template's expressions and statements may hold (its literal text does not
/// count). Parsing and compiling recurse once per operator of a chain, and the rewrite's tree
/// takes memory per node: this bounds both, far above what a webhook body needs.
pub const MAX_TOKENS: usize = 20_000;

/// Refuses a source with more than [`MAX_TOKENS`] tokens outside its literal text.
fn count_tokens(source: &str, in_expression: bool) -> Result<(), Error> {
    let tokens = machinery::tokenize(source, in_expression, Default::default())
        .filter(|token| !matches!(token, Ok((machinery::Token::TemplateData(_), _))))
        .take(MAX_TOKENS + 1)
        .count();
    if tokens > MAX_TOKENS {
        return Err(Error::new(
            ErrorKind::SyntaxError,
            format!("the template holds more than {MAX_TOKENS} tokens in its expressions"),
        ));
    }
    Ok(())
}

/// Rewrites a template. A template that does not parse is returned as written, so that minijinja
/// reports its syntax error against the source as written.
pub fn template(source: &str) -> Result<Rewritten, Error> {
    count_tokens(source, false)?;
    match machinery::parse(source, "<template>", Default::default()) {
        Ok(ast) => rewrite(source, &ast, |text| {
            machinery::parse(text, "<template>", Default::default()).is_ok()
        }),
        Err(_) => Ok(unchanged(source)),
    }
}

/// Rewrites a standalone expression (`when.event_type`, `if`), like [`template`].
pub fn expression(source: &str) -> Result<Rewritten, Error> {
    count_tokens(source, true)?;
    match machinery::parse_expr(source) {
        Ok(ast) => rewrite(source, &ast, |text| machinery::parse_expr(text).is_ok()),
        Err(_) => Ok(unchanged(source)),
    }
}

fn unchanged(source: &str) -> Rewritten {
    Rewritten {
        text: source.to_owned(),
        map: SourceMap::default(),
    }
}

fn rewrite(
    source: &str,
    ast: &impl serde::Serialize,
    parses: impl Fn(&str) -> bool,
) -> Result<Rewritten, Error> {
    // The syntax tree is walked in its serialized form: every node of every kind is visited, so a
    // `~` in a macro's default argument or a filter's keyword argument is found too, and no new
    // node kind of minijinja can be skipped silently.
    let tree = serde_json::to_value(ast).map_err(|error| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("the template could not be checked: {error}"),
        )
    })?;
    let mut rewriter = Rewriter {
        source,
        edits: Vec::new(),
        extents: RefCell::default(),
    };
    rewriter.visit(&tree)?;
    // Edits at the same offset keep the order they were made in: outer openings before inner
    // ones, inner closings before outer ones.
    rewriter.edits.sort_by_key(|edit| edit.at);
    let mut text = String::with_capacity(source.len() + 32 * rewriter.edits.len());
    let mut copied = 0;
    for edit in &rewriter.edits {
        text.push_str(&source[copied..edit.at]);
        text.push_str(&edit.inserted);
        copied = edit.at + edit.removed;
    }
    text.push_str(&source[copied..]);
    // What parsed before must parse after; a template this rewrite cannot handle is refused
    // rather than compiled into something else.
    if !rewriter.edits.is_empty() && !parses(&text) {
        return Err(unexpected("the rewritten template does not parse"));
    }
    Ok(Rewritten {
        text,
        map: SourceMap {
            edits: rewriter.edits,
        },
    })
}

struct Rewriter<'a> {
    source: &'a str,
    edits: Vec<Edit>,
    /// Bounds of the subtrees seen, by node (see [`Rewriter::bounds`]).
    extents: RefCell<HashMap<*const Node, Bounds>>,
}

impl Rewriter<'_> {
    /// Visits a node of the serialized tree: `{"expr"|"stmt": kind, "inner": [fields, span]}`,
    /// or a list or map of them.
    fn visit(&mut self, node: &Node) -> Result<(), Error> {
        match node {
            Node::Array(items) => items.iter().try_for_each(|item| self.visit(item)),
            Node::Object(map) => {
                let kind = map.get("expr").or_else(|| map.get("stmt"));
                let fields = map.get("inner").and_then(|inner| inner.get(0));
                match (kind.and_then(Node::as_str), fields) {
                    (Some("BinOp"), Some(fields)) if fields["op"] == "Concat" => {
                        self.concat(&fields["left"], &fields["right"])
                    }
                    // `a in "text"` turns `a` into text.
                    (Some("BinOp"), Some(fields)) if fields["op"] == "In" => {
                        self.wrap(&fields["left"], &[TEXT, COMPARABLE])?;
                        self.comparable(&fields["right"])
                    }
                    (Some("BinOp"), Some(fields))
                        if fields["op"]
                            .as_str()
                            .is_some_and(|op| COMPARING_OPERATORS.contains(&op)) =>
                    {
                        self.comparable(&fields["left"])?;
                        self.comparable(&fields["right"])
                    }
                    (Some("Compare"), Some(fields)) => {
                        self.comparable(&fields["expr"])?;
                        self.comparable_all(&fields["ops"])
                    }
                    (Some("Filter" | "Test"), Some(fields))
                        if fields["name"].as_str().is_some_and(|name| {
                            COMPARING.contains(&name)
                                || TEXT_ARGUMENTS.iter().any(|(text, ..)| *text == name)
                        }) =>
                    {
                        self.filter_call(fields)
                    }
                    (Some("Call"), Some(fields))
                        if fields["expr"]["inner"][0]["name"] == "changed" =>
                    {
                        // `loop.changed(value)` keeps the value and compares it with the last.
                        self.visit(&fields["expr"])?;
                        for argument in fields["args"].as_array().map_or(&[][..], Vec::as_slice) {
                            match argument.get("Pos") {
                                Some(expression) => {
                                    self.wrap(expression, &[DETACHED, COMPARABLE])?;
                                }
                                None => self.comparable_all(argument)?,
                            }
                        }
                        Ok(())
                    }
                    // `x[i]` with `i` not a constant key or index of zero or more, and `x[a:b]`.
                    (Some("GetItem"), Some(fields))
                        if !plain_subscript(&fields["subscript_expr"]) =>
                    {
                        self.indexed(&fields["expr"])?;
                        self.visit(&fields["subscript_expr"])
                    }
                    (Some("Slice"), Some(fields)) => {
                        self.indexed(&fields["expr"])?;
                        for field in ["start", "stop", "step"] {
                            self.visit(&fields[field])?;
                        }
                        Ok(())
                    }
                    (Some("List" | "Tuple" | "Map"), Some(fields)) if holds_variables(fields) => {
                        self.literal(node, fields)
                    }
                    (Some("Map"), Some(fields)) => self.map_items(fields),
                    // Assignment targets are names, not expressions: only what is assigned.
                    (Some("ForLoop"), Some(fields)) => {
                        for field in ["iter", "filter_expr", "body", "else_body"] {
                            self.visit(&fields[field])?;
                        }
                        Ok(())
                    }
                    (Some("WithBlock"), Some(fields)) => {
                        for pair in fields["assignments"]
                            .as_array()
                            .map_or(&[][..], Vec::as_slice)
                        {
                            self.visit(&pair[1])?;
                        }
                        self.visit(&fields["body"])
                    }
                    (Some("Set"), Some(fields)) => {
                        self.set(span(node).start, &fields["target"], &fields["expr"])
                    }
                    (Some("SetBlock"), Some(fields)) => self.set_block(node, fields),
                    _ => map.values().try_for_each(|value| self.visit(value)),
                }
            }
            Node::Null | Node::Bool(_) | Node::Number(_) | Node::String(_) => Ok(()),
        }
    }

    /// `left ~ right` → `(left)|__hookline_concat(right)`.
    fn concat(&mut self, left: &Node, right: &Node) -> Result<(), Error> {
        let left_extent = self.extent(left);
        let right_extent = self.extent(right);
        // A concatenation on the left is already a filter call, which chains without parentheses
        // (`(a)|c(b)|c(c)`): a long chain must not nest them past the parser's limit.
        let chained = left["expr"] == "BinOp" && left["inner"][0]["op"] == "Concat";
        if !chained {
            self.insert(left_extent.start, "(");
        }
        self.visit(left)?;
        if !chained {
            self.insert(left_extent.end, ")");
        }
        let tilde = self.source[left_extent.end..right_extent.start]
            .find('~')
            .map(|at| left_extent.end + at)
            .ok_or_else(|| unexpected("no `~` between the operands of a concatenation"))?;
        self.replace(tilde..tilde + 1, format!("|{CONCAT}("));
        self.visit(right)?;
        self.insert(right_extent.end, ")");
        Ok(())
    }

    /// A filter or test that compares, or turns arguments into text: its input and arguments
    /// pass through the filters that bound what it does with them.
    fn filter_call(&mut self, fields: &Node) -> Result<(), Error> {
        let name = fields["name"].as_str().unwrap_or_default();
        let compares = COMPARING.contains(&name);
        let (text_input, text_positions, text_keywords) = TEXT_ARGUMENTS
            .iter()
            .find(|(text, ..)| *text == name)
            .map_or((false, 0, &[][..]), |(_, input, positions, keywords)| {
                (*input, *positions, *keywords)
            });
        let filters = |text: bool| match (text, compares) {
            (true, true) => &[TEXT, COMPARABLE][..],
            (true, false) => &[TEXT][..],
            (false, true) => &[COMPARABLE][..],
            (false, false) => &[][..],
        };
        // A filter block's or a set block's filter has no input expression.
        if fields["expr"].is_object() {
            self.wrap(&fields["expr"], filters(text_input))?;
        }
        let mut position = 0;
        for argument in fields["args"].as_array().map_or(&[][..], Vec::as_slice) {
            if let Some(expression) = argument.get("Pos") {
                self.wrap(expression, filters(position < text_positions))?;
                position += 1;
            } else if let Some(keyword) = argument.get("Kwarg") {
                let text = keyword[0]
                    .as_str()
                    .is_some_and(|keyword| text_keywords.contains(&keyword));
                self.wrap(&keyword[1], filters(text))?;
            } else {
                // `*args`, `**kwargs`: as they are, but still compared.
                self.comparable_all(argument)?;
            }
        }
        Ok(())
    }

    /// `value` → `((value)|f)|g` for `filters` `[f, g]`, unless it is a constant (written in the
    /// template, it stands for no more than its text).
    fn wrap(&mut self, expression: &Node, filters: &[&str]) -> Result<(), Error> {
        if filters.is_empty() || expression["expr"] == "Const" {
            return self.visit(expression);
        }
        let extent = self.extent(expression);
        self.insert(extent.start, &"(".repeat(filters.len()));
        self.visit(expression)?;
        let closers: String = filters.iter().map(|filter| format!(")|{filter}")).collect();
        self.insert(extent.end, &closers);
        Ok(())
    }

    /// A list, tuple or map literal holding variables → `(literal)|__hookline_shallow`.
    fn literal(&mut self, node: &Node, fields: &Node) -> Result<(), Error> {
        let extent = self.extent(node);
        self.insert(extent.start, "(");
        if node["expr"] == "Map" {
            self.map_items(fields)?;
        } else {
            self.visit(&fields["items"])?;
        }
        self.insert(extent.end, &format!(")|{SHALLOW}"));
        Ok(())
    }

    /// The container of `x[i]` or `x[a:b]` → `((x)|__hookline_indexable)`, so the subscript
    /// applies to the filter's result.
    fn indexed(&mut self, container: &Node) -> Result<(), Error> {
        if container["expr"] == "Const" {
            return self.visit(container);
        }
        let extent = self.extent(container);
        self.insert(extent.start, "((");
        self.visit(container)?;
        self.insert(extent.end, &format!(")|{INDEXABLE})"));
        Ok(())
    }

    /// A map literal's keys are compared with each other to build the map.
    fn map_items(&mut self, fields: &Node) -> Result<(), Error> {
        self.comparable_all(&fields["keys"])?;
        self.visit(&fields["values"])
    }

    /// `value` → `(value)|__hookline_comparable`, unless it is a constant.
    fn comparable(&mut self, expression: &Node) -> Result<(), Error> {
        self.wrap(expression, &[COMPARABLE])
    }

    /// [`Self::comparable`] for each expression in a list of them or of call arguments
    /// (`{"Pos": expr}`, `{"Kwarg": [name, expr]}`, ...).
    fn comparable_all(&mut self, node: &Node) -> Result<(), Error> {
        match node {
            Node::Object(map) if map.get("expr").is_some_and(Node::is_string) => {
                self.comparable(node)
            }
            Node::Object(map) => map
                .values()
                .try_for_each(|value| self.comparable_all(value)),
            Node::Array(items) => items.iter().try_for_each(|item| self.comparable_all(item)),
            Node::Null | Node::Bool(_) | Node::Number(_) | Node::String(_) => Ok(()),
        }
    }

    /// `set ns.attr = value` → `do __hookline_assign(ns, "attr", (value))`; other targets stay.
    fn set(&mut self, keyword: usize, target: &Node, value: &Node) -> Result<(), Error> {
        let Some((namespace, attribute)) = self.attribute_target(target)? else {
            return self.visit(value);
        };
        // Only `set ns.attr =` is replaced: parentheses the value starts with are outside its
        // extent, and must stay.
        let target_end = self.extent(target).end;
        let value_extent = self.extent(value);
        let assign = self.source[target_end..value_extent.start]
            .find('=')
            .map(|at| target_end + at + 1)
            .ok_or_else(|| unexpected("no `=` in a set statement"))?;
        self.replace(
            keyword..assign,
            format!(r#"do {ASSIGN}({namespace}, "{attribute}", ("#),
        );
        self.visit(value)?;
        self.insert(value_extent.end, "))");
        Ok(())
    }

    /// `{% set ns.attr %}…{% endset %}` → `{% set __hookline_capture %}…{% endset %}` followed by
    /// `{% do __hookline_assign(ns, "attr", __hookline_capture) %}`.
    fn set_block(&mut self, node: &Node, fields: &Node) -> Result<(), Error> {
        let target = &fields["target"];
        if let Some((namespace, attribute)) = self.attribute_target(target)? {
            let target = self.extent(target);
            self.replace(target, CAPTURE.to_owned());
            // The statement's span ends after `endset`; the assignment goes after its `%}`, and
            // takes over its whitespace control (`-%}` trims what follows the block).
            let end = span(node).end;
            let rest = &self.source[end..];
            let close = rest
                .find("%}")
                .ok_or_else(|| unexpected("no `%}` after `endset`"))?;
            let trim = rest[..close].trim();
            self.insert(
                end + close + 2,
                &format!(r#"{{% do {ASSIGN}({namespace}, "{attribute}", {CAPTURE}) {trim}%}}"#),
            );
        }
        for field in ["filter", "body"] {
            self.visit(&fields[field])?;
        }
        Ok(())
    }

    /// For a target `name.attr`, the name and the attribute; `None` for a plain name or names.
    /// Other targets that assign attributes (`ns.a.b`, or `ns.a` inside a tuple) are refused:
    /// namespaces cannot hold namespaces, so `ns.a.b` could only fail, and tuples would need
    /// unpacking here.
    fn attribute_target<'n>(&self, target: &'n Node) -> Result<Option<(&'n str, &'n str)>, Error> {
        let kind = |node: &Node| node.get("expr").and_then(Node::as_str).map(str::to_owned);
        let fields = &target["inner"][0];
        if kind(target).as_deref() == Some("GetAttr") {
            let object = &fields["expr"];
            if kind(object).as_deref() == Some("Var") {
                let name = object["inner"][0]["id"].as_str();
                let attribute = fields["name"].as_str();
                if let (Some(name), Some(attribute)) = (name, attribute) {
                    return Ok(Some((name, attribute)));
                }
            }
        }
        if contains_kind(target, "GetAttr") {
            let written = &self.source[self.extent(target)];
            return Err(Error::new(
                ErrorKind::SyntaxError,
                format!(
                    "cannot assign to `{written}`: assign one namespace attribute per `set` \
                     (`{{% set ns.name = value %}}`)"
                ),
            ));
        }
        Ok(None)
    }

    fn insert(&mut self, at: usize, text: &str) {
        self.edits.push(Edit {
            at,
            removed: 0,
            inserted: text.to_owned(),
        });
    }

    /// Replaces a range, keeping the line breaks it held so that line numbers do not move.
    fn replace(&mut self, range: Range<usize>, mut text: String) {
        for _ in self.source[range.clone()].matches('\n') {
            let _ = text.write_char('\n');
        }
        self.edits.push(Edit {
            at: range.start,
            removed: range.len(),
            inserted: text,
        });
    }
}

/// A node's own span (some nodes' spans cover only their last token).
fn span(node: &Node) -> Range<usize> {
    let span = &node["inner"][1];
    let offset = |key: &str| {
        span[key]
            .as_u64()
            .and_then(|offset| usize::try_from(offset).ok())
    };
    match (offset("start_offset"), offset("end_offset")) {
        (Some(start), Some(end)) => start..end,
        _ => 0..0,
    }
}

/// The first and last offsets of a subtree (see [`Rewriter::extent`]), by node.
type Bounds = (Option<usize>, Option<usize>);

impl Rewriter<'_> {
    /// The source range an expression covers: from its first to its last token.
    ///
    /// Spans in minijinja's tree are not that range: a filter's span is the filter's name and
    /// arguments, and a binary operator's span starts at the token before its left operand (the
    /// `,` in `f(a, b == c)`). So the range ends where the last span inside the expression ends,
    /// and starts where the first span of a node that starts with its own token does (a name, a
    /// constant, a unary operator, a list or map literal). Parentheses around the expression are
    /// outside the range; wrapping inside them keeps the same grouping.
    fn extent(&self, node: &Node) -> Range<usize> {
        let (start, end) = self.bounds(node);
        let own = span(node);
        start.unwrap_or(own.start)..end.unwrap_or(own.end)
    }

    /// [`Self::extent`]'s walk, each subtree's bounds computed once: a chain of n operators asks
    /// for the extent of every link, which would otherwise walk the chain n times (5,000 `~`
    /// took minutes to compile).
    fn bounds(&self, node: &Node) -> Bounds {
        fn merge(into: &mut Bounds, (start, end): Bounds) {
            into.0 = match (into.0, start) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            into.1 = match (into.1, end) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        let key = std::ptr::from_ref(node);
        if let Some(known) = self.extents.borrow().get(&key) {
            return *known;
        }
        let mut bounds: Bounds = (None, None);
        match node {
            Node::Array(items) => {
                for item in items {
                    merge(&mut bounds, self.bounds(item));
                }
            }
            Node::Object(map) => {
                if let Some(kind) = map.get("expr").and_then(Node::as_str) {
                    let own = span(node);
                    let starts_with_own_token = match kind {
                        "Var" | "Const" | "List" | "Map" => true,
                        // `a not in b` is `not (a in b)`, a unary operator whose span starts
                        // before `a`: only a real `-`, `+` or `not` starts the expression.
                        "UnaryOp" => self.source.get(own.start..).is_some_and(|text| {
                            text.starts_with(['-', '+']) || text.starts_with("not")
                        }),
                        _ => false,
                    };
                    merge(
                        &mut bounds,
                        (starts_with_own_token.then_some(own.start), Some(own.end)),
                    );
                }
                for value in map.values() {
                    merge(&mut bounds, self.bounds(value));
                }
            }
            Node::Null | Node::Bool(_) | Node::Number(_) | Node::String(_) => return bounds,
        }
        self.extents.borrow_mut().insert(key, bounds);
        bounds
    }
}

/// Whether a subscript is a constant string, or a constant index of zero or more (which
/// minijinja charges for).
fn plain_subscript(subscript: &Node) -> bool {
    let value = &subscript["inner"][0]["value"];
    subscript["expr"] == "Const" && (value.is_string() || value.is_u64())
}

/// Whether a list, tuple or map literal holds anything but constants and literals of constants
/// (whose depth the template's text bounds).
fn holds_variables(fields: &Node) -> bool {
    ["items", "keys", "values"]
        .iter()
        .filter_map(|field| fields[*field].as_array())
        .flatten()
        .any(|item| match item["expr"].as_str() {
            Some("Const") => false,
            Some("List" | "Tuple" | "Map") => holds_variables(&item["inner"][0]),
            _ => true,
        })
}

fn contains_kind(node: &Node, kind: &str) -> bool {
    match node {
        Node::Array(items) => items.iter().any(|item| contains_kind(item, kind)),
        Node::Object(map) => {
            map.get("expr").and_then(Node::as_str) == Some(kind)
                || map.values().any(|value| contains_kind(value, kind))
        }
        Node::Null | Node::Bool(_) | Node::Number(_) | Node::String(_) => false,
    }
}

/// A syntax tree that does not have the shape this rewrite knows: minijinja changed.
fn unexpected(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("the template could not be checked ({what}); please report this"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(source: &str) -> String {
        template(source).unwrap().text
    }

    #[test]
    fn concatenation_becomes_a_filter_call_around_each_operand() {
        assert_eq!(
            rewritten(r#"{{ a ~ "x" }}"#),
            r#"{{ (a) |__hookline_concat( "x") }}"#
        );
        // The whitespace around `~` stays. Left-nested, right-nested and parenthesised operands
        // keep their grouping.
        assert_eq!(
            rewritten("{{ a ~ b ~ c }}"),
            "{{ (a) |__hookline_concat( b) |__hookline_concat( c) }}"
        );
        // However long the chain, it parses (minijinja nests at most 150 parentheses).
        let chain = format!("{{{{ 'a'{} }}}}", " ~ 'a'".repeat(300));
        assert!(machinery::parse(&rewritten(&chain), "t", Default::default()).is_ok());
        assert_eq!(
            rewritten("{{ (a) ~ (b ~ c)|upper }}"),
            "{{ ((a)) |__hookline_concat( ((b) |__hookline_concat( c))|upper) }}"
        );
        assert_eq!(
            rewritten("{{ x|f(1) ~ -y + 1 }}"),
            "{{ (x|f(1)) |__hookline_concat( -y) + 1 }}"
        );
    }

    #[test]
    fn what_is_compared_passes_through_the_comparable_filter() {
        assert_eq!(
            rewritten("{{ a == b ~ c }}{{ 1 < x < 3 }}{{ k in {k: 1} }}"),
            "{{ (a)|__hookline_comparable == ((b) |__hookline_concat( c))|__hookline_comparable }}\
             {{ 1 < (x)|__hookline_comparable < 3 }}\
             {{ ((k)|__hookline_text)|__hookline_comparable in (({(k)|__hookline_comparable: 1})|__hookline_shallow)|__hookline_comparable }}"
        );
        assert_eq!(
            rewritten(
                "{{ xs|sort(attribute='a')|first is eq(y) }}{{ xs|selectattr('a', 'in', ys)|list }}"
            ),
            "{{ ((xs)|__hookline_comparable|sort(attribute='a')|first)|__hookline_comparable is eq((y)|__hookline_comparable) }}\
             {{ (xs)|__hookline_comparable|selectattr('a', 'in', (ys)|__hookline_comparable)|list }}"
        );
        // Filters that do not compare are left alone.
        assert_eq!(rewritten("{{ xs|join(',') }}"), "{{ xs|join(',') }}");
    }

    #[test]
    fn literals_holding_variables_are_checked_but_targets_are_left_alone() {
        assert_eq!(
            rewritten("{% for a, b in [[x, 1]] %}{% set c, d = [a], 2 %}{% endfor %}"),
            "{% for a, b in ([([x, 1])|__hookline_shallow])|__hookline_shallow %}\
             {% set c, d = (([a])|__hookline_shallow, 2)|__hookline_shallow %}{% endfor %}"
        );
        assert_eq!(
            rewritten("{{ [1, 'a', {'b': 2}] }}"),
            "{{ [1, 'a', {'b': 2}] }}"
        );
    }

    #[test]
    fn lists_indexed_from_their_end_or_sliced_are_checked() {
        assert_eq!(
            rewritten("{{ x[-1] }}{{ x[i] }}{{ x[1:] }}{{ x[0] }}{{ x['k'] }}"),
            "{{ ((x)|__hookline_indexable)[-1] }}{{ ((x)|__hookline_indexable)[i] }}\
             {{ ((x)|__hookline_indexable)[1:] }}{{ x[0] }}{{ x['k'] }}"
        );
    }

    #[test]
    fn text_that_only_looks_like_concatenation_is_left_alone() {
        let source = r#"{{ "a ~ b" }} ~ {# x ~ y #}{% raw %}{{ p ~ q }}{% endraw %}"#;
        assert_eq!(rewritten(source), source);
    }

    #[test]
    fn namespace_assignment_becomes_a_call_and_keeps_line_breaks() {
        assert_eq!(
            rewritten("{% set ns.total = ns.total + 1 %}"),
            r#"{% do __hookline_assign(ns, "total", ( ns.total + 1)) %}"#
        );
        // A value in parentheses keeps them.
        assert_eq!(
            rewritten("{% set ns.x = (ns.x + 1) * 2 %}"),
            r#"{% do __hookline_assign(ns, "x", ( (ns.x + 1) * 2)) %}"#
        );
        assert_eq!(
            rewritten("{% set ns.x =\n  a ~ b %}\n{{ ns.x }}"),
            "{% do __hookline_assign(ns, \"x\", (\n  (a) |__hookline_concat( b))) %}\n{{ ns.x }}"
        );
        // Plain names are minijinja's business.
        assert_eq!(rewritten("{% set a, b = 1, 2 %}"), "{% set a, b = 1, 2 %}");
    }

    #[test]
    fn a_captured_namespace_assignment_assigns_after_the_block() {
        assert_eq!(
            rewritten("{% set ns.x | upper %}hi{% endset -%}\n!"),
            "{% set __hookline_capture | upper %}hi{% endset -%}\
             {% do __hookline_assign(ns, \"x\", __hookline_capture) -%}\n!"
        );
    }

    #[test]
    fn attribute_targets_that_cannot_be_checked_are_refused() {
        for source in ["{% set ns.a.b = 1 %}", "{% set a, ns.b = 1, 2 %}"] {
            let error = template(source).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::SyntaxError, "{source}");
            assert!(error.to_string().contains("cannot assign to"), "{error}");
        }
    }

    #[test]
    fn positions_in_the_rewritten_text_map_back_to_the_source() {
        let source = "{{ a ~ b }}";
        let rewritten = template(source).unwrap();
        let text = &rewritten.text;
        // `b`, after two insertions and a replacement.
        let b = text.find('b').unwrap();
        assert_eq!(rewritten.map.original(b..b + 1), 7..8);
        // The filter's name maps to the `~` it replaced.
        let filter = text.find(CONCAT).unwrap();
        assert_eq!(rewritten.map.original(filter..filter + CONCAT.len()), 5..6);
        assert_eq!(rewritten.map.original(0..2), 0..2);
        let end = text.len();
        assert_eq!(rewritten.map.original(end - 2..end), 9..11);
    }

    #[test]
    fn a_template_with_too_many_tokens_is_refused_before_it_is_parsed() {
        let chain = format!("{{{{ 1{} }}}}", " + 1".repeat(MAX_TOKENS));
        let error = template(&chain).unwrap_err();
        assert!(
            error.to_string().contains("more than 20000 tokens"),
            "{error}"
        );
        // Literal text does not count.
        assert!(template(&"x".repeat(100 * MAX_TOKENS)).is_ok());
    }

    #[test]
    fn a_template_that_does_not_parse_is_left_for_minijinja_to_report() {
        let rewritten = template("{{ a ~ }}").unwrap();
        assert_eq!(rewritten.text, "{{ a ~ }}");
    }
}
