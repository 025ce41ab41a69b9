//! The `expect` section: end states, deadlines, and which invariants may (or must) be violated.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Dur;

/// What must be true when the run ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expect {
    /// The run ends when the end state holds and the timeline is done, or fails at this deadline.
    #[serde(default = "default_within")]
    pub within: Dur,
    /// Servers per final state (`Available: 3`, `Reserved: 2`); states not named are not checked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, u32>,
    /// Claims that must be Bound at the end (number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_bound: Option<u32>,
    /// Claims whose machine must have booted the claim's image and ignition (number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_booted: Option<u32>,
    /// Invariants that must be violated (demonstrations, e.g. a lying backend): the run fails if
    /// one of them is not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
    /// Invariants that may be violated without failing the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerate: Vec<String>,
    /// How late evidence from one source may arrive relative to another (watch vs. BMC event log)
    /// before an ordering-dependent invariant calls it a violation.
    #[serde(default = "default_grace")]
    pub evidence_grace: Dur,
}

fn default_within() -> Dur {
    Dur::from_secs(120)
}

fn default_grace() -> Dur {
    Dur::from_millis(500)
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            within: default_within(),
            servers: BTreeMap::new(),
            claims_bound: None,
            claims_booted: None,
            violations: Vec::new(),
            tolerate: Vec::new(),
            evidence_grace: default_grace(),
        }
    }
}

impl Expect {
    /// Whether an end-state expectation is given at all.
    pub fn has_end_state(&self) -> bool {
        !self.servers.is_empty() || self.claims_bound.is_some() || self.claims_booted.is_some()
    }
}
