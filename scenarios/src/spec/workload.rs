//! The `workload` section: what users do to the system over time.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Dur;

/// The workload timeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    /// When step times start counting: once every Server is discovered (default) or immediately.
    #[serde(default)]
    pub start_after: StartAfter,
    /// Namespace of claims and their ignition Secrets unless a step says otherwise.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Steps, run in order. A step waits until its `at` offset and its `waitFor` condition.
    #[serde(default)]
    pub steps: Vec<Step>,
}

pub fn default_namespace() -> String {
    "default".into()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StartAfter {
    /// Every Server of the fleet exists and is `Available`.
    #[default]
    Discovery,
    /// At once, while discovery runs.
    Start,
}

/// One step of the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// Offset from the workload start; the step waits for it (default: right after the previous step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Dur>,
    /// A condition the step waits for before acting (bounded by `timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<WaitFor>,
    /// Bound on `waitFor` (default 60s); a timeout fails the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// What to do, e.g. `do: {createClaims: {name: web, count: 2}}`.
    #[serde(rename = "do")]
    pub action: Action,
}

/// A condition to wait for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WaitFor {
    /// The named claims (all when empty) are Bound.
    ClaimsBound(Vec<String>),
    /// The named claims' (all when empty) machines booted their image.
    ClaimsBooted(Vec<String>),
    /// Every Server is in the given state (e.g. `Available`).
    ServersInState(String),
}

/// An action on the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Action {
    /// Create ServerClaims (and their ignition Secrets): `name`, or `count` claims named `<name>-<i>`.
    CreateClaims {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u32>,
        #[serde(default = "default_image")]
        image: String,
        /// Ignition document (stored in the Secret `<claim>-ignition`); none means no `ignitionSecretRef`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ignition: Option<String>,
        /// Claim a named Server instead of selecting one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_ref: Option<String>,
        /// Select a Server by labels.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        server_selector: BTreeMap<String, String>,
        #[serde(default)]
        power: ClaimPower,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// Delete claims by name (a `name` with `count` deletes `<name>-<i>`).
    DeleteClaims {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// Change a claim's image and/or ignition (the claim SBC follows; the backend must re-prepare).
    UpdateClaim {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ignition: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// Set a claim's desired power.
    SetClaimPower {
        name: String,
        power: ClaimPower,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// Park a Server (`metal.ironcore.dev/operation: park`).
    Park { server: String },
    /// Unpark a parked Server.
    Unpark { server: String },
    /// Set (or, with a null value, remove) annotations on an object.
    Annotate {
        kind: ObjectKind,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        annotations: BTreeMap<String, Option<String>>,
    },
    /// Delete a Server object.
    DeleteServer { server: String },
    /// Delete a BMC object (its Servers are owned by it and go too).
    DeleteBmc { bmc: String },
    /// Do nothing (a marker for `waitFor`).
    Wait,
    /// Sleep this long before the next step.
    Pause { duration: Dur },
}

/// Desired power of a claim.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ClaimPower {
    #[default]
    On,
    Off,
}

impl ClaimPower {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimPower::On => "On",
            ClaimPower::Off => "Off",
        }
    }
}

/// Kinds a workload may annotate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ObjectKind {
    Server,
    ServerClaim,
    #[serde(rename = "BMC")]
    Bmc,
}

/// The image claims boot unless they say otherwise (served by sim-boot's built-in registry).
pub fn default_image() -> String {
    DEFAULT_IMAGE.into()
}

/// Image reference of the default OS image; `${registry}` is the embedded registry (sim-boot).
pub const DEFAULT_IMAGE: &str = "${registry}/ironcore/os:1.0";

impl Action {
    /// Claim names this action creates, deletes or changes, with their namespaces resolved.
    pub fn claim_names(&self) -> Vec<String> {
        match self {
            Action::CreateClaims { name, count, .. } | Action::DeleteClaims { name, count, .. } => {
                expand(name, *count)
            }
            Action::UpdateClaim { name, .. } | Action::SetClaimPower { name, .. } => {
                vec![name.clone()]
            }
            _ => Vec::new(),
        }
    }

    /// A short label for reports (`createClaims web ×3`).
    pub fn label(&self) -> String {
        match self {
            Action::CreateClaims { name, count, .. } => with_count("createClaims", name, *count),
            Action::DeleteClaims { name, count, .. } => with_count("deleteClaims", name, *count),
            Action::UpdateClaim { name, .. } => format!("updateClaim {name}"),
            Action::SetClaimPower { name, power, .. } => {
                format!("setClaimPower {name} {}", power.as_str())
            }
            Action::Park { server } => format!("park {server}"),
            Action::Unpark { server } => format!("unpark {server}"),
            Action::Annotate { kind, name, .. } => format!("annotate {kind:?}/{name}"),
            Action::DeleteServer { server } => format!("deleteServer {server}"),
            Action::DeleteBmc { bmc } => format!("deleteBmc {bmc}"),
            Action::Wait => "wait".into(),
            Action::Pause { duration } => format!("pause {duration}"),
        }
    }
}

fn with_count(verb: &str, name: &str, count: Option<u32>) -> String {
    match count {
        Some(n) => format!("{verb} {name} ×{n}"),
        None => format!("{verb} {name}"),
    }
}

/// `name` alone, or `name-0 … name-(count-1)`.
pub fn expand(name: &str, count: Option<u32>) -> Vec<String> {
    match count {
        None => vec![name.to_string()],
        Some(n) => (0..n).map(|i| format!("{name}-{i}")).collect(),
    }
}
