//! Power and hardware-facing steps of the Server reconciler: non-blocking power-on/off with the
//! `PoweringOn` / `WaitingForPowerOff` conditions as durable intent, inventory, LED, registry data.

use std::sync::atomic::Ordering;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use metal_api::probe_registry::ServerData;
use metal_api::{LLDPNeighbor, NetworkInterface, ServerPowerState};

use super::run::Run;
use crate::conditions;
use crate::error::Result;
use crate::keys;
use crate::redfish::{RedfishError, ResetType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Progress {
    Done,
    Waiting,
    /// The readiness gate closed again right before the power-on; nothing was sent.
    GateClosed,
}

/// Drives the Server On. The caller has passed the readiness gate.
///
/// The `PoweringOn` condition is written *before* the reset is sent, so a restarted operator sees
/// the request in flight and waits for it instead of sending a second power-on; only after
/// `--power-polling-timeout` without the BMC reporting On is the request repeated (with an Event).
/// Between that write and the BMC the gate is evaluated once more on a fresh read of the boot
/// configuration: a backend that went back to Pending meanwhile gets no power-on.
pub(super) async fn ensure_on(run: &mut Run<'_>, pxe_once: bool) -> Result<Progress> {
    use keys::conditions::{POWERING_ON, REASON_SERVER_POWER_ON};
    match run.status.power_state {
        Some(ServerPowerState::On) => {
            settle(
                run,
                POWERING_ON,
                keys::gate::REASON_POWER_ON_CONFIRMED,
                "BMC reports On",
            );
            return Ok(Progress::Done);
        }
        Some(ServerPowerState::PoweringOn) => return Ok(Progress::Waiting),
        _ => {}
    }
    let timeout = run.ctx.config.power_polling_timeout;
    if let Some(pending) = run.condition(POWERING_ON).filter(|c| c.status == "True") {
        if conditions::age(pending, run.ctx.clock.now()) < timeout {
            return Ok(Progress::Waiting);
        }
        let note = format!("BMC did not report On within {timeout:?}; requesting power-on again");
        run.event(true, keys::gate::REASON_POWER_ON_TIMED_OUT, note)
            .await;
        conditions::remove(&mut run.status.conditions, POWERING_ON);
    }
    run.set_condition(
        POWERING_ON,
        true,
        REASON_SERVER_POWER_ON,
        "power-on requested".into(),
    );
    run.flush_status().await?;
    if !run.boot_readiness_fresh().await?.is_ready() {
        conditions::remove(&mut run.status.conditions, POWERING_ON);
        run.ctx
            .metrics
            .power_on_withheld
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(server = %run.name, "boot configuration left Ready before power-on; withheld");
        return Ok(Progress::GateClosed);
    }
    let sent = async {
        if pxe_once {
            run.redfish.set_pxe_once(&run.system).await?;
        }
        run.redfish.reset_system(&run.system, ResetType::On).await
    }
    .await;
    if let Err(error) = sent {
        conditions::remove(&mut run.status.conditions, POWERING_ON);
        return Err(error.into());
    }
    run.ctx
        .metrics
        .power_on_requests
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(server = %run.name, pxe_once, "power-on sent");
    Ok(Progress::Waiting)
}

/// The BMC reports the requested power state: the request's pending condition turns False.
fn settle(run: &mut Run<'_>, pending: &str, reason: &str, note: &str) {
    if conditions::is_true(&run.status.conditions, pending) {
        run.set_condition(pending, false, reason, note.into());
    }
}

/// Drives the Server Off: GracefulShutdown, and after `--power-polling-timeout` ForceOff when
/// `--enforce-power-off` is set (otherwise GracefulShutdown again, with an Event).
pub(super) async fn ensure_off(run: &mut Run<'_>) -> Result<Progress> {
    use keys::conditions::{
        POWERING_ON, REASON_POWER_OFF_CONFIRMED, REASON_WAITING_FOR_POWER_OFF,
        WAITING_FOR_POWER_OFF,
    };
    // A power-on still pending is superseded: left True, the next power-on would wait out its
    // timeout (`--power-polling-timeout`) before asking the BMC again.
    settle(
        run,
        POWERING_ON,
        keys::gate::REASON_POWER_ON_SUPERSEDED,
        "power-off requested before the BMC reported On",
    );
    match run.status.power_state {
        Some(ServerPowerState::Off) => {
            settle(
                run,
                WAITING_FOR_POWER_OFF,
                REASON_POWER_OFF_CONFIRMED,
                "BMC reports Off",
            );
            return Ok(Progress::Done);
        }
        Some(ServerPowerState::PoweringOff) => return Ok(Progress::Waiting),
        _ => {}
    }
    let config = &run.ctx.config;
    let mut reset = ResetType::GracefulShutdown;
    if let Some(pending) = run
        .condition(WAITING_FOR_POWER_OFF)
        .filter(|c| c.status == "True")
    {
        if conditions::age(pending, run.ctx.clock.now()) < config.power_polling_timeout {
            return Ok(Progress::Waiting);
        }
        if config.enforce_power_off {
            reset = ResetType::ForceOff;
        }
        let note = format!(
            "server still on after {:?}; sending {reset}",
            config.power_polling_timeout
        );
        run.event(true, "PowerOffTimedOut", note).await;
        conditions::remove(&mut run.status.conditions, WAITING_FOR_POWER_OFF);
    }
    run.set_condition(
        WAITING_FOR_POWER_OFF,
        true,
        REASON_WAITING_FOR_POWER_OFF,
        format!("{reset} requested"),
    );
    run.redfish.reset_system(&run.system, reset).await?;
    tracing::info!(server = %run.name, %reset, "power-off sent");
    Ok(Progress::Waiting)
}

/// Applies `spec.indicatorLED` when it differs from what the BMC reports.
pub(super) async fn apply_indicator_led(run: &mut Run<'_>) -> Result<()> {
    let Some(wanted) = run.server.spec.indicator_led.clone() else {
        return Ok(());
    };
    if wanted.as_str() == "Unknown" || run.system.indicator_led.as_deref() == Some(wanted.as_str())
    {
        return Ok(());
    }
    run.redfish
        .set_indicator_led(&run.system, wanted.as_str())
        .await?;
    run.status.indicator_led = Some(wanted);
    Ok(())
}

/// Copies System, processor and storage inventory into the status (upstream's `updateServerStatus`).
///
/// Processors and storage are linked resources that real BMCs do not always serve (sushy-tools'
/// fake driver answers its own `Storage` link with 500, others 404 or 501). Upstream polls them and
/// then fails the Initial state, so such a machine is never discovered; here the System itself must
/// be readable, while a linked collection that fails is left out of the status with a Warning Event
/// (`InventoryIncomplete`) and discovery goes on. Nothing the operator decides depends on them.
pub(super) async fn read_inventory(run: &mut Run<'_>) -> Result<()> {
    let system = run.system.clone();
    run.status.manufacturer = system.manufacturer.clone();
    run.status.model = system.model.clone();
    run.status.sku = system.sku.clone();
    run.status.serial_number = system.serial_number.clone();
    run.status.bios_version = system.bios_version.clone();
    run.status.total_system_memory = system
        .memory_summary
        .as_ref()
        .and_then(|m| m.total_system_memory_gib)
        .map(|gib| Quantity(format!("{}Gi", gib.round() as i64)));
    let mut missing = Vec::new();
    match run.redfish.processors(&system).await {
        Ok(processors) => {
            run.status.processors = processors
                .into_iter()
                .map(|p| metal_api::Processor {
                    id: p.id.unwrap_or_default(),
                    type_: p.processor_type,
                    architecture: p.processor_architecture,
                    instruction_set: p.instruction_set,
                    manufacturer: p.manufacturer,
                    model: p.model,
                    max_speed_mhz: p.max_speed_mhz.map(|v| v as i32),
                    total_cores: p.total_cores.and_then(|v| i32::try_from(v).ok()),
                    total_threads: p.total_threads.and_then(|v| i32::try_from(v).ok()),
                })
                .collect();
        }
        Err(error) if resource_unavailable(&error) => missing.push(format!("processors: {error}")),
        Err(error) => return Err(error.into()),
    }
    match run.redfish.storages(&system).await {
        Ok(storages) => run.status.storages = storages.into_iter().map(storage).collect(),
        Err(error) if resource_unavailable(&error) => missing.push(format!("storage: {error}")),
        Err(error) => return Err(error.into()),
    }
    if !missing.is_empty() {
        let note = format!("BMC inventory incomplete; {}", missing.join("; "));
        tracing::warn!(server = %run.name, %note);
        run.event(true, "InventoryIncomplete", note).await;
    }
    Ok(())
}

/// Whether a failed inventory read is the BMC's answer about that resource (a 4xx, a 5xx other
/// than 503 "busy", an unreadable body) rather than the BMC being unreachable, busy or refusing us.
fn resource_unavailable(error: &RedfishError) -> bool {
    match error {
        RedfishError::Rejected { .. } | RedfishError::Decode { .. } => true,
        RedfishError::Server { status, .. } => *status != 503,
        _ => false,
    }
}

fn storage(inventory: crate::redfish::types::StorageInventory) -> metal_api::Storage {
    let state =
        |s: &Option<crate::redfish::types::Status>| s.as_ref().and_then(|s| s.state.clone());
    let bytes = |b: Option<i64>| b.map(|b| Quantity(b.to_string()));
    metal_api::Storage {
        name: inventory.name,
        state: state(&inventory.status),
        volumes: inventory
            .volumes
            .into_iter()
            .map(|v| metal_api::StorageVolume {
                name: v.name,
                capacity: bytes(v.capacity_bytes),
                state: state(&v.status),
                raid_type: v.raid_type,
                volume_usage: None,
            })
            .collect(),
        drives: inventory
            .drives
            .into_iter()
            .map(|d| metal_api::StorageDrive {
                name: d.name,
                media_type: d.media_type,
                type_: d.drive_form_factor,
                capacity: bytes(d.capacity_bytes),
                vendor: d.manufacturer,
                model: d.model,
                state: state(&d.status),
            })
            .collect(),
    }
}

/// Network interfaces from the probe's registration, with LLDP neighbours matched by name.
pub(super) fn network_interfaces(data: &ServerData) -> Vec<NetworkInterface> {
    data.network_interfaces
        .iter()
        .map(|nic| {
            let mut ips = nic.ip_addresses.clone();
            if ips.is_empty() && !nic.ip_address.is_empty() {
                ips.push(nic.ip_address.clone());
            }
            let neighbors = data
                .lldp
                .iter()
                .filter(|l| l.name == nic.name)
                .flat_map(|l| l.neighbors.iter())
                .map(|n| LLDPNeighbor {
                    mac_address: non_empty(&n.chassis_id),
                    port_id: non_empty(&n.port_id),
                    port_description: non_empty(&n.port_description),
                    system_name: non_empty(&n.system_name),
                    system_description: non_empty(&n.system_description),
                })
                .collect();
            NetworkInterface {
                name: nic.name.clone(),
                ip: None,
                ips,
                mac_address: nic.mac_address.clone(),
                carrier_status: non_empty(&nic.carrier_status),
                neighbors,
            }
        })
        .collect()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}
