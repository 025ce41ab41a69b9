//! The Server reconciler: upstream's state machine (Initial → Discovery → Available ↔ Reserved →
//! Released, Parked, Error) with the strict readiness gate in front of every power-on.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use metal_api::{
    BMC, BMCState, ObjectReference, Server, ServerBootConfiguration, ServerClaim, ServerState,
};
use serde_json::json;

use super::server_power::Progress;
use super::server_run::Run;
use super::{finalized, is_ignored, name_of};
use crate::conditions;
use crate::config::ReadinessGate;
use crate::context::{BmcAccess, Context};
use crate::discovery;
use crate::error::{Error, Result};
use crate::keys;
use crate::redfish::RedfishClient;

pub const CONTROLLER: &str = "server";

/// The Server controller and the stores of the SBCs and claims that wake it.
pub struct ServerController {
    pub controller: Controller<Server>,
    /// Fed by the same watch that wakes a Server on an SBC event, so the reconcile it starts sees
    /// that event (the gate's cached verdict).
    pub boot_configs: Store<ServerBootConfiguration>,
    /// Likewise for claim events (a deleted claim releases its Server).
    pub claims: Store<ServerClaim>,
}

/// Builds the Server controller (its store serves the other controllers too).
pub fn controller(client: kube::Client) -> ServerController {
    let controller = watches::controller_on(Api::<Server>::all(client.clone()), |server| {
        watches::metadata_fingerprint(&server.metadata)
    });
    let store = controller.store();
    let (sbc_events, boot_configs) =
        watches::others_on_reflected(Api::<ServerBootConfiguration>::all(client.clone()), |sbc| {
            watches::fingerprint((
                sbc.metadata.generation,
                &sbc.spec.server_ref.name,
                sbc.status
                    .as_ref()
                    .and_then(|s| s.state.as_ref())
                    .map(|s| s.as_str()),
                sbc.is_ready_for_current_generation(),
                sbc.metadata.deletion_timestamp.as_ref().map(|t| t.0),
            ))
        });
    let (claim_events, claims) =
        watches::others_on_reflected(Api::<ServerClaim>::all(client.clone()), |claim| {
            let meta = &claim.metadata;
            watches::fingerprint((
                meta.generation,
                &meta.finalizers,
                meta.deletion_timestamp.as_ref().map(|t| t.0),
            ))
        });
    let controller = controller
        .watches_stream(sbc_events, |sbc| {
            Some(ObjectRef::new(&sbc.spec.server_ref.name))
        })
        .watches_stream(claim_events, |claim| {
            claim.spec.server_ref.map(|r| ObjectRef::new(&r.name))
        })
        .watches_stream(
            watches::others_on(Api::<BMC>::all(client), |bmc| {
                watches::fingerprint((
                    bmc.metadata.generation,
                    bmc.status
                        .as_ref()
                        .and_then(|s| s.state.as_ref())
                        .map(|s| s.as_str()),
                    bmc.metadata.deletion_timestamp.as_ref().map(|t| t.0),
                ))
            }),
            move |bmc| {
                let bmc_name = bmc.name_any();
                store
                    .state_filter(|s| s.spec.bmc_ref.as_ref().is_some_and(|r| r.name == bmc_name))
                    .iter()
                    .map(|s| ObjectRef::from_obj(&**s))
                    .collect::<Vec<_>>()
            },
        );
    ServerController {
        controller,
        boot_configs,
        claims,
    }
}

pub(crate) async fn reconcile(server: Arc<Server>, ctx: Arc<Context>) -> Result<Action> {
    let server = ctx.server_writes.freshest(server);
    if is_ignored(&*server) {
        return Ok(Action::requeue(ctx.config.server_resync_interval));
    }
    let api = Api::<Server>::all(ctx.client.clone());
    finalized(
        &api,
        keys::SERVER_FINALIZER,
        server,
        |server| apply(server, &ctx),
        |server| cleanup(server, &ctx),
    )
    .await
}

