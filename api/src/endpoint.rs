//! `Endpoint` (deprecated upstream): a MAC/IP pair that the operator turns into a BMC.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// EndpointSpec defines the desired state of Endpoint.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "Endpoint",
    shortname = "mep",
    status = "EndpointStatus",
    derive = "PartialEq",
    derive = "Default",
    deprecated = "metal.ironcore.dev/v1alpha1 Endpoints are deprecated; specify the network access inline via BMC.spec.access (an InlineEndpoint with macAddress and ip) instead",
    doc = "Endpoint is the Schema for the endpoints API (deprecated: use BMC.spec.access)",
    printcolumn(name = "MACAddress", type_ = "string", json_path = ".spec.macAddress"),
    printcolumn(name = "IP", type_ = "string", json_path = ".spec.ip"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
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
