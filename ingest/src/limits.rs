//! Rate limits per source and per organisation (GCRA, with `governor`). A refused request never
//! reaches Kafka.
//!
//! Limits are per ingest instance: with N instances behind a load balancer, a source may send up
//! to N times its limit in all. Divide the limits by the number of instances when scaling out.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use clap::Args;
use governor::DefaultDirectRateLimiter;
use governor::clock::{Clock, DefaultClock};
use hookline_schemas::{RateLimit, ResourceId, Source};

/// Default limits, for sources and organisations that set none.
#[derive(Clone, Debug, Args)]
pub struct LimitSettings {
    /// Requests per minute a source may send, unless the source sets its own.
    #[arg(
        long = "source-rate-limit-per-minute",
        env = "HOOKLINE_SOURCE_RATE_LIMIT_PER_MINUTE",
        default_value_t = 100
    )]
    pub source_per_minute: u32,

    /// Requests per minute all sources of one organisation may send together.
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

type Limiters<K> = RwLock<HashMap<K, (RateLimit, Arc<DefaultDirectRateLimiter>)>>;

/// The limiters of every source and organisation seen so far.
pub struct RateLimits {
    settings: LimitSettings,
    sources: Limiters<ResourceId>,
    orgs: Limiters<String>,
    clock: DefaultClock,
}

impl RateLimits {
    /// Limiters with these defaults.
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            settings,
            sources: RwLock::default(),
            orgs: RwLock::default(),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from the source's budget and its organisation's; on refusal, says which
    /// limit refused and how long until a request would pass.
    pub fn check(&self, source: &Source) -> Result<(), (Scope, Duration)> {
        let limit = source.rate_limit.clone().unwrap_or(RateLimit {
            per_minute: self.settings.source_per_minute,
            burst: None,
        });
        self.take(&self.sources, &source.id, &limit)
            .map_err(|wait| (Scope::Source, wait))?;
        if let Some(org) = &source.org {
            let limit = RateLimit {
                per_minute: self.settings.org_per_minute,
                burst: None,
            };
            self.take(&self.orgs, org, &limit)
                .map_err(|wait| (Scope::Org, wait))?;
        }
        Ok(())
    }

    fn take<K>(&self, limiters: &Limiters<K>, key: &K, limit: &RateLimit) -> Result<(), Duration>
    where
        K: std::hash::Hash + Eq + Clone,
    {
        let limiter = {
            let read = limiters
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            read.get(key)
                .filter(|(current, _)| current == limit)
                .map(|(_, limiter)| limiter.clone())
        };
        let limiter = match limiter {
            Some(limiter) => limiter,
            None => {
                // New, or its limit changed: start a fresh budget.
                let limiter = Arc::new(DefaultDirectRateLimiter::direct(
                    hookline_runtime::rate::quota(limit),
                ));
                limiters
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(key.clone(), (limit.clone(), limiter.clone()));
                limiter
            }
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use hookline_schemas::SourceAuth;

    use super::*;

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
}
