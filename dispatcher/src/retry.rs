//! The retry decision, a pure function of what happened, the attempt number and the destination's
//! policy, so it is tested without sleeping or sending anything.
//!
//! Retryable: connect errors, timeouts, 408, 425, 429 and every 5xx but 501. 410 Gone is final and
//! disables the destination; everything else that is not 2xx is final, and so is a target the SSRF
//! guard refused. Waits follow the destination's policy: a fixed schedule (by default the Standard
//! Webhooks one) or an exponential one built with `backon`, both with jitter. A `Retry-After` from
//! the receiver replaces the policy's wait, clamped to a maximum.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use hookline_schemas::{DeadReason, RetryPolicy};

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
    /// The SSRF guard refused the target's address.
    Blocked,
    /// The request could not even be built (invalid URL, header or secret).
    InvalidRequest,
}

impl Outcome {
    /// Whether the outcome says the receiver is unwell (for its circuit breaker): it timed out,
    /// could not be reached, or answered with a retryable error.
    pub fn is_failure(&self) -> bool {
        match self {
            Self::Status { code, .. } => retryable_status(*code),
            Self::Timeout | Self::Connect => true,
            Self::Blocked | Self::InvalidRequest => false,
        }
    }
}

/// What to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Done: the receiver took it.
    Delivered,
    /// Try again after this wait.
    Retry(Duration),
    /// Give up and dead-letter it for this reason ([`DeadReason::Gone`] also disables the
    /// destination).
    Dead(DeadReason),
}

/// The wait after failed attempt `attempt` (from 1), or `None` when no attempt is left.
pub fn delay(policy: &RetryPolicy, attempt: u32) -> Option<Duration> {
    if attempt == 0 {
        return None;
    }
    let index = attempt as usize - 1;
    match policy {
        RetryPolicy::Schedule {
            waits_seconds,
            jitter,
        } => {
            let wait = Duration::try_from_secs_f64(*waits_seconds.get(index)?).ok()?;
            Some(if *jitter {
                wait.mul_f64(1.0 + fastrand::f64() / 10.0)
            } else {
                wait
            })
        }
        RetryPolicy::Exponential {
            initial_seconds,
            multiplier,
            max_interval_seconds,
            max_attempts,
            jitter,
        } => {
            if attempt >= *max_attempts {
                return None;
            }
            let mut builder = ExponentialBuilder::default()
                .with_min_delay(Duration::try_from_secs_f64(*initial_seconds).ok()?)
                .with_factor(*multiplier as f32)
                .with_max_delay(Duration::try_from_secs_f64(*max_interval_seconds).ok()?)
                .with_max_times(*max_attempts as usize);
            if *jitter {
                builder = builder.with_jitter();
            }
            builder.build().nth(index)
        }
    }
}

