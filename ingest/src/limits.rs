//! Rate limits per source and per organisation ([`hookline_runtime::rate::Limiter`]): at most
//! the limit admitted in any 60 seconds. A refused request never reaches Kafka.
//!
//! Limits are per ingest instance: with N instances behind a load balancer, a source may send up
//! to N times its limit in all. Divide the limits by the number of instances when scaling out,
//! or route each source to one instance (README, "Rate limits").
//!
//! A source or organisation keeps its limiter while anything it sent still counts; a limiter
//! with nothing left in its window is the same as a new one, so the maps drop such limiters
//! (at most once a minute, when a new key arrives) and hold only the keys heard from lately.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use clap::Args;
use hookline_runtime::rate::{Limiter, WINDOW};
use hookline_schemas::{RateLimit, ResourceId, Source};

/// Default limits, for sources and organisations that set none.
#[derive(Clone, Debug, Args)]
pub struct LimitSettings {
    /// Most requests of a source accepted in any 60 s (by this instance), unless the source sets
    /// its own.
    #[arg(
        long = "source-rate-limit-per-minute",
        env = "HOOKLINE_SOURCE_RATE_LIMIT_PER_MINUTE",
        default_value_t = 100
    )]
    pub source_per_minute: u32,

    /// Most requests of all sources of one organisation together accepted in any 60 s (by this
    /// instance).
    #[arg(
        long = "org-rate-limit-per-minute",
        env = "HOOKLINE_ORG_RATE_LIMIT_PER_MINUTE",
        default_value_t = 1000
    )]
    pub org_per_minute: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            source_per_minute: 100,
            org_per_minute: 1000,
        }
    }
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The source's own limit.
    Source,
    /// The organisation's shared limit.
    Org,
}

impl Scope {
    /// The scope's name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Org => "org",
        }
    }
}

/// Reads the time; a hand-moved clock in tests.
pub type Now = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The limiters of one kind of key, and when idle ones were last dropped.
struct Limiters<K> {
    /// Read for a known key, written for a new one or a sweep.
    table: RwLock<Table<K>>,
}

/// The limiters of one kind of key: each with the limit it was made for.
struct Table<K> {
    /// The limiters, by key.
    entries: HashMap<K, (RateLimit, Mutex<Limiter>)>,
    /// When idle limiters were last dropped.
    swept_at: Instant,
}

impl<K> Limiters<K>
where
    K: std::hash::Hash + Eq + Clone,
{
    /// No limiters yet; the first sweep is due a minute after `now`.
    fn new(now: Instant) -> Self {
        Self {
            table: RwLock::new(Table {
                entries: HashMap::new(),
                swept_at: now,
            }),
        }
    }

    /// Takes one request from `key`'s budget under `limit`, or says how long until one passes.
    fn take(&self, key: &K, limit: &RateLimit, now: Instant) -> Result<(), Duration> {
        {
            // The check runs under the read lock, so a sweep (under the write lock) never drops
            // a limiter between the lookup and the check.
            let table = self
                .table
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some((current, limiter)) = table.entries.get(key)
                && current == limit
            {
                return lock(limiter).check(now);
            }
        }
        let mut table = self
            .table
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if now.saturating_duration_since(table.swept_at) >= WINDOW {
            table
                .entries
                .retain(|_, (_, limiter)| !lock(limiter).is_idle(now));
            table.swept_at = now;
        }
        // Another request may have made it meanwhile; a changed limit starts a fresh budget.
        let (current, limiter) = table
            .entries
            .entry(key.clone())
            .or_insert_with(|| (limit.clone(), Mutex::new(Limiter::new(limit, now))));
        if current != limit {
            *current = limit.clone();
            *limiter = Mutex::new(Limiter::new(limit, now));
        }
        lock(limiter).check(now)
    }

    /// How many keys have a limiter.
    fn len(&self) -> usize {
        self.table
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entries
            .len()
    }
}

