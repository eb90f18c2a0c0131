//! The GCRA quota of a [`RateLimit`], shared by ingest (per source and organisation) and the
//! dispatcher (per destination).

use std::num::NonZeroU32;

use governor::Quota;
use hookline_schemas::RateLimit;

/// The quota of a limit; zeros (refused by validation) are read as 1.
pub fn quota(limit: &RateLimit) -> Quota {
    let per_minute = NonZeroU32::new(limit.per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = limit.burst.and_then(NonZeroU32::new).unwrap_or(per_minute);
    Quota::per_minute(per_minute).allow_burst(burst)
}
