//! The match record on `hookline.matches`: one per event the processor read, saying which
//! triggers fired and which deliveries they produced, or why none did. It is what answers "my
//! event arrived, why did nothing go out?" in the control plane's event timeline.
//!
//! It stays small on purpose (ids and short reasons, never bodies), because the processor writes
//! one for every event.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::ResourceId;

/// The overall result for one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchOutcome {
    /// At least one delivery job was produced.
    Delivered,
    /// No enabled trigger looks at the event's source.
    NoTrigger,
    /// Triggers look at the source, but none fired (other event type, condition false), or
    /// those that fired produced no job (destination missing or disabled).
    NoMatch,
    /// Nothing was produced and at least one trigger (or the event itself) was dead-lettered.
    Dead,
}

/// What became of one trigger that looks at the event's source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerResult {
    /// `when` and `if` held; see the trigger's deliveries and skipped actions.
    Fired,
    /// The event's type is not one the trigger looks at.
    OtherEventType,
    /// The `if` condition was false.
    ConditionFalse,
    /// The condition failed to evaluate; the event was dead-lettered for this trigger.
    Error,
}

/// Why an action of a fired trigger produced no job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The action names a destination that does not exist.
    DestinationMissing,
    /// The destination is disabled.
    DestinationDisabled,
    /// A template failed; the event was dead-lettered for this action.
    RenderFailed,
    /// The rendered job is larger than a record may be; dead-lettered.
    TooLarge,
    /// A replay of the event, and this delivery had already succeeded: not sent again.
    AlreadyDelivered,
}

/// A job produced for one action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProducedDelivery {
    /// The delivery id (`webhook-id`).
    pub delivery_id: String,
    /// Index of the action within the trigger.
    pub action: u32,
    /// The destination it goes to.
    pub destination_id: ResourceId,
}

/// An action that produced no job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SkippedAction {
    /// Index of the action within the trigger.
    pub action: u32,
    /// The destination it names.
    pub destination_id: ResourceId,
    /// Why no job was produced.
    pub reason: SkipReason,
}

/// One trigger's part in the match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerMatch {
    /// The trigger.
    pub trigger_id: ResourceId,
    /// Whether it fired, and if not, why.
    pub result: TriggerResult,
    /// The jobs it produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<ProducedDelivery>,
    /// Its actions that produced no job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedAction>,
    /// The error, when the condition or a template failed (cut short).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A record on `hookline.matches`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchRecord {
    /// Version of this contract ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The event.
    pub event_id: String,
    /// Its source.
    pub source: ResourceId,
    /// When the processor matched it (RFC 3339).
    pub matched_at: String,
    /// The overall result.
    pub outcome: MatchOutcome,
    /// Every enabled trigger that looks at the source, in the order they were evaluated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerMatch>,
    /// Why the whole event was dead-lettered (for example invalid JSON), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl MatchRecord {
    /// The overall outcome implied by the triggers' results and the event's own error.
    pub fn outcome_of(triggers: &[TriggerMatch], event_error: bool) -> MatchOutcome {
        let produced = triggers.iter().any(|t| !t.deliveries.is_empty());
        let dead = event_error
            || triggers.iter().any(|t| {
                t.result == TriggerResult::Error
                    || t.skipped.iter().any(|s| {
                        matches!(s.reason, SkipReason::RenderFailed | SkipReason::TooLarge)
                    })
            });
        if produced {
            MatchOutcome::Delivered
        } else if dead {
            MatchOutcome::Dead
        } else if triggers.is_empty() {
            MatchOutcome::NoTrigger
        } else {
            MatchOutcome::NoMatch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(result: TriggerResult) -> TriggerMatch {
        TriggerMatch {
            trigger_id: ResourceId::parse("t").unwrap(),
            result,
            deliveries: Vec::new(),
            skipped: Vec::new(),
            error: None,
        }
    }

    #[test]
    fn the_outcome_says_why_nothing_went_out() {
        assert_eq!(MatchRecord::outcome_of(&[], false), MatchOutcome::NoTrigger);
        assert_eq!(MatchRecord::outcome_of(&[], true), MatchOutcome::Dead);
        let unmatched = [trigger(TriggerResult::ConditionFalse)];
        assert_eq!(
            MatchRecord::outcome_of(&unmatched, false),
            MatchOutcome::NoMatch
        );
        let failed = [
            trigger(TriggerResult::ConditionFalse),
            trigger(TriggerResult::Error),
        ];
        assert_eq!(MatchRecord::outcome_of(&failed, false), MatchOutcome::Dead);
        let mut fired = trigger(TriggerResult::Fired);
        fired.deliveries.push(ProducedDelivery {
            delivery_id: "msg_1".into(),
            action: 0,
            destination_id: ResourceId::parse("d").unwrap(),
        });
        assert_eq!(
            MatchRecord::outcome_of(&[fired, trigger(TriggerResult::Error)], false),
            MatchOutcome::Delivered
        );
    }
}
