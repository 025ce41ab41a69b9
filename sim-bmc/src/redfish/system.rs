//! ComputerSystem: the resource, its Boot PATCH, `#ComputerSystem.Reset` and the Bios settings object.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::collection::{collection, link, status_ok, types};
use super::response::{MAX_MESSAGES, Message, Resp, error, json as json_resp, success_message};
use super::routes::Route;
use super::{Ctx, inventory};
use crate::bmc::{Bmc, SystemEntry};
use crate::machine::{
    BOOT_ENABLED, BOOT_MODES, BOOT_OPTIONS, BOOT_TARGETS, BootSettingsPatch, PowerState, ResetError,
};

pub fn render(bmc: &Arc<Bmc>, route: &Route) -> Option<Value> {
    match route {
        Route::Systems => Some(collection(
            "/redfish/v1/Systems",
            "ComputerSystemCollection",
            "Computer System Collection",
            bmc.systems
                .iter()
                .map(|s| format!("/redfish/v1/Systems/{}", s.id)),
        )),
        Route::System(i) => Some(system(bmc, &bmc.systems[*i])),
        Route::ResetActionInfo(i) => Some(reset_action_info(bmc, &bmc.systems[*i])),
        Route::Bios(i) => Some(bios(bmc, &bmc.systems[*i])),
        Route::BiosSettings(i) => Some(bios_settings(&bmc.systems[*i])),
        other => inventory::render(bmc, other),
    }
}

fn base(s: &SystemEntry) -> String {
    format!("/redfish/v1/Systems/{}", s.id)
}

/// The PowerState a client sees (a fault may misreport it).
fn reported_power(bmc: &Bmc, s: &SystemEntry) -> PowerState {
    let truth = s.machine.power_state();
    if !bmc.faults.wrong_power_state() {
        return truth;
    }
    match truth {
        PowerState::On | PowerState::PoweringOn => PowerState::Off,
        PowerState::Off | PowerState::PoweringOff => PowerState::On,
    }
}

fn system(bmc: &Arc<Bmc>, s: &SystemEntry) -> Value {
    let vendor = bmc.vendor();
    let base = base(s);
    let boot = s.machine.boot_settings();
    let hw = &s.hardware;
    let arm = s.machine.inner.cfg.architecture == "arm64";
    let mut boot_json = json!({
        "BootSourceOverrideTarget": boot.override_target,
        "BootSourceOverrideTarget@Redfish.AllowableValues": BOOT_TARGETS,
        "BootSourceOverrideEnabled": boot.override_enabled,
        "BootSourceOverrideEnabled@Redfish.AllowableValues": BOOT_ENABLED,
        "BootOrder": boot.boot_order,
        "BootOptions": link(format!("{base}/BootOptions")),
    });
    if let Some(mode) = &boot.override_mode {
        boot_json["BootSourceOverrideMode"] = json!(mode);
        boot_json["BootSourceOverrideMode@Redfish.AllowableValues"] = json!(BOOT_MODES);
    }
    let indicator = s.machine.indicator();
    let mut v = json!({
        "@odata.id": base,
        "@odata.type": types::SYSTEM,
        "Id": s.id,
        "Name": "System",
        "SystemType": "Physical",
        "Manufacturer": vendor.manufacturer(),
        "Model": vendor.system_model(),
        "SKU": s.sku,
        "SerialNumber": s.serial,
        "PartNumber": format!("{}-PN", vendor.as_str().to_uppercase()),
        "UUID": s.uuid,
        "HostName": "",
        "BiosVersion": bmc.manager_state().bios_version,
        "PowerState": reported_power(bmc, s).as_str(),
        "IndicatorLED": indicator,
        "LocationIndicatorActive": indicator != "Off",
        "Status": status_ok(),
        "Boot": boot_json,
        "ProcessorSummary": {
            "Count": hw.cpu_sockets,
            "CoreCount": hw.cpu_sockets * hw.cores_per_socket,
            "LogicalProcessorCount": hw.cpu_sockets * hw.cores_per_socket * 2,
            "Model": inventory::cpu_model(arm),
        },
        "MemorySummary": {"TotalSystemMemoryGiB": hw.memory_gib},
        "Processors": link(format!("{base}/Processors")),
        "Memory": link(format!("{base}/Memory")),
        "Storage": link(format!("{base}/Storage")),
        "SimpleStorage": link(format!("{base}/SimpleStorage")),
        "EthernetInterfaces": link(format!("{base}/EthernetInterfaces")),
        "Bios": link(format!("{base}/Bios")),
        "Links": {
            "Chassis": [link(format!("/redfish/v1/Chassis/{}", s.chassis_id))],
            "ManagedBy": [link(format!("/redfish/v1/Managers/{}", vendor.manager_id()))],
        },
        "Actions": {"#ComputerSystem.Reset": {
            "target": format!("{base}/Actions/ComputerSystem.Reset"),
            "ResetType@Redfish.AllowableValues": vendor.system_reset_types(),
            "@Redfish.ActionInfo": format!("{base}/ResetActionInfo"),
        }},
    });
    if let Some(oem) = vendor.system_oem() {
        v["Oem"] = oem;
    }
    v
}

