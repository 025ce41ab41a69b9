//! `ServerReadinessRule`: taints matching Servers until they carry the required conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use macro_rules_attribute::apply;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ConditionStatus, Taint};
use crate::kind::metal_kind_without_age;
use crate::string_enum::string_enum;

string_enum! {
    /// When a readiness rule is enforced.
    pub enum EnforcementMode (closed) {
        /// Applied once during initial setup.
        BootstrapOnly,
        /// Monitored and corrected throughout the server's lifecycle.
        Continuous,
    }
}

/// ServerReadinessRuleSpec defines the desired state of ServerReadinessRule.
#[apply(metal_kind_without_age!)]
#[kube(
    kind = "ServerReadinessRule",
    status = "ServerReadinessRuleStatus",
    doc = "ServerReadinessRule is the Schema for the serverreadinessrules API"
)]
pub struct ServerReadinessRuleSpec {
    /// Conditions lists the Server conditions (type and required status) that make a server ready.
    #[schemars(extend(
        "minItems" = 1,
        "maxItems" = 32,
        "x-kubernetes-list-map-keys" = ["type"],
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-validations" = [{"message": "conditions is immutable", "rule": "self == oldSelf"}],
    ))]
    pub conditions: Vec<ConditionRequirement>,
    /// EnforcementMode is `BootstrapOnly` (once) or `Continuous`.
    #[schemars(extend(
        "x-kubernetes-validations" = [{"message": "enforcementMode is immutable", "rule": "self == oldSelf"}],
    ))]
    pub enforcement_mode: EnforcementMode,
    /// Taint is the taint managed on matching Servers.
    #[schemars(extend("x-kubernetes-validations" = [
        {"message": "taint key length must be at most 253 characters", "rule": "self.key.size() <= 253"},
        {"message": "taint key is immutable", "rule": "!has(oldSelf.key) || self.key == oldSelf.key"},
        {"message": "taint effect is immutable", "rule": "!has(oldSelf.effect) || self.effect == oldSelf.effect"},
        {"message": "taint value is immutable", "rule": "!has(oldSelf.value) || self.value == oldSelf.value"},
    ]))]
    pub taint: Taint,
    /// ServerSelector selects the Servers the rule applies to (immutable).
    #[schemars(
        schema_with = "crate::schema::label_selector",
        extend("x-kubernetes-validations" = [{"message": "serverSelector is immutable", "rule": "self == oldSelf"}])
    )]
    pub server_selector: LabelSelector,
}

/// One required Server condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::strip_null)]
pub struct ConditionRequirement {
    /// Type of the Server condition.
    #[serde(rename = "type")]
    #[schemars(extend("maxLength" = 316, "minLength" = 1))]
    pub type_: String,
    /// RequiredStatus is the status the condition must have.
    pub required_status: ConditionStatus,
}

/// ServerReadinessRuleStatus defines the observed state of ServerReadinessRule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(transform = crate::schema::strip_null)]
pub struct ServerReadinessRuleStatus {
    /// Conditions represent the current state of the rule (`Available`, `Progressing`, `Degraded`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions_list_map")]
    pub conditions: Vec<Condition>,
}
