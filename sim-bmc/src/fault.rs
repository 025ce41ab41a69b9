//! Fault injection per BMC and per endpoint, set from the fleet file or at run time, deterministic under the seed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How an unreachable BMC fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum UnreachableMode {
    /// Nothing listens: connections are refused.
    #[default]
    Refuse,
    /// Connections are accepted and never answered, so clients run into their timeouts.
    BlackHole,
}

/// One kind of misbehaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum FaultKind {
    Unreachable {
        #[serde(default)]
        mode: UnreachableMode,
    },
    /// Every matching request is answered this much later.
    Latency { ms: u64 },
    /// This fraction (0..=1) of matching requests fails with `status` (default 503).
    ServerErrors {
        rate: f64,
        #[serde(default = "default_error_status")]
        status: u16,
    },
    /// Correct credentials are rejected with 401.
    AuthFailure,
    /// Reset actions answer success but the machine does nothing.
    ResetIgnored,
    /// Powering on never completes.
    StuckPoweringOn,
    /// `PowerState` is reported as the opposite of the truth.
    WrongPowerState,
    /// At most `max` sessions can exist; further logins get 503 with `Base.SessionLimitExceeded`.
    SessionLimit { max: usize },
    /// Every GET returns a new `ETag`, so `If-Match` from an earlier GET fails.
    EtagChurn,
}

fn default_error_status() -> u16 {
    503
}

/// A fault, optionally limited to request paths starting with `endpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultSpec {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Longest injected latency: beyond ten minutes every client has timed out, which is `blackHole`.
pub const MAX_LATENCY_MS: u64 = 600_000;
/// Most faults one BMC holds at once (each request walks the list).
pub const MAX_FAULTS: usize = 64;
/// Longest `endpoint` prefix (a Redfish path).
pub const MAX_ENDPOINT_LEN: usize = 1024;
/// Most sessions a `sessionLimit` may allow (the default limit is 64).
pub const MAX_SESSION_LIMIT: usize = 10_000;

/// Why a fault cannot be injected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidFault(pub String);

impl FaultSpec {
    pub fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            endpoint: None,
        }
    }

    /// Checks the values a fault carries: HTTP error statuses 400–599, rates within 0–1, latencies
    /// up to `MAX_LATENCY_MS`, endpoints that are paths.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        let bad = |m: String| Err(InvalidFault(m));
        match &self.kind {
            FaultKind::ServerErrors { rate, status } => {
                if !(0.0..=1.0).contains(rate) {
                    return bad(format!("serverErrors: rate {rate} is not within 0..=1"));
                }
                if !(400..=599).contains(status) {
                    return bad(format!(
                        "serverErrors: status {status} is not an HTTP error status (400-599)"
                    ));
                }
            }
            FaultKind::Latency { ms } if *ms > MAX_LATENCY_MS => {
                return bad(format!(
                    "latency: {ms} ms exceeds {MAX_LATENCY_MS} ms (use unreachable with mode blackHole for a BMC that never answers)"
                ));
            }
            FaultKind::SessionLimit { max } if *max > MAX_SESSION_LIMIT => {
                return bad(format!(
                    "sessionLimit: max {max} exceeds {MAX_SESSION_LIMIT}"
                ));
            }
            _ => {}
        }
        if let Some(endpoint) = &self.endpoint
            && (!endpoint.starts_with('/') || endpoint.len() > MAX_ENDPOINT_LEN)
        {
            return bad(format!(
                "endpoint must be a path starting with / of at most {MAX_ENDPOINT_LEN} bytes"
            ));
        }
        Ok(())
    }

    fn applies_to(&self, path: &str) -> bool {
        self.endpoint
            .as_deref()
            .is_none_or(|prefix| path.starts_with(prefix))
    }
}

/// Checks a whole fault list: each fault, and at most `MAX_FAULTS` of them.
pub fn validate_all(faults: &[FaultSpec]) -> Result<(), InvalidFault> {
    if faults.len() > MAX_FAULTS {
        return Err(InvalidFault(format!(
            "{} faults exceed the limit of {MAX_FAULTS} per BMC",
            faults.len()
        )));
    }
    for (i, f) in faults.iter().enumerate() {
        f.validate()
            .map_err(|e| InvalidFault(format!("fault {i}: {e}")))?;
    }
    Ok(())
}

/// What the HTTP layer must do to one request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RequestFaults {
    pub latency: Duration,
    pub error_status: Option<u16>,
    pub auth_failure: bool,
    pub etag_churn: bool,
    pub black_hole: bool,
}

struct Inner {
    faults: RwLock<Vec<FaultSpec>>,
    any: AtomicBool,
    rng: Mutex<ChaCha8Rng>,
    changed: tokio::sync::watch::Sender<u64>,
}

/// Shared, run-time-settable fault state of one BMC.
#[derive(Clone)]
pub struct FaultHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FaultHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultHandle")
            .field("faults", &self.list())
            .finish()
    }
}

