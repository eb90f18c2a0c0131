//! Isolation between destinations: a concurrency limit, a rate limit (at most `per_minute`
//! requests in any 60 seconds, [`hookline_runtime::rate`]) and a circuit breaker per destination.
//! The limits are this instance's share of the destination's ([`crate::share`]), dealt again
//! whenever its partitions change. A job that one of them holds back is not waited for (beyond a wait of at most
//! 100 ms for a slot of a destination whose circuit is closed): the pipeline defers it to
//! the retry path, so a slow or failing destination never occupies the slots, or the partition,
//! that healthy destinations need.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hookline_runtime::rate::Limiter;
use hookline_schemas::{Destination, RateLimit, ResourceId};
use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::share::Part;

/// How many recent attempts the failure ratio looks at.
const RATIO_WINDOW: usize = 20;

/// How long a job waits when its destination has no free slot: about the time a slot frees up
/// on a slow receiver.
const BUSY_WAIT: Duration = Duration::from_secs(1);

/// How long a job waits in memory for a slot of a destination that has its most requests in
/// progress before it is held back: a fast receiver frees one within milliseconds, and sending
/// its jobs through a retry topic instead would cost more than their delivery; a slow receiver
/// does not, and its jobs then wait on the retry path rather than in the dispatcher's slots.
const SLOT_WAIT: Duration = Duration::from_millis(100);

/// Why a job was held back; a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// The destination's circuit is open (or half-open, with its probe in flight).
    CircuitOpen,
    /// The destination's rate limit is used up.
    RateLimited,
    /// The destination has its most requests in progress.
    Busy,
}

impl Held {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CircuitOpen => "circuit_open",
            Self::RateLimited => "rate_limited",
            Self::Busy => "busy",
        }
    }
}

/// Breaker settings.
#[derive(Clone, Copy, Debug)]
pub struct BreakerSettings {
    /// Consecutive failures that open the circuit.
    pub consecutive_failures: u32,
    /// How long the circuit stays open before a probe, the first time it opens.
    pub open_for: Duration,
    /// The longest it stays open: every failed probe doubles the last open period up to this,
    /// so that during a long outage the held jobs come back (each a read and a write of a
    /// retry topic) and probes go out less and less often.
    pub open_max: Duration,
}

impl BreakerSettings {
    /// How long the circuit stays open after it opened `trips` times in a row without a
    /// success in between (0 the first time).
    fn open_period(&self, trips: u32) -> Duration {
        self.open_for
            .saturating_mul(1 << trips.min(20))
            .min(self.open_max.max(self.open_for))
    }
}

/// The per-destination state of every destination seen.
#[derive(Debug)]
pub struct Isolation {
    default_max_in_flight: u32,
    breaker: BreakerSettings,
    states: Mutex<HashMap<ResourceId, Arc<State>>>,
    /// The partitions this instance reads, which decide its shares of the limits.
    part: Mutex<Part>,
    open_circuits: IntGauge,
}

/// Leave to send one request; hand it back with [`Isolation::finish`].
#[derive(Debug)]
pub struct Pass {
    state: Arc<State>,
    probe: bool,
    /// Returned to the destination's slots when the pass is dropped, unless they shrank
    /// meanwhile (see [`Slots::debt`]).
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Pass {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.state.slots.give_back(permit);
        }
    }
}

#[derive(Debug)]
struct State {
    /// What the state was built for; a change of limits or URL starts afresh.
    shape: (String, u32, Option<RateLimit>),
    slots: Slots,
    /// Jobs waiting for one of the slots; at most as many as there are slots.
    waiting: AtomicU32,
    limiter: Option<Mutex<Limiter>>,
    breaker: Mutex<Breaker>,
}

/// A destination's concurrency slots in this instance, resized when its share changes: growing
/// adds permits; shrinking takes free ones away at once and the rest as requests in progress
/// finish, so the requests in progress never exceed the new size once those are done.
#[derive(Debug)]
struct Slots {
    permits: Arc<Semaphore>,
    /// How many slots there are now.
    size: Mutex<u32>,
    /// Permits in use that are to be dropped, not returned, when their request ends.
    debt: AtomicU32,
}

