//! The probe registry's wire format (`POST /register`, `GET /systems/{uuid}`, `POST /bootstate`),
//! shared by the operator's registry server and the probe agent.
//!
//! JSON names follow upstream's Go tags. Upstream Go omits only a few empty fields (`omitempty`);
//! the others are always written, and nil Go slices arrive as `null`, which we read as empty.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Deserializer, Serialize};

/// Path of the registration endpoint (`POST`, body [`RegistrationPayload`], answers 201).
pub const REGISTER_PATH: &str = "/register";
/// Path prefix of the lookup endpoint (`GET /systems/{uuid}`, answers the stored [`ServerData`] or 404).
pub const SYSTEMS_PATH_PREFIX: &str = "/systems/";
/// Path prefix of the delete endpoint (`DELETE /delete/{uuid}`, answers 200 or 404).
pub const DELETE_PATH_PREFIX: &str = "/delete/";
/// Path of the boot-state callback (`POST`, body [`BootstatePayload`]).
pub const BOOTSTATE_PATH: &str = "/bootstate";

/// Reads a JSON `null` (a nil Go slice or missing struct) as the type's default.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Body of `POST /register`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RegistrationPayload {
    /// The System UUID the probe was started with.
    #[serde(rename = "systemUUID")]
    pub system_uuid: String,
    /// What the probe found.
    #[serde(default, deserialize_with = "null_as_default")]
    pub data: ServerData,
}

/// Body of `POST /bootstate`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BootstatePayload {
    /// The System UUID of the booted server.
    #[serde(rename = "systemUUID")]
    pub system_uuid: String,
    /// Whether the OS booted; only `true` has an effect.
    #[serde(default)]
    pub booted: bool,
}

/// The discovered inventory of one server (upstream `registry.Server`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerData {
    /// When the data was collected; the operator only accepts data younger than its max age.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Time>,
    /// DMI/SMBIOS information.
    #[serde(deserialize_with = "null_as_default")]
    pub system_info: Dmi,
    /// CPUs.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub cpu: Vec<CpuInfo>,
    /// Network interfaces (the operator copies these into `Server.status.networkInterfaces`).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub network_interfaces: Vec<NetworkInterface>,
    /// LLDP neighbours per interface (the operator matches them to interfaces by name).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub lldp: Vec<LldpInterface>,
    /// Block devices.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub storage: Vec<BlockDevice>,
    /// Memory devices.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub memory: Vec<MemoryDevice>,
    /// NICs.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub nics: Vec<Nic>,
    /// PCI devices.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub pci_devices: Vec<PciDevice>,
}

/// DMI/SMBIOS tables.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Dmi {
    /// BIOS information.
    #[serde(deserialize_with = "null_as_default")]
    pub bios_information: BiosInformation,
    /// System information.
    #[serde(deserialize_with = "null_as_default")]
    pub system_information: SystemInformation,
    /// Baseboard information.
    #[serde(deserialize_with = "null_as_default")]
    pub board_information: BoardInformation,
}

/// DMI BIOS information.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct BiosInformation {
    pub vendor: String,
    pub version: String,
    pub date: String,
}

/// DMI system information.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct SystemInformation {
    pub manufacturer: String,
    pub product_name: String,
    pub version: String,
    pub serial_number: String,
    pub uuid: String,
    pub sku_number: String,
    pub family: String,
}

/// DMI baseboard information.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct BoardInformation {
    pub manufacturer: String,
    pub product: String,
    pub version: String,
    pub serial_number: String,
    pub asset_tag: String,
}

/// One CPU.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct CpuInfo {
    pub id: i64,
    pub total_cores: u32,
    pub total_hardware_threads: u32,
    pub vendor: String,
    pub model: String,
    #[serde(deserialize_with = "null_as_default")]
    pub capabilities: Vec<String>,
}

/// One network interface as the probe sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkInterface {
    pub name: String,
    /// Deprecated upstream; always empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip_address: String,
    #[serde(deserialize_with = "null_as_default")]
    pub ip_addresses: Vec<String>,
    pub mac_address: String,
    pub carrier_status: String,
}

/// LLDP information of one interface.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct LldpInterface {
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub neighbors: Vec<LldpNeighbor>,
}

/// One LLDP neighbour; `chassisId` becomes the neighbour's `macAddress` on the Server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct LldpNeighbor {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub chassis_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub port_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub port_description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system_description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mgmt_ip: String,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub capabilities: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub vlan_id: String,
}

/// One block device.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct BlockDevice {
    pub path: String,
    pub name: String,
    pub rotational: bool,
    pub removable: bool,
    pub read_only: bool,
    pub vendor: String,
    pub model: String,
    pub serial: String,
    pub wwid: String,
    pub physical_block_size: u64,
    pub logical_block_size: u64,
    #[serde(rename = "hWSectorSize")]
    pub hw_sector_size: u64,
    pub size_bytes: u64,
    #[serde(rename = "numaNodeID")]
    pub numa_node_id: i64,
}

