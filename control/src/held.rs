//! How many jobs each paused destination has on hold, and since when: control follows the
//! compacted `hookline.held` topic (a job per delivery id, a tombstone once the dispatcher
//! released it) from its beginning, as every instance does, and counts what is still there.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use hookline_runtime::{Error, KafkaSettings, compacted};
use hookline_schemas::ResourceId;
use rdkafka::Message;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The jobs on hold of one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldJobs {
    /// How many.
    pub jobs: u64,
    /// When the oldest was put on hold, in milliseconds since the epoch.
    pub oldest_ms: i64,
}

#[derive(Default)]
struct Book {
    /// Where each held delivery is: its destination and offset.
    jobs: HashMap<String, (ResourceId, (i32, i64))>,
    /// Held jobs by destination, in held order, with when each was held.
    by_destination: HashMap<ResourceId, BTreeMap<(i32, i64), i64>>,
}

impl Book {
    fn hold(&mut self, delivery_id: String, destination: ResourceId, at: (i32, i64), held_ms: i64) {
        self.release(&delivery_id);
        self.by_destination
            .entry(destination.clone())
            .or_default()
            .insert(at, held_ms);
        self.jobs.insert(delivery_id, (destination, at));
    }

    fn release(&mut self, delivery_id: &str) {
        let Some((destination, at)) = self.jobs.remove(delivery_id) else {
            return;
        };
        if let Some(held) = self.by_destination.get_mut(&destination) {
            held.remove(&at);
            if held.is_empty() {
                self.by_destination.remove(&destination);
            }
        }
    }

    fn of(&self, destination: &ResourceId) -> Option<HeldJobs> {
        let held = self.by_destination.get(destination)?;
        Some(HeldJobs {
            jobs: held.len() as u64,
            oldest_ms: held.values().copied().min()?,
        })
    }
}

/// The jobs on hold, by destination.
pub struct Held {
    book: RwLock<Book>,
    ready: watch::Sender<bool>,
}

impl Held {
    /// Nothing is known until [`Self::run`] reads the topic.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            book: RwLock::default(),
            ready: watch::Sender::new(false),
        })
    }

    /// Resolves once every job the topic held when control started has been read (true), or
    /// when the reader stopped before (false).
    pub fn when_ready(&self) -> impl Future<Output = bool> + Send + 'static + use<> {
        let mut ready = self.ready.subscribe();
        async move { ready.wait_for(|ready| *ready).await.is_ok() }
    }

    /// The jobs `destination` has on hold; `None` when it has none.
    pub fn of(&self, destination: &ResourceId) -> Option<HeldJobs> {
        self.book
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .of(destination)
    }

    /// Whether delivery `id` waits on hold.
    pub fn holds(&self, delivery_id: &str) -> bool {
        self.book
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .jobs
            .contains_key(delivery_id)
    }

    /// Reads the held topic from its beginning, then follows it, until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        settings: KafkaSettings,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let topic = settings.topics().held();
        compacted::follow(
            &settings,
            &topic,
            "control-held",
            &self.ready,
            &shutdown,
            |message| {
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                let mut book = self.book.write().unwrap_or_else(PoisonError::into_inner);
                match message.payload().map(serde_json::from_slice::<HeldJob>) {
                    None => book.release(&key),
                    Some(Ok(job)) => {
                        let held_ms = message.timestamp().to_millis().unwrap_or_default();
                        let at = (message.partition(), message.offset());
                        book.hold(key, job.destination_id, at, held_ms);
                    }
                    Some(Err(error)) => {
                        warn!(%error, offset = message.offset(), "Unreadable held job skipped.")
                    }
                }
            },
        )
        .await
    }
}

/// The part of a held job control counts: not its body.
#[derive(serde::Deserialize)]
struct HeldJob {
    destination_id: ResourceId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tombstone_releases_a_job_and_the_oldest_is_the_first_still_held() {
        let a = ResourceId::parse("a").unwrap();
        let mut book = Book::default();
        book.hold("d1".into(), a.clone(), (0, 1), 100);
        book.hold("d2".into(), a.clone(), (0, 2), 200);
        assert_eq!(
            book.of(&a),
            Some(HeldJobs {
                jobs: 2,
                oldest_ms: 100
            })
        );
        book.release("d1");
        assert_eq!(
            book.of(&a),
            Some(HeldJobs {
                jobs: 1,
                oldest_ms: 200
            })
        );
        // The same delivery held again counts once.
        book.hold("d2".into(), a.clone(), (0, 5), 500);
        assert_eq!(book.of(&a).unwrap().jobs, 1);
        book.release("d2");
        assert_eq!(book.of(&a), None);
        assert!(book.jobs.is_empty() && book.by_destination.is_empty());
    }
}