impl Slots {
    fn new(size: u32) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size as usize)),
            size: Mutex::new(size),
            debt: AtomicU32::new(0),
        }
    }

    fn size(&self) -> u32 {
        *lock(&self.size)
    }

    fn resize(&self, new: u32) {
        let mut size = lock(&self.size);
        if new > *size {
            let mut grow = new - *size;
            // Cancel debt first: those permits stay in use and count towards the new size.
            while grow > 0
                && self
                    .debt
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |debt| {
                        debt.checked_sub(1)
                    })
                    .is_ok()
            {
                grow -= 1;
            }
            self.permits.add_permits(grow as usize);
        } else {
            let cut = *size - new;
            let taken = u32::try_from(self.permits.forget_permits(cut as usize)).unwrap_or(cut);
            self.debt.fetch_add(cut - taken, Ordering::AcqRel);
        }
        *size = new;
    }

    fn give_back(&self, permit: OwnedSemaphorePermit) {
        let owed = self
            .debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |debt| {
                debt.checked_sub(1)
            })
            .is_ok();
        if owed {
            permit.forget();
        }
    }
}

impl State {
    /// A slot that frees up within [`SLOT_WAIT`], waited for only while the circuit is closed
    /// and by no more jobs at once than the destination has slots, so a slow destination's jobs
    /// hold at most that many of the dispatcher's slots for that long.
    async fn wait_for_slot(&self) -> Option<OwnedSemaphorePermit> {
        if lock(&self.breaker).circuit != Circuit::Closed {
            return None;
        }
        let slots = self.slots.size();
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                (waiting < slots).then_some(waiting + 1)
            })
            .ok()?;
        let _waiting = Waiting(&self.waiting);
        let acquired =
            tokio::time::timeout(SLOT_WAIT, self.slots.permits.clone().acquire_owned()).await;
        acquired.ok()?.ok()
    }
}

