//! The readiness gate in front of every power-on and boot-type reset.
//!
//! `upstream`: the referenced ServerBootConfiguration exists and `status.state == "Ready"`.
//! `strict` (default) additionally requires that the Ready is for the current spec: no condition
//! stamped with `observedGeneration` may lag `metadata.generation`
//! (`ServerBootConfiguration::is_ready_for_current_generation`). A backend that stamps nothing is
//! judged by `state` alone, as upstream. `Error` is reported with the backend's reason and message.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use metal_api::{ServerBootConfiguration, ServerBootConfigurationState};

use crate::config::ReadinessGate;
use crate::keys::gate as reasons;

/// The gate's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    /// The Server references no boot configuration.
    NotReferenced,
    /// The referenced object does not exist.
    Missing {
        namespace: String,
        name: String,
    },
    /// `state` empty, `Pending` or a value we do not know.
    Pending {
        state: String,
    },
    /// The backend reported `Error`; reason/message from its failing condition.
    Error {
        reason: String,
        message: String,
    },
    /// `Ready`, but for an older generation of the spec.
    Stale {
        observed: i64,
        generation: i64,
    },
}

impl Verdict {
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready)
    }

    /// `(reason, message)` for the Server's `BootConfigurationReady` condition.
    pub fn condition(&self) -> (&str, String) {
        match self {
            Self::Ready => (reasons::REASON_READY, "boot configuration is ready".into()),
            Self::NotReferenced => (
                reasons::REASON_NOT_REFERENCED,
                "server references no boot configuration".into(),
            ),
            Self::Missing { namespace, name } => (
                reasons::REASON_MISSING,
                format!("ServerBootConfiguration {namespace}/{name} not found"),
            ),
            Self::Pending { state } if state.is_empty() => (
                reasons::REASON_PENDING,
                "boot configuration has no state yet".into(),
            ),
            Self::Pending { state } => (
                reasons::REASON_PENDING,
                format!("boot configuration is {state}"),
            ),
            Self::Error { reason, message } => (reason.as_str(), message.clone()),
            Self::Stale {
                observed,
                generation,
            } => (
                reasons::REASON_STALE,
                format!(
                    "boot configuration is Ready for generation {observed}, spec is at generation {generation}"
                ),
            ),
        }
    }
}

/// Judges an SBC (`None` = not found) under the given gate mode.
pub fn evaluate(
    sbc: Option<&ServerBootConfiguration>,
    mode: ReadinessGate,
    reference: (&str, &str),
) -> Verdict {
    let Some(sbc) = sbc else {
        return Verdict::Missing {
            namespace: reference.0.into(),
            name: reference.1.into(),
        };
    };
    let status = sbc.status.clone().unwrap_or_default();
    let state = status.state.clone();
    match state {
        Some(ServerBootConfigurationState::Ready) => {}
        Some(ServerBootConfigurationState::Error) if mode == ReadinessGate::Strict => {
            return error_verdict(&status.conditions);
        }
        other => {
            return Verdict::Pending {
                state: other.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            };
        }
    }
    if mode == ReadinessGate::Upstream {
        return Verdict::Ready;
    }
    if sbc.is_ready_for_current_generation() {
        return Verdict::Ready;
    }
    let generation = sbc.metadata.generation.unwrap_or(0);
    let observed = status
        .conditions
        .iter()
        .filter_map(|c| c.observed_generation)
        .min()
        .unwrap_or(0);
    Verdict::Stale {
        observed,
        generation,
    }
}

