//! The `backend` and `operator` sections: which boot backend runs, and how the operator is configured.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::Dur;

/// The boot backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Backend {
    /// The reference backend, in-process, optionally misbehaving on purpose.
    SimBoot {
        /// Misbehaviour mode: `none` (honest) or one of sim-boot's `--misbehave` modes.
        #[serde(default = "default_mode")]
        #[schemars(schema_with = "sim_boot_mode_schema")]
        mode: String,
        /// Extra delay per reconcile (mode `slow`), or before Ready in every mode.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay: Option<Dur>,
    },
    /// A backend started as a child process with `KUBECONFIG` set to the run's API server.
    Command {
        command: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        /// Boot URL template the machines' DHCP answer points at (`{uuid}`, `{mac}` filled in).
        ipxe_url_template: String,
    },
    /// A backend already running in the cluster given by `--kubeconfig`.
    External {
        /// Boot URL template the machines' DHCP answer points at.
        ipxe_url_template: String,
    },
}

fn default_mode() -> String {
    "none".into()
}

impl Default for Backend {
    fn default() -> Self {
        Backend::SimBoot {
            mode: default_mode(),
            delay: None,
        }
    }
}

impl Backend {
    pub fn label(&self) -> String {
        match self {
            Backend::SimBoot { mode, .. } if mode == "none" => "sim-boot".into(),
            Backend::SimBoot { mode, .. } => format!("sim-boot ({mode})"),
            Backend::Command { command, .. } => format!("command {command}"),
            Backend::External { .. } => "external".into(),
        }
    }
}

/// The sim-boot modes a scenario may name: every mode sim-boot itself knows (`none`, `upstream-like` and
/// `Misbehaviour::ALL`), so a mode added there is usable here without a second list to keep in step.
pub fn sim_boot_modes() -> Vec<&'static str> {
    sim_boot::Misbehaviour::BEHAVIOURS
        .iter()
        .chain(sim_boot::Misbehaviour::ALL.iter())
        .map(|m| m.name())
        .collect()
}

/// `mode` is a string in the types (the runner parses it) but an enum in the schema, so editors
/// complete and check it; the committed schema's sync test fails when sim-boot gains a mode.
fn sim_boot_mode_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "enum": sim_boot_modes(),
    })
}

/// Operator configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operator {
    /// `strict` (default): power on only when the SBC is Ready for its current generation;
    /// `upstream`: `status.state == Ready`, nothing more.
    #[serde(default)]
    pub readiness_gate: ReadinessGate,
    /// Upstream `--discovery-timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_timeout: Option<Dur>,
    /// Further operator flags, exactly as on its command line (`--enforce-first-boot`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

impl Default for Operator {
    fn default() -> Self {
        Operator {
            readiness_gate: ReadinessGate::Strict,
            discovery_timeout: None,
            args: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadinessGate {
    #[default]
    Strict,
    Upstream,
}
