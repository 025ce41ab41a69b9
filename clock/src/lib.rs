//! One clock and one random source for the whole workspace.
//! Time is a wall anchor advanced by tokio's clock, so a paused runtime freezes it and a simulated run
//! (fixed anchor, seeded randomness) writes the same timestamps, uids and tokens every time.

mod entropy;

pub use entropy::{Entropy, derive_seed};

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use jiff::SignedDuration;
pub use jiff::Timestamp;

/// "Now" for everything that writes timestamps; cheap to clone, all clones agree.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    anchor_wall: Timestamp,
    anchor: tokio::time::Instant,
    simulated: bool,
}

impl Clock {
    /// The real time, read once, then advanced by tokio's clock.
    pub fn wall() -> Self {
        Self {
            anchor_wall: Timestamp::now(),
            anchor: tokio::time::Instant::now(),
            simulated: false,
        }
    }

    /// A fixed `epoch` advanced by tokio's clock: on a paused runtime two runs read the same times.
    pub fn simulated(epoch: Timestamp) -> Self {
        Self {
            anchor_wall: epoch,
            anchor: tokio::time::Instant::now(),
            simulated: true,
        }
    }

    /// Whether this clock was anchored at a fixed epoch rather than the real time.
    pub fn is_simulated(&self) -> bool {
        self.simulated
    }

    pub fn now(&self) -> Timestamp {
        let elapsed =
            SignedDuration::try_from(self.anchor.elapsed()).unwrap_or(SignedDuration::MAX);
        self.anchor_wall
            .checked_add(elapsed)
            .unwrap_or(self.anchor_wall)
    }

    /// [`Clock::now`] for the crates that still speak chrono.
    pub fn now_chrono(&self) -> DateTime<Utc> {
        to_chrono(self.now())
    }

    /// How long ago `earlier` was, saturating at zero.
    pub fn since(&self, earlier: Timestamp) -> Duration {
        elapsed(earlier, self.now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::wall()
    }
}

/// `later - earlier`, saturating at zero.
pub fn elapsed(earlier: Timestamp, later: Timestamp) -> Duration {
    let nanos = later.as_nanosecond() - earlier.as_nanosecond();
    Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}

pub fn to_chrono(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().unsigned_abs())
        .unwrap_or_default()
}

/// RFC 3339 with second precision, as Kubernetes serialises `metav1.Time`.
pub fn format_k8s(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses what [`format_k8s`] (or any RFC 3339 writer) produced.
pub fn parse_k8s(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_paused_runtime_freezes_and_advances_the_clock() {
        let epoch: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = Clock::simulated(epoch);
        assert_eq!(clock.now(), epoch);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(
            clock.now(),
            "2026-01-01T00:01:30Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(clock.since(epoch), Duration::from_secs(90));
        assert_eq!(format_k8s(clock.now_chrono()), "2026-01-01T00:01:30Z");
        assert_eq!(clock.clone().now(), clock.now());
    }

    #[test]
    fn elapsed_saturates_at_zero_and_formats_round_trip() {
        let a: Timestamp = "2026-01-01T00:00:05Z".parse().unwrap();
        let b: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(elapsed(a, b), Duration::ZERO);
        assert_eq!(elapsed(b, a), Duration::from_secs(5));
        let t = to_chrono(a);
        assert_eq!(parse_k8s(&format_k8s(t)), Some(t));
    }
}
