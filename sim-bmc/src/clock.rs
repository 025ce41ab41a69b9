//! Wall-clock timestamps derived from tokio's clock, so tests under a paused clock stay deterministic.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// Produces the wall-clock time written into event logs and Redfish payloads.
pub type ClockFn = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// A clock anchored at `epoch` that advances with `tokio::time::Instant`, so a paused tokio clock
/// freezes timestamps and `tokio::time::advance` moves them.
pub fn tokio_clock(epoch: DateTime<Utc>) -> ClockFn {
    let start = tokio::time::Instant::now();
    Arc::new(move || {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(start);
        epoch + chrono::Duration::from_std(elapsed).unwrap_or_default()
    })
}

/// The default clock: the real time once at start, then tokio's monotonic clock.
pub fn default_clock() -> ClockFn {
    tokio_clock(Utc::now())
}