/// One memory device.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct MemoryDevice {
    /// Size in bytes (JSON name `size`).
    #[serde(rename = "size")]
    pub size_bytes: i64,
    pub device_set: String,
    pub device_locator: String,
    pub bank_locator: String,
    pub memory_type: String,
    pub speed: String,
    pub vendor: String,
    pub serial_number: String,
    pub asset_tag: String,
    pub part_number: String,
    pub configured_memory_speed: String,
    pub minimum_voltage: String,
    pub maximum_voltage: String,
    pub configured_voltage: String,
}

/// One network interface card.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Nic {
    pub name: String,
    pub mac: String,
    pub pci_address: String,
    pub speed: String,
    #[serde(deserialize_with = "null_as_default")]
    pub link_modes: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub supported_ports: Vec<String>,
    pub firmware_version: String,
}

/// One PCI device.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct PciDevice {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub vendor: String,
    #[serde(rename = "vendorID", skip_serializing_if = "String::is_empty")]
    pub vendor_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub product: String,
    #[serde(rename = "productID", skip_serializing_if = "String::is_empty")]
    pub product_id: String,
    #[serde(rename = "numaNodeID", skip_serializing_if = "is_zero")]
    pub numa_node_id: i64,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_payload_with_null_slices_and_writes_camel_case() {
        let body = r#"{
            "systemUUID": "38947555-7742-3448-3784-823347823834",
            "data": {
                "timestamp": "2026-08-21T12:00:00Z",
                "systemInfo": {"biosInformation": {"vendor": "Contoso", "version": "1.0", "date": ""},
                               "systemInformation": {"manufacturer": "Contoso", "productName": "3500",
                                 "version": "", "serialNumber": "437XR1138R2", "uuid": "x", "skuNumber": "", "family": ""},
                               "boardInformation": {"manufacturer": "", "product": "", "version": "",
                                 "serialNumber": "", "assetTag": ""}},
                "cpu": [{"id": 0, "totalCores": 8, "totalHardwareThreads": 16, "vendor": "GenuineIntel",
                         "model": "Xeon", "capabilities": null}],
                "networkInterfaces": [{"name": "eth0", "ipAddresses": ["10.0.0.5", "fe80::1"],
                                       "macAddress": "aa:bb:cc:dd:ee:ff", "carrierStatus": "up"}],
                "lldp": [{"name": "eth0", "neighbors": [{"chassisId": "00:11:22:33:44:55", "portId": "Ethernet1",
                          "systemName": "leaf1"}]}],
                "storage": [{"path": "/dev/sda", "name": "sda", "rotational": false, "removable": false,
                             "readOnly": false, "vendor": "", "model": "", "serial": "", "wwid": "",
                             "physicalBlockSize": 4096, "logicalBlockSize": 512, "hWSectorSize": 512,
                             "sizeBytes": 1000204886016, "numaNodeID": 0}],
                "memory": [{"size": 17179869184, "deviceLocator": "DIMM A1"}],
                "nics": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "linkModes": null, "supportedPorts": ["TP"]}],
                "pciDevices": [{"address": "0000:00:1f.6", "vendorID": "8086"}]
            }
        }"#;
        let payload: RegistrationPayload =
            serde_json::from_str(body).expect("upstream payload parses");
        assert_eq!(
            payload.data.network_interfaces[0].ip_addresses,
            ["10.0.0.5", "fe80::1"]
        );
        assert_eq!(
            payload.data.lldp[0].neighbors[0].chassis_id,
            "00:11:22:33:44:55"
        );
        assert_eq!(payload.data.storage[0].hw_sector_size, 512);
        assert_eq!(payload.data.memory[0].size_bytes, 17_179_869_184);
        assert!(payload.data.cpu[0].capabilities.is_empty());
        assert!(payload.data.timestamp.is_some());

        let written = serde_json::to_value(&payload).expect("serializes");
        assert_eq!(
            written["systemUUID"],
            "38947555-7742-3448-3784-823347823834"
        );
        assert_eq!(written["data"]["timestamp"], "2026-08-21T12:00:00Z");
        assert_eq!(written["data"]["storage"][0]["hWSectorSize"], 512);
        assert_eq!(written["data"]["pciDevices"][0]["vendorID"], "8086");
        assert!(
            written["data"]["networkInterfaces"][0]
                .get("ipAddress")
                .is_none()
        );
        let reread: RegistrationPayload = serde_json::from_value(written).expect("re-reads");
        assert_eq!(reread, payload);
    }

    #[test]
    fn bootstate_round_trips() {
        let payload: BootstatePayload =
            serde_json::from_str(r#"{"systemUUID":"u-1","booted":true}"#).expect("parses");
        assert!(payload.booted);
        assert_eq!(
            serde_json::to_string(&payload).expect("serializes"),
            r#"{"systemUUID":"u-1","booted":true}"#
        );
    }

    #[test]
    fn missing_data_is_empty_inventory() {
        let payload: RegistrationPayload =
            serde_json::from_str(r#"{"systemUUID":"u"}"#).expect("parses");
        assert_eq!(payload.data, ServerData::default());
    }
}
