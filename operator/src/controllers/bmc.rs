//! The BMC reconciler: connect with the BMCSecret credentials, fill the status from the Manager,
//! set the `Ready` condition with upstream's reasons, discover Systems as `<bmc>-system-<index>`
//! Servers owned by the BMC, handle `graceful-restart-bmc`, and manage event subscriptions.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource as _, ResourceExt as _};
use metal_api::constants::Operation;
use metal_api::{BMC, BMCSecret, BMCStatus, Endpoint, Server, ServerSpec};
use serde_json::json;
use watches::Fanout;

use super::{Finalized, finalized, name_of, operation_of, referring};
use crate::conditions::{self, NewCondition};
use crate::context::Context;
use crate::error::Result;
use crate::keys;
use crate::redfish::types::ComputerSystem;
use crate::redfish::{RedfishClient, RedfishError, ResetType};

pub const CONTROLLER: &str = "bmc";

/// Builds the BMC controller; its watch goes on to `bmcs`' subscribers. Secrets and Endpoints wake
/// BMCs through `secrets` and `endpoints`, once the stores the reconcile reads have the change.
pub fn controller(
    client: kube::Client,
    bmcs: &Fanout<BMC>,
    secrets: &Fanout<BMCSecret>,
    endpoints: &Fanout<Endpoint>,
) -> Controller<BMC> {
    let controller = watches::controller_publishing(
        Api::<BMC>::all(client),
        Some(|bmc| watches::metadata_fingerprint(&bmc.metadata)),
        bmcs,
    );
    let bmcs = controller.store();
    let by_endpoint = bmcs.clone();
    controller
        .watches_stream(secrets.subscribe(), move |secret| {
            let name = secret.name_any();
            referring(&bmcs, |b| b.spec.bmc_secret_ref.name == name)
        })
        .watches_stream(endpoints.subscribe(), move |endpoint| {
            let name = endpoint.name_any();
            referring(&by_endpoint, |b| {
                b.spec.endpoint_ref.as_ref().is_some_and(|r| r.name == name)
            })
        })
}

impl Finalized for BMC {
    const FINALIZER: &'static str = keys::BMC_FINALIZER;
    const RESYNC_WHEN_IGNORED: bool = true;
}

pub(crate) async fn reconcile(bmc: Arc<BMC>, ctx: Arc<Context>) -> Result<Action> {
    finalized(bmc, &ctx, apply, cleanup).await
}

fn set(
    status: &mut BMCStatus,
    ctx: &Context,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
) {
    conditions::set(
        &mut status.conditions,
        NewCondition {
            type_,
            status: ok,
            reason,
            message,
            observed_generation: None,
        },
        ctx.clock.now(),
    );
}

