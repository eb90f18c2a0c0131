//! Topic names. Every name carries a configurable prefix (default `hookline.`) so several
//! installations can share one cluster.

/// The prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "hookline.";

/// The topics of the pipeline, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// Raw inbound events, written by ingest or by any Kafka client.
    Events,
    /// Rendered delivery jobs, written by the processor (and by control for replays and tests).
    Deliveries,
    /// Jobs waiting for a later attempt.
    Retry,
    /// Events and jobs that cannot be processed or delivered, with the reason.
    Dead,
    /// One record per delivery attempt.
    Attempts,
    /// Sources, destinations and triggers; compacted, keyed by `<kind>/<id>`.
    Resources,
    /// Inbound requests ingest refused, sampled, for the sources' logs.
    Rejected,
}

impl TopicKind {
    /// Every topic, in the order they are created.
    pub const ALL: [Self; 7] = [
        Self::Resources,
        Self::Events,
        Self::Deliveries,
        Self::Retry,
        Self::Dead,
        Self::Attempts,
        Self::Rejected,
    ];

    /// The name without the prefix.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Deliveries => "deliveries",
            Self::Retry => "retry",
            Self::Dead => "dead",
            Self::Attempts => "attempts",
            Self::Resources => "resources",
            Self::Rejected => "rejected",
        }
    }

    /// Whether the topic keeps only the latest record per key (`cleanup.policy=compact`).
    pub fn compacted(self) -> bool {
        matches!(self, Self::Resources)
    }
}

/// The topic names of one installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Topics {
    /// Topic names with the given prefix (`hookline.` gives `hookline.events`, ...).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix in use.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full name of a topic.
    pub fn name(&self, kind: TopicKind) -> String {
        format!("{}{}", self.prefix, kind.suffix())
    }

    /// `<prefix>events`.
    pub fn events(&self) -> String {
        self.name(TopicKind::Events)
    }

    /// `<prefix>deliveries`.
    pub fn deliveries(&self) -> String {
        self.name(TopicKind::Deliveries)
    }

    /// `<prefix>retry`.
    pub fn retry(&self) -> String {
        self.name(TopicKind::Retry)
    }

    /// `<prefix>dead`.
    pub fn dead(&self) -> String {
        self.name(TopicKind::Dead)
    }

    /// `<prefix>attempts`.
    pub fn attempts(&self) -> String {
        self.name(TopicKind::Attempts)
    }

    /// `<prefix>rejected`.
    pub fn rejected(&self) -> String {
        self.name(TopicKind::Rejected)
    }

    /// `<prefix>resources`.
    pub fn resources(&self) -> String {
        self.name(TopicKind::Resources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix() {
        let topics = Topics::new("t1.");
        assert_eq!(topics.events(), "t1.events");
        assert_eq!(topics.resources(), "t1.resources");
        assert_eq!(Topics::default().dead(), "hookline.dead");
    }

    #[test]
    fn only_resources_are_compacted() {
        let compacted: Vec<_> = TopicKind::ALL
            .into_iter()
            .filter(|k| k.compacted())
            .collect();
        assert_eq!(compacted, [TopicKind::Resources]);
    }
}
