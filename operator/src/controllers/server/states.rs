//! The Server state machine's steps, one function per state (upstream's `handle*State`).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use metal_api::{ObjectReference, ServerBootConfiguration, ServerClaim, ServerState};
use serde_json::json;

use super::power::{self, Progress};
use super::run::Run;
use crate::conditions;
use crate::config::ReadinessGate;
use crate::discovery;
use crate::error::{Error, Result};
use crate::keys;

pub(super) async fn apply_boot_order(run: &mut Run<'_>) -> Result<()> {
    let mut order = run.server.spec.boot_order.clone();
    if order.is_empty() {
        return Ok(());
    }
    order.sort_by_key(|o| o.priority);
    let wanted: Vec<String> = order.into_iter().map(|o| o.device).collect();
    let current = run
        .system
        .boot
        .as_ref()
        .map(|b| b.boot_order.clone())
        .unwrap_or_default();
    if current != wanted {
        run.redfish.set_boot_order(&run.system, &wanted).await?;
    }
    Ok(())
}

pub(super) async fn initial(run: &mut Run<'_>) -> Result<Action> {
    let config = &run.ctx.config;
    if config.enforce_first_boot && power::ensure_off(run).await? == Progress::Waiting {
        return Ok(Action::requeue(config.power_polling_interval));
    }
    power::read_inventory(run).await?;
    ensure_discovery_boot_configuration(run).await?;
    run.redfish.set_pxe_once(&run.system).await?;
    run.ctx
        .registry
        .delete(&run.server.spec.system_uuid)
        .await
        .map_err(Error::Registry)?;
    conditions::remove(&mut run.status.conditions, keys::conditions::POWERING_ON);
    // Re-entering discovery restarts its timeout clock.
    conditions::remove(&mut run.status.conditions, keys::gate::DISCOVERY);
    run.set_condition(
        keys::gate::DISCOVERY,
        true,
        keys::gate::REASON_DISCOVERY_IN_PROGRESS,
        "discovery boot prepared".into(),
    );
    run.set_state(ServerState::Discovery);
    Ok(Action::requeue(Duration::ZERO))
}

/// Creates or updates the discovery SBC and its Secrets, and points the Server at it.
async fn ensure_discovery_boot_configuration(run: &mut Run<'_>) -> Result<()> {
    let ctx = run.ctx;
    let ns = &ctx.config.manager_namespace;
    let desired = discovery::boot_configuration(&run.name, ns, &ctx.config.probe_os_image);
    let sbc_api = Api::<ServerBootConfiguration>::namespaced(ctx.client.clone(), ns);
    let sbc = match sbc_api.get_opt(&run.name).await? {
        None => sbc_api.create(&PostParams::default(), &desired).await?,
        Some(existing) if existing.spec != desired.spec || !has_internal_annotation(&existing) => {
            let patch = json!({ "metadata": { "annotations": desired.metadata.annotations }, "spec": desired.spec });
            sbc_api
                .patch(&run.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?
        }
        Some(existing) => existing,
    };
    let inputs = discovery::ignition_inputs_digest(
        &ctx.config.discovery_ignition_template,
        &ctx.config.probe_image,
        &ctx.config.registry_url,
        &run.server.spec.system_uuid,
    );
    let secrets_api = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    let ssh_name = format!("{}-ssh", run.name);
    let ignition_secret = secrets_api.get_opt(&run.name).await?;
    let ssh_secret = secrets_api.get_opt(&ssh_name).await?;
    let owned = |secret: &Secret| {
        secret
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == sbc.metadata.uid.as_ref())
    };
    let current = match (&ignition_secret, &ssh_secret) {
        (Some(ignition), Some(ssh)) => {
            owned(ignition)
                && owned(ssh)
                && ignition
                    .annotations()
                    .get(keys::DISCOVERY_IGNITION_INPUTS_ANNOTATION)
                    == Some(&inputs)
        }
        _ => false,
    };
    if !current {
        let ssh = discovery::SshMaterial::generate(&ctx.entropy);
        let ignition = discovery::render_ignition(
            &ctx.config.discovery_ignition_template,
            &ctx.config.probe_image,
            &ctx.config.registry_url,
            &run.server.spec.system_uuid,
            &ssh,
        )
        .map_err(|reason| Error::Invalid {
            kind: "Server",
            name: run.name.clone(),
            reason,
        })?;
        for secret in discovery::secrets(&sbc, ignition, &inputs, &ssh) {
            let name = secret.metadata.name.clone().unwrap_or_default();
            let exists = if name == ssh_name {
                ssh_secret.is_some()
            } else {
                ignition_secret.is_some()
            };
            if exists {
                let patch = json!({ "metadata": {
                    "ownerReferences": secret.metadata.owner_references,
                    "annotations": secret.metadata.annotations,
                }, "data": secret.data });
                secrets_api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            } else {
                secrets_api.create(&PostParams::default(), &secret).await?;
            }
        }
    }
    let reference = ObjectReference::new(ns.clone(), run.name.clone());
    if run.server.spec.boot_configuration_ref.as_ref() != Some(&reference) {
        run.patch_spec(json!({ "bootConfigurationRef": reference }))
            .await?;
    }
    Ok(())
}

