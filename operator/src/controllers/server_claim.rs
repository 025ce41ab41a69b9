//! The ServerClaim reconciler: binds a claim to an eligible Server with an optimistic lock, then
//! maintains the claim's ServerBootConfiguration (same name/namespace, owned by the claim).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource as _, ResourceExt as _};
use metal_api::{
    ImmutableObjectReference, ObjectReference, Server, ServerBootConfiguration,
    ServerBootConfigurationSpec, ServerClaim, ServerClaimPhase, ServerPowerState, ServerState,
};
use serde_json::json;
use watches::Fanout;

use super::claim_index::ClaimIndex;
use super::{Finalized, finalized, name_of};
use crate::context::Context;
use crate::error::Result;
use crate::keys;

pub const CONTROLLER: &str = "serverclaim";

/// How many waiting claims a newly free Server wakes up (the rest resync).
const WAKE_LIMIT: usize = 32;

/// How many waiting claims a Server event looks at to find those it wakes: the bound that keeps
/// a claim trigger cheap when many claims select other Servers.
const WAKE_INSPECT: usize = 1024;

/// Builds the claim controller; a Server wakes claims through `servers` (the Server controller's
/// watch), so binding, which picks from that controller's store, sees what woke it.
pub fn controller(client: kube::Client, servers: &Fanout<Server>) -> Controller<ServerClaim> {
    let index = ClaimIndex::default();
    let observer = index.clone();
    let controller = watches::controller_on_observed(
        Api::<ServerClaim>::all(client.clone()),
        |claim| watches::metadata_fingerprint(&claim.metadata),
        move |event| observer.observe(event),
    );
    let claims = controller.store();
    controller
        .owns_stream(watches::owned::<ServerBootConfiguration>(client.clone()))
        .watches_stream(
            servers.subscribe_on(|server| {
                let status = server.status.as_ref();
                // Labels: a waiting claim's selector may match a Server only after a label change.
                watches::fingerprint((
                    server.metadata.generation,
                    &server.metadata.labels,
                    &server.metadata.annotations,
                    status.and_then(|s| s.state.as_ref()).map(|s| s.as_str()),
                    status
                        .and_then(|s| s.power_state.as_ref())
                        .map(|s| s.as_str()),
                    server.metadata.deletion_timestamp.as_ref().map(|t| t.0),
                ))
            }),
            move |server| claims_for_server(&index, &claims, &server),
        )
}

/// Claims bound to (or naming) the Server, and — when it is free to take — a few waiting claims it
/// could serve. Runs for every relevant Server event, so it reads the index, never scans the cache.
fn claims_for_server(
    index: &ClaimIndex,
    claims: &Store<ServerClaim>,
    server: &Server,
) -> Vec<ObjectRef<ServerClaim>> {
    let name = server.metadata.name.as_deref().unwrap_or_default();
    let mut out = index.naming_server(name);
    if let Some(r) = &server.spec.server_claim_ref {
        let claim = ObjectRef::new(&r.name).within(&r.namespace);
        if claims.get(&claim).is_some() && !out.contains(&claim) {
            out.push(claim);
        }
    }
    if server.spec.server_claim_ref.is_none() && is_free(server) {
        out.extend(index.waiting_for(name, server.labels(), WAKE_LIMIT, WAKE_INSPECT));
    }
    out
}

/// Whether any claim could take the Server now (claim-specific checks aside): Available, Off,
/// claimable, not parked, not being deleted.
fn is_free(server: &Server) -> bool {
    let status = server.status.as_ref();
    server.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.state.as_ref()) == Some(&ServerState::Available)
        && status.and_then(|s| s.power_state.as_ref()) == Some(&ServerPowerState::Off)
        && !server.spec.unclaimable.unwrap_or(false)
        && !is_parked(server)
}

impl Finalized for ServerClaim {
    const FINALIZER: &'static str = keys::SERVER_CLAIM_FINALIZER;
    const RESYNC_WHEN_IGNORED: bool = true;

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }
}

pub(crate) async fn reconcile(claim: Arc<ServerClaim>, ctx: Arc<Context>) -> Result<Action> {
    finalized(claim, &ctx, apply, cleanup).await
}

fn is_state(server: &Server, state: ServerState) -> bool {
    server.status.as_ref().and_then(|s| s.state.as_ref()) == Some(&state)
}

fn refers_to(server: &Server, claim: &ServerClaim) -> bool {
    server.spec.server_claim_ref.as_ref().is_some_and(|r| {
        r.name == claim.name_any() && Some(&r.namespace) == claim.metadata.namespace.as_ref()
    })
}

fn is_parked(server: &Server) -> bool {
    server
        .annotations()
        .get(keys::PARKED_ANNOTATION)
        .map(String::as_str)
        == Some(keys::ANNOTATION_TRUE)
}

