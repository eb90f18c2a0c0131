//! How each destination and source is doing over a recent window, for the console's overview and
//! for scripts: "which destination or source is hurting right now?".
//!
//! | route | shows, per resource that exists (zeros when idle) |
//! |---|---|
//! | `GET /api/v1/stats/destinations` | attempts, delivered, failed, dead letters, success and failure rate, p50/p99 attempt duration, held jobs, last success, last attempt |
//! | `GET /api/v1/stats/sources` | events, matched events, refused requests (total and by code), last event |
//!
//! `window` is `5m`, `1h` (default) or `24h`; `sort` orders the items, worst first. The counts
//! come from the store's rollups ([`crate::store::rollup`]): per minute for `5m` and `1h`, per
//! hour for `24h`, so a window covers its length plus the part of the first minute (hour) it
//! starts in; the answer's `since` says where it starts. Durations are read from log-scale bins,
//! within 4.5%.
//!
//! Not shown, because control does not know it: a destination's circuit (each dispatcher keeps
//! its own breaker in memory, and an open circuit writes no attempt record) and its backlog on
//! the jobs topic (the jobs of every destination share the topic's partitions, so their lag is
//! not per destination); held jobs are the backlog control can count.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use futures::FutureExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, store_failed};
use crate::extract::query;
use crate::state::ApiState;
use crate::store::rollup::{self, Grain, Totals};
use crate::view::millis;

/// The query of both routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// `5m`, `1h` or `24h`.
    window: Option<String>,
    /// The order of the items.
    sort: Option<String>,
}

/// The windows the routes answer for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Span {
    /// `5m`: what is happening now.
    FiveMinutes,
    /// `1h`, the default.
    Hour,
    /// `24h`: read from hourly buckets.
    Day,
}

impl Span {
    /// The values `window` takes, as errors name them.
    const ALLOWED: &str = "5m, 1h or 24h";

    /// The window `window` names; 1 hour when absent.
    fn parse(window: Option<&str>) -> Result<Self, ApiError> {
        match window {
            None | Some("1h") => Ok(Self::Hour),
            Some("5m") => Ok(Self::FiveMinutes),
            Some("24h") => Ok(Self::Day),
            Some(other) => Err(ApiError::InvalidQuery(format!(
                "window must be {}, not {other:?}",
                Self::ALLOWED
            ))),
        }
    }

    /// Its name in queries and answers.
    fn as_str(self) -> &'static str {
        match self {
            Self::FiveMinutes => "5m",
            Self::Hour => "1h",
            Self::Day => "24h",
        }
    }

    /// Its length in milliseconds.
    fn ms(self) -> i64 {
        match self {
            Self::FiveMinutes => 5 * 60_000,
            Self::Hour => 3_600_000,
            Self::Day => 24 * 3_600_000,
        }
    }

    /// The rollups' grain the window reads.
    fn grain(self) -> Grain {
        match self {
            Self::FiveMinutes | Self::Hour => Grain::Minute,
            Self::Day => Grain::Hour,
        }
    }
}

/// The orders of the destinations' list, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DestinationOrder {
    /// Failed attempts' share, then failed attempts (the default).
    FailureRate,
    /// The 99th percentile of attempt durations.
    P99,
    /// Attempts.
    Attempts,
    /// Dead letters.
    DeadLetters,
}

impl DestinationOrder {
    /// The order `sort` names; by failure rate when absent.
    fn parse(sort: Option<&str>) -> Result<Self, ApiError> {
        match sort {
            None | Some("failure_rate") => Ok(Self::FailureRate),
            Some("p99") => Ok(Self::P99),
            Some("attempts") => Ok(Self::Attempts),
            Some("dead_letters") => Ok(Self::DeadLetters),
            Some(other) => Err(ApiError::InvalidQuery(format!(
                "sort must be failure_rate, p99, attempts or dead_letters, not {other:?}"
            ))),
        }
    }

    /// Its name in queries and answers.
    fn as_str(self) -> &'static str {
        match self {
            Self::FailureRate => "failure_rate",
            Self::P99 => "p99",
            Self::Attempts => "attempts",
            Self::DeadLetters => "dead_letters",
        }
    }
}

/// The orders of the sources' list, most first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SourceOrder {
    /// Refused requests, then events (the default).
    Refused,
    /// Events, then refused requests.
    Events,
}

impl SourceOrder {
    /// The order `sort` names; by refused requests when absent.
    fn parse(sort: Option<&str>) -> Result<Self, ApiError> {
        match sort {
            None | Some("refused") => Ok(Self::Refused),
            Some("events") => Ok(Self::Events),
            Some(other) => Err(ApiError::InvalidQuery(format!(
                "sort must be refused or events, not {other:?}"
            ))),
        }
    }

    /// Its name in queries and answers.
    fn as_str(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Events => "events",
        }
    }
}

