//! The limiter of a [`RateLimit`], shared by ingest (per source and organisation) and the
//! dispatcher (per destination): at most `per_minute` requests admitted in any 60 seconds,
//! and, when the limit sets a `burst`, no more than that many at once.
//!
//! # Why a sliding-window log
//!
//! A token bucket (GCRA) with a bucket of `per_minute` admits a full bucket at once and then
//! its refills: up to twice the limit in one minute (150 of 150 requests spread evenly over
//! 60 s against 100 per minute, measured with `governor` before this limiter replaced it).
//! Senders and receivers read "100 per minute" as "never more than 100 in a minute", so the
//! limit here is a sliding window: a request is admitted when fewer than `per_minute` requests
//! were admitted in the 60 seconds before it. A two-bucket sliding-window counter would need
//! less memory but guesses how the previous bucket's requests were spread, and so admits too
//! many or too few; a log of the admitted requests knows.
//!
//! The log keeps one entry per *tick* with a count, so memory stays bounded whatever the load:
//! never more entries than `per_minute`, nor than [`MAX_ENTRIES`]. A tick is one millisecond
//! for limits up to [`MAX_ENTRIES`] per minute (exact to the millisecond); above that it is
//! long enough that a minute holds fewer than [`MAX_ENTRIES`] ticks (59 ms). A request counts
//! until 60 s after the *end* of its tick, so a coarse tick only ever refuses a little longer
//! than needed, never admits too many.
//!
//! `burst`, when set below `per_minute`, adds a GCRA bucket of that size refilled at
//! `per_minute` / 60 per second: it spreads a minute's requests out instead of letting them
//! all through at once. A larger `burst` changes nothing (the window is the stricter of the
//! two), and without one a whole minute's worth may arrive at once.
//!
//! Time is passed in (`now`), so tests move it by hand.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hookline_schemas::RateLimit;

/// The span the limit counts over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Most entries one limiter's log holds (16 bytes each): a limiter takes at most 16 KiB.
pub const MAX_ENTRIES: usize = 1024;

/// [`WINDOW`] in the milliseconds ticks are counted in.
const WINDOW_MS: u64 = 60_000;

/// Admits requests under one [`RateLimit`]; see the module's documentation.
#[derive(Debug)]
pub struct Limiter {
    /// Most requests admitted in any [`WINDOW`].
    limit: u32,
    /// Milliseconds per tick.
    tick_ms: u64,
    /// Time zero of the ticks.
    origin: Instant,
    /// Ticks with requests admitted in the window, oldest first, with how many each.
    log: VecDeque<(u64, u32)>,
    /// The sum of the log's counts.
    admitted: u32,
    /// The burst bucket, when `burst` is below `per_minute`.
    burst: Option<Gcra>,
}

impl Limiter {
    /// A limiter with nothing admitted yet; zeros (refused by validation) are read as 1.
    pub fn new(limit: &RateLimit, now: Instant) -> Self {
        let per_minute = limit.per_minute.max(1);
        let tick_ms = if per_minute as usize <= MAX_ENTRIES {
            1
        } else {
            // At most WINDOW_MS / tick_ms + 2 ticks are in the log at once (a partial tick at
            // each end).
            WINDOW_MS.div_ceil(MAX_ENTRIES as u64 - 2)
        };
        Self {
            limit: per_minute,
            tick_ms,
            origin: now,
            log: VecDeque::new(),
            admitted: 0,
            burst: limit
                .burst
                .map(|burst| burst.max(1))
                .filter(|burst| *burst < per_minute)
                .map(|burst| Gcra::new(per_minute, burst)),
        }
    }

    /// Changes the limit, keeping what was admitted: a lower limit admits nothing more until
    /// the window holds fewer than it. The tick stays the one chosen for the first limit (a
    /// finer one for a lower limit would only refuse a little less long). The burst bucket, if
    /// any, starts full.
    pub fn set_limit(&mut self, limit: &RateLimit) {
        self.limit = limit.per_minute.max(1);
        self.burst = limit
            .burst
            .map(|burst| burst.max(1))
            .filter(|burst| *burst < self.limit)
            .map(|burst| Gcra::new(self.limit, burst));
    }

    /// Admits one request at `now`, or says how long until one would be admitted.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.origin);
        self.expire(elapsed);
        let window_wait = match self.log.front() {
            Some((tick, _)) if self.admitted >= self.limit => {
                self.expiry(*tick).saturating_sub(elapsed)
            }
            Some(_) | None => Duration::ZERO,
        };
        let burst_wait = self
            .burst
            .as_ref()
            .map_or(Duration::ZERO, |gcra| gcra.wait(elapsed));
        let wait = window_wait.max(burst_wait);
        if !wait.is_zero() {
            return Err(wait);
        }
        if let Some(gcra) = &mut self.burst {
            gcra.take(elapsed);
        }
        let tick = elapsed_ms(elapsed) / self.tick_ms;
        match self.log.back_mut() {
            // A request timed before the last one (read the clock, then waited for the lock)
            // joins the last tick: counted a little longer, never too short.
            Some((last, count)) if *last >= tick => *count += 1,
            Some(_) | None => self.log.push_back((tick, 1)),
        }
        self.admitted += 1;
        Ok(())
    }

    /// True when nothing admitted still counts at `now`: the limiter is then the same as a new
    /// one, and a keyed map may drop it.
    pub fn is_idle(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.origin);
        self.expire(elapsed);
        self.log.is_empty() && self.burst.as_ref().is_none_or(|gcra| gcra.is_full(elapsed))
    }

    /// Entries in the log, for tests of its bound.
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.log.len()
    }

    /// When requests of `tick` stop counting, from the origin: a full window after the tick's
    /// end.
    fn expiry(&self, tick: u64) -> Duration {
        Duration::from_millis((tick + 1) * self.tick_ms + WINDOW_MS)
    }

    /// Drops the ticks whose requests no longer count at `elapsed`.
    fn expire(&mut self, elapsed: Duration) {
        while let Some((tick, count)) = self.log.front().copied() {
            if self.expiry(tick) > elapsed {
                break;
            }
            self.log.pop_front();
            self.admitted -= count;
        }
    }
}

/// Whole milliseconds, saturating (after 584 million years).
fn elapsed_ms(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// A GCRA bucket of `burst` requests refilled at `per_minute`: the theoretical arrival time of
/// the next request moves on by one emission interval per admitted request, and a request is
/// admitted unless that time is more than `burst - 1` intervals ahead.
#[derive(Debug)]
struct Gcra {
    /// Time between two requests at the steady rate.
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may be.
    tolerance: Duration,
    /// The theoretical arrival time, from the limiter's origin.
    arrival: Duration,
}

impl Gcra {
    /// A full bucket of `burst` (at least 1) refilled at `per_minute`.
    fn new(per_minute: u32, burst: u32) -> Self {
        let interval = WINDOW / per_minute;
        Self {
            interval,
            tolerance: interval * (burst - 1),
            arrival: Duration::ZERO,
        }
    }

    /// How long until the bucket holds a request again; zero when it does now.
    fn wait(&self, elapsed: Duration) -> Duration {
        self.arrival
            .saturating_sub(self.tolerance)
            .saturating_sub(elapsed)
    }

    /// Takes one request from the bucket.
    fn take(&mut self, elapsed: Duration) {
        self.arrival = self.arrival.max(elapsed) + self.interval;
    }

    /// True when the bucket has refilled completely, as if new.
    fn is_full(&self, elapsed: Duration) -> bool {
        self.arrival <= elapsed
    }
}

#[cfg(test)]
mod tests;
