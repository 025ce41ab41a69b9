//! The one source of wall-clock timestamps written into objects (creationTimestamp, managedFields, events).

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

/// Returns "now" for timestamps; tests can substitute a fixed or tokio-driven clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Wall-clock time anchored once at start and advanced by tokio's clock, so a paused tokio clock freezes it.
pub fn tokio_clock() -> Clock {
    let wall = Utc::now();
    let start = tokio::time::Instant::now();
    Arc::new(move || wall + (tokio::time::Instant::now() - start))
}

/// RFC 3339 with second precision, as Kubernetes serialises `metav1.Time`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
