//! `Server`: one physical machine behind a BMC, its desired configuration and what discovery found.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use macro_rules_attribute::apply;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ImmutableObjectReference, ObjectReference, Power, Protocol, Taint};
use crate::kind::metal_kind;
use crate::string_enum::string_enum;

string_enum! {
    /// The lifecycle state of a Server (`status.state`). A free string upstream.
    pub enum ServerState (open) {
        Initial,
        Discovery,
        Available,
        Reserved,
        Released,
        Error,
        Parked,
    }
}

string_enum! {
    /// A Server's observed power state (`status.powerState`), as Redfish reports it.
    pub enum ServerPowerState (open) {
        On,
        Off,
        Paused,
        PoweringOn,
        PoweringOff,
    }
}

string_enum! {
    /// The chassis indicator LED (`spec.indicatorLED`, `status.indicatorLED`).
    pub enum IndicatorLed (open) {
        Unknown,
        Lit,
        Blinking,
        Off,
    }
}

string_enum! {
    /// What happens to a Server after its claim goes away.
    pub enum ReclaimPolicy (closed) {
        /// Back to `Available` immediately (the default).
        Recycle,
        /// To `Released`, keeping `spec.serverClaimRef` until an operator clears it.
        Retain,
    }
}

/// ServerSpec defines the desired state of a Server.
#[apply(metal_kind!)]
#[kube(
    kind = "Server",
    shortname = "srv",
    status = "ServerStatus",
    derive = "Default",
    doc = "Server is the Schema for the servers API",
    printcolumn(name = "SystemUUID", type_ = "string", json_path = ".spec.systemUUID"),
    printcolumn(
        name = "Manufacturer",
        type_ = "string",
        json_path = ".status.manufacturer"
    ),
    printcolumn(name = "Model", type_ = "string", json_path = ".status.model"),
    printcolumn(
        name = "Memory",
        type_ = "string",
        json_path = ".status.totalSystemMemory"
    ),
    printcolumn(
        name = "SKU",
        type_ = "string",
        json_path = ".status.sku",
        priority = "100"
    ),
    printcolumn(
        name = "SerialNumber",
        type_ = "string",
        json_path = ".status.serialNumber",
        priority = "100"
    ),
    printcolumn(
        name = "PowerState",
        type_ = "string",
        json_path = ".status.powerState"
    ),
    printcolumn(
        name = "IndicatorLED",
        type_ = "string",
        json_path = ".status.indicatorLED",
        priority = "100"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Unclaimable",
        type_ = "boolean",
        json_path = ".spec.unclaimable",
        priority = "100"
    )
)]
#[derive(Default)]
pub struct ServerSpec {
    /// SystemUUID is the unique identifier for the server (Redfish System UUID).
    #[serde(rename = "systemUUID")]
    pub system_uuid: String,
    /// SystemURI is the Redfish `@odata.id` of the System.
    #[serde(rename = "systemURI", default, skip_serializing_if = "Option::is_none")]
    pub system_uri: Option<String>,
    /// Power is the deprecated desired power state; the controller clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<Power>,
    /// IndicatorLED specifies the desired state of the server's indicator LED.
    #[serde(
        rename = "indicatorLED",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub indicator_led: Option<IndicatorLed>,
    /// ReclaimPolicy specifies how the server is reclaimed after use (`Recycle` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Recycle"))]
    pub reclaim_policy: Option<ReclaimPolicy>,
    /// ServerClaimRef is a reference to the ServerClaim that claims this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_claim_ref: Option<ImmutableObjectReference>,
    /// BMCRef is a reference to the BMC object associated with this server.
    #[serde(rename = "bmcRef", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::local_object_reference")]
    pub bmc_ref: Option<LocalObjectReference>,
    /// BMC contains inline access details for the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc: Option<BMCAccess>,
    /// BootConfigurationRef names the ServerBootConfiguration the server currently boots against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_configuration_ref: Option<ObjectReference>,
    /// BootOrder specifies the boot order of the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boot_order: Vec<BootOrder>,
    /// Taints control which ServerClaims can be bound to this server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Unclaimable, when true, prevents new ServerClaims from being bound to this Server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub unclaimable: Option<bool>,
}

/// Inline access details for a Server's BMC.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct BMCAccess {
    /// Protocol specifies the protocol to be used for communicating with the BMC.
    pub protocol: Protocol,
    /// Address is the address of the BMC.
    pub address: String,
    /// BMCSecretRef names the BMCSecret holding the credentials.
    #[serde(rename = "bmcSecretRef")]
    #[schemars(schema_with = "crate::schema::local_object_reference")]
    pub bmc_secret_ref: LocalObjectReference,
}

/// One entry of the boot order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::strip_null)]
pub struct BootOrder {
    /// Name is the name of the boot device.
    pub name: String,
    /// Priority is the priority of the boot device.
    #[schemars(schema_with = "crate::schema::go_int")]
    pub priority: i64,
    /// Device is the device to boot from.
    pub device: String,
}

/// ServerStatus defines the observed state of Server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct ServerStatus {
    /// Manufacturer is the name of the server manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// BIOSVersion is the version of the server's BIOS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_version: Option<String>,
    /// Model is the model of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// SKU is the stock keeping unit identifier for the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// SerialNumber is the serial number of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// PowerState represents the current power state of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<ServerPowerState>,
    /// IndicatorLED specifies the current state of the server's indicator LED.
    #[serde(
        rename = "indicatorLED",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub indicator_led: Option<IndicatorLed>,
    /// State represents the current state of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServerState>,
    /// NetworkInterfaces is a list of network interfaces associated with the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
    /// TotalSystemMemory is the total amount of memory in bytes available on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::quantity")]
    pub total_system_memory: Option<Quantity>,
    /// Processors is a list of Processors associated with the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processors: Vec<Processor>,
    /// Storages is a list of storages associated with the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storages: Vec<Storage>,
    /// Conditions represents the latest available observations of the server's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}

