//! The retry decision, a pure function of what happened, the attempt number and the policy, so it
//! is tested without sleeping or sending anything.
//!
//! Retryable: connect errors, timeouts, 408, 425, 429 and every 5xx but 501. Everything else that
//! is not 2xx is final. The waits follow an exponential schedule (built with `backon`) with jitter;
//! a `Retry-After` from the receiver is honoured up to the policy's maximum interval.
//!
//! Waits happen in process for now, which holds the job's offset until the job is settled (a
//! restart re-reads it, so nothing is lost, and its attempts start again from 1). Long waits
//! through retry topics, per-destination policies and the Standard Webhooks schedule come with the
//! dispatcher's own issue.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use clap::Args;
use hookline_schemas::DeadReason;

/// How often and how long to retry.
#[derive(Clone, Debug, Args)]
pub struct RetryPolicy {
    /// Most attempts of one job, the first included.
    #[arg(
        long = "retry-max-attempts",
        env = "HOOKLINE_RETRY_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_attempts: u32,

    /// Wait before the second attempt, in milliseconds.
    #[arg(
        long = "retry-initial-ms",
        env = "HOOKLINE_RETRY_INITIAL_MS",
        default_value_t = 1_000
    )]
    pub initial_ms: u64,

    /// Factor between consecutive waits.
    #[arg(
        long = "retry-multiplier",
        env = "HOOKLINE_RETRY_MULTIPLIER",
        default_value_t = 2.0
    )]
    pub multiplier: f32,

    /// Longest wait, in milliseconds; also the cap of a receiver's `Retry-After`.
    #[arg(
        long = "retry-max-interval-ms",
        env = "HOOKLINE_RETRY_MAX_INTERVAL_MS",
        default_value_t = 30_000
    )]
    pub max_interval_ms: u64,

    /// Randomise waits so receivers recovering from an outage are not hit in lockstep.
    #[arg(long = "retry-jitter", env = "HOOKLINE_RETRY_JITTER", default_value_t = true, action = clap::ArgAction::Set)]
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_ms: 1_000,
            multiplier: 2.0,
            max_interval_ms: 30_000,
            jitter: true,
        }
    }
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered with this status.
    Status {
        /// The HTTP status.
        code: u16,
        /// Its `Retry-After`, already parsed.
        retry_after: Option<Duration>,
    },
    /// The attempt's deadline passed.
    Timeout,
    /// No connection could be made, or it broke before an answer.
    Connect,
    /// The request could not even be built (invalid URL or header).
    InvalidRequest,
}

/// What to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Done: the receiver took it.
    Delivered,
    /// Try again after this wait.
    Retry(Duration),
    /// Give up and dead-letter it for this reason.
    Dead(DeadReason),
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (from 1), or `None` when no attempt is left.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        if attempt == 0 || attempt >= self.max_attempts {
            return None;
        }
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.initial_ms))
            .with_factor(self.multiplier)
            .with_max_delay(self.max_interval())
            .with_max_times(self.max_attempts as usize);
        if self.jitter {
            builder = builder.with_jitter();
        }
        builder.build().nth(attempt as usize - 1)
    }

    fn max_interval(&self) -> Duration {
        Duration::from_millis(self.max_interval_ms)
    }
}

/// Decides what follows attempt `attempt` (from 1) that ended in `outcome`.
pub fn decide(outcome: &Outcome, attempt: u32, policy: &RetryPolicy) -> Decision {
    let retry_after = match outcome {
        Outcome::Status { code, .. } if (200..300).contains(code) => return Decision::Delivered,
        Outcome::Status { code, retry_after } if retryable_status(*code) => *retry_after,
        Outcome::Status { .. } => return Decision::Dead(DeadReason::Rejected),
        Outcome::InvalidRequest => return Decision::Dead(DeadReason::InvalidRequest),
        Outcome::Timeout | Outcome::Connect => None,
    };
    match policy.delay(attempt) {
        None => Decision::Dead(DeadReason::Exhausted),
        Some(delay) => Decision::Retry(match retry_after {
            Some(asked) => asked.min(policy.max_interval()),
            None => delay,
        }),
    }
}

fn retryable_status(code: u16) -> bool {
    matches!(code, 408 | 425 | 429) || ((500..600).contains(&code) && code != 501)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_ms: 100,
            multiplier: 2.0,
            max_interval_ms: 300,
            jitter: false,
        }
    }

    fn status(code: u16) -> Outcome {
        Outcome::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn success_is_any_2xx() {
        for code in [200, 201, 202, 204, 299] {
            assert_eq!(
                decide(&status(code), 1, &policy()),
                Decision::Delivered,
                "{code}"
            );
        }
    }

    #[test]
    fn retries_transient_failures() {
        for code in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert!(
                matches!(decide(&status(code), 1, &policy()), Decision::Retry(_)),
                "{code}"
            );
        }
        assert!(matches!(
            decide(&Outcome::Timeout, 1, &policy()),
            Decision::Retry(_)
        ));
        assert!(matches!(
            decide(&Outcome::Connect, 1, &policy()),
            Decision::Retry(_)
        ));
    }

    #[test]
    fn does_not_retry_other_4xx_501_redirects_or_invalid_requests() {
        for code in [301, 302, 400, 401, 403, 404, 410, 422, 501] {
            assert_eq!(
                decide(&status(code), 1, &policy()),
                Decision::Dead(DeadReason::Rejected),
                "{code}"
            );
        }
        assert_eq!(
            decide(&Outcome::InvalidRequest, 1, &policy()),
            Decision::Dead(DeadReason::InvalidRequest)
        );
    }

    #[test]
    fn waits_grow_exponentially_up_to_the_cap_then_stop() {
        // backon multiplies in floating point; whole milliseconds are what matters.
        let waits: Vec<_> = (1..=4)
            .map(|attempt| policy().delay(attempt).map(|wait| wait.as_millis()))
            .collect();
        assert_eq!(waits, [Some(100), Some(200), Some(300), None]);
        assert_eq!(
            decide(&status(503), 4, &policy()),
            Decision::Dead(DeadReason::Exhausted)
        );
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let asked = |secs| Outcome::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        let policy = RetryPolicy {
            max_interval_ms: 5_000,
            ..policy()
        };
        assert_eq!(
            decide(&asked(2), 1, &policy),
            Decision::Retry(Duration::from_secs(2))
        );
        assert_eq!(
            decide(&asked(3600), 1, &policy),
            Decision::Retry(Duration::from_secs(5))
        );
    }

    #[test]
    fn jitter_stays_within_one_extra_interval() {
        let policy = RetryPolicy {
            jitter: true,
            ..policy()
        };
        for _ in 0..100 {
            let wait = policy.delay(1).unwrap();
            assert!(
                wait >= Duration::from_millis(100) && wait <= Duration::from_millis(200),
                "{wait:?}"
            );
        }
    }
}
