//! Shared payload helpers: schema versions, collections, links.

use serde_json::{Value, json};

/// `@odata.type` values; the versions exist in the DMTF 2023.x bundle and later.
pub mod types {
    /// `#Schema.vX_Y_Z.Schema`: the schema named once, next to the version it is pinned to.
    macro_rules! odata_type {
        ($schema:literal, $version:literal) => {
            concat!("#", $schema, ".", $version, ".", $schema)
        };
    }

    pub const SERVICE_ROOT: &str = odata_type!("ServiceRoot", "v1_15_0");
    pub const SYSTEM: &str = odata_type!("ComputerSystem", "v1_20_0");
    pub const MANAGER: &str = odata_type!("Manager", "v1_17_0");
    pub const CHASSIS: &str = odata_type!("Chassis", "v1_23_0");
    pub const PROCESSOR: &str = odata_type!("Processor", "v1_18_0");
    pub const MEMORY: &str = odata_type!("Memory", "v1_17_0");
    pub const STORAGE: &str = odata_type!("Storage", "v1_15_0");
    pub const DRIVE: &str = odata_type!("Drive", "v1_17_0");
    pub const VOLUME: &str = odata_type!("Volume", "v1_9_0");
    pub const SIMPLE_STORAGE: &str = odata_type!("SimpleStorage", "v1_3_1");
    pub const ETHERNET_INTERFACE: &str = odata_type!("EthernetInterface", "v1_9_0");
    pub const BIOS: &str = odata_type!("Bios", "v1_2_0");
    pub const BOOT_OPTION: &str = odata_type!("BootOption", "v1_0_4");
    pub const SESSION_SERVICE: &str = odata_type!("SessionService", "v1_1_8");
    pub const SESSION: &str = odata_type!("Session", "v1_6_0");
    pub const ACCOUNT_SERVICE: &str = odata_type!("AccountService", "v1_13_0");
    pub const ACCOUNT: &str = odata_type!("ManagerAccount", "v1_10_0");
    pub const ROLE: &str = odata_type!("Role", "v1_3_1");
    pub const TASK_SERVICE: &str = odata_type!("TaskService", "v1_2_0");
    pub const TASK: &str = odata_type!("Task", "v1_7_1");
    pub const EVENT_SERVICE: &str = odata_type!("EventService", "v1_10_0");
    pub const EVENT_DESTINATION: &str = odata_type!("EventDestination", "v1_13_0");
    pub const UPDATE_SERVICE: &str = odata_type!("UpdateService", "v1_11_0");
    pub const SOFTWARE_INVENTORY: &str = odata_type!("SoftwareInventory", "v1_10_0");
    pub const NETWORK_PROTOCOL: &str = odata_type!("ManagerNetworkProtocol", "v1_9_1");
    pub const ACTION_INFO: &str = odata_type!("ActionInfo", "v1_3_0");
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