/// A network interface found by discovery.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct NetworkInterface {
    /// Name is the name of the network interface.
    pub name: String,
    /// IP is deprecated (use `ips`); upstream always leaves it unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// IPs is a list of IPv4 and IPv6 addresses assigned to the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::ip_list")]
    pub ips: Vec<String>,
    /// MACAddress is the MAC address of the network interface.
    #[serde(rename = "macAddress")]
    pub mac_address: String,
    /// CarrierStatus is the operational carrier status of the network interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_status: Option<String>,
    /// Neighbors contains the LLDP neighbors discovered on this interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbors: Vec<LLDPNeighbor>,
}

/// An LLDP neighbor seen on a network interface.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct LLDPNeighbor {
    /// MACAddress is the MAC address (chassis ID) of the LLDP neighbor.
    #[serde(
        rename = "macAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mac_address: Option<String>,
    /// PortID is the port identifier of the LLDP neighbor.
    #[serde(rename = "portID", default, skip_serializing_if = "Option::is_none")]
    pub port_id: Option<String>,
    /// PortDescription is the port description of the LLDP neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_description: Option<String>,
    /// SystemName is the system name of the LLDP neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_name: Option<String>,
    /// SystemDescription is the system description of the LLDP neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_description: Option<String>,
}

/// A processor of the server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct Processor {
    /// ID is the name of the Processor.
    pub id: String,
    /// Type is the type of the Processor.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Architecture is the architecture of the Processor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// InstructionSet is the instruction set of the Processor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction_set: Option<String>,
    /// Manufacturer is the manufacturer of the Processor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model is the model of the Processor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// MaxSpeedMHz is the maximum speed of the Processor in MHz.
    #[serde(
        rename = "maxSpeedMHz",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_speed_mhz: Option<i32>,
    /// TotalCores is the total number of cores in the Processor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cores: Option<i32>,
    /// TotalThreads is the total number of threads in the Processor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_threads: Option<i32>,
}

/// A storage controller with its drives and volumes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct Storage {
    /// Name is the name of the storage device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// State specifies the state of the storage device (`Enabled`, `Disabled`, `Absent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Volumes is a collection of volumes associated with this storage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<StorageVolume>,
    /// Drives is a collection of drives associated with this storage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drives: Vec<StorageDrive>,
}

/// One storage drive.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct StorageDrive {
    /// Name is the name of the storage drive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// MediaType specifies the media type of the storage device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Type specifies the type of the storage device.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Capacity specifies the size of the storage device in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::quantity")]
    pub capacity: Option<Quantity>,
    /// Vendor specifies the vendor of the storage device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Model specifies the model of the storage device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// State specifies the state of the storage device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// One storage volume.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct StorageVolume {
    /// Name is the name of the storage volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Capacity specifies the size of the volume in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::quantity")]
    pub capacity: Option<Quantity>,
    /// State specifies the status of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// RAIDType specifies the RAID type of the associated Volume.
    #[serde(rename = "raidType", default, skip_serializing_if = "Option::is_none")]
    pub raid_type: Option<String>,
    /// VolumeUsage specifies the volume usage type for the Volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_usage: Option<String>,
}

impl Server {
    /// Whether a ServerClaim holds this server (`spec.serverClaimRef` is set).
    pub fn is_claimed(&self) -> bool {
        self.spec.server_claim_ref.is_some()
    }

    /// The lifecycle state, if the controller has set one.
    pub fn state(&self) -> Option<&ServerState> {
        self.status.as_ref()?.state.as_ref()
    }

    /// The observed power state, if known.
    pub fn power_state(&self) -> Option<&ServerPowerState> {
        self.status.as_ref()?.power_state.as_ref()
    }

    /// The reclaim policy, `Recycle` when unset (the CRD default).
    pub fn reclaim_policy(&self) -> ReclaimPolicy {
        self.spec
            .reclaim_policy
            .clone()
            .unwrap_or(ReclaimPolicy::Recycle)
    }

    /// Whether new claims are blocked (`spec.unclaimable`, false when unset).
    pub fn is_unclaimable(&self) -> bool {
        self.spec.unclaimable.unwrap_or(false)
    }

    /// Whether the controller-owned parked marker annotation is `"true"`.
    pub fn is_parked(&self) -> bool {
        let annotations = self.metadata.annotations.as_ref();
        annotations
            .and_then(|a| a.get(crate::constants::PARKED_ANNOTATION))
            .map(String::as_str)
            == Some(crate::constants::ANNOTATION_TRUE)
    }

    /// The requested out-of-band operation, if the annotation is set.
    pub fn operation(&self) -> Option<crate::constants::Operation> {
        crate::common::operation_of(&self.metadata)
    }

    /// Whether a claim with `tolerations` tolerates every `NoBind` taint of this server.
    pub fn tolerated_by(&self, tolerations: &[crate::common::Toleration]) -> bool {
        crate::taints::tolerates_all_nobind(tolerations, &self.spec.taints)
    }
}