fn reset_action_info(bmc: &Bmc, s: &SystemEntry) -> Value {
    json!({
        "@odata.id": format!("{}/ResetActionInfo", base(s)),
        "@odata.type": types::ACTION_INFO,
        "Id": "ResetActionInfo",
        "Name": "Reset Action Info",
        "Parameters": [{
            "Name": "ResetType",
            "Required": true,
            "DataType": "String",
            "AllowableValues": bmc.vendor().system_reset_types(),
        }],
    })
}

fn bios(bmc: &Bmc, s: &SystemEntry) -> Value {
    json!({
        "@odata.id": format!("{}/Bios", base(s)),
        "@odata.type": types::BIOS,
        "Id": "Bios",
        "Name": "BIOS Configuration Current Settings",
        "AttributeRegistry": format!("BiosAttributeRegistry.{}", bmc.vendor().as_str()),
        "Attributes": s.machine.bios_attributes(),
        "@Redfish.Settings": {
            "@odata.type": "#Settings.v1_3_5.Settings",
            "SettingsObject": link(format!("{}/Bios/Settings", base(s))),
            "SupportedApplyTimes": ["OnReset"],
        },
    })
}

fn bios_settings(s: &SystemEntry) -> Value {
    json!({
        "@odata.id": format!("{}/Bios/Settings", base(s)),
        "@odata.type": types::BIOS,
        "Id": "Settings",
        "Name": "BIOS Configuration Pending Settings",
        "Attributes": s.machine.bios_pending(),
    })
}

fn bad_request(messages: Vec<Message>) -> Resp {
    error(StatusCode::BAD_REQUEST, messages)
}

/// PATCH of a System, its Bios settings object or a Chassis.
pub fn patch(ctx: &Ctx<'_>, route: &Route) -> Resp {
    let bmc = ctx.bmc;
    let Value::Object(body) = &ctx.body else {
        return bad_request(vec![Message::malformed_json()]);
    };
    let result = match route {
        Route::System(i) => patch_system(bmc, &bmc.systems[*i], body),
        Route::Chassis(i) => {
            patch_indicator_only(&bmc.systems[*i], body, super::render(bmc, route))
        }
        Route::BiosSettings(i) => patch_bios(&bmc.systems[*i], body),
        _ => Err(vec![Message::operation_not_allowed()]),
    };
    match result {
        Ok(()) => match super::render(bmc, route) {
            Some(v) => json_resp(StatusCode::OK, &v),
            None => error(
                StatusCode::NOT_FOUND,
                vec![Message::resource_missing_at_uri("")],
            ),
        },
        Err(messages) => bad_request(messages),
    }
}

