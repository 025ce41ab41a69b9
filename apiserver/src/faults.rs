//! Run-time fault injection for resilience tests: drop or expire watches, error a share of requests, add latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::status::ApiError;
use crate::store::Store;

/// What existing watch streams are told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchSignal {
    #[default]
    None,
    /// Close the stream without an error (as a load balancer or apiserver restart would).
    Drop,
    /// Send an ERROR event with 410 Gone, then close.
    Expire,
}

#[derive(Default)]
struct ErrorRate {
    share: f64,
    code: u16,
    /// Bresenham-style accumulator: exactly `share` of requests fail, deterministically.
    acc: f64,
}

struct Inner {
    signal: watch::Sender<(u64, WatchSignal)>,
    errors: Mutex<ErrorRate>,
    latency_ms: AtomicU64,
    store: Arc<Store>,
}

/// Handle to inject faults at run time; cloning shares the state.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Inner>,
}

impl Faults {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        let (signal, _) = watch::channel((0, WatchSignal::None));
        Faults {
            inner: Arc::new(Inner {
                signal,
                errors: Mutex::new(ErrorRate::default()),
                latency_ms: AtomicU64::new(0),
                store,
            }),
        }
    }

    /// Closes every open watch stream (clients reconnect from their last resourceVersion).
    pub fn drop_watches(&self) {
        self.inner.signal.send_modify(|(n, s)| {
            *n += 1;
            *s = WatchSignal::Drop;
        });
    }

    /// Sends 410 Gone to every open watch and forgets the event history, so reconnects from an old
    /// resourceVersion also get 410 and the clients relist.
    pub fn expire_watches(&self) {
        self.inner.store.compact_history();
        self.inner.signal.send_modify(|(n, s)| {
            *n += 1;
            *s = WatchSignal::Expire;
        });
    }

    /// Answers `share` (0.0..=1.0) of API requests with `code` (409, 429 or 500).
    pub fn set_error_rate(&self, share: f64, code: u16) {
        let mut e = self.inner.errors.lock().unwrap_or_else(|e| e.into_inner());
        *e = ErrorRate {
            share: share.clamp(0.0, 1.0),
            code,
            acc: 0.0,
        };
    }

    /// Delays every API request by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.inner
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// Removes error rate and latency.
    pub fn clear(&self) {
        self.set_error_rate(0.0, 500);
        self.set_latency(Duration::ZERO);
    }

    pub(crate) fn watch_signals(&self) -> watch::Receiver<(u64, WatchSignal)> {
        self.inner.signal.subscribe()
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.inner.latency_ms.load(Ordering::Relaxed))
    }

    /// The injected error for this request, if it is one of the unlucky share.
    pub(crate) fn injected_error(&self) -> Option<ApiError> {
        let mut e = self.inner.errors.lock().unwrap_or_else(|e| e.into_inner());
        if e.share <= 0.0 {
            return None;
        }
        e.acc += e.share;
        if e.acc < 1.0 {
            return None;
        }
        e.acc -= 1.0;
        Some(match e.code {
            409 => ApiError::new(
                409,
                "Conflict",
                "injected fault: the object has been modified; please apply your changes to the latest version and try again",
            ),
            429 => ApiError::new(
                429,
                "TooManyRequests",
                "injected fault: too many requests, please try again later",
            ),
            code => ApiError::new(
                code,
                "InternalError",
                "injected fault: an error on the server has prevented the request from succeeding",
            ),
        })
    }
}
