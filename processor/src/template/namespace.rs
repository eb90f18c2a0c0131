//! Hookline's `namespace()`: the one mutable object a template has, made unable to contain itself
//! or to nest values deeper than anything can print or free.
//!
//! minijinja's own namespace takes any value. `{% set ns.a = [ns.a] %}` in a loop nested lists
//! twenty thousand deep, and freeing them (or comparing or printing them) overflowed the stack;
//! `{% set ns.self = ns %}` made a namespace that no comparison or concatenation could finish.
//! This one refuses, when a value is assigned (or passed to `namespace()`), a value that holds a
//! namespace or is nested deeper than [`MAX_TEXT_DEPTH`]: a namespace cannot hold itself, even
//! through a list, and chains of namespaces cannot grow one level per loop. (List and map
//! literals are checked for depth where they are built, see `rewrite`; `loop.changed()`, which
//! keeps its argument, refuses loops, macros and namespaces.)
//!
//! Assignments reach [`assign`] through the rewrite of `{% set ns.attr = ... %}`
//! ([`super::rewrite`]); minijinja's `set` instruction only accepts its own namespace type.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::value::{Enumerator, Object, ValueOrKwargs};
use minijinja::{Error, ErrorKind, State, Value};

use super::bounds::{MAX_TEXT_DEPTH, visit_items};

/// A namespace: a map whose attributes templates may set.
#[derive(Debug, Default)]
pub(super) struct Namespace {
    data: Mutex<BTreeMap<Arc<str>, Value>>,
}

impl Namespace {
    fn data(&self) -> std::sync::MutexGuard<'_, BTreeMap<Arc<str>, Value>> {
        // A poisoned lock only means a panic elsewhere while it was held; the map is whole.
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Object for Namespace {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.data().get(key.as_str()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.data().keys().cloned().map(Value::from).collect())
    }
}

/// `namespace()`, `namespace(a=1)`, `namespace({"a": 1})`: minijinja's arguments, Hookline's
/// namespace.
pub(super) fn create(state: &State, defaults: Option<ValueOrKwargs>) -> Result<Value, Error> {
    // minijinja's function reads the arguments; its namespace is only a container here.
    let parsed = minijinja::functions::namespace(defaults)?;
    let namespace = Namespace::default();
    if let Some(pairs) = parsed
        .as_object()
        .and_then(|object| object.try_iter_pairs())
    {
        for (key, value) in pairs {
            check_assignable(state, &value)?;
            if let Some(key) = key.as_str() {
                namespace.data().insert(key.into(), value);
            }
        }
    }
    Ok(Value::from_object(namespace))
}

/// `{% set ns.attr = value %}`, once rewritten.
pub(super) fn assign(
    state: &State,
    namespace: &Value,
    attribute: &str,
    value: Value,
) -> Result<(), Error> {
    let Some(namespace) = namespace.downcast_object_ref::<Namespace>() else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("can only assign to namespaces, not {}", namespace.kind()),
        ));
    };
    check_assignable(state, &value)?;
    namespace.data().insert(attribute.into(), value);
    Ok(())
}

/// Refuses a value that holds a namespace or is nested deeper than [`MAX_TEXT_DEPTH`]. Visiting
/// the value costs fuel, so a small list that holds the same list many times over runs out of
/// fuel instead of being walked for ever.
fn check_assignable(state: &State, value: &Value) -> Result<(), Error> {
    visit_items(state, value, &mut |item, depth| {
        if item.downcast_object_ref::<Namespace>().is_some() {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "a namespace cannot hold a namespace, directly or inside a list or map",
            ));
        }
        if depth > MAX_TEXT_DEPTH {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("cannot assign a value nested more than {MAX_TEXT_DEPTH} levels deep"),
            ));
        }
        Ok(())
    })
}