/// Upstream's binding rules: Available, claimable, powered off, NoBind taints tolerated, free.
fn eligible(server: &Server, claim: &ServerClaim) -> bool {
    is_free(server)
        && metal_api::taints::tolerates_all_nobind(&claim.spec.tolerations, &server.spec.taints)
        && (server.spec.server_claim_ref.is_none() || refers_to(server, claim))
}

async fn apply(claim: Arc<ServerClaim>, ctx: &Context) -> Result<Action> {
    let resync = ctx.config.server_resync_interval;
    // The cache can predate this controller's own `spec.serverRef` patch; binding again from it
    // would take a second Server (orphaned Reserved forever), so an unbound-looking claim is re-read.
    let claim = if claim.spec.server_ref.is_none() {
        match fresh_claim(&claim, ctx).await? {
            Some(fresh) => Arc::new(fresh),
            None => return Ok(Action::await_change()),
        }
    } else {
        claim
    };
    if claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .is_none()
    {
        set_phase(&claim, ctx, ServerClaimPhase::Unbound).await?;
    }
    let server = match bound_server(&claim, ctx).await? {
        Some(server) => server,
        None => match bind(&claim, ctx).await? {
            Some(server) => server,
            None => return Ok(Action::requeue(resync)),
        },
    };
    if claim.spec.server_ref.is_none() {
        let api = Api::<ServerClaim>::namespaced(
            ctx.client.clone(),
            &claim.namespace().unwrap_or_default(),
        );
        let patch = json!({ "spec": { "serverRef": { "name": name_of(&*server) } } });
        api.patch(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    ctx.bindings.settled(&claim);
    if is_parked(&server) || !is_state(&server, ServerState::Reserved) {
        // Parked servers are left alone; otherwise wait for the Server reconciler to reserve it.
        return Ok(Action::requeue(resync));
    }
    let sbc_ref = ensure_boot_configuration(&claim, &server, ctx).await?;
    if server.spec.boot_configuration_ref.as_ref() != Some(&sbc_ref) {
        let patch = json!({ "spec": { "bootConfigurationRef": sbc_ref } });
        Api::<Server>::all(ctx.client.clone())
            .patch(
                &name_of(&*server),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    if claim.status.as_ref().and_then(|s| s.phase.as_ref()) != Some(&ServerClaimPhase::Bound) {
        set_phase(&claim, ctx, ServerClaimPhase::Bound).await?;
    }
    Ok(Action::requeue(resync))
}

async fn fresh_claim(claim: &ServerClaim, ctx: &Context) -> Result<Option<ServerClaim>> {
    let api =
        Api::<ServerClaim>::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    Ok(api
        .get_opt(&claim.name_any())
        .await?
        .filter(|fresh| fresh.metadata.uid == claim.metadata.uid))
}

/// The Server already bound to this claim, if any. A cached Server that refers to the claim and is
/// Reserved is taken as it is: only this controller sets the reference, and every write made from
/// it is a merge patch without preconditions. Anything else is read fresh: a reconcile woken by its
/// claim or its SBC (watches other than the Server store's) may find that store without our binding
/// or the reservation yet, and acting on it would wait a resync for the next wake-up.
async fn bound_server(claim: &ServerClaim, ctx: &Context) -> Result<Option<Arc<Server>>> {
    let servers = Api::<Server>::all(ctx.client.clone());
    if let Some(server_ref) = &claim.spec.server_ref {
        if let Some(cached) = ctx
            .stores
            .servers
            .get(&ObjectRef::new(&server_ref.name))
            .map(|s| ctx.server_writes.freshest(s))
            .filter(|s| refers_to(s, claim) && is_state(s, ServerState::Reserved))
        {
            return Ok(Some(cached));
        }
        return Ok(servers
            .get_opt(&server_ref.name)
            .await?
            .filter(|s| refers_to(s, claim))
            .map(Arc::new));
    }
    // A Server taken by an earlier reconcile whose claim patch failed: the cache may not show it yet.
    let in_flight = ctx.bindings.get(claim);
    let cached = ctx
        .stores
        .servers
        .find(|s| refers_to(s, claim))
        .map(|s| name_of(&*s));
    for name in in_flight.into_iter().chain(cached) {
        if let Some(server) = servers
            .get_opt(&name)
            .await?
            .filter(|s| refers_to(s, claim))
        {
            return Ok(Some(Arc::new(server)));
        }
    }
    Ok(None)
}

/// Picks an eligible Server and takes it with an optimistic-lock patch of `spec.serverClaimRef`.
async fn bind(claim: &ServerClaim, ctx: &Context) -> Result<Option<Arc<Server>>> {
    let server = match &claim.spec.server_ref {
        Some(server_ref) => ctx
            .stores
            .servers
            .get(&ObjectRef::new(&server_ref.name))
            .filter(|s| eligible(s, claim)),
        None => pick_server(&ctx.stores.servers, claim),
    };
    let Some(server) = server else {
        return Ok(None);
    };
    let reference =
        ImmutableObjectReference::new(claim.namespace().unwrap_or_default(), claim.name_any());
    let patch = json!({
        "metadata": { "resourceVersion": server.metadata.resource_version },
        "spec": { "serverClaimRef": reference },
    });
    let api = Api::<Server>::all(ctx.client.clone());
    let bound = api
        .patch(
            &name_of(&*server),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    ctx.bindings.record(claim, name_of(&bound));
    tracing::info!(claim = %claim.name_any(), server = %name_of(&bound), "claim bound");
    Ok(Some(Arc::new(bound)))
}

/// The eligible Server a claim takes: the highest rendezvous hash of (claim, server) among the
/// Servers its selector matches. One pass over the cache with no copies or sort, and concurrent
/// claims spread over the free Servers instead of all racing for the first one.
fn pick_server(servers: &Store<Server>, claim: &ServerClaim) -> Option<Arc<Server>> {
    let claim_key = {
        let mut hasher = DefaultHasher::new();
        claim.metadata.uid.hash(&mut hasher);
        claim.metadata.namespace.hash(&mut hasher);
        claim.metadata.name.hash(&mut hasher);
        hasher.finish()
    };
    let rank = |server: &Server| {
        let mut hasher = DefaultHasher::new();
        claim_key.hash(&mut hasher);
        server.metadata.name.hash(&mut hasher);
        hasher.finish()
    };
    // The ranking runs inside the store's read lock and keeps only the best name: no copy of
    // the eligible Servers (all of them, early on) per claim.
    let best: std::cell::RefCell<Option<(u64, String)>> = Default::default();
    let _always_empty = servers.state_filter(|s| {
        let fits = eligible(s, claim)
            && claim
                .spec
                .server_selector
                .as_ref()
                .is_none_or(|sel| crate::selector::matches(sel, s.labels()));
        if fits {
            let r = rank(s);
            let mut best = best.borrow_mut();
            if best.as_ref().is_none_or(|(b, _)| r > *b) {
                *best = Some((r, name_of(s)));
            }
        }
        false
    });
    let (_, name) = best.into_inner()?;
    servers
        .get(&ObjectRef::new(&name))
        .filter(|s| eligible(s, claim))
}

/// Creates or updates the claim's SBC: same name and namespace, controller-owned by the claim.
async fn ensure_boot_configuration(
    claim: &ServerClaim,
    server: &Server,
    ctx: &Context,
) -> Result<ObjectReference> {
    let namespace = claim.namespace().unwrap_or_default();
    let name = claim.name_any();
    let spec = ServerBootConfigurationSpec {
        server_ref: LocalObjectReference {
            name: name_of(server),
        },
        image: Some(claim.spec.image.clone()),
        ignition_secret_ref: claim.spec.ignition_secret_ref.clone(),
    };
    let api = Api::<ServerBootConfiguration>::namespaced(ctx.client.clone(), &namespace);
    match api.get_opt(&name).await? {
        None => {
            let mut sbc = ServerBootConfiguration::new(&name, spec);
            sbc.metadata.namespace = Some(namespace.clone());
            sbc.metadata.owner_references = claim.controller_owner_ref(&()).map(|o| vec![o]);
            api.create(&PostParams::default(), &sbc).await?;
        }
        Some(existing) if existing.spec != spec => {
            // The spec follows the claim; clearing the ignition reference needs an explicit null.
            let patch = json!({ "spec": {
                "serverRef": spec.server_ref,
                "image": spec.image,
                "ignitionSecretRef": spec.ignition_secret_ref,
            }});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Some(_) => {}
    }
    Ok(ObjectReference::new(namespace, name))
}

async fn set_phase(claim: &ServerClaim, ctx: &Context, phase: ServerClaimPhase) -> Result<()> {
    let api =
        Api::<ServerClaim>::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    let patch = json!({ "status": { "phase": phase } });
    api.patch_status(
        &claim.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Claim deletion: delete its SBC; the Server reconciler powers off and releases.
async fn cleanup(claim: Arc<ServerClaim>, ctx: &Context) -> Result<Action> {
    ctx.bindings.settled(&claim);
    let api = Api::<ServerBootConfiguration>::namespaced(
        ctx.client.clone(),
        &claim.namespace().unwrap_or_default(),
    );
    match api
        .delete(&claim.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}
