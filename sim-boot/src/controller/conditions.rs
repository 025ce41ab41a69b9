//! The conditions sim-boot owns on a ServerBootConfiguration, the state derived from them, and the one
//! function that writes SBC status (merge patch on the status subresource, guarded by resourceVersion).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Api;
use kube::api::{Patch, PatchParams};
use metal_api::{ServerBootConfiguration, ServerBootConfigurationState};
use serde_json::json;

use clock::Clock;

/// Condition types written by sim-boot.
pub mod types {
    pub const SERVER_RESOLVED: &str = "ServerResolved";
    pub const IMAGE_RESOLVED: &str = "ImageResolved";
    pub const IGNITION_READY: &str = "IgnitionReady";
    pub const ARTIFACTS_SERVED: &str = "ArtifactsServed";
    /// boot-operator's condition (defined with upstream's in `metal_api`), kept for consumers that read it:
    /// present (False) only while the image fails.
    pub use metal_api::constants::conditions::IMAGE_VALIDATION;
    /// The four conditions every generation settles; `IMAGE_VALIDATION` comes and goes.
    pub const MAIN: [&str; 4] = [
        SERVER_RESOLVED,
        IMAGE_RESOLVED,
        IGNITION_READY,
        ARTIFACTS_SERVED,
    ];
    pub const OWNED: [&str; 5] = [
        SERVER_RESOLVED,
        IMAGE_RESOLVED,
        IGNITION_READY,
        ARTIFACTS_SERVED,
        IMAGE_VALIDATION,
    ];
}

/// Stable reasons.
pub mod reasons {
    pub const RECONCILING: &str = "Reconciling";
    pub const SERVER_FOUND: &str = "ServerFound";
    pub const SERVER_NOT_FOUND: &str = "ServerNotFound";
    pub const SERVER_HAS_NO_UUID: &str = "ServerHasNoSystemUUID";
    pub const IMAGE_RESOLVED: &str = "ImageResolved";
    pub const IMAGE_VALIDATION_FAILED: &str = "ImageValidationFailed";
    /// boot-operator's reason on `ImageValidation`.
    pub use metal_api::constants::conditions::REASON_VALIDATION_FAILED as VALIDATION_FAILED;
    pub const IGNITION_RENDERED: &str = "IgnitionRendered";
    pub const NO_IGNITION: &str = "NoIgnitionConfigured";
    pub const IGNITION_MISSING: &str = "IgnitionMissing";
    pub const IGNITION_INVALID: &str = "IgnitionInvalid";
    pub const IGNITION_CHANGED: &str = "IgnitionChanged";
    pub const ARTIFACTS_SERVED: &str = "ArtifactsServed";
    pub const NOT_REFERENCED: &str = "NotReferencedByServer";
    pub const SELF_PROBE_FAILED: &str = "SelfProbeFailed";
    /// `records-by-name` only: another namespace's SBC of the same name holds the record.
    pub const RECORD_EXISTS: &str = "BootRecordExists";
    pub const WAITING: &str = "WaitingForPrerequisites";
}

/// One owned condition, before timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub fn truth(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: "True",
            reason,
            message: message.into(),
        }
    }

    pub fn falsity(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: "False",
            reason,
            message: message.into(),
        }
    }

    pub fn unknown(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: "Unknown",
            reason,
            message: message.into(),
        }
    }
}

/// All four main conditions Unknown: the state for "a new generation is being prepared".
pub fn preparing(generation: i64, why: &str) -> Vec<Cond> {
    let message = format!("preparing generation {generation}: {why}");
    types::MAIN
        .into_iter()
        .map(|t| Cond::unknown(t, reasons::RECONCILING, message.clone()))
        .collect()
}

/// The lowest `observedGeneration` among sim-boot's conditions (None when it has written none).
pub fn observed_generation(sbc: &ServerBootConfiguration) -> Option<i64> {
    sbc.conditions()
        .iter()
        .filter(|c| types::OWNED.contains(&c.type_.as_str()))
        .map(|c| c.observed_generation.unwrap_or(-1))
        .min()
}

pub fn state_of(sbc: &ServerBootConfiguration) -> Option<ServerBootConfigurationState> {
    sbc.status.as_ref().and_then(|s| s.state.clone())
}

/// Outcome of a status write.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Yes,
    Unchanged,
    /// The object moved to another generation (or vanished) meanwhile; nothing was written.
    Superseded,
}