/// Locks a limiter, ignoring poisoning as the maps' locks do: a limiter a panic left mid-update
/// is off by at most one request.
fn lock(limiter: &Mutex<Limiter>) -> MutexGuard<'_, Limiter> {
    limiter
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The limiters of every source and organisation heard from lately.
pub struct RateLimits {
    settings: LimitSettings,
    sources: Limiters<ResourceId>,
    orgs: Limiters<String>,
    now: Now,
}

impl RateLimits {
    /// Limiters with these defaults, on the monotonic clock.
    pub fn new(settings: LimitSettings) -> Self {
        Self::with_clock(settings, Arc::new(Instant::now))
    }

    /// Limiters with these defaults, reading the time from `now`.
    pub fn with_clock(settings: LimitSettings, now: Now) -> Self {
        let start = now();
        Self {
            settings,
            sources: Limiters::new(start),
            orgs: Limiters::new(start),
            now,
        }
    }

    /// Takes one request from the source's budget and its organisation's; on refusal, says which
    /// limit refused and how long until a request would pass.
    ///
    /// A request the organisation refuses has already been counted against the source (as it
    /// was with the token buckets before): a source is never admitted more than its limit.
    pub fn check(&self, source: &Source) -> Result<(), (Scope, Duration)> {
        let now = (self.now)();
        let limit = source.rate_limit.clone().unwrap_or(RateLimit {
            per_minute: self.settings.source_per_minute,
            burst: None,
        });
        self.sources
            .take(&source.id, &limit, now)
            .map_err(|wait| (Scope::Source, wait))?;
        if let Some(org) = &source.org {
            let limit = RateLimit {
                per_minute: self.settings.org_per_minute,
                burst: None,
            };
            self.orgs
                .take(org, &limit, now)
                .map_err(|wait| (Scope::Org, wait))?;
        }
        Ok(())
    }

    /// How many sources and organisations have a limiter: those heard from lately.
    pub fn keys(&self) -> usize {
        self.sources.len() + self.orgs.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use hookline_schemas::SourceAuth;

    use super::*;

    /// A clock the test moves by hand.
    #[derive(Clone)]
    pub(crate) struct ManualClock(Arc<Mutex<Instant>>);

    impl ManualClock {
        /// A clock at the monotonic clock's present.
        pub(crate) fn new() -> Self {
            Self(Arc::new(Mutex::new(Instant::now())))
        }

        /// Moves the clock on.
        pub(crate) fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }

        /// A reader of this clock, for [`RateLimits::with_clock`].
        pub(crate) fn now(&self) -> Now {
            let clock = self.0.clone();
            Arc::new(move || *clock.lock().unwrap())
        }
    }

    fn source(id: &str, limit: Option<(u32, u32)>, org: Option<&str>) -> Source {
        Source {
            rate_limit: limit.map(|(per_minute, burst)| RateLimit {
                per_minute,
                burst: Some(burst),
            }),
            org: org.map(str::to_owned),
            ..Source::new(ResourceId::parse(id).unwrap(), vec![SourceAuth::Open])
        }
    }

