//! What the template limit tests share: an allocator that measures what one thread allocates,
//! and a trigger rendered against a sample payload.
//!
//! The workspace forbids `unsafe`, so the allocator is `tracking-allocator`'s wrapper around the
//! system allocator; its hooks run on the allocating thread, so thread-locals keep tests that
//! run in parallel apart.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::cell::Cell;
use std::sync::{Arc, Once};

use hookline_processor::template::Limits;
use hookline_processor::trigger::RenderedAction;
use hookline_processor::{CompiledTrigger, RenderError};
use hookline_schemas::Trigger;
use minijinja::{Value, context};
use tracking_allocator::{AllocationGroupId, AllocationRegistry, AllocationTracker, Allocator};

#[global_allocator]
static ALLOCATOR: Allocator<System> = Allocator::system();

/// The default render cap, 256 KiB.
pub const CAP: usize = 256 * 1024;

/// The bytes the default fuel of 100,000 pays for: minijinja charges one fuel per 64 bytes.
pub const FUEL_BYTES: usize = 100_000 * 64;

/// The largest single allocation a render may ask for: a buffer growing by doubling to hold what
/// the fuel pays for is at most twice that. The renders these tests make asked for 100 MB to
/// 1 PB before they were bounded.
pub const MAX_ALLOCATION: usize = 2 * FUEL_BYTES;

/// The most a render may hold at once: the growing buffer, the one it replaces, and the data it
/// was built from.
pub const MAX_LIVE: usize = 4 * FUEL_BYTES;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Records, per thread, the largest allocation and the peak of bytes allocated and not freed.
struct PerThread;

impl AllocationTracker for PerThread {
    fn allocated(&self, _addr: usize, size: usize, _wrapped: usize, _group: AllocationGroupId) {
        // `try_with`: an allocation may come while the thread's locals are being torn down.
        let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        let _ = LIVE.try_with(|live| {
            live.set(live.get().saturating_add_unsigned(size));
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
        });
    }

    fn deallocated(
        &self,
        _addr: usize,
        size: usize,
        _wrapped: usize,
        _source: AllocationGroupId,
        _current: AllocationGroupId,
    ) {
        let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub_unsigned(size)));
    }
}

/// What a piece of code allocated on the current thread.
#[derive(Debug, Clone, Copy)]
pub struct Allocations {
    /// The largest single allocation, in bytes.
    pub largest: usize,
    /// The most bytes held at once, above what was held before.
    pub peak: usize,
}

impl Allocations {
    /// Fails the test if a render allocated more than a bounded render can.
    pub fn assert_bounded(&self) {
        assert!(
            self.largest <= MAX_ALLOCATION,
            "one allocation of {} bytes, more than {MAX_ALLOCATION}",
            self.largest
        );
        assert!(
            self.peak <= MAX_LIVE,
            "{} bytes held at once, more than {MAX_LIVE}",
            self.peak
        );
    }
}

/// Runs `work` and reports what it allocated on this thread.
pub fn allocations<T>(work: impl FnOnce() -> T) -> (T, Allocations) {
    static TRACKING: Once = Once::new();
    TRACKING.call_once(|| {
        AllocationRegistry::set_global_tracker(PerThread).expect("the only tracker");
        AllocationRegistry::enable_tracking();
    });
    LARGEST.set(0);
    let before = LIVE.get();
    PEAK.set(before);
    let output = work();
    let allocated = Allocations {
        largest: LARGEST.get(),
        peak: usize::try_from(PEAK.get() - before).unwrap_or(0),
    };
    (output, allocated)
}

/// A trigger on source `s` whose one action posts `body` to destination `d`.
pub fn trigger(body: &str) -> Arc<Trigger> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "id": "t",
            "when": {"sources": ["s"]},
            "actions": [{"destination": "d", "body": body}],
        }))
        .unwrap(),
    )
}

/// The variables a sample event gives templates.
pub fn sample() -> Value {
    context! { payload => context! { text => "hello webhook world", count => 3, tags => vec!["a", "b"] } }
}

/// Compiles `body` with the default limits and renders it against [`sample`].
pub fn render(body: &str) -> Result<RenderedAction, RenderError> {
    render_with(&Limits::default(), body)
}

/// [`render`] with other limits.
pub fn render_with(limits: &Limits, body: &str) -> Result<RenderedAction, RenderError> {
    let compiled = CompiledTrigger::build(trigger(body), limits).expect("the template compiles");
    compiled.render(0, &sample())
}