/// What a status write did, and the object as it now knows it.
#[derive(Debug)]
pub struct Outcome {
    pub written: Written,
    /// The object after the write (or as read when nothing was written); `None` once it is gone.
    pub latest: Option<Arc<ServerBootConfiguration>>,
    /// The resourceVersion the write was guarded by (only when it wrote).
    pub from: Option<String>,
}

/// Writes `state` and the owned `conditions` for `generation`, keeping every condition sim-boot does not own.
/// Re-reads, merges, and patches with the read resourceVersion, retrying on conflict; refuses to write once
/// the object's generation is no longer `generation`, so no status is ever stamped for a stale spec.
pub async fn write_status(
    api: &Api<ServerBootConfiguration>,
    name: &str,
    generation: i64,
    state: ServerBootConfigurationState,
    conditions: &[Cond],
    clock: &Clock,
) -> Result<Written, kube::Error> {
    let outcome = write_status_on(api, name, None, generation, state, conditions, clock).await?;
    Ok(outcome.written)
}

/// [`write_status`] starting from `known`, the object as the caller last read or wrote it, instead of a
/// fresh read. The patch is guarded by `known`'s resourceVersion, so it lands only on exactly the version
/// that was checked (generation, deletion, conditions to keep); a conflict means the object moved on, and
/// the write re-reads it and starts over. `Unchanged` against a `known` that is behind another writer
/// skips a write: that writer's status change wakes the SBC again (the controller's fingerprint covers
/// the state and the conditions' generation) and the next reconcile starts from it.
pub async fn write_status_on(
    api: &Api<ServerBootConfiguration>,
    name: &str,
    known: Option<Arc<ServerBootConfiguration>>,
    generation: i64,
    state: ServerBootConfigurationState,
    conditions: &[Cond],
    clock: &Clock,
) -> Result<Outcome, kube::Error> {
    let mut known = known;
    for _attempt in 0..8 {
        let current = match known.take() {
            Some(current) => current,
            None => match api.get_opt(name).await? {
                Some(current) => Arc::new(current),
                None => return Ok(outcome(Written::Superseded, None, None)),
            },
        };
        if current.metadata.generation.unwrap_or(0) != generation
            || current.metadata.deletion_timestamp.is_some()
        {
            return Ok(outcome(Written::Superseded, Some(current), None));
        }
        let existing = current
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let merged = merge(&existing, conditions, generation, clock);
        if state_of(&current).as_ref() == Some(&state) && same_conditions(&existing, &merged) {
            return Ok(outcome(Written::Unchanged, Some(current), None));
        }
        let from = current.metadata.resource_version.clone();
        let patch = json!({
            "metadata": {"resourceVersion": from},
            "status": {"state": state.as_str(), "conditions": merged},
        });
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) => return Ok(outcome(Written::Yes, Some(Arc::new(updated)), from)),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(kube::Error::Api(e)) if e.code == 404 => {
                return Ok(outcome(Written::Superseded, None, None));
            }
            Err(e) => return Err(e),
        }
    }
    Err(kube::Error::Api(
        kube::core::Status::failure("status write kept conflicting", "Conflict")
            .with_code(409)
            .boxed(),
    ))
}

fn outcome(
    written: Written,
    latest: Option<Arc<ServerBootConfiguration>>,
    from: Option<String>,
) -> Outcome {
    Outcome {
        written,
        latest,
        from,
    }
}

fn merge(existing: &[Condition], owned: &[Cond], generation: i64, clock: &Clock) -> Vec<Condition> {
    let now = Time(
        k8s_openapi::jiff::Timestamp::from_second(clock.now().as_second()).unwrap_or_default(),
    );
    let mut merged: Vec<Condition> = existing
        .iter()
        .filter(|c| !types::OWNED.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    for cond in owned {
        let previous = existing.iter().find(|c| c.type_ == cond.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == cond.status => p.last_transition_time.clone(),
            _ => now.clone(),
        };
        merged.push(Condition {
            type_: cond.type_.into(),
            status: cond.status.into(),
            reason: cond.reason.into(),
            message: cond.message.clone(),
            observed_generation: Some(generation),
            last_transition_time,
        });
    }
    merged
}

fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    let key = |c: &Condition| {
        (
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
            c.observed_generation,
        )
    };
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}