/// Counts a job out of [`State::waiting`] however its wait ends (dropped with it, too).
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Isolation {
    /// Limits every destination to `default_max_in_flight` requests unless it sets its own, all
    /// of it in this instance until [`Self::set_part`] says which share is its.
    pub fn new(
        default_max_in_flight: u32,
        breaker: BreakerSettings,
        open_circuits: IntGauge,
    ) -> Self {
        Self {
            default_max_in_flight,
            breaker,
            states: Mutex::new(HashMap::new()),
            part: Mutex::new(Part::whole()),
            open_circuits,
        }
    }

    /// Deals the limits again for the partitions this instance now reads.
    pub fn set_part(&self, part: Part) {
        let mut current = lock(&self.part);
        if *current == part {
            return;
        }
        *current = part;
        for (id, state) in lock(&self.states).iter() {
            state
                .slots
                .resize(current.share(state.shape.1, id.as_str()));
            if let (Some(limiter), Some(limit)) = (&state.limiter, &state.shape.2) {
                lock(limiter).set_limit(&current.share_rate(limit, id.as_str()));
            }
        }
    }

    /// Lets one request to `destination` go (after a short wait for a slot, at most
    /// 100 ms), or says how long to hold it back and why.
    pub async fn admit(&self, destination: &Destination) -> Result<Pass, (Held, Duration)> {
        let state = self.state(destination);
        let permit = match state.slots.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => state.wait_for_slot().await.ok_or((Held::Busy, BUSY_WAIT))?,
        };
        if let Some(limiter) = &state.limiter {
            // Tokio's clock, so tests with paused time move the limiter's too.
            lock(limiter)
                .check(Instant::now().into_std())
                .map_err(|wait| (Held::RateLimited, wait))?;
        }
        let probe = lock(&state.breaker)
            .admit(Instant::now())
            .map_err(|wait| (Held::CircuitOpen, wait))?;
        if probe {
            self.count_open_circuits();
        }
        Ok(Pass {
            state,
            probe,
            permit: Some(permit),
        })
    }

    /// Records how the request `pass` allowed went: `failed` when the receiver timed out, could
    /// not be reached or answered with a retryable error.
    pub fn finish(&self, pass: Pass, failed: bool) {
        let changed =
            lock(&pass.state.breaker).record(failed, pass.probe, Instant::now(), &self.breaker);
        if changed {
            self.count_open_circuits();
        }
    }

    fn state(&self, destination: &Destination) -> Arc<State> {
        let shape = (
            destination.url.clone(),
            destination
                .max_in_flight
                .unwrap_or(self.default_max_in_flight)
                .max(1),
            destination.rate_limit.clone(),
        );
        let part = lock(&self.part);
        let mut states = lock(&self.states);
        if let Some(state) = states.get(&destination.id)
            && state.shape == shape
        {
            return state.clone();
        }
        let id = destination.id.as_str();
        let state = Arc::new(State {
            slots: Slots::new(part.share(shape.1, id)),
            waiting: AtomicU32::new(0),
            limiter: shape.2.as_ref().map(|limit| {
                let mut limiter = Limiter::new(limit, Instant::now().into_std());
                limiter.set_limit(&part.share_rate(limit, id));
                Mutex::new(limiter)
            }),
            breaker: Mutex::new(Breaker::default()),
            shape,
        });
        states.insert(destination.id.clone(), state.clone());
        drop(states);
        drop(part);
        self.count_open_circuits();
        state
    }

    fn count_open_circuits(&self) {
        let states = lock(&self.states);
        let open = states
            .values()
            .filter(|state| !matches!(lock(&state.breaker).circuit, Circuit::Closed))
            .count();
        self.open_circuits.set(open as i64);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Circuit {
    Closed,
    Open {
        until: Instant,
    },
    /// One probe is in flight; everything else waits for its answer.
    HalfOpen,
}

/// A circuit breaker: opens after consecutive failures or when half of the recent attempts
/// failed, stays open for a while, then lets one probe through and closes if it succeeds.
#[derive(Debug)]
struct Breaker {
    circuit: Circuit,
    consecutive: u32,
    recent: VecDeque<bool>,
    /// Times the circuit opened since the last success.
    trips: u32,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            circuit: Circuit::Closed,
            consecutive: 0,
            recent: VecDeque::with_capacity(RATIO_WINDOW),
            trips: 0,
        }
    }
}

impl Breaker {
    /// `Ok(true)` lets a probe through, `Ok(false)` a normal request, `Err` says how long to wait.
    fn admit(&mut self, now: Instant) -> Result<bool, Duration> {
        match self.circuit {
            Circuit::Closed => Ok(false),
            Circuit::Open { until } if now < until => Err(until - now),
            Circuit::Open { .. } => {
                self.circuit = Circuit::HalfOpen;
                Ok(true)
            }
            Circuit::HalfOpen => Err(BUSY_WAIT),
        }
    }

