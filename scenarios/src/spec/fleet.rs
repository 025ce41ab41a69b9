//! The `fleet` section: which simulated BMCs exist, their vendor flavour, systems and latencies.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Dur;

/// A vendor flavour: sim-bmc's own type, so a scenario names exactly the flavours the fleet has.
pub use sim_bmc::vendor::Vendor;

/// The simulated fleet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fleet {
    /// Either a number of generated BMCs (named `bmc-0`, `bmc-1`, …) or an explicit list.
    pub bmcs: BmcSet,
    /// Flavours handed out round-robin to generated BMCs (and to listed BMCs without a `vendor`).
    #[serde(
        default = "default_vendors",
        skip_serializing_if = "is_default_vendors"
    )]
    pub vendors: Vec<Vendor>,
    /// Systems (servers) behind each BMC unless a listed BMC says otherwise.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub systems_per_bmc: u32,
    /// CPU architecture of every machine: `amd64` or `arm64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    /// How long the simulated machines take; zero latencies make the fleet as fast as possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latencies: Option<Latencies>,
    /// Seed for identities (UUIDs, MACs, serials) and fault draws; defaults to the scenario seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Labels put on every discovered Server (through the BMC's Server template), e.g. for selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_labels: Vec<ServerLabels>,
}

/// `bmcs: 4` or `bmcs: [{name: rack1-a, vendor: hpe, systems: 2}, …]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum BmcSet {
    Count(u32),
    List(Vec<BmcEntry>),
}

/// One explicitly listed BMC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BmcEntry {
    /// BMC object name (a DNS label).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Vendor>,
    /// Systems behind this BMC (default `systemsPerBmc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systems: Option<u32>,
}

/// Labels for the Servers of some BMCs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerLabels {
    /// Server names this applies to (`bmc-0-system-0`); empty means every Server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Amd64,
    Arm64,
}

/// Machine latencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Latencies {
    #[serde(default = "zero")]
    pub power_on: Dur,
    #[serde(default = "zero")]
    pub power_off: Dur,
    /// Time the OS takes to shut down after ACPI power-button.
    #[serde(default = "zero")]
    pub graceful_shutdown: Dur,
    /// Firmware POST before the first boot attempt.
    #[serde(default = "zero")]
    pub post: Dur,
}

fn zero() -> Dur {
    Dur::ZERO
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn default_vendors() -> Vec<Vendor> {
    vec![Vendor::Dell]
}

fn is_default_vendors(v: &[Vendor]) -> bool {
    v == [Vendor::Dell]
}

/// A BMC with every field decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedBmc {
    pub name: String,
    pub vendor: Vendor,
    pub systems: u32,
}

impl Fleet {
    /// A fleet of `count` generated BMCs with one system each.
    pub fn of(count: u32) -> Self {
        Fleet {
            bmcs: BmcSet::Count(count),
            vendors: default_vendors(),
            systems_per_bmc: 1,
            architecture: None,
            latencies: None,
            seed: None,
            server_labels: Vec::new(),
        }
    }

    /// Every BMC, with vendors handed out round-robin.
    pub fn resolve(&self) -> Vec<ResolvedBmc> {
        let vendors = if self.vendors.is_empty() {
            default_vendors()
        } else {
            self.vendors.clone()
        };
        let vendor_at = |i: usize| vendors[i % vendors.len()];
        match &self.bmcs {
            BmcSet::Count(n) => (0..*n as usize)
                .map(|i| ResolvedBmc {
                    name: format!("bmc-{i}"),
                    vendor: vendor_at(i),
                    systems: self.systems_per_bmc,
                })
                .collect(),
            BmcSet::List(list) => list
                .iter()
                .enumerate()
                .map(|(i, b)| ResolvedBmc {
                    name: b.name.clone(),
                    vendor: b.vendor.unwrap_or_else(|| vendor_at(i)),
                    systems: b.systems.unwrap_or(self.systems_per_bmc),
                })
                .collect(),
        }
    }

    /// Names of every Server the operator will create, as upstream names them: `<bmc>-system-<index>`.
    pub fn server_names(&self) -> Vec<String> {
        self.resolve()
            .iter()
            .flat_map(|b| (0..b.systems).map(move |i| server_name(&b.name, i)))
            .collect()
    }

    /// Labels the fleet assigns to `server`.
    pub fn labels_for(&self, server: &str) -> std::collections::BTreeMap<String, String> {
        self.server_labels
            .iter()
            .filter(|l| l.servers.is_empty() || l.servers.iter().any(|s| s == server))
            .flat_map(|l| l.labels.clone())
            .collect()
    }
}

/// Upstream's Server name for the `index`-th system of `bmc`.
pub fn server_name(bmc: &str, index: u32) -> String {
    format!("{bmc}-system-{index}")
}
