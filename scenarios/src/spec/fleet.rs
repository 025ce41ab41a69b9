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
    /// What powers the machines: the simulated firmware (default) or real QEMU VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machines: Option<Machines>,
}

/// `machines: {driver: qemu, memoryMiB: 256, accel: tcg, maxRunning: 4}`: fleet-wide, or per BMC
/// (`driver` and `memoryMiB` only; a BMC's unset fields follow the fleet's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Machines {
    /// `simulated` (the default) or `qemu`: a VM that network-boots through real iPXE firmware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<MachineDriver>,
    /// Memory of each VM (default 256).
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// `tcg` (default), `kvm`, or `auto` (KVM only when a probe guest really boots under it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel: Option<Accel>,
    /// VMs running at once (default 4); a power-on waits for a free slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MachineDriver {
    #[default]
    Simulated,
    Qemu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Tcg,
    Kvm,
    Auto,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
            Accel::Auto => "auto",
        }
    }
}

/// VM memory bounds (the test OS boots in 256 MiB; 24 GiB serve the VM cap many times over).
pub const QEMU_MEMORY_MIB: std::ops::RangeInclusive<u32> = 128..=4096;
/// At most this many VMs at once (2 cores run about 3 at a useful speed).
pub const QEMU_MAX_RUNNING: u32 = 16;
/// At most this many QEMU machines in one run.
pub const QEMU_MAX_MACHINES: u64 = 32;

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
    /// This BMC's machines' driver and memory, over the fleet's `machines`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machines: Option<Machines>,
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
            machines: None,
        }
    }

    /// BMCs whose machines are QEMU VMs, with each one's memory override (MiB).
    pub fn qemu_bmcs(&self) -> Vec<(String, Option<u32>)> {
        let fleet = self.machines.clone().unwrap_or_default();
        let entries: Vec<Option<&Machines>> = match &self.bmcs {
            BmcSet::Count(n) => vec![None; *n as usize],
            BmcSet::List(list) => list.iter().map(|b| b.machines.as_ref()).collect(),
        };
        self.resolve()
            .into_iter()
            .zip(entries)
            .filter_map(|(b, own)| {
                let driver = own.and_then(|m| m.driver).or(fleet.driver);
                (driver == Some(MachineDriver::Qemu))
                    .then(|| (b.name, own.and_then(|m| m.memory_mib).or(fleet.memory_mib)))
            })
            .collect()
    }

    /// What is wrong with the `machines` settings, in the validator's words.
    pub fn check_machines(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let memory = |where_: &str, m: &Machines| {
            m.memory_mib
                .filter(|mib| !QEMU_MEMORY_MIB.contains(mib))
                .map(|mib| {
                    format!(
                        "{where_}machines.memoryMiB {mib} is outside {}-{} MiB (the test OS boots in 256)",
                        QEMU_MEMORY_MIB.start(),
                        QEMU_MEMORY_MIB.end()
                    )
                })
        };
        if let Some(m) = &self.machines {
            errors.extend(memory("", m));
        }
        if let BmcSet::List(list) = &self.bmcs {
            for b in list {
                if let Some(m) = &b.machines {
                    errors.extend(memory(&format!("BMC {:?}: ", b.name), m));
                    if m.accel.is_some() || m.max_running.is_some() {
                        errors.push(format!(
                            "BMC {:?}: machines.accel and machines.maxRunning apply to the whole fleet \
                             (set them in fleet.machines)",
                            b.name
                        ));
                    }
                }
            }
        }
        if let Some(n) = self.machines.as_ref().and_then(|m| m.max_running)
            && !(1..=QEMU_MAX_RUNNING).contains(&n)
        {
            errors.push(format!(
                "machines.maxRunning {n} is outside 1-{QEMU_MAX_RUNNING} (VMs at once)"
            ));
        }
        let qemu = self.qemu_bmcs();
        if !qemu.is_empty() {
            let names: std::collections::BTreeSet<&str> =
                qemu.iter().map(|(n, _)| n.as_str()).collect();
            let machines: u64 = self
                .resolve()
                .iter()
                .filter(|b| names.contains(b.name.as_str()))
                .map(|b| u64::from(b.systems))
                .sum();
            if machines > QEMU_MAX_MACHINES {
                errors.push(format!(
                    "{machines} qemu machines: a run holds at most {QEMU_MAX_MACHINES} \
                     (each VM is a QEMU process of about 230 MiB)"
                ));
            }
            if self.architecture == Some(Architecture::Arm64) {
                errors.push("qemu machines are amd64 only (architecture: arm64)".into());
            }
        }
        errors
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(yaml: &str) -> Fleet {
        serde_saphyr::from_str(yaml).expect("fleet yaml")
    }

    #[test]
    fn qemu_is_chosen_fleet_wide_or_per_bmc_and_a_bmc_overrides_the_fleet() {
        let f = fleet("bmcs: 2\nmachines: {driver: qemu, memoryMiB: 512}\n");
        assert_eq!(
            f.qemu_bmcs(),
            vec![("bmc-0".into(), Some(512)), ("bmc-1".into(), Some(512))]
        );
        let f = fleet(
            "bmcs: [{name: a}, {name: b, machines: {driver: qemu, memoryMiB: 300}}, \
             {name: c, machines: {driver: simulated}}]\n",
        );
        assert_eq!(f.qemu_bmcs(), vec![("b".into(), Some(300))]);
        assert!(f.check_machines().is_empty());
        assert!(Fleet::of(3).qemu_bmcs().is_empty());
    }

    #[test]
    fn bad_machine_settings_are_named() {
        let f = fleet(
            "bmcs: [{name: a, machines: {driver: qemu, accel: kvm, memoryMiB: 64}}]\n\
             machines: {maxRunning: 0}\narchitecture: arm64\n",
        );
        let errors = f.check_machines();
        assert_eq!(
            errors,
            vec![
                "BMC \"a\": machines.memoryMiB 64 is outside 128-4096 MiB (the test OS boots in 256)",
                "BMC \"a\": machines.accel and machines.maxRunning apply to the whole fleet (set them in fleet.machines)",
                "machines.maxRunning 0 is outside 1-16 (VMs at once)",
                "qemu machines are amd64 only (architecture: arm64)",
            ]
        );
        let too_many = fleet("bmcs: 40\nmachines: {driver: qemu}\n");
        assert!(too_many.check_machines()[0].starts_with("40 qemu machines"));
    }
}
