//! One evaluation of an event by one trigger, the only one there is: the pipeline calls it for
//! every trigger of the event's source, and every preview (`hookline preview`, `validate
//! --sample`, the control API's trigger preview) calls it for the trigger previewed. What a
//! preview shows is therefore what the pipeline does, in the same order: the source, the event
//! type, the condition, then per action the destination (missing or disabled: skipped, not
//! rendered) and the templates.
//!
//! It is pure: it produces jobs and says why nothing was produced, and leaves writing to Kafka,
//! metrics and dead letters to the caller.

use hookline_schemas::{DeliveryJob, Destination, EventMetadata, ResourceId, SkipReason};
use minijinja::Value;

use crate::trigger::{CompiledTrigger, Match, RenderError};
use crate::{context, job};

/// What a trigger does with an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The trigger does not look at the event's source.
    OtherSource,
    /// The event's type (as `when.event_type` reads it) is not one the trigger fires on.
    OtherEventType(String),
    /// The `if` condition is false.
    ConditionFalse,
    /// `when.event_type` or `if` failed on the event.
    Failed(RenderError),
    /// The trigger fires: what each action does, in order.
    Fired(Vec<ActionOutcome>),
}

/// What one action of a firing trigger does.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionOutcome {
    /// The action's index.
    pub index: usize,
    /// The destination it names.
    pub destination_id: ResourceId,
    /// The job, or why there is none.
    pub result: ActionResult,
}

/// The job an action produces, or why it produces none.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionResult {
    /// The first attempt's job.
    Job(Box<DeliveryJob>),
    /// Not rendered: the destination is missing or disabled.
    Skipped(SkipReason),
    /// A template failed on the event.
    Failed(RenderError),
}

/// Evaluates `compiled` on an event: `payload` is its parsed body, `event` its
/// [`context::event`] value, `now` the time templates see; `destination` finds a destination by
/// id in the rule set the event is evaluated against.
pub fn trigger<'d>(
    compiled: &CompiledTrigger,
    destination: impl Fn(&ResourceId) -> Option<&'d Destination>,
    payload: &Value,
    event: &Value,
    metadata: &EventMetadata,
    now: &str,
) -> Outcome {
    let trigger = compiled.trigger();
    if !trigger.when.sources.contains(&metadata.source) {
        return Outcome::OtherSource;
    }
    let variables = context::for_trigger(payload, event, trigger, now);
    match compiled.matches(&variables) {
        Ok(Match::Fired) => {}
        Ok(Match::OtherEventType(kind)) => return Outcome::OtherEventType(kind),
        Ok(Match::ConditionFalse) => return Outcome::ConditionFalse,
        Err(error) => return Outcome::Failed(error),
    }
    let actions = trigger.actions.iter().enumerate().map(|(index, action)| {
        let result = match destination(&action.destination) {
            None => ActionResult::Skipped(SkipReason::DestinationMissing),
            Some(destination) if !destination.enabled => {
                ActionResult::Skipped(SkipReason::DestinationDisabled)
            }
            Some(destination) => match compiled.render(index, &variables) {
                Ok(rendered) => ActionResult::Job(Box::new(job::first_attempt(
                    metadata,
                    &trigger.id,
                    index,
                    destination,
                    rendered,
                ))),
                Err(error) => ActionResult::Failed(error),
            },
        };
        ActionOutcome {
            index,
            destination_id: action.destination.clone(),
            result,
        }
    });
    Outcome::Fired(actions.collect())
}
