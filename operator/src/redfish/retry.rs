//! Bounded retries of Redfish requests: 5xx and transport failures only, with full-jitter
//! exponential backoff; actions only when the BMC certainly did not act.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, header};
use rand::Rng as _;

use super::client::{RedfishClient, Result, header_value};
use super::error::RedfishError;

/// Whether a request may be repeated after a failure that might have reached the BMC.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Idempotency {
    Idempotent,
    /// Actions (POST): only retried when the BMC certainly did not act (503, connect failure).
    Action,
}

impl RedfishClient {
    pub(super) async fn send_with_retries(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        authenticated: bool,
        if_match: Option<String>,
        idempotency: Idempotency,
    ) -> Result<http::Response<Bytes>> {
        let mut last = None;
        for attempt in 0..self.inner.options.max_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
            let mut req = self.build(method.clone(), path, body.clone(), authenticated)?;
            if let Some(etag) = &if_match {
                req.headers_mut()
                    .insert(header::IF_MATCH, header_value(etag)?);
            }
            let result = if authenticated {
                self.send_authenticated(req, path).await
            } else {
                self.send_once(req).await
            };
            match result {
                Ok(r) => return Ok(r),
                Err(e) if retryable(&e, idempotency) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Full-jitter exponential backoff: uniform in [d/2, d], d = min(base·2^(n-1), max).
    fn backoff(&self, attempt: u32) -> Duration {
        let opts = &self.inner.options;
        let exp = opts
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(16));
        let cap = exp.min(opts.backoff_max);
        let half = cap / 2;
        half + cap
            .saturating_sub(half)
            .mul_f64(rand::rng().random_range(0.0..=1.0))
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

const CONNECT_PREFIX: &str = "connect: ";

pub(super) fn transport_error(error: tower::BoxError) -> RedfishError {
    let connect = error
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .is_some_and(hyper_util::client::legacy::Error::is_connect);
    let message = error_chain(&*error);
    if connect {
        RedfishError::Connection(format!("{CONNECT_PREFIX}{message}"))
    } else {
        RedfishError::Connection(message)
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}
