//! Bounded retries of Redfish requests: 5xx and transport failures only, with full-jitter
//! exponential backoff; actions only when the BMC certainly did not act.

use std::time::Duration;

use super::error::{RedfishError, Result};
use super::wire::CONNECT_PREFIX;

/// Whether a request may be repeated after a failure that might have reached the BMC.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Idempotency {
    Idempotent,
    /// Actions (POST): only retried when the BMC certainly did not act (503, connect failure).
    Action,
}

/// How often and how far apart a request is tried.
#[derive(Clone, Debug)]
pub(super) struct Policy {
    /// Total attempts, including the first (at least one is made).
    pub attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub jitter: clock::Entropy,
}

impl Policy {
    /// Runs `attempt` until it succeeds, fails for good, or the attempts are used up.
    pub(super) async fn run<T, F, Fut>(&self, idempotency: Idempotency, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut last = None;
        for n in 0..self.attempts.max(1) {
            if n > 0 {
                tokio::time::sleep(self.backoff(n)).await;
            }
            match attempt().await {
                Ok(r) => return Ok(r),
                Err(e) if retryable(&e, idempotency) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Full-jitter exponential backoff: uniform in [d/2, d], d = min(base·2^(n-1), max).
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(16));
        let cap = exp.min(self.backoff_max);
        let half = cap / 2;
        half + cap.saturating_sub(half).mul_f64(self.jitter.unit())
    }
}

fn retryable(error: &RedfishError, idempotency: Idempotency) -> bool {
    match idempotency {
        Idempotency::Idempotent => error.is_transient(),
        Idempotency::Action => match error {
            RedfishError::Server { status: 503, .. } => true,
            RedfishError::Connection(message) => message.starts_with(CONNECT_PREFIX),
            _ => false,
        },
    }
}
