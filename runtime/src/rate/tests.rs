//! The limiter's tests: exact counts on hand-picked traffic, bounds on memory, and random traffic.

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

#[test]
fn a_lowered_limit_counts_what_was_admitted_before_and_a_raised_one_admits_more() {
    let start = Instant::now();
    let mut limiter = Limiter::new(&limit(10, None), start);
    let (admitted, _) = run(&mut limiter, start, &[0, 1, 2, 3, 4, 5]);
    assert_eq!(admitted.len(), 6);
    // Down to 4: the six admitted still count, so nothing more until they leave the window.
    limiter.set_limit(&limit(4, None));
    assert!(limiter.check(start + ms(1_000)).is_err());
    // At 60.004 s the first four (0..3 ms) have left: two remain, so two more fit.
    let (admitted, refused) = run(&mut limiter, start, &[60_004, 60_004, 60_004]);
    assert_eq!((admitted.len(), refused.len()), (2, 1));
    // Up to 10 at 60.005 s, when three still count (5 ms and the two at 60.004 s): seven more.
    limiter.set_limit(&limit(10, None));
    let (admitted, _) = run(&mut limiter, start, &[60_005; 7]);
    assert_eq!(admitted.len(), 7);
    assert!(limiter.check(start + ms(60_005)).is_err());
}
