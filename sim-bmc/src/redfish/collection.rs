//! Shared payload helpers: schema versions, collections, links.

use serde_json::{Value, json};

/// `@odata.type` values; the versions exist in the DMTF 2023.x bundle and later.
pub mod types {
    pub const SERVICE_ROOT: &str = "#ServiceRoot.v1_15_0.ServiceRoot";
    pub const SYSTEM: &str = "#ComputerSystem.v1_20_0.ComputerSystem";
    pub const MANAGER: &str = "#Manager.v1_17_0.Manager";
    pub const CHASSIS: &str = "#Chassis.v1_23_0.Chassis";
    pub const PROCESSOR: &str = "#Processor.v1_18_0.Processor";
    pub const MEMORY: &str = "#Memory.v1_17_0.Memory";
    pub const STORAGE: &str = "#Storage.v1_15_0.Storage";
    pub const DRIVE: &str = "#Drive.v1_17_0.Drive";
    pub const VOLUME: &str = "#Volume.v1_9_0.Volume";
    pub const SIMPLE_STORAGE: &str = "#SimpleStorage.v1_3_1.SimpleStorage";
    pub const ETHERNET_INTERFACE: &str = "#EthernetInterface.v1_9_0.EthernetInterface";
    pub const BIOS: &str = "#Bios.v1_2_0.Bios";
    pub const BOOT_OPTION: &str = "#BootOption.v1_0_4.BootOption";
    pub const SESSION_SERVICE: &str = "#SessionService.v1_1_8.SessionService";
    pub const SESSION: &str = "#Session.v1_6_0.Session";
    pub const ACCOUNT_SERVICE: &str = "#AccountService.v1_13_0.AccountService";
    pub const ACCOUNT: &str = "#ManagerAccount.v1_10_0.ManagerAccount";
    pub const ROLE: &str = "#Role.v1_3_1.Role";
    pub const TASK_SERVICE: &str = "#TaskService.v1_2_0.TaskService";
    pub const TASK: &str = "#Task.v1_7_1.Task";
    pub const EVENT_SERVICE: &str = "#EventService.v1_10_0.EventService";
    pub const EVENT_DESTINATION: &str = "#EventDestination.v1_13_0.EventDestination";
    pub const UPDATE_SERVICE: &str = "#UpdateService.v1_11_0.UpdateService";
    pub const SOFTWARE_INVENTORY: &str = "#SoftwareInventory.v1_10_0.SoftwareInventory";
    pub const NETWORK_PROTOCOL: &str = "#ManagerNetworkProtocol.v1_9_1.ManagerNetworkProtocol";
    pub const ACTION_INFO: &str = "#ActionInfo.v1_3_0.ActionInfo";
}

/// A resource collection payload.
pub fn collection(
    id: &str,
    ty: &str,
    name: &str,
    members: impl IntoIterator<Item = String>,
) -> Value {
    let members: Vec<Value> = members
        .into_iter()
        .map(|m| json!({"@odata.id": m}))
        .collect();
    json!({
        "@odata.id": id,
        "@odata.type": format!("#{ty}.{ty}"),
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members,
    })
}

pub fn link(id: impl Into<String>) -> Value {
    json!({"@odata.id": id.into()})
}

pub fn status_ok() -> Value {
    json!({"State": "Enabled", "Health": "OK"})
}

/// RFC 3339 with seconds and offset, as Redfish `Edm.DateTimeOffset` expects.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}
