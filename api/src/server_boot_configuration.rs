//! `ServerBootConfiguration`: what a Server should boot next; a boot provider reports readiness.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::string_enum::string_enum;

string_enum! {
    /// The boot provider's verdict (`status.state`). A free string upstream.
    pub enum ServerBootConfigurationState (open) {
        Pending = "Pending",
        Ready = "Ready",
        Error = "Error",
    }
}

/// ServerBootConfigurationSpec defines the desired state of ServerBootConfiguration.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    kind = "ServerBootConfiguration",
    plural = "serverbootconfigurations",
    singular = "serverbootconfiguration",
    shortname = "sbc",
    namespaced,
    status = "ServerBootConfigurationStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ServerBootConfiguration is the Schema for the serverbootconfigurations API",
    printcolumn(
        name = "ServerRef",
        type_ = "string",
        json_path = ".spec.serverRef.name"
    ),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(
        name = "IgnitionRef",
        type_ = "string",
        json_path = ".spec.ignitionSecretRef.name"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct ServerBootConfigurationSpec {
    /// ServerRef names the (cluster-scoped) Server this configuration is for.
    #[schemars(schema_with = "crate::schema::local_object_reference")]
    pub server_ref: LocalObjectReference,
    /// Image is the OCI reference of the image to boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// IgnitionSecretRef names the Secret (same namespace) holding the ignition configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::local_object_reference")]
    pub ignition_secret_ref: Option<LocalObjectReference>,
}

/// ServerBootConfigurationStatus defines the observed state of ServerBootConfiguration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(transform = crate::schema::strip_null)]
pub struct ServerBootConfigurationStatus {
    /// State represents the current state of the boot configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServerBootConfigurationState>,
    /// Conditions represents the latest available observations of the boot configuration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}