async fn apply(server: Arc<Server>, ctx: &Context) -> Result<Action> {
    let name = name_of(&*server);
    let mut server = server;
    if server.spec.power.is_some() {
        // Deprecated field: upstream clears it on every reconcile.
        let api = Api::<Server>::all(ctx.client.clone());
        server = Arc::new(
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"power": null}})),
            )
            .await?,
        );
    }
    let Some(access) = bmc_access(&server, ctx).await? else {
        return Ok(Action::requeue(ctx.config.server_resync_interval));
    };
    let redfish = ctx.redfish(&access)?;
    let system_uri = match server.spec.system_uri.clone().filter(|u| !u.is_empty()) {
        Some(uri) => uri,
        None => find_system_uri(&server, &redfish, ctx).await?,
    };
    let system = redfish.system(&system_uri).await?;
    let status = server.status.clone().unwrap_or_default();
    let mut run = Run {
        ctx,
        resource_version: server.metadata.resource_version.clone(),
        server,
        name,
        original_status: status.clone(),
        status,
        redfish,
        system,
    };
    run.observe_system();
    let action = drive(&mut run).await;
    // Whatever happened, record what was observed and decided so far.
    let flushed = run.flush_status().await;
    let action = action?;
    flushed?;
    Ok(action)
}

async fn drive(run: &mut Run<'_>) -> Result<Action> {
    if run.status.state.is_none() {
        // Late initialisation; a claim reference survives status loss (#1108).
        let state = if run.server.spec.server_claim_ref.is_some() {
            ServerState::Reserved
        } else {
            ServerState::Initial
        };
        run.set_state(state);
    }
    if let Some(action) = super::server_ops::handle_operation(run).await? {
        return Ok(action);
    }
    apply_boot_order(run).await?;
    let resync = run.ctx.config.server_resync_interval;
    if run.is_parked() {
        run.set_state(ServerState::Parked);
        return Ok(Action::requeue(resync));
    }
    match run.state() {
        ServerState::Initial => initial(run).await,
        ServerState::Discovery => discovery(run).await,
        ServerState::Available => available(run).await,
        ServerState::Reserved => reserved(run).await,
        ServerState::Released => released(run).await,
        ServerState::Parked => {
            // Parked without the marker (e.g. status restored): back to where it belongs.
            let next = if run.server.spec.server_claim_ref.is_some() {
                ServerState::Reserved
            } else {
                ServerState::Available
            };
            run.set_state(next);
            Ok(Action::requeue(Duration::ZERO))
        }
        ServerState::Error | ServerState::Other(_) => Ok(Action::requeue(resync)),
    }
}

/// The BMC endpoint of a Server; `None` when its BMC is not usable yet (requeue).
async fn bmc_access(server: &Server, ctx: &Context) -> Result<Option<BmcAccess>> {
    let name = name_of(server);
    if let Some(bmc_ref) = &server.spec.bmc_ref {
        let bmc = ctx.stores.bmcs.get(&ObjectRef::new(&bmc_ref.name));
        let bmc = match bmc {
            Some(b) => b,
            None => match Api::<BMC>::all(ctx.client.clone())
                .get_opt(&bmc_ref.name)
                .await?
            {
                Some(b) => Arc::new(b),
                None => {
                    return Err(Error::Missing {
                        kind: "BMC",
                        name: bmc_ref.name.clone(),
                    });
                }
            },
        };
        let state = bmc.status.as_ref().and_then(|s| s.state.clone());
        if !matches!(state, None | Some(BMCState::Enabled)) {
            tracing::debug!(server = %name, bmc = %bmc_ref.name, ?state, "BMC not enabled, skipping");
            return Ok(None);
        }
        return ctx.bmc_access(&bmc).await.map(Some);
    }
    if let Some(inline) = &server.spec.bmc {
        let credentials = ctx.bmc_credentials(&inline.bmc_secret_ref.name).await?;
        let scheme = inline
            .protocol
            .scheme
            .as_ref()
            .map(|s| s.as_str().to_owned());
        let scheme = scheme.unwrap_or_else(|| ctx.config.default_bmc_scheme.clone());
        let endpoint = crate::context::endpoint_url(&scheme, &inline.address, inline.protocol.port);
        return Ok(Some(BmcAccess {
            endpoint,
            credentials,
        }));
    }
    Err(Error::Invalid {
        kind: "Server",
        name,
        reason: "neither spec.bmcRef nor spec.bmc is set".into(),
    })
}

