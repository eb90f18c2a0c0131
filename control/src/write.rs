//! One change at a time: check the caller's preconditions against what this process sees,
//! validate the whole resulting set as `hookline apply` does, write to the resources topic, and
//! answer only once this process's own store applied the write, so a client reads its own
//! writes from any route of this instance.
//!
//! Writes are serialised per process. Kafka has no compare-and-set, so two control instances
//! writing the same resource at the same moment can still both pass their `If-Match`; run one
//! instance for writes if that matters.

use std::sync::Arc;
use std::time::Duration;

use hookline_processor::template::Limits;
use hookline_runtime::resources::{ResourceSet, ResourceStore, ResourceWriter, Written};
use hookline_runtime::validate::{self, Problem};
use hookline_schemas::{Resource, ResourceKey};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::precondition::Preconditions;
use crate::view::etag;

/// What a change does to one resource.
#[derive(Debug)]
pub enum Change {
    /// Writes this resource (with the key the change is for).
    Put(Box<Resource>),
    /// Deletes the resource.
    Delete,
}

/// Writes changes and waits until they are visible.
pub struct Writes {
    writer: ResourceWriter,
    store: ResourceStore,
    lock: Mutex<()>,
    timeout: Duration,
    limits: Limits,
}

impl Writes {
    /// Writes through `writer`, reading back through `store`; a change that takes longer than
    /// `timeout` gets 503.
    pub fn new(writer: ResourceWriter, store: ResourceStore, timeout: Duration) -> Self {
        Self {
            writer,
            store,
            lock: Mutex::new(()),
            timeout,
            limits: Limits::default(),
        }
    }

    /// Runs `change` on the current version of `key` (`None` if it does not exist) once the
    /// preconditions hold, and writes what it returns. Returns the snapshot that shows the
    /// write; a change to what already is writes nothing.
    pub async fn change<F>(
        &self,
        key: &ResourceKey,
        preconditions: &Preconditions,
        change: F,
    ) -> Result<Arc<ResourceSet>, ApiError>
    where
        F: FnOnce(Option<Resource>) -> Result<Change, ApiError>,
    {
        let _one_at_a_time = self.lock.lock().await;
        let deadline = Instant::now() + self.timeout;
        let snapshot = self.store.snapshot();
        let current = snapshot.get(key);
        let record = snapshot.record(key).copied();
        let tag = current
            .as_ref()
            .map(|resource| etag(resource, record.as_ref()));
        preconditions.check(tag.as_deref())?;
        let change = change(current.clone())?;
        let unchanged = match &change {
            Change::Put(resource) => current.as_ref() == Some(resource.as_ref()),
            Change::Delete => current.is_none(),
        };
        if unchanged {
            return Ok(snapshot);
        }
        self.validate(&snapshot, key, &change)?;
        let write = async {
            match &change {
                Change::Put(resource) => {
                    // A new resource was created when its record was written; a changed one
                    // carries its creation time along.
                    let created_at = record.and_then(|record| record.created_at);
                    self.writer.put_created(resource, created_at).await
                }
                Change::Delete => self.writer.delete_at(key).await,
            }
        };
        let written = tokio::time::timeout_at(deadline, write)
            .await
            .map_err(|_elapsed| ApiError::Unavailable(None))?
            .map_err(|error| ApiError::Unavailable(Some(error)))?;
        self.visible(written, deadline).await
    }

    /// Waits until this process's store applied `written`.
    async fn visible(
        &self,
        written: Written,
        deadline: Instant,
    ) -> Result<Arc<ResourceSet>, ApiError> {
        match tokio::time::timeout_at(deadline, self.store.wait_applied(written)).await {
            Ok(Ok(set)) => Ok(set),
            Ok(Err(_)) | Err(_) => Err(ApiError::NotVisible),
        }
    }

    /// Checks the set the change would leave, as `hookline apply` does: every resource on its
    /// own, the references between them, and the changed trigger's condition and templates.
    /// Problems that other resources had before are not this change's fault and do not block
    /// it. Broken references alone are a conflict (409); anything else is invalid (422).
    fn validate(
        &self,
        snapshot: &ResourceSet,
        key: &ResourceKey,
        change: &Change,
    ) -> Result<(), ApiError> {
        let before = snapshot.all();
        let mut after: Vec<Resource> = before
            .iter()
            .filter(|resource| resource.key() != *key)
            .cloned()
            .collect();
        if let Change::Put(resource) = change {
            after.push(resource.as_ref().clone());
        }
        let known = validate::resources(&before);
        let changed = key.to_string();
        let mut problems: Vec<Problem> = validate::resources(&after)
            .into_iter()
            .filter(|problem| problem.resource == changed || !known.contains(problem))
            .collect();
        if let Change::Put(resource) = change
            && let Resource::Trigger(trigger) = resource.as_ref()
        {
            problems.extend(hookline_processor::validate::trigger(trigger, &self.limits));
        }
        if problems.is_empty() {
            Ok(())
        } else if problems.iter().all(Problem::is_reference) {
            Err(ApiError::Conflict(problems))
        } else {
            Err(ApiError::Invalid(problems))
        }
    }
}