fn has_internal_annotation(sbc: &ServerBootConfiguration) -> bool {
    sbc.annotations()
        .get(keys::TYPE_ANNOTATION)
        .map(String::as_str)
        == Some(keys::TYPE_INTERNAL)
}

pub(super) async fn discovery(run: &mut Run<'_>) -> Result<Action> {
    let config = &run.ctx.config;
    let strict = config.readiness_gate == ReadinessGate::Strict;
    let powered = run.condition(keys::conditions::POWERING_ON).is_some();
    if let Some(started) = run
        .condition(keys::gate::DISCOVERY)
        .filter(|c| c.status == "True")
    {
        let age = conditions::age(started, run.ctx.clock.now());
        if (strict || powered) && age >= config.discovery_timeout {
            let note = format!(
                "no discovery result within {:?}; back to Initial",
                config.discovery_timeout
            );
            run.event(true, "DiscoveryTimedOut", note.clone()).await;
            run.set_condition(
                keys::gate::DISCOVERY,
                false,
                keys::gate::REASON_DISCOVERY_TIMED_OUT,
                note,
            );
            run.set_state(ServerState::Initial);
            return Ok(Action::requeue(Duration::ZERO));
        }
    }
    let remaining = run
        .condition(keys::gate::DISCOVERY)
        .map(|c| {
            config
                .discovery_timeout
                .saturating_sub(conditions::age(c, run.ctx.clock.now()))
        })
        .unwrap_or(config.discovery_timeout);
    let wait = config
        .server_resync_interval
        .min(remaining.max(Duration::from_millis(10)));
    if !run.boot_readiness().await?.is_ready() {
        return Ok(Action::requeue(run.gate_recheck(wait)));
    }
    match power::ensure_on(run, false).await? {
        Progress::Done => run.ctx.gate_backoff.reset(&run.name),
        Progress::Waiting => {
            return Ok(Action::requeue(config.power_polling_interval.min(wait)));
        }
        Progress::GateClosed => return Ok(Action::requeue(run.gate_recheck(wait))),
    }
    let uuid = run.server.spec.system_uuid.clone();
    let Some(data) = run
        .ctx
        .registry
        .system(&uuid)
        .await
        .map_err(Error::Registry)?
    else {
        return Ok(Action::requeue(config.resource_polling_interval.min(wait)));
    };
    let fresh = data
        .timestamp
        .as_ref()
        .is_some_and(|t| clock::elapsed(t.0, run.ctx.clock.now()) <= config.registry_data_max_age);
    if !fresh {
        return Ok(Action::requeue(config.resource_polling_interval.min(wait)));
    }
    run.status.network_interfaces = power::network_interfaces(&data);
    run.set_condition(
        keys::gate::DISCOVERY,
        false,
        "Completed",
        "probe registered".into(),
    );
    run.set_state(ServerState::Available);
    // Persist the result before forgetting the registration: a status write lost to a conflict
    // would otherwise leave the Server in Discovery until the probe registers again.
    run.flush_status().await?;
    run.ctx
        .registry
        .delete(&uuid)
        .await
        .map_err(Error::Registry)?;
    Ok(Action::requeue(Duration::ZERO))
}

pub(super) async fn available(run: &mut Run<'_>) -> Result<Action> {
    let config = &run.ctx.config;
    if run.server.spec.server_claim_ref.is_some() {
        run.set_state(ServerState::Reserved);
        return Ok(Action::requeue(Duration::ZERO));
    }
    let progress = power::ensure_off(run).await?;
    remove_internal_boot_configuration(run).await?;
    power::apply_indicator_led(run).await?;
    if progress == Progress::Waiting {
        return Ok(Action::requeue(config.power_polling_interval));
    }
    Ok(Action::requeue(config.server_resync_interval))
}

