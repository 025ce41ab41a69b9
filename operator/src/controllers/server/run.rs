//! One reconcile of one Server ([`Run`]): the object, the BMC view of it, the status being built,
//! guarded writes, Events, and the readiness gate's verdict recorded as a condition.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource as _, ResourceExt as _};
use metal_api::{Server, ServerBootConfiguration, ServerClaim, ServerState, ServerStatus};
use serde_json::json;

use crate::conditions::{self, NewCondition};
use crate::config::ReadinessGate;
use crate::context::Context;
use crate::error::Result;
use crate::gate::{self, Verdict};
use crate::keys;
use crate::redfish::RedfishClient;
use crate::redfish::types::ComputerSystem;

/// One reconcile of one Server: the object, the BMC view of it, and the status being built.
pub(super) struct Run<'a> {
    pub ctx: &'a Context,
    pub server: Arc<Server>,
    pub name: String,
    pub status: ServerStatus,
    pub(super) original_status: ServerStatus,
    pub(super) resource_version: Option<String>,
    pub redfish: RedfishClient,
    pub system: ComputerSystem,
}

impl<'a> Run<'a> {
    pub fn api(&self) -> Api<Server> {
        Api::all(self.ctx.client.clone())
    }

    pub fn state(&self) -> ServerState {
        self.status.state.clone().unwrap_or(ServerState::Initial)
    }

    pub fn set_state(&mut self, state: ServerState) {
        if self.status.state.as_ref() != Some(&state) {
            tracing::info!(server = %self.name, from = ?self.status.state, to = %state, "server state transition");
        }
        self.status.state = Some(state);
    }