fn string_in(
    value: &Value,
    name: &str,
    allowed: &[&str],
    errors: &mut Vec<Message>,
) -> Option<String> {
    match value.as_str() {
        Some(s) if allowed.contains(&s) => Some(s.to_string()),
        Some(s) => {
            errors.push(Message::property_value_not_in_list(s, name));
            None
        }
        None => {
            errors.push(Message::property_value_type_error(&value.to_string(), name));
            None
        }
    }
}

fn indicator_patch(body: &Map<String, Value>, errors: &mut Vec<Message>) -> Option<String> {
    let mut out = None;
    if let Some(v) = body.get("IndicatorLED") {
        out = string_in(v, "IndicatorLED", &["Lit", "Blinking", "Off"], errors);
    }
    if let Some(v) = body.get("LocationIndicatorActive") {
        match v.as_bool() {
            Some(true) => out = Some("Lit".into()),
            Some(false) => out = Some("Off".into()),
            None => errors.push(Message::property_value_type_error(
                &v.to_string(),
                "LocationIndicatorActive",
            )),
        }
    }
    out
}

fn patch_system(
    bmc: &Arc<Bmc>,
    s: &SystemEntry,
    body: &Map<String, Value>,
) -> Result<(), Vec<Message>> {
    let mut errors = Vec::new();
    let current = system(bmc, s);
    Message::reject_other_keys(
        body,
        &["Boot", "IndicatorLED", "LocationIndicatorActive"],
        Some(&current),
        &mut errors,
    );
    let indicator = indicator_patch(body, &mut errors);
    let mut patch = BootSettingsPatch::default();
    if let Some(boot) = body.get("Boot") {
        match boot.as_object() {
            Some(boot) => patch = boot_patch(bmc, boot, &current["Boot"], &mut errors),
            None => errors.push(Message::property_value_type_error(
                &boot.to_string(),
                "Boot",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Some(state) = indicator {
        s.machine.set_indicator(&state);
    }
    s.machine.patch_boot(patch);
    Ok(())
}

fn boot_patch(
    bmc: &Bmc,
    boot: &Map<String, Value>,
    current: &Value,
    errors: &mut Vec<Message>,
) -> BootSettingsPatch {
    let mut patch = BootSettingsPatch::default();
    let mut writable = vec![
        "BootSourceOverrideTarget",
        "BootSourceOverrideEnabled",
        "BootOrder",
    ];
    if bmc.vendor().has_boot_mode() {
        writable.push("BootSourceOverrideMode");
    }
    let nested: Vec<String> = boot
        .keys()
        .filter(|k| !writable.contains(&k.as_str()))
        .take(MAX_MESSAGES)
        .cloned()
        .collect();
    for key in nested.iter().filter(|k| !k.starts_with('@')) {
        if current.get(key).is_some() {
            errors.push(Message::property_not_writable(&format!("Boot/{key}")));
        } else {
            errors.push(Message::property_unknown(&format!("Boot/{key}")));
        }
    }
    if let Some(v) = boot.get("BootSourceOverrideTarget") {
        patch.target = string_in(v, "Boot/BootSourceOverrideTarget", BOOT_TARGETS, errors);
    }
    if let Some(v) = boot.get("BootSourceOverrideEnabled") {
        patch.enabled = string_in(v, "Boot/BootSourceOverrideEnabled", BOOT_ENABLED, errors);
    }
    if let Some(v) = boot.get("BootSourceOverrideMode")
        && bmc.vendor().has_boot_mode()
    {
        patch.mode = string_in(v, "Boot/BootSourceOverrideMode", BOOT_MODES, errors);
    }
    if let Some(v) = boot.get("BootOrder") {
        let refs: Vec<&str> = BOOT_OPTIONS.iter().map(|(r, _, _)| *r).collect();
        match v.as_array() {
            Some(items) => {
                let mut order = Vec::new();
                for item in items {
                    if let Some(s) = string_in(item, "Boot/BootOrder", &refs, errors) {
                        order.push(s);
                    }
                }
                patch.boot_order = Some(order);
            }
            None => errors.push(Message::property_value_type_error(
                &v.to_string(),
                "Boot/BootOrder",
            )),
        }
    }
    patch
}

fn patch_indicator_only(
    s: &SystemEntry,
    body: &Map<String, Value>,
    current: Option<Value>,
) -> Result<(), Vec<Message>> {
    let mut errors = Vec::new();
    Message::reject_other_keys(
        body,
        &["IndicatorLED", "LocationIndicatorActive"],
        current.as_ref(),
        &mut errors,
    );
    let indicator = indicator_patch(body, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Some(state) = indicator {
        s.machine.set_indicator(&state);
    }
    Ok(())
}

fn patch_bios(s: &SystemEntry, body: &Map<String, Value>) -> Result<(), Vec<Message>> {
    let mut errors = Vec::new();
    for key in body
        .keys()
        .filter(|k| *k != "Attributes" && !k.starts_with('@'))
        .take(MAX_MESSAGES)
    {
        errors.push(Message::property_unknown(key));
    }
    let current = s.machine.bios_attributes();
    let mut staged = BTreeMap::new();
    match body.get("Attributes").map(|a| a.as_object()) {
        Some(Some(attrs)) => {
            for (name, value) in attrs {
                if errors.len() >= MAX_MESSAGES {
                    break;
                }
                match current.get(name) {
                    None => errors.push(Message::property_unknown(&format!("Attributes/{name}"))),
                    Some(old) if std::mem::discriminant(old) != std::mem::discriminant(value) => {
                        errors.push(Message::property_value_type_error(
                            &value.to_string(),
                            &format!("Attributes/{name}"),
                        ))
                    }
                    Some(_) => {
                        staged.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        Some(None) => errors.push(Message::property_value_type_error("", "Attributes")),
        None => errors.push(Message::property_missing("Attributes")),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    s.machine.stage_bios(staged);
    Ok(())
}

/// `POST …/Actions/ComputerSystem.Reset`.
pub fn reset(ctx: &Ctx<'_>, index: usize) -> Resp {
    const ACTION: &str = "ComputerSystem.Reset";
    let bmc = ctx.bmc;
    let s = &bmc.systems[index];
    let Value::Object(body) = &ctx.body else {
        return bad_request(vec![Message::malformed_json()]);
    };
    let unknown: Vec<Message> = body
        .keys()
        .filter(|k| *k != "ResetType")
        .take(MAX_MESSAGES)
        .map(|k| Message::action_parameter_unknown(ACTION, k))
        .collect();
    if !unknown.is_empty() {
        return bad_request(unknown);
    }
    let Some(value) = body.get("ResetType") else {
        return bad_request(vec![Message::action_parameter_missing(ACTION, "ResetType")]);
    };
    let Some(reset_type) = value.as_str() else {
        return bad_request(vec![Message::action_parameter_value_type_error(
            &value.to_string(),
            "ResetType",
            ACTION,
        )]);
    };
    if !bmc.vendor().system_reset_types().contains(&reset_type) {
        return bad_request(vec![Message::action_parameter_value_not_in_list(
            reset_type,
            "ResetType",
            ACTION,
        )]);
    }
    match s.machine.reset(reset_type) {
        Ok(()) if bmc.vendor().reset_returns_body() => success_message(StatusCode::OK),
        Ok(()) => super::response::empty(StatusCode::NO_CONTENT),
        Err(ResetError::InProgress) => {
            error(StatusCode::CONFLICT, vec![Message::resource_in_use()])
        }
        Err(ResetError::Unsupported(t)) => {
            bad_request(vec![Message::action_parameter_value_not_in_list(
                &t,
                "ResetType",
                ACTION,
            )])
        }
    }
}
