//! The `metal.ironcore.dev/v1alpha1` API as Rust types, wire-compatible with upstream metal-operator.
//! Every other crate in metal-harness reads and writes these objects, so they live at the bottom of the graph.
//! Also: well-known constants (finalizers, annotations, labels) and small typed helpers over them.

#![allow(
    clippy::duplicated_attributes,
    reason = "kube-derive attribute lists repeat keys such as `printcolumn` and `type_`"
)]

pub mod bmc;
pub mod bmc_secret;
pub mod bmc_user;
pub mod common;
pub mod conditions;
pub mod constants;
pub mod crds;
pub mod duration;
pub mod endpoint;
mod kind;
pub mod probe_registry;
mod schema;
pub mod server;
pub mod server_boot_configuration;
pub mod server_claim;
pub mod server_readiness_rule;
mod string_enum;
pub mod taints;

pub use bmc::{
    BMC, BMCPowerState, BMCSpec, BMCState, BMCStatus, ConsoleProtocol, ConsoleProtocolName,
    InlineEndpoint,
};
pub use bmc_secret::{BMCSecret, BMCSecretFields};
pub use bmc_user::{BMCUser, BMCUserSpec, BMCUserStatus};
pub use common::{
    ConditionStatus, ImmutableObjectReference, ObjectReference, Power, Protocol, ProtocolName,
    ProtocolScheme, Taint, TaintEffect, Toleration, TolerationOperator, operation_of,
};
pub use conditions::{find_condition, is_condition_true, remove_condition, set_condition};
pub use constants::Operation;
pub use endpoint::{Endpoint, EndpointSpec, EndpointStatus};
pub use server::{
    BMCAccess, BootOrder, IndicatorLed, LLDPNeighbor, NetworkInterface, Processor, ReclaimPolicy,
    Server, ServerPowerState, ServerSpec, ServerState, ServerStatus, Storage, StorageDrive,
    StorageVolume,
};
pub use server_boot_configuration::{
    ServerBootConfiguration, ServerBootConfigurationSpec, ServerBootConfigurationState,
    ServerBootConfigurationStatus,
};
pub use server_claim::{ServerClaim, ServerClaimPhase, ServerClaimSpec, ServerClaimStatus};
pub use server_readiness_rule::{
    ConditionRequirement, EnforcementMode, ServerReadinessRule, ServerReadinessRuleSpec,
    ServerReadinessRuleStatus,
};
pub use taints::{tolerates_all_nobind, toleration_matches};

/// The API group of every kind in this crate.
pub const GROUP: &str = "metal.ironcore.dev";
/// The only API version.
pub const VERSION: &str = "v1alpha1";
/// `group/version`, as written in `apiVersion`.
pub const API_VERSION: &str = "metal.ironcore.dev/v1alpha1";