async fn apply(bmc: Arc<BMC>, ctx: &Context) -> Result<Action> {
    use keys::conditions::{READY, REASON_CONNECTED, REASON_RESET_COMPLETE, RESET};
    let name = name_of(&*bmc);
    let mut status = bmc.status.clone().unwrap_or_default();
    let original = status.clone();
    let access = ctx.bmc_access(&bmc).await?;
    let redfish = ctx.redfish(&access)?;
    if let Some(pending) =
        conditions::find(&status.conditions, RESET).filter(|c| c.status == "True")
        && conditions::age(pending, ctx.clock.now()) < ctx.config.bmc_reset_waiting_interval
    {
        // Give the BMC time to go down and come back before talking to it again.
        status.state = Some(metal_api::BMCState::Pending);
        write_status(&bmc, ctx, &original, &status).await?;
        return Ok(Action::requeue(ctx.config.power_polling_interval));
    }
    let connected = connect_and_describe(&bmc, ctx, &redfish, &mut status).await;
    if let Err(error) = connected {
        let reset = super::bmc_reset::auto_reset(&bmc, ctx, &redfish, &mut status).await;
        set(
            &mut status,
            ctx,
            READY,
            false,
            error.ready_reason(),
            error.to_string(),
        );
        write_status(&bmc, ctx, &original, &status).await?;
        return match reset {
            Some(action) => Ok(action),
            None => Err(error.into()),
        };
    }
    set(
        &mut status,
        ctx,
        READY,
        true,
        REASON_CONNECTED,
        "BMC is reachable".into(),
    );
    if conditions::is_true(&status.conditions, RESET) {
        // The BMC answers again: the reset (user-requested or automatic) is over.
        set(
            &mut status,
            ctx,
            RESET,
            false,
            REASON_RESET_COMPLETE,
            "BMC reset is complete".into(),
        );
    }
    if let Some(action) = handle_operation(&bmc, ctx, &redfish, &mut status).await? {
        write_status(&bmc, ctx, &original, &status).await?;
        return Ok(action);
    }
    ensure_subscriptions(&bmc, ctx, &redfish, &mut status).await;
    write_status(&bmc, ctx, &original, &status).await?;
    if let Some(template) = &ctx.config.dns_record_template {
        ensure_dns_record(&bmc, ctx, template, &status).await;
    }
    discover_servers(&bmc, ctx, &redfish).await?;
    tracing::debug!(bmc = %name, "BMC reconciled");
    Ok(Action::requeue(ctx.config.server_resync_interval))
}

async fn connect_and_describe(
    bmc: &BMC,
    ctx: &Context,
    redfish: &RedfishClient,
    status: &mut BMCStatus,
) -> Result<(), RedfishError> {
    redfish.connect().await?;
    let manager = redfish.manager(bmc.spec.bmc_uuid.as_deref()).await?;
    let (mac, ip) = match (&bmc.spec.access, &bmc.spec.endpoint_ref) {
        (Some(access), _) => (access.mac_address.clone(), access.ip.clone()),
        (None, Some(endpoint_ref)) => {
            let endpoint = ctx
                .stores
                .endpoints
                .get(&ObjectRef::new(&endpoint_ref.name));
            (
                endpoint.as_ref().and_then(|e| e.spec.mac_address.clone()),
                endpoint.and_then(|e| e.spec.ip.clone()),
            )
        }
        (None, None) => (None, None),
    };
    status.mac_address = mac.filter(|m| !m.is_empty());
    status.ip = ip;
    status.manufacturer = manager.manufacturer.clone();
    status.model = manager.model.clone();
    status.sku = manager.part_number.clone();
    status.serial_number = manager.serial_number.clone();
    status.firmware_version = manager.firmware_version.clone();
    status.state = manager
        .status
        .as_ref()
        .and_then(|s| s.state.as_deref())
        .map(Into::into);
    status.power_state = manager.power_state.as_deref().map(Into::into);
    status.last_reset_time = manager
        .last_reset_time
        .as_deref()
        .and_then(|t| t.parse().ok())
        .map(Time);
    Ok(())
}

async fn write_status(
    bmc: &BMC,
    ctx: &Context,
    original: &BMCStatus,
    status: &BMCStatus,
) -> Result<()> {
    if original == status {
        return Ok(());
    }
    merge_patch(bmc, ctx, &json!({ "status": status }), true).await
}

/// Merge-patches the BMC, or with `status` its status subresource.
async fn merge_patch(
    bmc: &BMC,
    ctx: &Context,
    patch: &serde_json::Value,
    status: bool,
) -> Result<()> {
    let api = Api::<BMC>::all(ctx.client.clone());
    let (name, params, patch) = (name_of(bmc), PatchParams::default(), Patch::Merge(patch));
    if status {
        api.patch_status(&name, &params, &patch).await?;
    } else {
        api.patch(&name, &params, &patch).await?;
    }
    Ok(())
}

