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
mod tests {
    use super::*;

    /// A limit of `per_minute` with an optional `burst`.
    fn limit(per_minute: u32, burst: Option<u32>) -> RateLimit {
        RateLimit { per_minute, burst }
    }

    /// Milliseconds.
    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// Checks requests at the given offsets (ms) and returns the admitted offsets and the waits
    /// of the refused ones.
    fn run(limiter: &mut Limiter, start: Instant, at: &[u64]) -> (Vec<u64>, Vec<(u64, Duration)>) {
        let (mut admitted, mut refused) = (Vec::new(), Vec::new());
        for &offset in at {
            match limiter.check(start + ms(offset)) {
                Ok(()) => admitted.push(offset),
                Err(wait) => refused.push((offset, wait)),
            }
        }
        (admitted, refused)
    }

    /// The most admitted in any window of 60 s, from sorted offsets (windows starting at an
    /// admission are enough).
    fn most_in_any_minute(admitted: &[u64]) -> usize {
        let mut end = 0;
        let mut most = 0;
        for (first, &from) in admitted.iter().enumerate() {
            while end < admitted.len() && admitted[end] < from + WINDOW_MS {
                end += 1;
            }
            most = most.max(end - first);
        }
        most
    }

    #[test]
    fn admits_100_of_150_requests_spread_over_a_minute() {
        let start = Instant::now();
        let mut limiter = Limiter::new(&limit(100, None), start);
        // One every 400 ms: 0 s .. 59.6 s.
        let at: Vec<u64> = (0..150).map(|i| i * 400).collect();
        let (admitted, refused) = run(&mut limiter, start, &at);
        assert_eq!((admitted.len(), refused.len()), (100, 50));
        assert_eq!(admitted, at[..100], "the first 100 pass, the rest wait");
        for (offset, wait) in refused {
            // The first admitted (at 0 s) stops counting 60 s (and its millisecond) later.
            assert_eq!(start + ms(offset) + wait, start + ms(60_001), "at {offset}");
        }
    }

    #[test]
    fn never_admits_more_than_the_limit_in_any_minute_and_uses_it_all() {
        let start = Instant::now();
        let mut limiter = Limiter::new(&limit(100, None), start);
        // A full minute's worth at once, then one request every 100 ms for four minutes.
        let mut at = vec![0; 100];
        at.extend((1..2400).map(|i| i * 100));
        let (admitted, _) = run(&mut limiter, start, &at);
        assert_eq!(most_in_any_minute(&admitted), 100);
        // 100 at once, then 100 more each time the previous 100 have left the window.
        assert_eq!(admitted.len(), 400, "{admitted:?}");
    }

    #[test]
    fn the_wait_is_exact_and_a_request_after_it_passes() {
        let start = Instant::now();
        let mut limiter = Limiter::new(&limit(2, None), start);
        assert!(limiter.check(start).is_ok());
        assert!(limiter.check(start + ms(30_000)).is_ok());
        let wait = limiter.check(start + ms(45_000)).unwrap_err();
        assert_eq!(wait, ms(15_001));
        assert_eq!(limiter.check(start + ms(60_000)), Err(ms(1)));
        assert!(limiter.check(start + ms(45_000) + wait).is_ok());
        // The next slot frees when the request at 30 s leaves the window.
        assert_eq!(limiter.check(start + ms(60_001)), Err(ms(30_000)));
    }

    #[test]
    fn a_burst_below_the_limit_spreads_the_requests_out() {
        let start = Instant::now();
        // 60 per minute, at most 3 at once: then one per second.
        let mut limiter = Limiter::new(&limit(60, Some(3)), start);
        let (admitted, refused) = run(&mut limiter, start, &[0, 0, 0, 0]);
        assert_eq!(admitted.len(), 3);
        assert_eq!(refused, [(0, ms(1000))]);
        assert!(limiter.check(start + ms(1000)).is_ok());
        assert_eq!(limiter.check(start + ms(1000)), Err(ms(1000)));
        // Still never more than 60 in any minute.
        let at: Vec<u64> = (2..200).map(|i| i * 300).collect();
        let (more, _) = run(&mut limiter, start, &at);
        let mut all = vec![0, 0, 0, 1000];
        all.extend(more);
        assert!(most_in_any_minute(&all) <= 60);
    }

