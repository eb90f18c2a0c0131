//! What `hookline apply` (from a file, or through `POST /api/v1/apply`) changes: which resources
//! are created, changed, deleted or kept, and, for a changed one, each field, secrets masked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use hookline_runtime::resources::ResourceSet;
use hookline_schemas::{Resource, ResourceKey};

/// The id of the canary's resources (`hookline --canary`): Hookline's own, rewritten at each
/// start, never pruned.
pub const CANARY_ID: &str = "hookline-canary";

/// What `apply` does.
#[derive(Debug, Default)]
pub struct Plan {
    /// New resources.
    pub create: Vec<Resource>,
    /// Changed resources.
    pub update: Vec<Resource>,
    /// Resources to delete (absent from the file, with `--prune`).
    pub delete: Vec<ResourceKey>,
    /// Resources in the file that are already as written.
    pub unchanged: Vec<ResourceKey>,
    /// Resources absent from the file that stay (no `--prune`).
    pub kept: Vec<Resource>,
    /// For each changed resource, in [`Self::update`]'s order, a line per field that changes
    /// (see [`field_changes`]).
    pub changes: Vec<Vec<String>>,
}

impl Plan {
    /// Compares what exists with what the file wants; with `prune`, what the file does not name
    /// is deleted, except Hookline's own resources ([`CANARY_ID`]).
    pub fn new(current: &ResourceSet, wanted: &[Resource], prune: bool) -> Self {
        let mut plan = Self::default();
        let mut in_file = BTreeSet::new();
        for resource in wanted {
            let key = resource.key();
            match current.get(&key) {
                None => plan.create.push(resource.clone()),
                Some(existing) if existing == *resource => plan.unchanged.push(key.clone()),
                Some(existing) => {
                    plan.changes.push(field_changes(&existing, resource));
                    plan.update.push(resource.clone());
                }
            }
            in_file.insert(key);
        }
        for existing in current.all() {
            let key = existing.key();
            if in_file.contains(&key) {
                continue;
            }
            // The canary's resources are Hookline's own, rewritten at each start: never pruned.
            if prune && key.id.as_str() != CANARY_ID {
                plan.delete.push(key);
            } else {
                plan.kept.push(existing);
            }
        }
        plan
    }

    /// Whether nothing would be written.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }

    /// A line per change, for people.
    pub fn summary(&self) -> String {
        self.view(false).summary()
    }

    /// The plan by resource key, as `POST /api/v1/apply` answers it.
    pub fn view(&self, dry_run: bool) -> PlanView {
        let keys = |resources: &[Resource]| resources.iter().map(|r| r.key().to_string()).collect();
        PlanView {
            dry_run,
            created: keys(&self.create),
            changed: self
                .update
                .iter()
                .zip(&self.changes)
                .map(|(resource, fields)| Changed {
                    resource: resource.key().to_string(),
                    fields: fields.clone(),
                })
                .collect(),
            deleted: self.delete.iter().map(ToString::to_string).collect(),
            unchanged: self.unchanged.iter().map(ToString::to_string).collect(),
            kept: keys(&self.kept),
        }
    }
}

/// A plan by resource key (`destination/crm`): what the API answers and the CLI prints.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanView {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// New resources.
    pub created: Vec<String>,
    /// Changed resources, each with a line per changed field.
    pub changed: Vec<Changed>,
    /// Deleted resources.
    pub deleted: Vec<String>,
    /// Resources already as written.
    pub unchanged: Vec<String>,
    /// Resources absent from the file that stay.
    pub kept: Vec<String>,
}

/// A changed resource in a [`PlanView`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changed {
    /// Its key.
    pub resource: String,
    /// A line per changed field (see [`field_changes`]).
    pub fields: Vec<String>,
}

impl PlanView {
    /// A line per change, for people.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        for key in &self.created {
            let _ = writeln!(text, "created   {key}");
        }
        for changed in &self.changed {
            let _ = writeln!(text, "changed   {}", changed.resource);
            for field in &changed.fields {
                let _ = writeln!(text, "            {field}");
            }
        }
        for key in &self.deleted {
            let _ = writeln!(text, "deleted   {key}");
        }
        for key in &self.unchanged {
            let _ = writeln!(text, "unchanged {key}");
        }
        for key in &self.kept {
            let _ = writeln!(
                text,
                "kept      {key} (not in the file; --prune deletes it)"
            );
        }
        let _ = write!(
            text,
            "{} created, {} changed, {} deleted, {} unchanged",
            self.created.len(),
            self.changed.len(),
            self.deleted.len(),
            self.unchanged.len()
        );
        text
    }
}

/// What changes from `old` to `new`, a line per field (`url: "a" → "b"`, `headers.x: (absent)
/// → "1"`, `actions[0].body: …`), with secrets masked as the API shows them: a secret that
/// changes reads `(secret changed)`.
pub fn field_changes(old: &Resource, new: &Resource) -> Vec<String> {
    let flat = |resource: &Resource| {
        let mut fields = BTreeMap::new();
        flatten("", &crate::view::fields(resource), &mut fields);
        fields
    };
    let (old_fields, new_fields) = (flat(old), flat(new));
    let (old_shown, new_shown) = (
        flat(&crate::mask::masked(old.clone())),
        flat(&crate::mask::masked(new.clone())),
    );
    let paths: BTreeSet<&String> = old_fields.keys().chain(new_fields.keys()).collect();
    paths
        .into_iter()
        .filter(|path| old_fields.get(*path) != new_fields.get(*path))
        .map(|path| {
            let shown = |fields: &BTreeMap<String, serde_json::Value>| {
                fields
                    .get(path)
                    .map_or_else(|| "(absent)".to_owned(), serde_json::Value::to_string)
            };
            let (before, after) = (shown(&old_shown), shown(&new_shown));
            if before == after {
                format!("{path}: (secret changed)")
            } else {
                format!("{path}: {before} → {after}")
            }
        })
        .collect()
}

/// Every leaf of `value` by its path (`a.b`, `a[0]`); an empty object or list has none, as if
/// absent (which is what it means in a resource).
fn flatten(path: &str, value: &serde_json::Value, into: &mut BTreeMap<String, serde_json::Value>) {
    use serde_json::Value;
    match value {
        Value::Object(object) => {
            for (key, value) in object {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(&path, value, into);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                flatten(&format!("{path}[{index}]"), item, into);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            into.insert(path.to_owned(), value.clone());
        }
    }
}
