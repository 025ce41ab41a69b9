//! `BMC`: a baseboard management controller, how to reach it and what it reports.
#![allow(clippy::upper_case_acronyms, reason = "kind names match upstream: BMC")]

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use macro_rules_attribute::apply;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Protocol;
use crate::kind::metal_kind;
use crate::string_enum::string_enum;

string_enum! {
    /// The BMC's state (`status.state`): the controller copies Redfish `Manager.Status.State`
    /// verbatim, so other Redfish states can appear.
    pub enum BMCState (open) {
        Enabled,
        Error,
        Pending,
    }
}

string_enum! {
    /// The BMC's power state (`status.powerState`).
    pub enum BMCPowerState (open) {
        On,
        Off,
        Paused,
        PoweringOn,
        PoweringOff,
        Unknown,
    }
}

string_enum! {
    /// Console access protocol (`spec.consoleProtocol.name`).
    pub enum ConsoleProtocolName (closed) {
        Ipmi = "IPMI",
        Ssh = "SSH",
        SshLenovo = "SSHLenovo",
    }
}

/// BMCSpec defines the desired state of BMC.
#[apply(metal_kind!)]
#[kube(
    kind = "BMC",
    status = "BMCStatus",
    doc = "BMC is the Schema for the bmcs API",
    printcolumn(
        name = "MACAddress",
        type_ = "string",
        json_path = ".status.macAddress"
    ),
    printcolumn(name = "IP", type_ = "string", json_path = ".status.ip"),
    printcolumn(name = "Model", type_ = "string", json_path = ".status.model"),
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
        name = "FirmwareVersion",
        type_ = "string",
        json_path = ".status.firmwareVersion",
        priority = "100"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "PowerState",
        type_ = "string",
        json_path = ".status.powerState"
    )
)]
#[schemars(extend("x-kubernetes-validations" = [{
    "message": "exactly one of access or endpointRef needs to be set",
    "rule": "has(self.access) != has(self.endpointRef)",
}]))]
pub struct BMCSpec {
    /// BMCUUID is the Redfish Manager UUID; empty means the first manager.
    #[serde(rename = "bmcUUID", default, skip_serializing_if = "Option::is_none")]
    pub bmc_uuid: Option<String>,
    /// EndpointRef names the (deprecated) Endpoint holding the BMC's network access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        schema_with = "crate::schema::local_object_reference",
        extend("x-kubernetes-validations" = [{"message": "endpointRef is immutable", "rule": "self == oldSelf"}])
    )]
    pub endpoint_ref: Option<LocalObjectReference>,
    /// Access is the inline network access (MAC address and IP) of the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "access is immutable", "rule": "self == oldSelf"}]))]
    pub access: Option<InlineEndpoint>,
    /// BMCSecretRef names the BMCSecret holding the credentials.
    #[serde(rename = "bmcSecretRef")]
    #[schemars(schema_with = "crate::schema::local_object_reference")]
    pub bmc_secret_ref: LocalObjectReference,
    /// Protocol specifies the protocol to be used for communicating with the BMC.
    pub protocol: Protocol,
    /// ConsoleProtocol specifies the protocol for console access to the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_protocol: Option<ConsoleProtocol>,
    /// Hostname is the hostname of the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// Network access to a BMC given inline instead of through an Endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct InlineEndpoint {
    /// MACAddress is the MAC address of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// IP is the IP address of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// Console access protocol and port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::strip_null)]
pub struct ConsoleProtocol {
    /// Name specifies the name of the console protocol.
    pub name: ConsoleProtocolName,
    /// Port specifies the port number used for console access.
    pub port: i32,
}

/// BMCStatus defines the observed state of BMC.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct BMCStatus {
    /// MACAddress is the MAC address of the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = "^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$"))]
    pub mac_address: Option<String>,
    /// IP is the IP address of the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Manufacturer is the manufacturer of the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model is the model number of the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// SKU is the stock keeping unit (Redfish Manager PartNumber).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// SerialNumber is the serial number of the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// FirmwareVersion is the version of the firmware running on the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// State represents the current state of the BMC (`Pending` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Pending"))]
    pub state: Option<BMCState>,
    /// PowerState represents the current power state of the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<BMCPowerState>,
    /// LastResetTime is the timestamp of the last reset operation performed on the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reset_time: Option<Time>,
    /// MetricsReportSubscriptionLink is the link to the metrics report event subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_report_subscription_link: Option<String>,
    /// EventsSubscriptionLink is the link to the alerts event subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_subscription_link: Option<String>,
    /// Conditions represents the latest available observations of the BMC's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}

impl BMC {
    /// The BMC's state, if the controller has set one.
    pub fn state(&self) -> Option<&BMCState> {
        self.status.as_ref()?.state.as_ref()
    }

    /// Whether Server reconciles may use this BMC: state `Enabled` or not yet set (as upstream).
    pub fn is_usable(&self) -> bool {
        matches!(self.state(), None | Some(BMCState::Enabled))
    }
}
