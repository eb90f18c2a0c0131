//! Reading a small compacted state topic (the dispatcher's destination health) into memory at
//! start: the latest value of every key, up to the end the topic had when reading began.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message;
use tokio_util::sync::CancellationToken;

use crate::{Error, KafkaSettings};

/// How long to wait for a record before checking the position again.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// The latest value of every key of `topic` (keys whose latest record is a tombstone are absent),
/// read from its beginning to the end it had at the start; `None` if `shutdown` came first.
pub async fn read_to_end(
    settings: &KafkaSettings,
    topic: &str,
    shutdown: &CancellationToken,
) -> Result<Option<HashMap<String, Vec<u8>>>, Error> {
    let (consumer, high_watermarks) =
        crate::resources::store::open(settings.clone(), topic.to_owned()).await?;
    let mut latest = HashMap::new();
    loop {
        if crate::resources::store::caught_up(&consumer, topic, &high_watermarks) {
            return Ok(Some(latest));
        }
        let received = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            received = tokio::time::timeout(IDLE_CHECK, consumer.recv()) => received,
        };
        if let Ok(Ok(message)) = received {
            let Some(key) = message
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned())
            else {
                continue;
            };
            match message.payload() {
                Some(value) => latest.insert(key, value.to_vec()),
                None => latest.remove(&key),
            };
        }
    }
}
