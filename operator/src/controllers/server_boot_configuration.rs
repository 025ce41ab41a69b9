//! The ServerBootConfiguration reconciler: as upstream, it only sets `status.state = Pending` when
//! no boot provider has written a state yet. No finalizer, nothing on delete.

use std::sync::Arc;

use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use metal_api::{ServerBootConfiguration, ServerBootConfigurationState};
use serde_json::json;

use super::is_ignored;
use crate::context::Context;
use crate::error::Result;

pub const CONTROLLER: &str = "serverbootconfiguration";

pub fn controller(client: kube::Client) -> Controller<ServerBootConfiguration> {
    // Only an SBC without a state needs this controller (it writes Pending); the backend's status
    // writes after that wake nobody here.
    watches::controller_on(Api::<ServerBootConfiguration>::all(client), |sbc| {
        watches::fingerprint((
            watches::metadata_fingerprint(&sbc.metadata),
            sbc.status
                .as_ref()
                .and_then(|s| s.state.as_ref())
                .is_some_and(|s| !s.as_str().is_empty()),
        ))
    })
}

pub(crate) async fn reconcile(
    sbc: Arc<ServerBootConfiguration>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let has_state = sbc
        .status
        .as_ref()
        .and_then(|s| s.state.as_ref())
        .is_some_and(|s| !s.as_str().is_empty());
    if has_state || is_ignored(&*sbc) || sbc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let api = Api::<ServerBootConfiguration>::namespaced(
        ctx.client.clone(),
        &sbc.namespace().unwrap_or_default(),
    );
    // Guarded by resourceVersion so a provider's concurrent Ready is never overwritten.
    let patch = json!({
        "metadata": { "resourceVersion": sbc.metadata.resource_version },
        "status": { "state": ServerBootConfigurationState::Pending },
    });
    api.patch_status(
        &sbc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(Action::await_change())
}
