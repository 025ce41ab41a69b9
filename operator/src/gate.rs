//! The readiness gate in front of every power-on and boot-type reset.
//!
//! `upstream`: the referenced ServerBootConfiguration exists and `status.state == "Ready"`.
//! `strict` (default) additionally requires that the Ready is for the current spec: no condition
//! stamped with `observedGeneration` may lag `metadata.generation`
//! (`ServerBootConfiguration::is_ready_for_current_generation`). A backend that stamps nothing is
//! judged by `state` alone, as upstream. `Error` is reported with the reason and message of the
//! backend's failed condition (`False` before `Unknown`, see `error_verdict`).

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
    // The backend's own explanation. A `False` condition is a definite failure; the `Unknown` ones
    // next to it usually wait *because of* it (sim-boot writes `ImageResolved=False` together with
    // `ArtifactsServed=Unknown/WaitingForPrerequisites`, all stamped in the same second), so `False`
    // outranks `Unknown`. Among equals the most recent transition wins, then the first listed
    // (backends list their steps in order, so the first failure is the cause).
    let rank = |status: &str| u8::from(status != "False");
    let failing = conditions
        .iter()
        .enumerate()
        .filter(|(_, c)| c.status != "True")
        .min_by_key(|(i, c)| {
            (
                rank(&c.status),
                std::cmp::Reverse(c.last_transition_time.0),
                *i,
            )
        })
        .map(|(_, c)| c);
    match failing {
        // A condition without a reason cannot lend one to the Server's condition (the API requires it).
        Some(c) if !c.reason.is_empty() => Verdict::Error {
            reason: c.reason.clone(),
            message: c.message.clone(),
        },
        Some(c) => Verdict::Error {
            reason: reasons::REASON_ERROR.into(),
            message: if c.message.is_empty() {
                format!(
                    "boot configuration is in Error ({} is {})",
                    c.type_, c.status
                )
            } else {
                c.message.clone()
            },
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

    /// A condition as sim-boot's `write_status` stamps it: `lastTransitionTime` in whole seconds.
    fn cond(type_: &str, status: &str, reason: &str, message: &str, second: i64) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::from_second(second).unwrap()),
        }
    }

    fn error_with(conditions: Vec<Condition>) -> Verdict {
        let mut s = sbc("Error", 1, &[]);
        s.status.as_mut().unwrap().conditions = conditions;
        evaluate(Some(&s), ReadinessGate::Strict, REF)
    }

    fn reason_of(verdict: &Verdict) -> &str {
        match verdict {
            Verdict::Error { reason, .. } => reason,
            other => panic!("not an Error verdict: {other:?}"),
        }
    }

    /// sim-boot's image failure (`prepare::image_step` + `reconcile::on_failure`, order as merged):
    /// `preparing` wrote all four main conditions Unknown at `prepared`; the failure turns ServerResolved
    /// True and ImageResolved/ImageValidation False at `failed`, the rest stay Unknown (their
    /// transition time kept) with reason WaitingForPrerequisites.
    fn sim_boot_image_failure(prepared: i64, failed: i64) -> Vec<Condition> {
        let missing = "resolving registry.test/os:missing: manifest unknown";
        let waiting = format!("not served: {missing}; {missing}");
        vec![
            cond(
                "ServerResolved",
                "True",
                "ServerFound",
                "Server s has system UUID 1",
                failed,
            ),
            cond(
                "ImageResolved",
                "False",
                "ImageValidationFailed",
                missing,
                failed,
            ),
            cond(
                "ImageValidation",
                "False",
                "ValidationFailed",
                missing,
                failed,
            ),
            cond(
                "IgnitionReady",
                "Unknown",
                "WaitingForPrerequisites",
                &waiting,
                prepared,
            ),
            cond(
                "ArtifactsServed",
                "Unknown",
                "WaitingForPrerequisites",
                &waiting,
                prepared,
            ),
        ]
    }

    #[test]
    fn error_names_the_failed_condition_not_the_ones_waiting_for_it() {
        // Same second (the usual case: preparing and failing take milliseconds), and a second apart.
        for (prepared, failed) in [(100, 100), (100, 101)] {
            let verdict = error_with(sim_boot_image_failure(prepared, failed));
            assert_eq!(
                verdict,
                Verdict::Error {
                    reason: "ImageValidationFailed".into(),
                    message: "resolving registry.test/os:missing: manifest unknown".into(),
                },
                "prepared at {prepared}, failed at {failed}"
            );
        }
        // A Ready SBC whose image later vanished (no preparing step): everything transitions at once.
        let mut conditions = sim_boot_image_failure(200, 200);
        conditions.rotate_right(2); // A backend that lists its Unknowns first: still the False one.
        assert_eq!(reason_of(&error_with(conditions)), "ImageValidationFailed");
    }

    #[test]
    fn error_reasons_of_every_sim_boot_failure() {
        let waiting = |type_: &str, second: i64| {
            cond(
                type_,
                "Unknown",
                "WaitingForPrerequisites",
                "not served: x",
                second,
            )
        };
        // `prepare::server_facts`: the Server is gone.
        let server_gone = vec![
            cond(
                "ServerResolved",
                "False",
                "ServerNotFound",
                "Server s not found",
                10,
            ),
            waiting("ImageResolved", 10),
            waiting("IgnitionReady", 10),
            waiting("ArtifactsServed", 10),
        ];
        assert_eq!(reason_of(&error_with(server_gone)), "ServerNotFound");
        // `prepare::render_ignition`: the ignition Secret is missing.
        let no_secret = vec![
            cond("ServerResolved", "True", "ServerFound", "", 10),
            cond("ImageResolved", "True", "ImageResolved", "", 10),
            cond(
                "IgnitionReady",
                "False",
                "IgnitionMissing",
                "Secret ns/ign not found",
                10,
            ),
            waiting("ArtifactsServed", 10),
        ];
        let verdict = error_with(no_secret);
        assert_eq!(
            verdict,
            Verdict::Error {
                reason: "IgnitionMissing".into(),
                message: "Secret ns/ign not found".into()
            }
        );
        // `flap`: the Error half of the flip has one False condition among True ones.
        let flap = vec![
            cond("ServerResolved", "True", "ServerFound", "", 10),
            cond("IgnitionReady", "True", "IgnitionRendered", "", 10),
            cond("ArtifactsServed", "True", "ArtifactsServed", "", 10),
            cond(
                "ImageResolved",
                "False",
                "ImageValidationFailed",
                "UKI layer digest not found",
                11,
            ),
        ];
        assert_eq!(reason_of(&error_with(flap)), "ImageValidationFailed");
    }

    #[test]
    fn error_falls_back_when_no_condition_explains_it() {
        let generic = Verdict::Error {
            reason: reasons::REASON_ERROR.into(),
            message: "boot configuration is in Error".into(),
        };
        assert_eq!(error_with(vec![]), generic);
        assert_eq!(
            error_with(vec![cond("Ready", "True", "Done", "", 1)]),
            generic
        );
        // Only Unknowns: the most recent one is the best explanation there is.
        let unknowns = vec![
            cond("A", "Unknown", "Older", "", 1),
            cond("B", "Unknown", "Newer", "", 2),
        ];
        assert_eq!(reason_of(&error_with(unknowns)), "Newer");
        // Among False conditions, the most recent wins.
        let falses = vec![
            cond("A", "False", "Older", "", 1),
            cond("B", "False", "Newer", "", 2),
            cond("C", "Unknown", "Newest", "", 3),
        ];
        assert_eq!(reason_of(&error_with(falses)), "Newer");
        // A reason-less condition cannot name the Server's condition; its message still tells why.
        assert_eq!(
            error_with(vec![cond("Image", "False", "", "no such tag", 1)]),
            Verdict::Error {
                reason: reasons::REASON_ERROR.into(),
                message: "no such tag".into()
            }
        );
    }
}
