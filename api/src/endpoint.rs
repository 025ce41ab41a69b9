//! `Endpoint` (deprecated upstream): a MAC/IP pair that the operator turns into a BMC.

use macro_rules_attribute::apply;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::metal_kind;

/// EndpointSpec defines the desired state of Endpoint.
#[apply(metal_kind!)]
#[kube(
    kind = "Endpoint",
    shortname = "mep",
    status = "EndpointStatus",
    derive = "Default",
    deprecated = "metal.ironcore.dev/v1alpha1 Endpoints are deprecated; specify the network access inline via BMC.spec.access (an InlineEndpoint with macAddress and ip) instead",
    doc = "Endpoint is the Schema for the endpoints API (deprecated: use BMC.spec.access)",
    printcolumn(name = "MACAddress", type_ = "string", json_path = ".spec.macAddress"),
    printcolumn(name = "IP", type_ = "string", json_path = ".spec.ip")
)]
#[derive(Default, Eq)]
pub struct EndpointSpec {
    /// MACAddress is the MAC address of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// IP is the IP address of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// EndpointStatus defines the observed state of Endpoint (empty upstream).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct EndpointStatus {}