/// Deletes the discovery SBC once discovery is over (only `type: Internal` ones, as upstream).
async fn remove_internal_boot_configuration(run: &mut Run<'_>) -> Result<()> {
    let Some(reference) = run.server.spec.boot_configuration_ref.clone() else {
        return Ok(());
    };
    let api =
        Api::<ServerBootConfiguration>::namespaced(run.ctx.client.clone(), &reference.namespace);
    match api.get_opt(&reference.name).await? {
        Some(sbc) if has_internal_annotation(&sbc) => {
            api.delete(&reference.name, &DeleteParams::default())
                .await?;
        }
        Some(_) => return Ok(()),
        None => {}
    }
    run.patch_spec(json!({ "bootConfigurationRef": null }))
        .await?;
    conditions::remove(
        &mut run.status.conditions,
        keys::gate::BOOT_CONFIGURATION_READY,
    );
    Ok(())
}

pub(super) async fn reserved(run: &mut Run<'_>) -> Result<Action> {
    let config = &run.ctx.config;
    let Some(claim_ref) = run.server.spec.server_claim_ref.clone() else {
        run.set_state(ServerState::Available);
        return Ok(Action::requeue(Duration::ZERO));
    };
    // The cache is enough when it has the claim: a deletion it does not show yet arrives as an
    // event that wakes this Server, and `spec.serverRef`, once set, never changes. A claim missing
    // from the cache may just be newer than it, so only a fresh read may say it is gone.
    let key = ObjectRef::new(&claim_ref.name).within(&claim_ref.namespace);
    let claim = match run.ctx.stores.claims.get(&key) {
        Some(claim) => Some(claim),
        None => Api::<ServerClaim>::namespaced(run.ctx.client.clone(), &claim_ref.namespace)
            .get_opt(&claim_ref.name)
            .await?
            .map(Arc::new),
    };
    let claim = claim.filter(|c| c.metadata.deletion_timestamp.is_none());
    let Some(claim) = claim else {
        return release(run).await;
    };
    if let Some(bound) = claim
        .spec
        .server_ref
        .as_ref()
        .filter(|r| r.name != run.name)
    {
        // The claim holds another Server: this reservation lost a binding race (or was written by
        // hand). Left alone it would stay Reserved and Off forever, a Server no claim can take.
        let note = format!(
            "ServerClaim {}/{} is bound to {}; releasing this server",
            claim_ref.namespace, claim_ref.name, bound.name
        );
        run.event(true, "ClaimBoundElsewhere", note).await;
        return release(run).await;
    }
    if !run.boot_readiness().await?.is_ready() {
        // The gate: no power enforcement at all until the boot configuration is ready.
        return Ok(Action::requeue(
            run.gate_recheck(config.server_resync_interval),
        ));
    }
    let progress = if claim.spec.power == metal_api::Power::On {
        power::ensure_on(run, true).await?
    } else {
        power::ensure_off(run).await?
    };
    if progress == Progress::GateClosed {
        return Ok(Action::requeue(
            run.gate_recheck(config.server_resync_interval),
        ));
    }
    run.ctx.gate_backoff.reset(&run.name);
    power::apply_indicator_led(run).await?;
    if progress == Progress::Waiting {
        return Ok(Action::requeue(config.power_polling_interval));
    }
    Ok(Action::requeue(config.server_resync_interval))
}

/// The claim is gone: power off (confirmed by the BMC), then Recycle or Retain.
async fn release(run: &mut Run<'_>) -> Result<Action> {
    if run.server.spec.boot_configuration_ref.is_some() {
        run.patch_spec(json!({ "bootConfigurationRef": null }))
            .await?;
        conditions::remove(
            &mut run.status.conditions,
            keys::gate::BOOT_CONFIGURATION_READY,
        );
    }
    if power::ensure_off(run).await? == Progress::Waiting {
        return Ok(Action::requeue(run.ctx.config.power_polling_interval));
    }
    let retain = run.server.spec.reclaim_policy == Some(metal_api::ReclaimPolicy::Retain);
    if retain {
        run.set_state(ServerState::Released);
    } else {
        run.patch_spec(json!({ "serverClaimRef": null })).await?;
        run.set_state(ServerState::Available);
    }
    Ok(Action::requeue(Duration::ZERO))
}

pub(super) async fn released(run: &mut Run<'_>) -> Result<Action> {
    if run.server.spec.server_claim_ref.is_none() {
        run.set_state(ServerState::Available);
        return Ok(Action::requeue(Duration::ZERO));
    }
    if power::ensure_off(run).await? == Progress::Waiting {
        return Ok(Action::requeue(run.ctx.config.power_polling_interval));
    }
    Ok(Action::requeue(run.ctx.config.server_resync_interval))
}
