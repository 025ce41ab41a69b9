//! `BMCUser` (deprecated upstream): a managed Redfish account on a BMC.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use macro_rules_attribute::apply;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::metal_kind;

/// BMCUserSpec defines the desired state of BMCUser.
#[apply(metal_kind!)]
#[kube(
    kind = "BMCUser",
    shortname = "bmcu",
    status = "BMCUserStatus",
    derive = "Default",
    deprecated = "metal.ironcore.dev/v1alpha1 BMCUser is deprecated",
    doc = "BMCUser is the Schema for the bmcusers API (deprecated)",
    printcolumn(name = "ID", type_ = "string", json_path = ".status.id"),
    printcolumn(name = "UserName", type_ = "string", json_path = ".spec.userName"),
    printcolumn(name = "RoleID", type_ = "string", json_path = ".spec.roleID"),
    printcolumn(
        name = "LastRotation",
        type_ = "date",
        json_path = ".status.lastRotation"
    ),
    printcolumn(
        name = "PasswordExpiration",
        type_ = "date",
        json_path = ".status.passwordExpiration"
    )
)]
#[derive(Default)]
pub struct BMCUserSpec {
    /// UserName is the account name on the BMC.
    pub user_name: String,
    /// RoleID is the Redfish role of the account.
    #[serde(rename = "roleID")]
    pub role_id: String,
    /// Description of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// RotationPeriod is how often the password is rotated (a Go duration string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period: Option<String>,
    /// BMCSecretRef names the BMCSecret holding the account's credentials.
    #[serde(
        rename = "bmcSecretRef",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "crate::schema::local_object_reference")]
    pub bmc_secret_ref: Option<LocalObjectReference>,
    /// BMCRef names the BMC the account lives on.
    #[serde(rename = "bmcRef", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::local_object_reference")]
    pub bmc_ref: Option<LocalObjectReference>,
}

/// BMCUserStatus defines the observed state of BMCUser.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct BMCUserStatus {
    /// EffectiveBMCSecretRef names the BMCSecret currently in use.
    #[serde(
        rename = "effectiveBMCSecretRef",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "crate::schema::local_object_reference")]
    pub effective_bmc_secret_ref: Option<LocalObjectReference>,
    /// LastRotation is when the password was last rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation: Option<Time>,
    /// PasswordExpiration is when the password expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_expiration: Option<Time>,
    /// ID is the Redfish account id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}