/// One destination's figures, as sorted and shown.
struct DestinationStats {
    /// Its id, the last tie-breaker.
    id: String,
    /// Attempts in the window.
    attempts: i64,
    /// Failed attempts in the window.
    failed: i64,
    /// Dead letters in the window.
    dead_letters: i64,
    /// The 99th percentile of attempt durations.
    p99_ms: Option<f64>,
    /// The item as answered.
    shown: Value,
}

impl DestinationStats {
    /// Failed attempts' share; `None` without attempts.
    fn failure_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.failed as f64 / self.attempts as f64)
    }
}

/// Whether the store (and the held jobs it is shown with) holds what the topics held at start:
/// before that, counts would be low without saying so.
fn ready(state: &ApiState) -> Result<(), ApiError> {
    let held = state.history.held.when_ready().now_or_never() == Some(true);
    if state.history.logs.is_ready() && held {
        Ok(())
    } else {
        Err(ApiError::StoreNotReady)
    }
}

/// The time now, in Unix milliseconds.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The answer's frame: the window, where it starts, and the order.
fn frame(span: Span, now_ms: i64, sort: &str, items: Vec<Value>) -> Value {
    json!({
        "window": span.as_str(),
        "granularity": span.grain().as_str(),
        "since": millis(Some(span.grain().bucket(now_ms - span.ms()))),
        "until": millis(Some(now_ms)),
        "sort": sort,
        "items": items,
    })
}

/// `GET /api/v1/stats/destinations`.
pub(crate) async fn destinations(
    State(state): State<ApiState>,
    params: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let span = Span::parse(params.window.as_deref())?;
    let order = DestinationOrder::parse(params.sort.as_deref())?;
    ready(&state)?;
    let now = now_ms();
    let destinations: Vec<_> = state
        .store
        .snapshot()
        .destinations
        .values()
        .cloned()
        .collect();
    let ids: Vec<String> = destinations.iter().map(|d| d.id.to_string()).collect();
    let figures = state
        .history
        .logs
        .store
        .run(move |database| {
            rollup::destination_figures(database, span.grain(), now - span.ms(), &ids)
        })
        .await
        .map_err(store_failed)?;
    let mut items: Vec<DestinationStats> = destinations
        .iter()
        .map(|destination| {
            let id = destination.id.to_string();
            let counted = figures.totals.get(&id).cloned().unwrap_or_default();
            let held = state.history.held.of(&destination.id);
            let (last_at, last_outcome) = figures.last_attempts.get(&id).cloned().unzip();
            let mut stats = destination_stats(&id, &counted);
            let shown = &mut stats.shown;
            shown["name"] = destination.name.clone().into();
            shown["enabled"] = destination.enabled.into();
            shown["paused"] = destination.paused.into();
            shown["held_jobs"] = held.map_or(0, |held| held.jobs).into();
            shown["oldest_held_at"] = millis(held.map(|held| held.oldest_ms));
            shown["failing_since"] = state.history.failing.since(&id).into();
            shown["last_delivered_at"] = millis(
                state
                    .history
                    .logs
                    .activities
                    .get("destination", &id)
                    .delivered_ms,
            );
            shown["last_attempt_at"] = millis(last_at);
            shown["last_attempt_outcome"] = last_outcome.flatten().into();
            stats
        })
        .collect();
    sort_destinations(&mut items, order);
    let items = items.into_iter().map(|stats| stats.shown).collect();
    Ok(Json(frame(span, now, order.as_str(), items)))
}

/// A destination's counts, rates and durations.
fn destination_stats(id: &str, counted: &Totals) -> DestinationStats {
    let attempts = counted.count(rollup::ATTEMPTS);
    let delivered = counted.count(rollup::DELIVERED);
    let failed = counted.count(rollup::FAILED);
    let dead_letters = counted.count(rollup::DEAD_LETTERS);
    let durations = counted.durations();
    let p99_ms = durations.quantile(0.99);
    let rate = |part: i64| (attempts > 0).then(|| rounded(part as f64 / attempts as f64));
    let shown = json!({
        "id": id,
        "attempts": attempts,
        "delivered": delivered,
        "failed": failed,
        "dead_letters": dead_letters,
        "success_rate": rate(delivered),
        "failure_rate": rate(failed),
        "p50_ms": durations.quantile(0.5),
        "p99_ms": p99_ms,
    });
    DestinationStats {
        id: id.to_owned(),
        attempts,
        failed,
        dead_letters,
        p99_ms,
        shown,
    }
}

/// A rate to four decimals.
fn rounded(rate: f64) -> f64 {
    (rate * 10_000.0).round() / 10_000.0
}

