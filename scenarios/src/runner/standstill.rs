//! Stops a simulated run whose virtual clock stands still. A paused clock only moves on when every task
//! waits, so work that loops at one instant (a livelock) would keep the run's one thread busy forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long (wall time) the virtual clock may stand still before the run is stopped. Generous: a large
/// fleet may spend minutes of CPU at one instant (10,000 servers created at once).
pub const LIMIT: Duration = Duration::from_secs(300);

/// Watches a simulated run from a thread of its own; dropping it ends the watch.
pub struct Standstill {
    stuck: CancellationToken,
    /// Virtual milliseconds since the start, as last seen by the run's own thread.
    reached_ms: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    /// The watching thread, woken on drop so that it ends at once.
    watcher: std::thread::Thread,
    _marker: tokio_util::task::AbortOnDropHandle<()>,
}

impl Standstill {
    /// Starts watching: the run's thread stamps each virtual second, a thread of its own checks the stamp.
    pub fn start(limit: Duration) -> Self {
        let stuck = CancellationToken::new();
        let reached_ms = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let stamp = reached_ms.clone();
        let marker = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                stamp.store(ms, Ordering::Relaxed);
            }
        }));
        let (seen, finished, signal) = (reached_ms.clone(), done.clone(), stuck.clone());
        let watcher = std::thread::spawn(move || {
            let poll = limit.min(Duration::from_secs(5));
            let mut last = (seen.load(Ordering::Relaxed), std::time::Instant::now());
            while !finished.load(Ordering::Relaxed) {
                std::thread::park_timeout(poll);
                let now = seen.load(Ordering::Relaxed);
                if now != last.0 {
                    last = (now, std::time::Instant::now());
                } else if last.1.elapsed() >= limit {
                    signal.cancel();
                    return;
                }
            }
        })
        .thread()
        .clone();
        Standstill {
            stuck,
            reached_ms,
            done,
            watcher,
            _marker: marker,
        }
    }

    /// Resolves once the virtual clock has stood still for the limit; yields the virtual time it stood at.
    pub async fn stuck(&self) -> Duration {
        self.stuck.cancelled().await;
        Duration::from_millis(self.reached_ms.load(Ordering::Relaxed))
    }
}

impl Drop for Standstill {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        self.watcher.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_that_stands_still_is_reported_and_a_moving_one_is_not() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let watch = Standstill::start(Duration::from_millis(200));
            // Time moves on (each sleep lets the paused clock jump) for longer than the limit: no alarm.
            let wall = std::time::Instant::now();
            while wall.elapsed() < Duration::from_millis(600) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(!watch.stuck.is_cancelled(), "a moving clock was reported");
            // A task that never waits holds the clock at one instant: the alarm goes off. (It gives up
            // after 30 s of wall time, so that a broken alarm fails the timeout below instead of hanging.)
            tokio::spawn(async {
                let wall = std::time::Instant::now();
                while wall.elapsed() < Duration::from_secs(30) {
                    tokio::task::yield_now().await;
                }
            });
            let at = tokio::time::timeout(Duration::from_secs(3600), watch.stuck()).await;
            assert!(at.is_ok(), "a standing clock was not reported");
        });
    }
}