/// `graceful-restart-bmc` → Manager.Reset; on 5xx the annotation becomes `force-ssh-reset-bmc`, as upstream.
async fn handle_operation(
    bmc: &BMC,
    ctx: &Context,
    redfish: &RedfishClient,
    status: &mut BMCStatus,
) -> Result<Option<Action>> {
    let Some(value) = operation_of(bmc) else {
        return Ok(None);
    };
    match Operation::from(value.as_str()) {
        Operation::GracefulRestartBmc => {
            let manager = redfish.manager(bmc.spec.bmc_uuid.as_deref()).await?;
            match redfish
                .reset_manager(&manager, ResetType::GracefulRestart)
                .await
            {
                Ok(()) => {
                    set(
                        status,
                        ctx,
                        keys::conditions::RESET,
                        true,
                        keys::conditions::REASON_USER_REQUESTED,
                        "BMC reset requested".into(),
                    );
                    status.state = Some(metal_api::BMCState::Pending);
                    set_operation(bmc, ctx, None).await?;
                    ctx.event(
                        bmc.object_ref(&()),
                        false,
                        "BMCResetRequested",
                        "Reset",
                        "Manager.Reset GracefulRestart sent".into(),
                    )
                    .await;
                    Ok(Some(Action::requeue(ctx.config.power_polling_interval)))
                }
                Err(RedfishError::Unsupported(what)) => {
                    // Retrying cannot help (upstream retries forever).
                    let note = format!("BMC reset not possible: the BMC does not support {what}");
                    refuse_operation(bmc, ctx, "BMCResetUnsupported", "Reset", note).await
                }
                Err(RedfishError::Server { .. }) => {
                    let next = Some(Operation::ForceSshResetBmc.as_str());
                    set_operation(bmc, ctx, next).await?;
                    Ok(Some(Action::requeue(std::time::Duration::ZERO)))
                }
                Err(e) => Err(e.into()),
            }
        }
        Operation::ForceSshResetBmc => {
            let note = "SSH reset of the BMC is not implemented; reset it manually".to_owned();
            refuse_operation(bmc, ctx, "BMCResetFailed", "Reset", note).await
        }
        Operation::Ignore => Ok(None),
        _ => {
            let note = format!("operation {value} is not supported on BMCs");
            refuse_operation(bmc, ctx, "UnsupportedOperation", "Reconcile", note).await
        }
    }
}

/// Sets (`Some`) or removes (`None`) the operation annotation.
async fn set_operation(bmc: &BMC, ctx: &Context, value: Option<&str>) -> Result<()> {
    let patch = json!({ "metadata": { "annotations": { keys::OPERATION_ANNOTATION: value } } });
    merge_patch(bmc, ctx, &patch, false).await
}

/// Drops an operation that cannot be carried out, with a Warning that says why.
async fn refuse_operation(
    bmc: &BMC,
    ctx: &Context,
    reason: &str,
    action: &str,
    note: String,
) -> Result<Option<Action>> {
    set_operation(bmc, ctx, None).await?;
    ctx.event(bmc.object_ref(&()), true, reason, action, note)
        .await;
    Ok(None)
}

/// Creates the alert and metrics-report subscriptions when `--event-url` is set. Failures are logged:
/// events are an optimisation, not required for the lifecycle.
async fn ensure_subscriptions(
    bmc: &BMC,
    ctx: &Context,
    redfish: &RedfishClient,
    status: &mut BMCStatus,
) {
    let base = ctx.config.event_url.trim_end_matches('/');
    if base.is_empty() {
        return;
    }
    let hpe = status
        .manufacturer
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("HPE"));
    let name = name_of(bmc);
    for (kind, format) in [("alerts", "Event"), ("metricsreport", "MetricReport")] {
        let link = if kind == "alerts" {
            &mut status.events_subscription_link
        } else {
            &mut status.metrics_report_subscription_link
        };
        if link.is_some() {
            continue;
        }
        let destination = format!("{base}/serverevents/{kind}/{name}");
        match redfish
            .subscribe_events(&destination, format, "metal-operator", hpe)
            .await
        {
            Ok(uri) => *link = Some(uri),
            Err(error) => tracing::warn!(bmc = %name, %error, "event subscription failed"),
        }
    }
}

