//! The scenario file format: Rust types (serde + schemars) from which the committed JSON Schema is
//! generated, and loading with errors that name the line and column.

mod components;
mod duration;
mod expect;
mod faults;
mod fleet;
mod load;
mod workload;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use components::{Backend, Operator, ReadinessGate, sim_boot_modes};
pub use duration::{Dur, parse as parse_duration};
pub use expect::Expect;
pub use faults::{BmcFault, BmcTarget, Fault, FaultStep};
pub use fleet::{
    Architecture, BmcEntry, BmcSet, Fleet, Latencies, ResolvedBmc, ServerLabels, Vendor,
    server_name,
};
pub use load::{LoadError, limits, load_file, parse};
pub use workload::{
    Action, ClaimPower, DEFAULT_IMAGE, ObjectKind, StartAfter, Step, WaitFor, Workload,
    default_namespace, expand,
};

/// A scenario: a fleet, a boot backend, the operator, a workload and faults over time, and what to expect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "metal-harness scenario")]
pub struct Scenario {
    /// A short name shown in reports.
    pub name: String,
    /// What the scenario demonstrates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Seed for everything random (identities, fault draws); `--seed` overrides it. Always printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    pub fleet: Fleet,
    #[serde(default)]
    pub backend: Backend,
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub workload: Workload,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultStep>,
    #[serde(default)]
    pub expect: Expect,
}

impl Scenario {
    /// The JSON Schema of the file format, as committed in `scenarios/schema/scenario.schema.json`.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Scenario)).expect("a schema is JSON")
    }

    /// The scenario as YAML (what regressions are written as).
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("scenario types always serialize")
    }

    /// The seed in effect: `--seed`, else the file's, else 0.
    pub fn effective_seed(&self, cli: Option<u64>) -> u64 {
        cli.or(self.seed).unwrap_or(0)
    }

    /// Every claim name the workload creates, in order of creation, with its namespace.
    pub fn claims_created(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for step in &self.workload.steps {
            if let Action::CreateClaims { namespace, .. } = &step.action {
                let ns = namespace
                    .clone()
                    .unwrap_or_else(|| self.workload.namespace.clone());
                out.extend(
                    step.action
                        .claim_names()
                        .into_iter()
                        .map(|n| (ns.clone(), n)),
                );
            }
        }
        out
    }
}