/// Worst first by `order`; destinations without attempts (no rate, no duration) last; ties by id.
fn sort_destinations(items: &mut [DestinationStats], order: DestinationOrder) {
    let descending = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    };
    items.sort_by(|a, b| {
        let by = match order {
            DestinationOrder::FailureRate => {
                descending(a.failure_rate(), b.failure_rate()).then(b.failed.cmp(&a.failed))
            }
            DestinationOrder::P99 => descending(a.p99_ms, b.p99_ms),
            DestinationOrder::Attempts => b.attempts.cmp(&a.attempts),
            DestinationOrder::DeadLetters => b.dead_letters.cmp(&a.dead_letters),
        };
        by.then_with(|| a.id.cmp(&b.id))
    });
}

/// `GET /api/v1/stats/sources`.
pub(crate) async fn sources(
    State(state): State<ApiState>,
    params: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let span = Span::parse(params.window.as_deref())?;
    let order = SourceOrder::parse(params.sort.as_deref())?;
    ready(&state)?;
    let now = now_ms();
    let totals = state
        .history
        .logs
        .store
        .run(move |database| {
            rollup::totals(database, span.grain(), rollup::SOURCE, now - span.ms())
        })
        .await
        .map_err(store_failed)?;
    let mut items: Vec<(i64, i64, String, Value)> = state
        .store
        .snapshot()
        .sources
        .values()
        .map(|source| {
            let id = source.id.to_string();
            let counted = totals.get(&id).cloned().unwrap_or_default();
            let by_code: BTreeMap<String, i64> = counted.refused();
            let refused: i64 = by_code.values().sum();
            let events = counted.count(rollup::EVENTS);
            let shown = json!({
                "id": id,
                "name": source.name,
                "enabled": source.enabled,
                "events": events,
                "matched": counted.count(rollup::MATCHED),
                "refused": refused,
                "refused_by_code": by_code,
                "last_event_at": millis(state.history.logs.activities.get("source", &id).triggered_ms),
            });
            (refused, events, id, shown)
        })
        .collect();
    items.sort_by(|a, b| {
        let by = match order {
            SourceOrder::Refused => b.0.cmp(&a.0).then(b.1.cmp(&a.1)),
            SourceOrder::Events => b.1.cmp(&a.1).then(b.0.cmp(&a.0)),
        };
        by.then_with(|| a.2.cmp(&b.2))
    });
    let items = items.into_iter().map(|(_, _, _, shown)| shown).collect();
    Ok(Json(frame(span, now, order.as_str(), items)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(
        id: &str,
        attempts: i64,
        failed: i64,
        dead: i64,
        p99: Option<f64>,
    ) -> DestinationStats {
        DestinationStats {
            id: id.into(),
            attempts,
            failed,
            dead_letters: dead,
            p99_ms: p99,
            shown: Value::Null,
        }
    }

    fn order(items: &mut [DestinationStats], by: DestinationOrder) -> Vec<String> {
        sort_destinations(items, by);
        items.iter().map(|stats| stats.id.clone()).collect()
    }

    #[test]
    fn destinations_sort_worst_first_with_idle_ones_last() {
        let mut items = vec![
            stats("idle", 0, 0, 0, None),
            stats("flaky", 10, 5, 1, Some(900.0)),
            stats("down", 4, 4, 3, Some(15_000.0)),
            stats("fine", 100, 0, 0, Some(20.0)),
            stats("also-fine", 100, 0, 0, Some(20.0)),
        ];
        assert_eq!(
            order(&mut items, DestinationOrder::FailureRate),
            ["down", "flaky", "also-fine", "fine", "idle"]
        );
        assert_eq!(
            order(&mut items, DestinationOrder::P99),
            ["down", "flaky", "also-fine", "fine", "idle"]
        );
        assert_eq!(
            order(&mut items, DestinationOrder::Attempts),
            ["also-fine", "fine", "flaky", "down", "idle"]
        );
        assert_eq!(
            order(&mut items, DestinationOrder::DeadLetters),
            ["down", "flaky", "also-fine", "fine", "idle"]
        );
    }

    #[test]
    fn windows_and_sorts_name_the_allowed_values_when_refused() {
        assert_eq!(Span::parse(None).unwrap(), Span::Hour);
        assert_eq!(Span::parse(Some("24h")).unwrap().grain(), Grain::Hour);
        assert_eq!(Span::parse(Some("5m")).unwrap().grain(), Grain::Minute);
        assert_eq!(
            Span::parse(Some("2h")).unwrap_err().to_string(),
            "invalid query: window must be 5m, 1h or 24h, not \"2h\""
        );
        assert_eq!(
            DestinationOrder::parse(Some("events"))
                .unwrap_err()
                .to_string(),
            "invalid query: sort must be failure_rate, p99, attempts or dead_letters, not \"events\""
        );
        assert_eq!(
            SourceOrder::parse(Some("p99")).unwrap_err().to_string(),
            "invalid query: sort must be refused or events, not \"p99\""
        );
    }
}