/// Applies the BMC's DNS record. A failure is reported (Event) and retried at the next resync, but
/// does not hold up server discovery (upstream returns before discovering servers).
async fn ensure_dns_record(bmc: &BMC, ctx: &Context, template: &str, status: &BMCStatus) {
    let namespace = &ctx.config.manager_namespace;
    let outcome = match crate::dns::render(template, bmc, status, namespace) {
        Ok(object) => crate::dns::apply(&ctx.client, &object)
            .await
            .map_err(|e| e.to_string()),
        Err(reason) => Err(reason),
    };
    if let Err(reason) = outcome {
        tracing::warn!(bmc = %name_of(bmc), %reason, "DNS record not applied");
        ctx.event(
            bmc.object_ref(&()),
            true,
            "DNSRecordFailed",
            "Reconcile",
            reason,
        )
        .await;
    }
}

/// Creates or updates `<bmc>-system-<index>` for every System with a boot override target.
async fn discover_servers(bmc: &BMC, ctx: &Context, redfish: &RedfishClient) -> Result<()> {
    let systems = redfish.systems().await?;
    let api = Api::<Server>::all(ctx.client.clone());
    for (index, system) in systems.iter().enumerate() {
        let has_target = system
            .boot
            .as_ref()
            .and_then(|b| b.boot_source_override_target.as_deref())
            .is_some_and(|t| !t.is_empty());
        if !has_target {
            continue;
        }
        let desired = desired_server(bmc, index, system);
        let name = name_of(&desired);
        match api.get_opt(&name).await? {
            None => drop(api.create(&PostParams::default(), &desired).await?),
            Some(existing) => {
                let same = existing.spec.system_uuid == desired.spec.system_uuid
                    && existing.spec.system_uri == desired.spec.system_uri
                    && existing.spec.bmc_ref == desired.spec.bmc_ref
                    && existing.metadata.owner_references == desired.metadata.owner_references;
                if !same {
                    let patch = json!({
                        "metadata": { "ownerReferences": desired.metadata.owner_references, "labels": desired.metadata.labels },
                        "spec": { "systemUUID": desired.spec.system_uuid, "systemURI": desired.spec.system_uri, "bmcRef": desired.spec.bmc_ref },
                    });
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                }
            }
        }
    }
    Ok(())
}

fn desired_server(bmc: &BMC, index: usize, system: &ComputerSystem) -> Server {
    let bmc_name = name_of(bmc);
    let mut server = Server::new(
        &format!("{bmc_name}-system-{index}"),
        ServerSpec {
            system_uuid: system.uuid.clone().unwrap_or_default().to_lowercase(),
            system_uri: Some(system.odata_id.clone()),
            bmc_ref: Some(LocalObjectReference { name: bmc_name }),
            ..ServerSpec::default()
        },
    );
    let labels: BTreeMap<String, String> = bmc.labels().clone();
    server.metadata.labels = (!labels.is_empty()).then_some(labels);
    server.metadata.owner_references = bmc.controller_owner_ref(&()).map(|o| vec![o]);
    server
}

/// BMC deletion: remove event subscriptions (best effort); Servers go by owner GC.
async fn cleanup(bmc: Arc<BMC>, ctx: &Context) -> Result<Action> {
    let status = bmc.status.clone().unwrap_or_default();
    let links = [
        status.events_subscription_link,
        status.metrics_report_subscription_link,
    ];
    if links.iter().any(Option::is_some)
        && let Ok(access) = ctx.bmc_access(&bmc).await
        && let Ok(redfish) = ctx.redfish(&access)
    {
        for link in links.into_iter().flatten() {
            if let Err(error) = redfish.delete_subscription(&link).await {
                tracing::warn!(bmc = %name_of(&*bmc), %error, "deleting event subscription failed");
            }
        }
    }
    Ok(Action::await_change())
}