    #[test]
    fn refuses_past_the_burst_and_says_when_to_retry() {
        let limits = RateLimits::new(LimitSettings::default());
        let source = source("a", Some((60, 3)), None);
        for _ in 0..3 {
            assert_eq!(limits.check(&source), Ok(()));
        }
        let (scope, wait) = limits.check(&source).unwrap_err();
        assert_eq!(scope, Scope::Source);
        // 60 per minute: one request per second comes back.
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[test]
    fn sources_have_separate_budgets_and_the_default_applies() {
        let limits = RateLimits::new(LimitSettings {
            source_per_minute: 2,
            org_per_minute: 1000,
        });
        let a = source("a", None, None);
        let b = source("b", None, None);
        assert!(limits.check(&a).is_ok() && limits.check(&a).is_ok());
        assert!(limits.check(&a).is_err());
        assert!(limits.check(&b).is_ok(), "b has its own budget");
    }

    #[test]
    fn sources_of_one_org_share_its_limit() {
        let limits = RateLimits::new(LimitSettings {
            source_per_minute: 100,
            org_per_minute: 3,
        });
        let a = source("a", None, Some("acme"));
        let b = source("b", None, Some("acme"));
        let c = source("c", None, Some("other"));
        assert!(limits.check(&a).is_ok() && limits.check(&b).is_ok() && limits.check(&a).is_ok());
        assert_eq!(limits.check(&b).unwrap_err().0, Scope::Org);
        assert!(limits.check(&c).is_ok());
    }

    #[test]
    fn a_changed_limit_takes_effect() {
        let limits = RateLimits::new(LimitSettings::default());
        let strict = source("a", Some((60, 1)), None);
        assert!(limits.check(&strict).is_ok());
        assert!(limits.check(&strict).is_err());
        let relaxed = source("a", Some((600, 10)), None);
        assert!(limits.check(&relaxed).is_ok());
    }

    #[test]
    fn admits_100_of_150_requests_spread_over_a_minute_and_says_when_the_next_passes() {
        let clock = ManualClock::new();
        let limits = RateLimits::with_clock(LimitSettings::default(), clock.now());
        let source = source("a", None, None);
        let (mut admitted, mut waits) = (0, Vec::new());
        for _ in 0..150 {
            match limits.check(&source) {
                Ok(()) => admitted += 1,
                Err((scope, wait)) => {
                    assert_eq!(scope, Scope::Source);
                    waits.push(wait);
                }
            }
            clock.advance(Duration::from_millis(400));
        }
        assert_eq!((admitted, waits.len()), (100, 50));
        // Refused at 40 s, 40.4 s, ... 59.6 s: the first request (at 0 s) leaves the window at
        // 60 s (and its millisecond).
        assert_eq!(waits[0], Duration::from_millis(20_001));
        assert_eq!(waits[49], Duration::from_millis(401));
        // At 60 s a request passes again.
        clock.advance(Duration::from_millis(1));
        assert_eq!(limits.check(&source), Ok(()));
    }

    #[test]
    fn each_instance_admits_the_whole_limit_so_n_instances_admit_n_times_it() {
        // Two ingest instances behind a load balancer that alternates: each keeps its own count.
        let clock = ManualClock::new();
        let instances = [
            RateLimits::with_clock(LimitSettings::default(), clock.now()),
            RateLimits::with_clock(LimitSettings::default(), clock.now()),
        ];
        let source = source("a", None, None);
        let mut admitted = 0;
        for request in 0..300 {
            admitted += usize::from(instances[request % 2].check(&source).is_ok());
            clock.advance(Duration::from_millis(200));
        }
        assert_eq!(admitted, 200, "2 instances x 100 per minute");
        // The documented way around it: each instance gets the limit divided by N.
        let clock = ManualClock::new();
        let per_instance = LimitSettings {
            source_per_minute: 100 / 2,
            ..LimitSettings::default()
        };
        let instances = [
            RateLimits::with_clock(per_instance.clone(), clock.now()),
            RateLimits::with_clock(per_instance, clock.now()),
        ];
        let mut admitted = 0;
        for request in 0..300 {
            admitted += usize::from(instances[request % 2].check(&source).is_ok());
            clock.advance(Duration::from_millis(200));
        }
        assert_eq!(admitted, 100);
    }

    #[test]
    fn idle_sources_and_orgs_are_forgotten() {
        let clock = ManualClock::new();
        let limits = RateLimits::with_clock(LimitSettings::default(), clock.now());
        for index in 0..1000 {
            let source = source(&format!("s{index}"), None, Some(&format!("o{index}")));
            assert_eq!(limits.check(&source), Ok(()));
        }
        assert_eq!(limits.keys(), 2000);
        clock.advance(Duration::from_secs(30));
        let busy = source("busy", Some((2, 2)), None);
        assert!(limits.check(&busy).is_ok() && limits.check(&busy).is_ok());
        clock.advance(Duration::from_secs(31));
        // A new source and a new organisation a minute on sweep out everything with nothing
        // left in its window; the busy source keeps its count.
        assert_eq!(limits.check(&source("new", None, Some("new"))), Ok(()));
        assert_eq!(limits.keys(), 3);
        assert_eq!(limits.check(&busy).unwrap_err().0, Scope::Source);
    }
}