    pub fn set_condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: &str,
        message: String,
    ) -> bool {
        let now = self.ctx.clock.now();
        let generation = self.server.metadata.generation;
        conditions::set(
            &mut self.status.conditions,
            NewCondition {
                type_,
                status,
                reason,
                message,
                observed_generation: generation,
            },
            now,
        )
    }

    pub fn condition(
        &self,
        type_: &str,
    ) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        conditions::find(&self.status.conditions, type_)
    }

    /// Writes the status if it changed (merge patch guarded by resourceVersion).
    pub async fn flush_status(&mut self) -> Result<()> {
        if self.status == self.original_status {
            return Ok(());
        }
        let patch = json!({
            "metadata": { "resourceVersion": self.resource_version },
            "status": self.status,
        });
        tracing::trace!(server = %self.name, status = %patch["status"], "writing status");
        let updated = self
            .api()
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let updated = Arc::new(updated);
        self.ctx
            .server_writes
            .record(self.resource_version.as_deref(), updated.clone());
        self.resource_version = updated.metadata.resource_version.clone();
        self.server = updated;
        self.original_status = self.status.clone();
        Ok(())
    }

    /// Merge-patches `spec` (e.g. clearing a reference with `null`).
    pub async fn patch_spec(&mut self, spec: serde_json::Value) -> Result<()> {
        let patch =
            json!({ "metadata": { "resourceVersion": self.resource_version }, "spec": spec });
        self.merge_patch(patch).await
    }

    /// Merge-patches annotations; `None` removes a key.
    pub async fn patch_annotations(&mut self, changes: &[(&str, Option<&str>)]) -> Result<()> {
        let annotations: serde_json::Map<String, serde_json::Value> = changes
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    v.map_or(serde_json::Value::Null, |v| json!(v)),
                )
            })
            .collect();
        let patch = json!({ "metadata": { "resourceVersion": self.resource_version, "annotations": annotations } });
        self.merge_patch(patch).await
    }

    /// Applies a merge patch (carrying the resourceVersion it was built from) and keeps the updated Server.
    async fn merge_patch(&mut self, patch: serde_json::Value) -> Result<()> {
        let updated = Arc::new(
            self.api()
                .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?,
        );
        self.ctx
            .server_writes
            .record(self.resource_version.as_deref(), updated.clone());
        self.resource_version = updated.metadata.resource_version.clone();
        self.server = updated;
        Ok(())
    }

    pub async fn event(&self, warning: bool, reason: &str, note: String) {
        self.ctx
            .event(
                self.server.object_ref(&()),
                warning,
                reason,
                "Reconcile",
                note,
            )
            .await;
    }

    /// Re-reads the System so decisions see the power state after an action.
    pub fn observe_system(&mut self) {
        self.status.power_state = self.system.power_state.as_deref().map(Into::into);
        self.status.indicator_led = self.system.indicator_led.as_deref().map(Into::into);
    }

    /// Where a Server that is not (or no longer) parked belongs: Reserved while claimed, else Available.
    pub fn unparked_state(&self) -> ServerState {
        if self.server.spec.server_claim_ref.is_some() {
            ServerState::Reserved
        } else {
            ServerState::Available
        }
    }

    pub fn is_parked(&self) -> bool {
        self.server
            .annotations()
            .get(keys::PARKED_ANNOTATION)
            .map(String::as_str)
            == Some(keys::ANNOTATION_TRUE)
    }

    /// The readiness gate for the Server's current boot configuration, as the watch cache shows it:
    /// what a reconcile decides on. A cache that lags can only hold the gate closed a moment longer
    /// (the SBC's next event wakes the Server); nothing is sent to a BMC on this verdict alone —
    /// [`Self::boot_readiness_fresh`] confirms it right before. In strict mode the verdict is also
    /// recorded as a condition, and errors raise Events on the Server and its claim.
    pub async fn boot_readiness(&mut self) -> Result<Verdict> {
        self.gate(false).await
    }

    /// The readiness gate on a fresh read of the SBC (never the cache): taken immediately before a
    /// power-on or boot-type reset is sent.
    pub async fn boot_readiness_fresh(&mut self) -> Result<Verdict> {
        self.gate(true).await
    }

    async fn gate(&mut self, fresh: bool) -> Result<Verdict> {
        let mode = self.ctx.config.readiness_gate;
        let Some(reference) = self.server.spec.boot_configuration_ref.clone() else {
            return Ok(self.record_verdict(Verdict::NotReferenced, mode).await);
        };
        let sbc = if fresh {
            Api::<ServerBootConfiguration>::namespaced(
                self.ctx.client.clone(),
                &reference.namespace,
            )
            .get_opt(&reference.name)
            .await?
            .map(Arc::new)
        } else {
            let key = ObjectRef::new(&reference.name).within(&reference.namespace);
            self.ctx.stores.boot_configs.get(&key)
        };
        let verdict = gate::evaluate(
            sbc.as_deref(),
            mode,
            (&reference.namespace, &reference.name),
        );
        Ok(self.record_verdict(verdict, mode).await)
    }

    async fn record_verdict(&mut self, verdict: Verdict, mode: ReadinessGate) -> Verdict {
        if mode == ReadinessGate::Upstream {
            return verdict;
        }
        let (reason, message) = verdict.condition();
        let (reason, message) = (reason.to_owned(), message);
        let previous = self
            .condition(keys::gate::BOOT_CONFIGURATION_READY)
            .map(|c| (c.status.clone(), c.reason.clone()));
        let changed = self.set_condition(
            keys::gate::BOOT_CONFIGURATION_READY,
            verdict.is_ready(),
            &reason,
            message.clone(),
        );
        let was_error = previous.as_ref().is_some_and(|(_, r)| is_error_reason(r));
        if changed {
            match &verdict {
                Verdict::Error { .. } if previous.as_ref().map(|(_, r)| r) != Some(&reason) => {
                    let note = format!("boot configuration failed: {reason}: {message}");
                    self.event(true, "BootConfigurationError", note.clone())
                        .await;
                    self.claim_event(true, "BootConfigurationError", note).await;
                }
                Verdict::Ready if was_error => {
                    self.event(
                        false,
                        "BootConfigurationRecovered",
                        "boot configuration is Ready again".into(),
                    )
                    .await;
                    self.claim_event(
                        false,
                        "BootConfigurationRecovered",
                        "boot configuration is Ready again".into(),
                    )
                    .await;
                }
                _ => {}
            }
        }
        verdict
    }

    /// Requeue delay while the readiness gate is closed: a bounded backoff, at most `cap`.
    pub fn gate_recheck(&self, cap: Duration) -> Duration {
        self.ctx.gate_backoff.next(&self.name, cap)
    }

    async fn claim_event(&self, warning: bool, reason: &str, note: String) {
        if let Some(claim_ref) = &self.server.spec.server_claim_ref {
            let reference = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(ServerClaim::api_version(&()).into_owned()),
                kind: Some(ServerClaim::kind(&()).into_owned()),
                name: Some(claim_ref.name.clone()),
                namespace: Some(claim_ref.namespace.clone()),
                ..Default::default()
            };
            self.ctx
                .event(reference, warning, reason, "Reconcile", note)
                .await;
        }
    }
}

/// Reasons of `BootConfigurationReady=False` that come from a backend Error.
fn is_error_reason(reason: &str) -> bool {
    use keys::gate::*;
    ![
        REASON_READY,
        REASON_PENDING,
        REASON_MISSING,
        REASON_NOT_REFERENCED,
        REASON_STALE,
    ]
    .contains(&reason)
}
