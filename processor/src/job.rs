//! Building delivery jobs. The delivery id is a hash of event id, trigger id and action index, so
//! processing the same event again yields the same ids and receivers can deduplicate.

use hookline_schemas::{DeliveryJob, Destination, EventMetadata, ResourceId, SCHEMA_VERSION};

use crate::trigger::RenderedAction;

/// Namespace of delivery ids (UUIDv5).
const DELIVERY_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x3d9e_71a4_0c6b_4b2e_a5f1_98d2_4c0e_7f33);

/// The deterministic id of the delivery for (event, trigger, action).
pub fn delivery_id(event_id: &str, trigger_id: &ResourceId, action: usize) -> String {
    let name = format!("{event_id}/{trigger_id}/{action}");
    format!(
        "msg_{}",
        uuid::Uuid::new_v5(&DELIVERY_ID_NAMESPACE, name.as_bytes()).simple()
    )
}

/// The first attempt's job for one rendered action.
pub fn first_attempt(
    event: &EventMetadata,
    trigger_id: &ResourceId,
    action: usize,
    destination: &Destination,
    rendered: RenderedAction,
) -> DeliveryJob {
    let RenderedAction {
        body,
        mut headers,
        url,
    } = rendered;
    headers
        .entry("content-type".to_owned())
        .or_insert_with(|| "application/json".to_owned());
    DeliveryJob {
        schema_version: SCHEMA_VERSION,
        delivery_id: delivery_id(&event.event_id, trigger_id, action),
        event_id: event.event_id.clone(),
        source_id: event.source.clone(),
        trigger_id: trigger_id.clone(),
        action: u32::try_from(action).unwrap_or(u32::MAX),
        destination_id: destination.id.clone(),
        attempt: 1,
        method: destination.method.clone(),
        url: url.unwrap_or_else(|| destination.url.clone()),
        headers,
        body,
        received_at: event.received_at.clone(),
        not_before: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_deterministic_and_distinct() {
        let trigger = ResourceId::parse("t").unwrap();
        let first = delivery_id("evt-1", &trigger, 0);
        assert_eq!(first, delivery_id("evt-1", &trigger, 0));
        assert_ne!(first, delivery_id("evt-1", &trigger, 1));
        assert_ne!(first, delivery_id("evt-2", &trigger, 0));
        assert!(first.starts_with("msg_") && first.len() == 36, "{first}");
    }
}
