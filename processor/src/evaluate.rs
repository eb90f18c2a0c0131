//! One evaluation of an event by one trigger, the only one there is: the pipeline calls it for
//! every trigger of the event's source, and every preview (`hookline preview`, `validate
//! --sample`, the control API's trigger preview) calls it for the trigger previewed. What a
//! preview shows is therefore what the pipeline does, in the same order: the source, the event
//! type, the condition, then per action the destination (missing or disabled: skipped, not
//! rendered) and the templates.
//!
//! It is pure: it produces jobs and says why nothing was produced, and leaves writing to Kafka,
//! metrics and dead letters to the caller.

use std::collections::BTreeSet;

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

/// Why an action is not rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The action names a destination that does not exist.
    DestinationMissing,
    /// The destination is disabled.
    DestinationDisabled,
    /// A replay, and this delivery already succeeded.
    AlreadyDelivered,
}

impl Skip {
    /// As the match record says it.
    pub fn reason(self) -> SkipReason {
        match self {
            Self::DestinationMissing => SkipReason::DestinationMissing,
            Self::DestinationDisabled => SkipReason::DestinationDisabled,
            Self::AlreadyDelivered => SkipReason::AlreadyDelivered,
        }
    }

    /// As the `reason` label of `hookline_processor_skipped_actions_total` says it.
    pub fn label(self) -> &'static str {
        match self {
            Self::DestinationMissing => "destination_missing",
            Self::DestinationDisabled => "destination_disabled",
            Self::AlreadyDelivered => "already_delivered",
        }
    }
}

/// The job an action produces, or why it produces none.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionResult {
    /// The first attempt's job.
    Job(Box<DeliveryJob>),
    /// Not rendered.
    Skipped(Skip),
    /// A template failed on the event.
    Failed(RenderError),
}

/// An event to evaluate: its metadata, its parsed body (`payload`), its [`context::event`] value,
/// the time templates see, and, for a replay, the deliveries that already succeeded.
#[derive(Debug, Clone, Copy)]
pub struct Event<'e> {
    /// Its metadata.
    pub metadata: &'e EventMetadata,
    /// Its parsed body.
    pub payload: &'e Value,
    /// Its [`context::event`] value.
    pub event: &'e Value,
    /// `now` in templates.
    pub now: &'e str,
    /// Delivery ids not to produce again (a replay's `hookline-replay-skip`).
    pub delivered: &'e BTreeSet<String>,
}

/// Evaluates `compiled` on `event`; `destination` finds a destination by id in the rule set the
/// event is evaluated against.
pub fn trigger<'d>(
    compiled: &CompiledTrigger,
    destination: impl Fn(&ResourceId) -> Option<&'d Destination>,
    event: &Event<'_>,
) -> Outcome {
    let Event {
        metadata,
        payload,
        event,
        now,
        delivered,
    } = *event;
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
            None => ActionResult::Skipped(Skip::DestinationMissing),
            Some(destination) if !destination.enabled => {
                ActionResult::Skipped(Skip::DestinationDisabled)
            }
            // A replay does not repeat a success (the id is known before rendering).
            Some(_)
                if delivered.contains(&job::delivery_id(
                    &metadata.event_id,
                    &trigger.id,
                    index,
                )) =>
            {
                ActionResult::Skipped(Skip::AlreadyDelivered)
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
