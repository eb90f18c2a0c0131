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
    /// Jobs waiting for a later attempt, in one topic per fixed delay.
    Retry(RetryTier),
    /// Events and jobs that cannot be processed or delivered, with the reason.
    Dead,
    /// One record per delivery attempt.
    Attempts,
    /// Sources, destinations and triggers; compacted, keyed by `<kind>/<id>`.
    Resources,
    /// Inbound requests ingest refused, sampled, for the sources' logs.
    Rejected,
    /// Since when each failing destination has failed; compacted, keyed by destination id.
    DestinationHealth,
    /// The processor's match result for every event, for the control plane's timeline.
    Matches,
    /// What operators did with dead letters (replayed, discarded); compacted, keyed by the dead
    /// letter's id.
    DeadStates,
    /// Jobs of paused destinations, in arrival order, until their destination resumes; compacted,
    /// keyed by delivery id, and a released job's tombstone removes it.
    Held,
}

impl TopicKind {
    /// Every topic, in the order they are created.
    pub const ALL: [Self; 15] = [
        Self::Resources,
        Self::Events,
        Self::Deliveries,
        Self::Retry(RetryTier::S5),
        Self::Retry(RetryTier::S30),
        Self::Retry(RetryTier::M5),
        Self::Retry(RetryTier::M30),
        Self::Retry(RetryTier::H2),
        Self::Dead,
        Self::Attempts,
        Self::Rejected,
        Self::DestinationHealth,
        Self::Matches,
        Self::DeadStates,
        Self::Held,
    ];

    /// The name without the prefix.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Deliveries => "deliveries",
            Self::Retry(tier) => tier.suffix(),
            Self::Dead => "dead",
            Self::Attempts => "attempts",
            Self::Resources => "resources",
            Self::Rejected => "rejected",
            Self::DestinationHealth => "destination-health",
            Self::Matches => "matches",
            Self::DeadStates => "dead-states",
            Self::Held => "held",
        }
    }

    /// Whether the topic keeps only the latest record per key (`cleanup.policy=compact`).
    pub fn compacted(self) -> bool {
        matches!(
            self,
            Self::Resources | Self::DestinationHealth | Self::DeadStates | Self::Held
        )
    }
}

/// A retry topic's fixed delay. A job waiting `w` goes to the longest tier no longer than `w` and
/// comes back after the tier's delay (again and again until due), or, held by an open circuit, to
/// a tier at least as long with its due time set to the tier's delay; either way every record in
/// one topic falls due in the order it was written and a consumer only ever waits for the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RetryTier {
    /// 5 seconds: also where jobs held back by a limit, or by a circuit about to half-open, wait.
    S5,
    /// 30 seconds.
    S30,
    /// 5 minutes.
    M5,
    /// 30 minutes.
    M30,
    /// 2 hours.
    H2,
}

impl RetryTier {
    /// Every tier, shortest first.
    pub const ALL: [Self; 5] = [Self::S5, Self::S30, Self::M5, Self::M30, Self::H2];

    /// The tier's delay in seconds.
    pub fn delay_seconds(self) -> u64 {
        match self {
            Self::S5 => 5,
            Self::S30 => 30,
            Self::M5 => 300,
            Self::M30 => 1_800,
            Self::H2 => 7_200,
        }
    }

    /// The tier's label in metrics and its name's last part (`5s`, `30s`, `5m`, `30m`, `2h`).
    pub fn label(self) -> &'static str {
        match self {
            Self::S5 => "5s",
            Self::S30 => "30s",
            Self::M5 => "5m",
            Self::M30 => "30m",
            Self::H2 => "2h",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::S5 => "retry.5s",
            Self::S30 => "retry.30s",
            Self::M5 => "retry.5m",
            Self::M30 => "retry.30m",
            Self::H2 => "retry.2h",
        }
    }

    /// The tier for a wait of `seconds`: the longest one no longer than it, the shortest for
    /// shorter waits.
    pub fn for_wait(seconds: f64) -> Self {
        Self::ALL
            .into_iter()
            .rev()
            .find(|tier| tier.delay_seconds() as f64 <= seconds)
            .unwrap_or(Self::S5)
    }

    /// The shortest tier at least `seconds` long, the longest for longer waits: a job that goes
    /// there comes back once, after its wait, instead of passing through a shorter tier again and
    /// again.
    pub fn at_least(seconds: f64) -> Self {
        Self::ALL
            .into_iter()
            .find(|tier| tier.delay_seconds() as f64 >= seconds)
            .unwrap_or(Self::H2)
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

    /// `<prefix>retry.<tier>`.
    pub fn retry(&self, tier: RetryTier) -> String {
        self.name(TopicKind::Retry(tier))
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

    /// `<prefix>destination-health`.
    pub fn destination_health(&self) -> String {
        self.name(TopicKind::DestinationHealth)
    }

    /// `<prefix>dead-states`.
    pub fn dead_states(&self) -> String {
        self.name(TopicKind::DeadStates)
    }

    /// `<prefix>held`.
    pub fn held(&self) -> String {
        self.name(TopicKind::Held)
    }

    /// `<prefix>matches`.
    pub fn matches(&self) -> String {
        self.name(TopicKind::Matches)
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
    fn at_least_rounds_a_wait_up_to_a_tier() {
        assert_eq!(RetryTier::at_least(0.0), RetryTier::S5);
        assert_eq!(RetryTier::at_least(1.0), RetryTier::S5);
        assert_eq!(RetryTier::at_least(5.0), RetryTier::S5);
        assert_eq!(RetryTier::at_least(5.5), RetryTier::S30);
        assert_eq!(RetryTier::at_least(29.0), RetryTier::S30);
        assert_eq!(RetryTier::at_least(31.0), RetryTier::M5);
        assert_eq!(RetryTier::at_least(7_200.0), RetryTier::H2);
        assert_eq!(RetryTier::at_least(86_400.0), RetryTier::H2);
    }

    #[test]
    fn a_wait_goes_to_the_longest_tier_not_longer_than_it() {
        assert_eq!(RetryTier::for_wait(0.5), RetryTier::S5);
        assert_eq!(RetryTier::for_wait(5.0), RetryTier::S5);
        assert_eq!(RetryTier::for_wait(299.0), RetryTier::S30);
        assert_eq!(RetryTier::for_wait(300.0), RetryTier::M5);
        assert_eq!(RetryTier::for_wait(86_400.0), RetryTier::H2);
        assert_eq!(
            Topics::default().retry(RetryTier::M30),
            "hookline.retry.30m"
        );
        // Callers index tables built from `ALL` by `tier as usize`.
        for (index, tier) in RetryTier::ALL.into_iter().enumerate() {
            assert_eq!(tier as usize, index, "{tier:?}");
        }
    }

    #[test]
    fn only_the_state_topics_are_compacted() {
        let compacted: Vec<_> = TopicKind::ALL
            .into_iter()
            .filter(|k| k.compacted())
            .collect();
        assert_eq!(
            compacted,
            [
                TopicKind::Resources,
                TopicKind::DestinationHealth,
                TopicKind::DeadStates,
                TopicKind::Held
            ]
        );
    }
}
