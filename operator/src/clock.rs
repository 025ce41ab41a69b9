//! Wall-clock time for timestamps written into objects, derived from tokio's clock so tests can
//! run under a paused (auto-advancing) runtime.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Source of "now" for everything the operator writes (condition times, registry ages).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// Wall time anchored once at construction, advanced by `tokio::time::Instant`.
pub struct TokioClock {
    anchor_wall: Timestamp,
    anchor: tokio::time::Instant,
}

impl TokioClock {
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(Self {
            anchor_wall: Timestamp::now(),
            anchor: tokio::time::Instant::now(),
        })
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed =
            SignedDuration::try_from(self.anchor.elapsed()).unwrap_or(SignedDuration::MAX);
        self.anchor_wall
            .checked_add(elapsed)
            .unwrap_or(self.anchor_wall)
    }
}

/// `later - earlier`, saturating at zero.
pub fn elapsed(earlier: Timestamp, later: Timestamp) -> Duration {
    let nanos = later.as_nanosecond() - earlier.as_nanosecond();
    Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}