/// Fills `spec.systemURI` by matching the System UUID case-insensitively, as upstream.
async fn find_system_uri(
    server: &Server,
    redfish: &RedfishClient,
    ctx: &Context,
) -> Result<String> {
    let uuid = &server.spec.system_uuid;
    let systems = redfish.systems().await?;
    let system = systems
        .into_iter()
        .find(|s| {
            s.uuid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(uuid))
        })
        .ok_or_else(|| Error::Invalid {
            kind: "Server",
            name: name_of(server),
            reason: format!("no Redfish System with UUID {uuid} on its BMC"),
        })?;
    let api = Api::<Server>::all(ctx.client.clone());
    let patch = json!({ "spec": { "systemURI": system.odata_id } });
    api.patch(
        &name_of(server),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(system.odata_id)
}

async fn apply_boot_order(run: &mut Run<'_>) -> Result<()> {
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

async fn initial(run: &mut Run<'_>) -> Result<Action> {
    let config = &run.ctx.config;
    if config.enforce_first_boot && super::server_power::ensure_off(run).await? == Progress::Waiting
    {
        return Ok(Action::requeue(config.power_polling_interval));
    }
    super::server_power::read_inventory(run).await?;
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
        let ssh = discovery::SshMaterial::generate();
        let ignition = discovery::render_ignition(
            &ctx.config.discovery_ignition_template,
            &ctx.config.probe_image,
            &ctx.config.registry_url,
            &run.server.spec.system_uuid,
            &ssh,
        );
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

async fn discovery(run: &mut Run<'_>) -> Result<Action> {
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
    match super::server_power::ensure_on(run, false).await? {
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
    let fresh = data.timestamp.as_ref().is_some_and(|t| {
        crate::clock::elapsed(t.0, run.ctx.clock.now()) <= config.registry_data_max_age
    });
    if !fresh {
        return Ok(Action::requeue(config.resource_polling_interval.min(wait)));
    }
    run.status.network_interfaces = super::server_power::network_interfaces(&data);
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

async fn available(run: &mut Run<'_>) -> Result<Action> {
    let config = &run.ctx.config;
    if run.server.spec.server_claim_ref.is_some() {
        run.set_state(ServerState::Reserved);
        return Ok(Action::requeue(Duration::ZERO));
    }
    let progress = super::server_power::ensure_off(run).await?;
    remove_internal_boot_configuration(run).await?;
    super::server_power::apply_indicator_led(run).await?;
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

async fn reserved(run: &mut Run<'_>) -> Result<Action> {
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
        super::server_power::ensure_on(run, true).await?
    } else {
        super::server_power::ensure_off(run).await?
    };
    if progress == Progress::GateClosed {
        return Ok(Action::requeue(
            run.gate_recheck(config.server_resync_interval),
        ));
    }
    run.ctx.gate_backoff.reset(&run.name);
    super::server_power::apply_indicator_led(run).await?;
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
    if super::server_power::ensure_off(run).await? == Progress::Waiting {
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

async fn released(run: &mut Run<'_>) -> Result<Action> {
    if run.server.spec.server_claim_ref.is_none() {
        run.set_state(ServerState::Available);
        return Ok(Action::requeue(Duration::ZERO));
    }
    if super::server_power::ensure_off(run).await? == Progress::Waiting {
        return Ok(Action::requeue(run.ctx.config.power_polling_interval));
    }
    Ok(Action::requeue(run.ctx.config.server_resync_interval))
}

/// Server deletion: delete its boot configuration and forget its registry entry, as upstream.
async fn cleanup(server: Arc<Server>, ctx: &Context) -> Result<Action> {
    ctx.gate_backoff.reset(&name_of(&*server));
    ctx.server_writes.forget(&server);
    if let Some(reference) = &server.spec.boot_configuration_ref {
        let api =
            Api::<ServerBootConfiguration>::namespaced(ctx.client.clone(), &reference.namespace);
        match api.delete(&reference.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Err(error) = ctx.registry.delete(&server.spec.system_uuid).await {
        tracing::warn!(server = %name_of(&*server), %error, "registry cleanup failed");
    }
    Ok(Action::await_change())
}
