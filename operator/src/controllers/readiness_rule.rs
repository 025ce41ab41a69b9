//! The ServerReadinessRule reconciler: taints matching Servers until they carry the required
//! conditions; BootstrapOnly rules stop after the first success (recorded as an annotation);
//! deleting a rule removes its taints (finalizer).

use std::sync::Arc;

use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use metal_api::{EnforcementMode, Server, ServerReadinessRule, Taint};
use serde_json::json;
use watches::Fanout;

use super::{Finalized, finalized, name_of, referring};
use crate::context::Context;
use crate::error::Result;
use crate::keys;

pub const CONTROLLER: &str = "serverreadinessrule";

/// Builds the rule controller; a Server wakes the rules through `servers` (the Server controller's
/// watch), so enforcing, which walks that controller's store, sees what woke it.
pub fn controller(
    client: kube::Client,
    servers: &Fanout<Server>,
) -> Controller<ServerReadinessRule> {
    let controller = watches::controller(Api::<ServerReadinessRule>::all(client));
    let rules: Store<ServerReadinessRule> = controller.store();
    controller.watches_stream(servers.subscribe(), move |server| {
        referring(&rules, |r| {
            crate::selector::matches(&r.spec.server_selector, server.labels())
        })
    })
}

impl Finalized for ServerReadinessRule {
    const FINALIZER: &'static str = keys::SERVER_READINESS_RULE_FINALIZER;
}

pub(crate) async fn reconcile(rule: Arc<ServerReadinessRule>, ctx: Arc<Context>) -> Result<Action> {
    finalized(
        rule,
        &ctx,
        async |rule, ctx| enforce(rule, ctx, false).await,
        async |rule, ctx| enforce(rule, ctx, true).await,
    )
    .await
}

fn satisfied(rule: &ServerReadinessRule, server: &Server) -> bool {
    let conditions = server
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    rule.spec.conditions.iter().all(|required| {
        conditions
            .iter()
            .any(|c| c.type_ == required.type_ && c.status == required.required_status.as_str())
    })
}

fn same_taint(a: &Taint, b: &Taint) -> bool {
    a.key == b.key
        && a.value == b.value
        && metal_api::taints::taint_effect(a) == metal_api::taints::taint_effect(b)
}

/// Adds or removes the rule's taint on every matching Server; `removing` strips it everywhere.
async fn enforce(rule: Arc<ServerReadinessRule>, ctx: &Context, removing: bool) -> Result<Action> {
    let api = Api::<Server>::all(ctx.client.clone());
    let bootstrap_key = keys::bootstrap_completed_annotation(&rule.name_any());
    let bootstrap_only = rule.spec.enforcement_mode == EnforcementMode::BootstrapOnly;
    for server in ctx.stores.servers.state() {
        if !removing && !crate::selector::matches(&rule.spec.server_selector, server.labels()) {
            continue;
        }
        let done = server.annotations().get(&bootstrap_key).map(String::as_str)
            == Some(keys::ANNOTATION_TRUE);
        if bootstrap_only && done && !removing {
            continue;
        }
        let ok = removing || satisfied(&rule, &server);
        let has = server
            .spec
            .taints
            .iter()
            .any(|t| same_taint(t, &rule.spec.taint));
        let mut patch = serde_json::Map::new();
        if ok && has {
            let taints: Vec<&Taint> = server
                .spec
                .taints
                .iter()
                .filter(|t| !same_taint(t, &rule.spec.taint))
                .collect();
            patch.insert("spec".into(), json!({ "taints": taints }));
        } else if !ok && !has {
            let mut taints = server.spec.taints.clone();
            taints.push(rule.spec.taint.clone());
            patch.insert("spec".into(), json!({ "taints": taints }));
        }
        let mut metadata = json!({ "resourceVersion": server.metadata.resource_version });
        if ok && bootstrap_only && !removing && !done {
            metadata["annotations"] = json!({ bootstrap_key.clone(): keys::ANNOTATION_TRUE });
            patch.insert("metadata".into(), metadata.clone());
        }
        if patch.contains_key("spec") {
            patch.insert("metadata".into(), metadata);
        }
        if !patch.is_empty() {
            api.patch(
                &name_of(&*server),
                &PatchParams::default(),
                &Patch::Merge(serde_json::Value::Object(patch)),
            )
            .await?;
        }
    }
    Ok(Action::requeue(ctx.config.server_resync_interval))
}
