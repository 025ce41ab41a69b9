//! `ServerClaim`: a request to bind one Server, boot it with an image and hold its power state.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use macro_rules_attribute::apply;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Power, Toleration};
use crate::kind::metal_kind;
use crate::string_enum::string_enum;

string_enum! {
    /// Whether a claim is bound to a Server (`status.phase`). A free string upstream.
    pub enum ServerClaimPhase (open) {
        Bound,
        Unbound,
    }
}

/// ServerClaimSpec defines the desired state of ServerClaim.
#[apply(metal_kind!)]
#[kube(
    kind = "ServerClaim",
    shortname = "scl",
    namespaced,
    status = "ServerClaimStatus",
    doc = "ServerClaim is the Schema for the serverclaims API",
    printcolumn(name = "Server", type_ = "string", json_path = ".spec.serverRef.name"),
    printcolumn(
        name = "Ignition",
        type_ = "string",
        json_path = ".spec.ignitionSecretRef.name"
    ),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase")
)]
#[schemars(extend("x-kubernetes-validations" = [
    {"message": "serverRef is required once set", "rule": "!has(oldSelf.serverRef) || has(self.serverRef)"},
    {"message": "serverSelector is required once set", "rule": "!has(oldSelf.serverSelector) || has(self.serverSelector)"},
]))]
pub struct ServerClaimSpec {
    /// Power is the desired power state of the claimed server.
    pub power: Power,
    /// ServerRef names the claimed Server (set by the user or by the binder; immutable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        schema_with = "crate::schema::local_object_reference",
        extend("x-kubernetes-validations" = [{"message": "serverRef is immutable", "rule": "self == oldSelf"}])
    )]
    pub server_ref: Option<LocalObjectReference>,
    /// ServerSelector selects candidate Servers by label (immutable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        schema_with = "crate::schema::label_selector",
        extend("x-kubernetes-validations" = [{"message": "serverSelector is immutable", "rule": "self == oldSelf"}])
    )]
    pub server_selector: Option<LabelSelector>,
    /// IgnitionSecretRef names the Secret (same namespace) holding the ignition configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::local_object_reference")]
    pub ignition_secret_ref: Option<LocalObjectReference>,
    /// Image is the OCI image to boot.
    pub image: String,
    /// UserDataRef names a Secret of type `metal.ironcore.dev/user-data` served by metaldata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::local_object_reference")]
    pub user_data_ref: Option<LocalObjectReference>,
    /// Tolerations allow binding to Servers with matching taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

/// ServerClaimStatus defines the observed state of ServerClaim.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::strip_null)]
pub struct ServerClaimStatus {
    /// Phase represents the current phase of the server claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ServerClaimPhase>,
}

impl ServerClaim {
    /// The phase, if the controller has set one.
    pub fn phase(&self) -> Option<&ServerClaimPhase> {
        self.status.as_ref()?.phase.as_ref()
    }

    /// Whether the claim is `Bound` (which does not imply its boot configuration is Ready).
    pub fn is_bound(&self) -> bool {
        self.phase() == Some(&ServerClaimPhase::Bound)
    }
}
