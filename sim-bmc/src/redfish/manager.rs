//! Manager (the BMC itself), its network protocol and interface, `#Manager.Reset`, and Chassis.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{Value, json};

use super::Ctx;
use super::collection::{collection, link, status_ok, timestamp, types};
use super::response::{MAX_MESSAGES, Message, Resp, empty, error};
use super::routes::Route;
use crate::bmc::Bmc;

fn manager_base(bmc: &Bmc) -> String {
    format!("/redfish/v1/Managers/{}", bmc.vendor().manager_id())
}

pub fn render(bmc: &Arc<Bmc>, route: &Route) -> Option<Value> {
    let mb = manager_base(bmc);
    Some(match route {
        Route::Managers => collection(
            "/redfish/v1/Managers",
            "ManagerCollection",
            "Manager Collection",
            [mb],
        ),
        Route::Manager => manager(bmc),
        Route::ManagerNetworkProtocol => json!({
            "@odata.id": format!("{mb}/NetworkProtocol"),
            "@odata.type": types::NETWORK_PROTOCOL,
            "Id": "NetworkProtocol",
            "Name": "Manager Network Protocol",
            "HostName": bmc.identity.name,
            "HTTP": {"ProtocolEnabled": true, "Port": 80},
            "HTTPS": {"ProtocolEnabled": true, "Port": 443},
            "IPMI": {"ProtocolEnabled": false, "Port": 623},
            "SSH": {"ProtocolEnabled": false, "Port": 22},
            "SSDP": {"ProtocolEnabled": false, "Port": 1900},
            "Status": status_ok(),
        }),
        Route::ManagerEthernetInterfaces => collection(
            &format!("{mb}/EthernetInterfaces"),
            "EthernetInterfaceCollection",
            "Manager Ethernet Interface Collection",
            [format!("{mb}/EthernetInterfaces/1")],
        ),
        Route::ManagerEthernetInterface => json!({
            "@odata.id": format!("{mb}/EthernetInterfaces/1"),
            "@odata.type": types::ETHERNET_INTERFACE,
            "Id": "1",
            "Name": "Manager Ethernet Interface",
            "MACAddress": bmc.identity.manager_mac,
            "PermanentMACAddress": bmc.identity.manager_mac,
            "InterfaceEnabled": true,
            "LinkStatus": "LinkUp",
            "Status": status_ok(),
        }),
        Route::ChassisCollection => collection(
            "/redfish/v1/Chassis",
            "ChassisCollection",
            "Chassis Collection",
            bmc.systems
                .iter()
                .map(|s| format!("/redfish/v1/Chassis/{}", s.chassis_id)),
        ),
        Route::Chassis(i) => chassis(bmc, *i),
        _ => return None,
    })
}

fn manager(bmc: &Arc<Bmc>) -> Value {
    let vendor = bmc.vendor();
    let mb = manager_base(bmc);
    let state = bmc.manager_state();
    json!({
        "@odata.id": mb,
        "@odata.type": types::MANAGER,
        "Id": vendor.manager_id(),
        "Name": "Manager",
        "ManagerType": "BMC",
        "Manufacturer": vendor.manufacturer(),
        "Model": vendor.manager_model(),
        "UUID": bmc.identity.manager_uuid,
        "ServiceEntryPointUUID": bmc.identity.service_uuid,
        "SerialNumber": bmc.identity.manager_serial,
        "PartNumber": format!("{}-BMC", vendor.as_str().to_uppercase()),
        "FirmwareVersion": state.firmware_version,
        "PowerState": "On",
        "LastResetTime": timestamp(state.last_reset),
        "DateTime": timestamp(bmc.clock.now_chrono()),
        "DateTimeLocalOffset": "+00:00",
        "Status": status_ok(),
        "GraphicalConsole": {"ServiceEnabled": false, "MaxConcurrentSessions": 0, "ConnectTypesSupported": []},
        "NetworkProtocol": link(format!("{mb}/NetworkProtocol")),
        "EthernetInterfaces": link(format!("{mb}/EthernetInterfaces")),
        "Links": {
            "ManagerForServers": bmc.systems.iter().map(|s| link(format!("/redfish/v1/Systems/{}", s.id))).collect::<Vec<_>>(),
            "ManagerForChassis": bmc.systems.iter().map(|s| link(format!("/redfish/v1/Chassis/{}", s.chassis_id))).collect::<Vec<_>>(),
        },
        "Actions": {"#Manager.Reset": {
            "target": format!("{mb}/Actions/Manager.Reset"),
            "ResetType@Redfish.AllowableValues": vendor.manager_reset_types(),
        }},
    })
}

fn chassis(bmc: &Arc<Bmc>, i: usize) -> Value {
    let s = &bmc.systems[i];
    let vendor = bmc.vendor();
    let indicator = s.machine.indicator();
    json!({
        "@odata.id": format!("/redfish/v1/Chassis/{}", s.chassis_id),
        "@odata.type": types::CHASSIS,
        "Id": s.chassis_id,
        "Name": "Chassis",
        "ChassisType": "RackMount",
        "Manufacturer": vendor.manufacturer(),
        "Model": vendor.system_model(),
        "SerialNumber": s.serial,
        "PowerState": s.machine.power_state().as_str(),
        "IndicatorLED": indicator,
        "LocationIndicatorActive": indicator != "Off",
        "Status": status_ok(),
        "Links": {
            "ComputerSystems": [link(format!("/redfish/v1/Systems/{}", s.id))],
            "ManagedBy": [link(manager_base(bmc))],
        },
    })
}

/// `POST …/Actions/Manager.Reset`: the BMC reboots (503 for a while, sessions dropped).
pub fn reset(ctx: &Ctx<'_>) -> Resp {
    const ACTION: &str = "Manager.Reset";
    let bmc = ctx.bmc;
    let unknown: Vec<Message> = ctx
        .body
        .as_object()
        .into_iter()
        .flat_map(|body| body.keys())
        .filter(|k| *k != "ResetType")
        .take(MAX_MESSAGES)
        .map(|k| Message::action_parameter_unknown(ACTION, k))
        .collect();
    if !unknown.is_empty() {
        return error(StatusCode::BAD_REQUEST, unknown);
    }
    match ctx.body.get("ResetType") {
        None => error(
            StatusCode::BAD_REQUEST,
            vec![Message::action_parameter_missing(ACTION, "ResetType")],
        ),
        Some(v) if !v.is_string() => error(
            StatusCode::BAD_REQUEST,
            vec![Message::action_parameter_value_type_error(
                &v.to_string(),
                "ResetType",
                ACTION,
            )],
        ),
        Some(Value::String(t)) if !bmc.vendor().manager_reset_types().contains(&t.as_str()) => {
            error(
                StatusCode::BAD_REQUEST,
                vec![Message::action_parameter_value_not_in_list(
                    t,
                    "ResetType",
                    ACTION,
                )],
            )
        }
        Some(_) => {
            bmc.reboot_manager();
            empty(StatusCode::NO_CONTENT)
        }
    }
}