/// Decides what follows attempt `attempt` (from 1) that ended in `outcome`; a receiver's
/// `Retry-After` is honoured up to `max_retry_after`.
pub fn decide(
    outcome: &Outcome,
    attempt: u32,
    policy: &RetryPolicy,
    max_retry_after: Duration,
) -> Decision {
    let retry_after = match outcome {
        Outcome::Status { code, .. } if (200..300).contains(code) => return Decision::Delivered,
        Outcome::Status { code: 410, .. } => return Decision::Dead(DeadReason::Gone),
        Outcome::Status { code, retry_after } if retryable_status(*code) => *retry_after,
        Outcome::Status { .. } => return Decision::Dead(DeadReason::Rejected),
        Outcome::Blocked => return Decision::Dead(DeadReason::Blocked),
        Outcome::InvalidRequest => return Decision::Dead(DeadReason::InvalidRequest),
        Outcome::Timeout | Outcome::Connect => None,
    };
    match delay(policy, attempt) {
        None => Decision::Dead(DeadReason::Exhausted),
        Some(delay) => Decision::Retry(match retry_after {
            Some(asked) => asked.min(max_retry_after),
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

    const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

    fn policy() -> RetryPolicy {
        RetryPolicy::Exponential {
            initial_seconds: 0.1,
            multiplier: 2.0,
            max_interval_seconds: 0.3,
            max_attempts: 4,
            jitter: false,
        }
    }

    fn status(code: u16) -> Outcome {
        Outcome::Status {
            code,
            retry_after: None,
        }
    }

    fn decide(outcome: &Outcome, attempt: u32) -> Decision {
        super::decide(outcome, attempt, &policy(), MAX_RETRY_AFTER)
    }

    #[test]
    fn every_status_gets_exactly_one_decision() {
        // The whole table, so a change to one class cannot silently move another.
        for code in 100..=599 {
            let decision = decide(&status(code), 1);
            let expected = match code {
                200..=299 => Decision::Delivered,
                410 => Decision::Dead(DeadReason::Gone),
                408 | 425 | 429 => Decision::Retry(Duration::from_millis(100)),
                501 => Decision::Dead(DeadReason::Rejected),
                500..=599 => Decision::Retry(Duration::from_millis(100)),
                _ => Decision::Dead(DeadReason::Rejected),
            };
            assert_eq!(decision, expected, "{code}");
            assert_eq!(
                status(code).is_failure(),
                matches!(expected, Decision::Retry(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn transport_failures_retry_and_refusals_do_not() {
        assert!(matches!(decide(&Outcome::Timeout, 1), Decision::Retry(_)));
        assert!(matches!(decide(&Outcome::Connect, 1), Decision::Retry(_)));
        assert_eq!(
            decide(&Outcome::Blocked, 1),
            Decision::Dead(DeadReason::Blocked)
        );
        assert_eq!(
            decide(&Outcome::InvalidRequest, 1),
            Decision::Dead(DeadReason::InvalidRequest)
        );
        assert!(!Outcome::Blocked.is_failure());
    }

    #[test]
    fn waits_grow_exponentially_up_to_the_cap_then_stop() {
        // backon multiplies in floating point; whole milliseconds are what matters.
        let waits: Vec<_> = (1..=4)
            .map(|attempt| delay(&policy(), attempt).map(|wait| wait.as_millis()))
            .collect();
        assert_eq!(waits, [Some(100), Some(200), Some(300), None]);
        assert_eq!(
            decide(&status(503), 4),
            Decision::Dead(DeadReason::Exhausted)
        );
    }

    #[test]
    fn the_default_schedule_is_the_standard_webhooks_one() {
        let RetryPolicy::Schedule { waits_seconds, .. } = RetryPolicy::standard_webhooks() else {
            panic!("not a schedule");
        };
        let plain = RetryPolicy::Schedule {
            waits_seconds,
            jitter: false,
        };
        let waits: Vec<_> = (1..=10)
            .map(|attempt| delay(&plain, attempt).map(|wait| wait.as_secs()))
            .collect();
        let hours = |h: u64| Some(h * 3600);
        assert_eq!(
            waits,
            [
                Some(5),
                Some(300),
                Some(1800),
                hours(2),
                hours(5),
                hours(10),
                hours(14),
                hours(20),
                hours(24),
                None
            ]
        );
        assert_eq!(
            super::decide(&Outcome::Timeout, 10, &plain, MAX_RETRY_AFTER),
            Decision::Dead(DeadReason::Exhausted)
        );
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let asked = |secs| Outcome::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            decide(&asked(2), 1),
            Decision::Retry(Duration::from_secs(2))
        );
        assert_eq!(decide(&asked(3600), 1), Decision::Retry(MAX_RETRY_AFTER));
        // Retry-After does not buy attempts the policy does not allow.
        assert_eq!(decide(&asked(2), 4), Decision::Dead(DeadReason::Exhausted));
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let exponential = RetryPolicy::Exponential {
            initial_seconds: 0.1,
            multiplier: 2.0,
            max_interval_seconds: 0.3,
            max_attempts: 4,
            jitter: true,
        };
        let schedule = RetryPolicy::Schedule {
            waits_seconds: vec![10.0],
            jitter: true,
        };
        for _ in 0..100 {
            let wait = delay(&exponential, 1).unwrap();
            assert!(
                wait >= Duration::from_millis(100) && wait <= Duration::from_millis(200),
                "{wait:?}"
            );
            let wait = delay(&schedule, 1).unwrap();
            assert!(
                wait >= Duration::from_secs(10) && wait <= Duration::from_secs(11),
                "{wait:?}"
            );
        }
    }
}