    #[test]
    fn a_burst_at_or_above_the_limit_changes_nothing() {
        let start = Instant::now();
        for burst in [None, Some(100), Some(1000)] {
            let mut limiter = Limiter::new(&limit(100, burst), start);
            let (admitted, _) = run(&mut limiter, start, &[0; 150]);
            assert_eq!(admitted.len(), 100, "{burst:?}");
        }
    }

    #[test]
    fn memory_stays_bounded_for_large_limits() {
        let start = Instant::now();
        let mut limiter = Limiter::new(&limit(1_000_000, None), start);
        let mut admitted = 0;
        // One request every 7 ms for three minutes: ticks of 59 ms hold several each.
        for offset in (0..180_000).step_by(7) {
            admitted += usize::from(limiter.check(start + ms(offset)).is_ok());
            assert!(limiter.entries() <= MAX_ENTRIES, "{}", limiter.entries());
        }
        assert_eq!(admitted, 180_000usize.div_ceil(7));
        // Small limits hold at most one entry per admitted request.
        let mut small = Limiter::new(&limit(10, None), start);
        for offset in 0..1000 {
            let _ = small.check(start + ms(offset));
        }
        assert_eq!(small.entries(), 10);
    }

    #[test]
    fn coarse_ticks_never_admit_more_than_the_limit() {
        let start = Instant::now();
        let mut limiter = Limiter::new(&limit(2000, None), start);
        // 2,500 requests in each of three minutes, evenly spread.
        let at: Vec<u64> = (0..7500).map(|i| i * 24).collect();
        let (admitted, _) = run(&mut limiter, start, &at);
        assert_eq!(most_in_any_minute(&admitted), 2000);
    }

    #[test]
    fn a_limiter_is_idle_once_its_requests_stop_counting() {
        let start = Instant::now();
        let mut limiter = Limiter::new(&limit(60, Some(2)), start);
        assert!(limiter.is_idle(start));
        assert!(limiter.check(start).is_ok());
        assert!(!limiter.is_idle(start + ms(59_000)));
        assert!(limiter.is_idle(start + ms(60_001)));
    }

    #[test]
    fn a_clock_read_before_the_last_request_still_counts_it_in_full() {
        let start = Instant::now();
        let mut limiter = Limiter::new(&limit(2, None), start);
        assert!(limiter.check(start + ms(10_000)).is_ok());
        assert!(limiter.check(start + ms(9_000)).is_ok());
        // Both count until 60 s after the later one.
        assert_eq!(limiter.check(start + ms(69_000)), Err(ms(1001)));
        assert!(limiter.check(start + ms(70_001)).is_ok());
    }

    #[test]
    fn random_traffic_never_gets_more_than_the_limit_and_refusals_are_justified() {
        // A fixed-seed generator: the same traffic on every run.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |below: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % below
        };
        let start = Instant::now();
        for (per_minute, burst) in [
            (1, None),
            (7, None),
            (100, None),
            (100, Some(10)),
            (3000, None),
        ] {
            let mut limiter = Limiter::new(&limit(per_minute, burst), start);
            let tick = limiter.tick_ms;
            let (mut now, mut admitted, mut oldest_recent) = (0, Vec::new(), 0);
            for _ in 0..20_000 {
                // Quiet spells, steady streams and bursts in the same millisecond.
                now += match next(10) {
                    0 => next(30_000),
                    1..=3 => 0,
                    _ => next(50 * tick),
                };
                match limiter.check(start + ms(now)) {
                    Ok(()) => admitted.push(now),
                    Err(wait) => {
                        assert!(!wait.is_zero());
                        // Refused by the window only when the limit was used in the window
                        // stretched by one tick (the price of coarse ticks).
                        while admitted
                            .get(oldest_recent)
                            .is_some_and(|&t| t + WINDOW_MS + tick <= now)
                        {
                            oldest_recent += 1;
                        }
                        let recent = admitted.len() - oldest_recent;
                        assert!(
                            recent >= per_minute as usize || burst.is_some(),
                            "{per_minute}: refused at {now} with {recent} recent"
                        );
                    }
                }
            }
            assert!(
                most_in_any_minute(&admitted) <= per_minute as usize,
                "{per_minute} {burst:?}"
            );
            assert!(
                admitted.len() > per_minute as usize,
                "the test reached the limit"
            );
        }
    }

    #[test]
    fn zeros_are_read_as_one() {
        let start = Instant::now();
        let mut limiter = Limiter::new(&limit(0, Some(0)), start);
        assert!(limiter.check(start).is_ok());
        assert!(limiter.check(start).is_err());
    }
}
