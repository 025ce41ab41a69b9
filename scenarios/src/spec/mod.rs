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
    /// `wall` (the default) or `simulated`: the whole stack in one process on a virtual clock that jumps
    /// ahead whenever every component waits, so hours of fleet life take seconds; `--clock` overrides it.
    #[serde(default, skip_serializing_if = "ClockMode::is_wall")]
    pub clock: ClockMode,
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

/// Which clock a run lives on.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "camelCase")]
pub enum ClockMode {
    /// Real time: components on sockets, as deployed.
    #[default]
    Wall,
    /// Virtual time on a paused tokio clock, every connection in-process, one thread.
    Simulated,
}

impl ClockMode {
    pub fn is_wall(&self) -> bool {
        *self == ClockMode::Wall
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ClockMode::Wall => "wall",
            ClockMode::Simulated => "simulated",
        }
    }
}

impl Scenario {
    /// Why this scenario cannot run on the simulated clock (empty: it can). Everything must run in this
    /// process without sockets: a child-process or external backend and QEMU machines live on the wall clock.
    pub fn simulation_blockers(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.backend {
            Backend::SimBoot { .. } => {}
            Backend::Command { command, .. } => out.push(format!(
                "the backend `{command}` runs as a child process, on the wall clock"
            )),
            Backend::External { .. } => {
                out.push("an external backend runs outside this process, on the wall clock".into())
            }
        }
        if !self.fleet.qemu_bmcs().is_empty() {
            out.push("QEMU machines boot on the wall clock".into());
        }
        out
    }

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
