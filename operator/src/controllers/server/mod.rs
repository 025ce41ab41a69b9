//! The Server reconciler: upstream's state machine (Initial → Discovery → Available ↔ Reserved →
//! Released, Parked, Error) with the strict readiness gate in front of every power-on.

mod operations;
mod power;
mod run;
mod states;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use metal_api::{BMC, BMCState, Server, ServerBootConfiguration, ServerClaim, ServerState};
use serde_json::json;
use watches::Fanout;

use self::run::Run;
use self::states::{apply_boot_order, available, discovery, initial, released, reserved};
use super::{Finalized, finalized, name_of, referring};
use crate::context::{BmcAccess, Context};
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

/// Builds the Server controller. Its store serves the other controllers too, and its watch goes on to
/// `servers`' subscribers; a BMC wakes its Servers through `bmcs`, once the BMC store has the change.
pub fn controller(
    client: kube::Client,
    servers: &Fanout<Server>,
    bmcs: &Fanout<BMC>,
) -> ServerController {
    let controller = watches::controller_publishing(
        Api::<Server>::all(client.clone()),
        Some(|server| watches::metadata_fingerprint(&server.metadata)),
        servers,
    );
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
            bmcs.subscribe_on(|bmc| {
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
                referring(&store, |s| {
                    s.spec.bmc_ref.as_ref().is_some_and(|r| r.name == bmc_name)
                })
            },
        );
    ServerController {
        controller,
        boot_configs,
        claims,
    }
}

impl Finalized for Server {
    const FINALIZER: &'static str = keys::SERVER_FINALIZER;
    const RESYNC_WHEN_IGNORED: bool = true;
}

pub(crate) async fn reconcile(server: Arc<Server>, ctx: Arc<Context>) -> Result<Action> {
    let server = ctx.server_writes.freshest(server);
    finalized(server, &ctx, apply, cleanup).await
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
    if let Some(action) = operations::handle_operation(run).await? {
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
            let next = run.unparked_state();
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