fn error_verdict(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Verdict {
    // The backend's own explanation: the most recent condition that is not True.
    let failing = conditions
        .iter()
        .filter(|c| c.status != "True")
        .max_by_key(|c| c.last_transition_time.0);
    match failing {
        Some(c) => Verdict::Error {
            reason: c.reason.clone(),
            message: c.message.clone(),
        },
        None => Verdict::Error {
            reason: reasons::REASON_ERROR.into(),
            message: "boot configuration is in Error".into(),
        },
    }
}

/// Per-Server bounded exponential backoff for looking again at a closed gate. The watch on
/// ServerBootConfigurations normally wakes the Server first; this is the safety net for a
/// wake-up that is lost anyway, so that no Server waits a whole resync interval for nothing.
#[derive(Default)]
pub struct RecheckBackoff(Mutex<HashMap<String, u32>>);

impl RecheckBackoff {
    pub const MIN: Duration = Duration::from_millis(500);
    pub const MAX: Duration = Duration::from_secs(30);

    /// The next delay for `server` (doubling from [`Self::MIN`], never above `MAX` nor `cap`).
    pub fn next(&self, server: &str, cap: Duration) -> Duration {
        let mut attempts = self.lock();
        let attempt = attempts.entry(server.to_owned()).or_insert(0);
        let delay = Self::MIN.saturating_mul(1u32 << (*attempt).min(16));
        *attempt = attempt.saturating_add(1);
        delay.min(Self::MAX).min(cap)
    }

    /// The gate opened (or the Server is gone): start from `MIN` next time.
    pub fn reset(&self, server: &str) {
        self.lock().remove(server);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use metal_api::ServerBootConfigurationStatus;

    fn sbc(state: &str, generation: i64, stamps: &[(i64, &str)]) -> ServerBootConfiguration {
        let mut sbc = ServerBootConfiguration::new("s", Default::default());
        sbc.metadata.generation = Some(generation);
        sbc.status = Some(ServerBootConfigurationStatus {
            state: (!state.is_empty()).then(|| state.into()),
            conditions: stamps
                .iter()
                .map(|(g, status)| Condition {
                    type_: format!("C{g}"),
                    status: (*status).into(),
                    reason: "Because".into(),
                    message: "the image does not resolve".into(),
                    observed_generation: Some(*g),
                    last_transition_time: Time(
                        k8s_openapi::jiff::Timestamp::from_second(*g).unwrap(),
                    ),
                })
                .collect(),
        });
        sbc
    }

    const REF: (&str, &str) = ("ns", "s");

    #[test]
    fn recheck_backoff_doubles_is_bounded_and_resets() {
        let backoff = RecheckBackoff::default();
        let cap = Duration::from_secs(120);
        let delays: Vec<_> = (0..9).map(|_| backoff.next("a", cap)).collect();
        assert_eq!(delays[0], RecheckBackoff::MIN);
        assert_eq!(delays[1], RecheckBackoff::MIN * 2);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*delays.last().unwrap(), RecheckBackoff::MAX);
        assert_eq!(
            backoff.next("b", Duration::from_millis(100)),
            Duration::from_millis(100)
        );
        backoff.reset("a");
        assert_eq!(backoff.next("a", cap), RecheckBackoff::MIN);
        for _ in 0..100 {
            assert!(backoff.next("a", cap) <= RecheckBackoff::MAX);
        }
    }

    #[test]
    fn strict_requires_current_generation() {
        let strict = ReadinessGate::Strict;
        assert_eq!(
            evaluate(Some(&sbc("Ready", 1, &[])), strict, REF),
            Verdict::Ready
        );
        assert_eq!(
            evaluate(Some(&sbc("Ready", 2, &[(2, "True")])), strict, REF),
            Verdict::Ready
        );
        assert_eq!(
            evaluate(
                Some(&sbc("Ready", 3, &[(2, "True"), (3, "True")])),
                strict,
                REF
            ),
            Verdict::Stale {
                observed: 2,
                generation: 3
            }
        );
        assert_eq!(
            evaluate(
                Some(&sbc("Ready", 3, &[(2, "True")])),
                ReadinessGate::Upstream,
                REF
            ),
            Verdict::Ready
        );
    }

    #[test]
    fn not_ready_states() {
        let strict = ReadinessGate::Strict;
        assert_eq!(
            evaluate(None, strict, REF),
            Verdict::Missing {
                namespace: "ns".into(),
                name: "s".into()
            }
        );
        assert_eq!(
            evaluate(Some(&sbc("", 1, &[])), strict, REF),
            Verdict::Pending {
                state: String::new()
            }
        );
        assert_eq!(
            evaluate(Some(&sbc("Pending", 1, &[])), strict, REF),
            Verdict::Pending {
                state: "Pending".into()
            }
        );
        assert_eq!(
            evaluate(Some(&sbc("Error", 1, &[(1, "False")])), strict, REF),
            Verdict::Error {
                reason: "Because".into(),
                message: "the image does not resolve".into()
            }
        );
        assert!(!evaluate(Some(&sbc("Error", 1, &[])), ReadinessGate::Upstream, REF).is_ready());
        assert!(!evaluate(Some(&sbc("Booting", 1, &[])), strict, REF).is_ready());
    }
}