    /// Records an outcome; true when the circuit changed state.
    fn record(
        &mut self,
        failed: bool,
        probe: bool,
        now: Instant,
        settings: &BreakerSettings,
    ) -> bool {
        let before = self.circuit;
        if self.recent.len() == RATIO_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(failed);
        if !failed {
            self.consecutive = 0;
            self.trips = 0;
            if self.circuit != Circuit::Closed {
                // Any success, a probe's or one of a request sent before the circuit opened,
                // shows the receiver is back: start counting afresh.
                self.circuit = Circuit::Closed;
                self.recent.clear();
            }
        } else {
            self.consecutive += 1;
            let failures = self.recent.iter().filter(|failed| **failed).count();
            let trips = probe
                || self.consecutive >= settings.consecutive_failures
                || (self.recent.len() == RATIO_WINDOW && failures * 2 >= RATIO_WINDOW);
            if trips && !matches!(self.circuit, Circuit::Open { .. }) {
                self.circuit = Circuit::Open {
                    until: now + settings.open_period(self.trips),
                };
                self.trips = self.trips.saturating_add(1);
            }
        }
        self.circuit != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: BreakerSettings = BreakerSettings {
        consecutive_failures: 3,
        open_for: Duration::from_secs(30),
        open_max: Duration::from_secs(300),
    };

    fn destination(max_in_flight: Option<u32>, rate_limit: Option<RateLimit>) -> Destination {
        let mut destination =
            Destination::new(ResourceId::parse("d").unwrap(), "http://127.0.0.1:9/hook");
        destination.max_in_flight = max_in_flight;
        destination.rate_limit = rate_limit;
        destination
    }

    fn isolation() -> Isolation {
        Isolation::new(2, SETTINGS, IntGauge::new("open", "open").unwrap())
    }

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_probes_after_a_while() {
        let mut breaker = Breaker::default();
        let start = Instant::now();
        for _ in 0..2 {
            assert_eq!(breaker.admit(start), Ok(false));
            assert!(!breaker.record(true, false, start, &SETTINGS));
        }
        assert!(
            breaker.record(true, false, start, &SETTINGS),
            "third failure opens"
        );
        assert_eq!(breaker.admit(start), Err(Duration::from_secs(30)));
        let later = start + Duration::from_secs(30);
        assert_eq!(breaker.admit(later), Ok(true), "one probe");
        assert_eq!(breaker.admit(later), Err(BUSY_WAIT), "and only one");
        assert!(
            breaker.record(true, true, later, &SETTINGS),
            "a failed probe opens again"
        );
        assert_eq!(
            breaker.admit(later),
            Err(Duration::from_secs(60)),
            "for twice as long"
        );
        let much_later = later + Duration::from_secs(60);
        assert_eq!(breaker.admit(much_later), Ok(true));
        assert!(breaker.record(false, true, much_later, &SETTINGS));
        assert_eq!(breaker.admit(much_later), Ok(false), "a good probe closes");
    }

    #[test]
    fn failed_probes_double_the_open_period_up_to_the_max_and_a_success_resets_it() {
        let mut breaker = Breaker::default();
        let mut now = Instant::now();
        for _ in 0..3 {
            breaker.record(true, false, now, &SETTINGS);
        }
        let mut periods = Vec::new();
        for _ in 0..6 {
            let Err(wait) = breaker.admit(now) else {
                panic!("the circuit is open")
            };
            periods.push(wait.as_secs());
            now += wait;
            assert_eq!(breaker.admit(now), Ok(true), "a probe once it is over");
            breaker.record(true, true, now, &SETTINGS);
        }
        assert_eq!(periods, [30, 60, 120, 240, 300, 300]);

        assert_eq!(breaker.admit(now + Duration::from_secs(300)), Ok(true));
        breaker.record(false, true, now, &SETTINGS);
        for _ in 0..3 {
            breaker.record(true, false, now, &SETTINGS);
        }
        assert_eq!(
            breaker.admit(now),
            Err(Duration::from_secs(30)),
            "after a success the next opening starts over"
        );
    }

    #[test]
    fn the_open_period_never_drops_below_the_first_one() {
        let settings = BreakerSettings {
            open_max: Duration::from_secs(1),
            ..SETTINGS
        };
        assert_eq!(settings.open_period(0), Duration::from_secs(30));
        assert_eq!(settings.open_period(u32::MAX), Duration::from_secs(30));
        assert_eq!(SETTINGS.open_period(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn the_breaker_opens_when_half_the_recent_attempts_fail() {
        let relaxed = BreakerSettings {
            consecutive_failures: 100,
            ..SETTINGS
        };
        let mut breaker = Breaker::default();
        let now = Instant::now();
        // Alternating outcomes never reach the consecutive threshold; 9 failures in 20 is
        // below half...
        for index in 0..RATIO_WINDOW {
            breaker.record(index % 2 == 0 && index > 0, false, now, &relaxed);
        }
        assert_eq!(breaker.circuit, Circuit::Closed);
        // ...and the next failure, pushing out a success, makes it half.
        assert!(breaker.record(true, false, now, &relaxed));
        assert!(matches!(breaker.circuit, Circuit::Open { .. }));
    }

    /// How many requests to `destination` are admitted before it is busy.
    async fn admitted(isolation: &Isolation, destination: &Destination) -> Vec<Pass> {
        let mut passes = Vec::new();
        while let Ok(pass) = isolation.admit(destination).await {
            passes.push(pass);
        }
        passes
    }

    #[tokio::test(start_paused = true)]
    async fn a_share_of_the_partitions_takes_its_share_of_the_slots_and_rate() {
        let isolation = Isolation::new(2, SETTINGS, IntGauge::new("open", "open").unwrap());
        let limit = RateLimit {
            per_minute: 100,
            burst: None,
        };
        let slots = destination(Some(10), None);
        let rated = destination(Some(1000), Some(limit.clone()));
        let (first, second) = (Part::new(vec![0, 1, 2], 6), Part::new(vec![3, 4, 5], 6));
        isolation.set_part(first.clone());
        let passes = admitted(&isolation, &slots).await;
        assert_eq!(passes.len() as u32, first.share(10, "d"));
        drop(passes);

        // The rate share: dropping each pass frees its slot, so only the rate stops them.
        let mut sent = 0;
        loop {
            match isolation.admit(&rated).await {
                Ok(_) => sent += 1,
                Err((held, _)) => {
                    assert_eq!(held, Held::RateLimited);
                    break;
                }
            }
        }
        assert_eq!(sent, first.share(100, "d"));
        assert_eq!(first.share(100, "d") + second.share(100, "d"), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn slots_shrink_as_requests_end_and_grow_at_once() {
        let isolation = Isolation::new(2, SETTINGS, IntGauge::new("open", "open").unwrap());
        let destination = destination(Some(6), None);
        let mut passes = admitted(&isolation, &destination).await;
        assert_eq!(passes.len(), 6);
        // Down to one slot (one partition of six) while six requests are in progress: none is
        // admitted until five of them have ended.
        isolation.set_part(Part::new(vec![0], 6));
        for _ in 0..5 {
            passes.pop();
            assert!(isolation.admit(&destination).await.is_err());
        }
        passes.pop();
        let one = admitted(&isolation, &destination).await;
        assert_eq!(one.len(), 1);
        // Back to every partition: six at once, the one in progress among them.
        isolation.set_part(Part::new((0..6).collect(), 6));
        let more = admitted(&isolation, &destination).await;
        assert_eq!(one.len() + more.len(), 6);
        // Shrinking with free slots takes them at once.
        drop((one, more));
        isolation.set_part(Part::new(vec![0, 1, 2], 6));
        assert_eq!(admitted(&isolation, &destination).await.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_limited_per_destination() {
        let isolation = isolation();
        let first = isolation.admit(&destination(None, None)).await.unwrap();
        let _second = isolation.admit(&destination(None, None)).await.unwrap();
        let waited = Instant::now();
        assert_eq!(
            isolation
                .admit(&destination(None, None))
                .await
                .unwrap_err()
                .0,
            Held::Busy
        );
        assert_eq!(
            waited.elapsed(),
            SLOT_WAIT,
            "held back once no slot freed up"
        );
        let mut other = destination(None, None);
        other.id = ResourceId::parse("other").unwrap();
        assert!(
            isolation.admit(&other).await.is_ok(),
            "another destination has its own slots"
        );
        isolation.finish(first, false);
        assert!(isolation.admit(&destination(None, None)).await.is_ok());
        // Its own limit replaces the default.
        let wide = destination(Some(5), None);
        let mut passes = Vec::new();
        for _ in 0..5 {
            passes.push(isolation.admit(&wide).await.unwrap());
        }
        assert_eq!(isolation.admit(&wide).await.unwrap_err().0, Held::Busy);
        drop(passes);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_waits_a_little_for_a_slot_and_no_more_jobs_wait_than_there_are_slots() {
        let isolation = Arc::new(isolation());
        let busy = destination(None, None);
        let first = isolation.admit(&busy).await.unwrap();
        let _second = isolation.admit(&busy).await.unwrap();
        let waiter = |isolation: &Arc<Isolation>| {
            let (isolation, busy) = (isolation.clone(), busy.clone());
            tokio::spawn(async move { isolation.admit(&busy).await })
        };
        let (a, b) = (waiter(&isolation), waiter(&isolation));
        while isolation.state(&busy).waiting.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        // Both of the destination's two waiting places are taken: a third job is held back
        // at once, without waiting.
        let started = Instant::now();
        assert_eq!(isolation.admit(&busy).await.unwrap_err().0, Held::Busy);
        assert_eq!(started.elapsed(), Duration::ZERO);
        // A slot freed within the wait goes to the first in line; the other gives up.
        tokio::time::sleep(SLOT_WAIT / 2).await;
        isolation.finish(first, false);
        let _slot = a
            .await
            .unwrap()
            .expect("the first in line gets the freed slot");
        assert_eq!(b.await.unwrap().unwrap_err().0, Held::Busy);
        assert_eq!(started.elapsed(), SLOT_WAIT);
        // Their places are free again.
        let (c, d) = (waiter(&isolation), waiter(&isolation));
        assert_eq!(c.await.unwrap().unwrap_err().0, Held::Busy);
        assert_eq!(d.await.unwrap().unwrap_err().0, Held::Busy);
        assert_eq!(started.elapsed(), SLOT_WAIT * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn no_job_waits_for_a_slot_of_an_open_circuit() {
        let isolation = isolation();
        let failing = destination(Some(3), None);
        for _ in 0..3 {
            let pass = isolation.admit(&failing).await.unwrap();
            isolation.finish(pass, true);
        }
        // The circuit is open; the slots taken by requests still in flight are not waited for.
        let mut passes = Vec::new();
        for _ in 0..3 {
            let state = isolation.state(&failing);
            passes.push(state.slots.permits.clone().try_acquire_owned().unwrap());
        }
        let started = Instant::now();
        assert_eq!(isolation.admit(&failing).await.unwrap_err().0, Held::Busy);
        assert_eq!(started.elapsed(), Duration::ZERO);
        drop(passes);
        assert_eq!(
            isolation.admit(&failing).await.unwrap_err().0,
            Held::CircuitOpen
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_holds_back_with_the_time_to_wait() {
        let isolation = isolation();
        let limited = destination(
            Some(100),
            Some(RateLimit {
                per_minute: 60,
                burst: Some(2),
            }),
        );
        let _a = isolation.admit(&limited).await.unwrap();
        let _b = isolation.admit(&limited).await.unwrap();
        let (held, wait) = isolation.admit(&limited).await.unwrap_err();
        assert_eq!(held, Held::RateLimited);
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_destination_gets_at_most_its_limit_in_any_minute() {
        let isolation = isolation();
        let limited = destination(
            Some(1000),
            Some(RateLimit {
                per_minute: 100,
                burst: None,
            }),
        );
        let start = Instant::now();
        let (mut sent, mut waits) = (0, Vec::new());
        // 150 jobs, one every 400 ms: 0 s .. 59.6 s.
        for _ in 0..150 {
            match isolation.admit(&limited).await {
                Ok(pass) => {
                    sent += 1;
                    isolation.finish(pass, false);
                }
                Err((held, wait)) => {
                    assert_eq!(held, Held::RateLimited);
                    waits.push(Instant::now() + wait - start);
                }
            }
            tokio::time::advance(Duration::from_millis(400)).await;
        }
        assert_eq!((sent, waits.len()), (100, 50));
        // Every held job is told to come back when the first request leaves the window.
        assert!(
            waits
                .iter()
                .all(|due| *due == Duration::from_millis(60_001)),
            "{waits:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_open_the_circuit_and_the_gauge_counts_it() {
        let isolation = isolation();
        for _ in 0..3 {
            let pass = isolation.admit(&destination(Some(10), None)).await.unwrap();
            isolation.finish(pass, true);
        }
        let (held, wait) = isolation
            .admit(&destination(Some(10), None))
            .await
            .unwrap_err();
        assert_eq!(held, Held::CircuitOpen);
        assert!(wait <= Duration::from_secs(30));
        assert_eq!(isolation.open_circuits.get(), 1);
    }
}