impl FaultHandle {
    /// Creates the fault state; `seed` makes the error-rate draws reproducible.
    pub fn new(seed: u64, initial: Vec<FaultSpec>) -> Self {
        let (changed, _) = tokio::sync::watch::channel(0);
        let handle = Self {
            inner: Arc::new(Inner {
                any: AtomicBool::new(!initial.is_empty()),
                faults: RwLock::new(initial),
                rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
                changed,
            }),
        };
        handle.notify();
        handle
    }

    /// Changes whenever the fault set does.
    pub fn generation(&self) -> u64 {
        *self.inner.changed.borrow()
    }

    pub fn list(&self) -> Vec<FaultSpec> {
        self.inner
            .faults
            .read()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    /// Replaces all faults, after checking each (`FaultSpec::validate`) and their number (`MAX_FAULTS`).
    pub fn try_set(&self, faults: Vec<FaultSpec>) -> Result<(), InvalidFault> {
        validate_all(&faults)?;
        if let Ok(mut guard) = self.inner.faults.write() {
            self.inner.any.store(!faults.is_empty(), Ordering::Release);
            *guard = faults;
        }
        self.notify();
        Ok(())
    }

    /// Adds one fault, checked as by `try_set`.
    pub fn try_add(&self, fault: FaultSpec) -> Result<(), InvalidFault> {
        let mut all = self.list();
        all.push(fault);
        self.try_set(all)
    }

    /// Replaces all faults. For code that builds its faults itself; untrusted input goes through
    /// `try_set`.
    ///
    /// # Panics
    /// On a fault `try_set` rejects: that is a bug in the calling code.
    pub fn set(&self, faults: Vec<FaultSpec>) {
        if let Err(e) = self.try_set(faults) {
            panic!("invalid fault: {e}");
        }
    }

    /// Adds one fault (see `set`).
    ///
    /// # Panics
    /// On a fault `try_add` rejects.
    pub fn add(&self, fault: FaultSpec) {
        if let Err(e) = self.try_add(fault) {
            panic!("invalid fault: {e}");
        }
    }

    pub fn clear(&self) {
        self.set(Vec::new());
    }

    /// A receiver that changes whenever the faults do (used by listeners to stop/restart accepting).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    fn notify(&self) {
        self.inner.changed.send_modify(|v| *v += 1);
    }

    fn any(&self) -> bool {
        self.inner.any.load(Ordering::Acquire)
    }

    fn find<T>(&self, path: Option<&str>, f: impl Fn(&FaultKind) -> Option<T>) -> Option<T> {
        if !self.any() {
            return None;
        }
        let guard = self.inner.faults.read().ok()?;
        guard
            .iter()
            .filter(|s| path.is_none_or(|p| s.applies_to(p)))
            .find_map(|s| f(&s.kind))
    }

    pub fn unreachable(&self) -> Option<UnreachableMode> {
        self.find(None, |k| match k {
            FaultKind::Unreachable { mode } => Some(*mode),
            _ => None,
        })
    }

    pub fn reset_ignored(&self) -> bool {
        self.find(None, |k| matches!(k, FaultKind::ResetIgnored).then_some(()))
            .is_some()
    }

    pub fn stuck_powering_on(&self) -> bool {
        self.find(None, |k| {
            matches!(k, FaultKind::StuckPoweringOn).then_some(())
        })
        .is_some()
    }

    pub fn wrong_power_state(&self) -> bool {
        self.find(None, |k| {
            matches!(k, FaultKind::WrongPowerState).then_some(())
        })
        .is_some()
    }

    pub fn auth_failure(&self) -> bool {
        self.find(None, |k| matches!(k, FaultKind::AuthFailure).then_some(()))
            .is_some()
    }

    pub fn session_limit(&self) -> Option<usize> {
        self.find(None, |k| match k {
            FaultKind::SessionLimit { max } => Some(*max),
            _ => None,
        })
    }

    /// The faults that apply to one request for `path`; draws from the seeded RNG for error rates.
    pub fn for_request(&self, path: &str) -> RequestFaults {
        let mut out = RequestFaults::default();
        if !self.any() {
            return out;
        }
        let Ok(guard) = self.inner.faults.read() else {
            return out;
        };
        for spec in guard.iter().filter(|s| s.applies_to(path)) {
            match &spec.kind {
                FaultKind::Latency { ms } => {
                    out.latency = out.latency.saturating_add(Duration::from_millis(*ms))
                }
                FaultKind::ServerErrors { rate, status } => {
                    let draw: f64 = self.inner.rng.lock().map(|mut r| r.random()).unwrap_or(1.0);
                    if draw < *rate {
                        out.error_status = Some(*status);
                    }
                }
                FaultKind::AuthFailure => out.auth_failure = true,
                FaultKind::EtagChurn => out.etag_churn = true,
                FaultKind::Unreachable {
                    mode: UnreachableMode::BlackHole,
                } => out.black_hole = true,
                _ => {}
            }
        }
        out
    }
}
