//! The fleet file (YAML): how many BMCs, of which flavour, with which credentials, latencies and faults.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::bmc::Role;
pub use crate::boot::BootNetwork;
use crate::fault::FaultSpec;
use crate::machine::PowerState;
use crate::vendor::Vendor;

/// A whole fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FleetSpec {
    /// Identities (UUIDs, MACs, serials, session tokens) and fault draws derive from it.
    #[serde(default)]
    pub seed: u64,
    /// Number of generated BMCs named `{namePrefix}{i}` (added after the explicit `bmcs`).
    #[serde(default)]
    pub count: usize,
    #[serde(default = "default_prefix")]
    pub name_prefix: String,
    /// Settings every BMC starts from.
    #[serde(default)]
    pub defaults: BmcSpec,
    /// Explicitly listed BMCs; unset fields come from `defaults`.
    #[serde(default)]
    pub bmcs: Vec<BmcSpec>,
    #[serde(default)]
    pub boot_network: BootNetwork,
    #[serde(default)]
    pub network: NetworkSpec,
}

fn default_prefix() -> String {
    "bmc-".into()
}

/// Where BMCs listen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NetworkSpec {
    /// First BMC address; the i-th BMC gets `addressBase + i` (all of 127.0.0.0/8 is loopback on Linux).
    pub address_base: Ipv4Addr,
    /// Port on every BMC address; 0 picks a free port per BMC.
    pub port: u16,
    /// With TLS on: plain-HTTP requests that carry credentials are redirected (308) to HTTPS, as real BMCs do.
    #[serde(default)]
    pub https_only: bool,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            address_base: Ipv4Addr::new(127, 10, 0, 1),
            port: 0,
            https_only: false,
        }
    }
}

/// One BMC, or the defaults for all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BmcSpec {
    pub name: Option<String>,
    pub vendor: Option<Vendor>,
    /// Systems (machines) behind this BMC.
    pub systems: Option<usize>,
    /// `amd64` or `arm64`.
    pub architecture: Option<String>,
    pub credentials: Option<Credentials>,
    /// Further accounts besides `credentials` (which is an Administrator).
    pub accounts: Option<Vec<AccountSpec>>,
    pub latencies: Option<LatencySpec>,
    pub hardware: Option<HardwareSpec>,
    pub initial_power: Option<PowerState>,
    /// Network interfaces per system.
    pub nics: Option<usize>,
    /// First three octets of generated MACs, e.g. `"52:54:00"`.
    pub mac_prefix: Option<String>,
    pub faults: Option<Vec<FaultSpec>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountSpec {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub role: Role,
}

/// Latencies in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LatencySpec {
    pub power_on_ms: u64,
    pub power_off_ms: u64,
    pub graceful_shutdown_ms: u64,
    pub post_ms: u64,
    pub os_ignores_graceful_shutdown: bool,
}

impl LatencySpec {
    /// The integration tests' machines: every step still takes time, so the states in between stay
    /// observable, but a whole boot takes milliseconds.
    pub const FAST: Self = Self {
        power_on_ms: 20,
        power_off_ms: 20,
        graceful_shutdown_ms: 30,
        post_ms: 10,
        os_ignores_graceful_shutdown: false,
    };

    /// Every step `ms` long (0: instant machines, to measure only the software around them).
    pub const fn uniform(ms: u64) -> Self {
        Self {
            power_on_ms: ms,
            power_off_ms: ms,
            graceful_shutdown_ms: ms,
            post_ms: ms,
            os_ignores_graceful_shutdown: false,
        }
    }
}

impl Default for LatencySpec {
    fn default() -> Self {
        Self {
            power_on_ms: 200,
            power_off_ms: 100,
            graceful_shutdown_ms: 300,
            post_ms: 100,
            os_ignores_graceful_shutdown: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HardwareSpec {
    pub cpu_sockets: u32,
    pub cores_per_socket: u32,
    pub memory_gib: u32,
    pub disks: u32,
    pub disk_gb: u64,
}

impl Default for HardwareSpec {
    fn default() -> Self {
        Self {
            cpu_sockets: 2,
            cores_per_socket: 32,
            memory_gib: 256,
            disks: 2,
            disk_gb: 960,
        }
    }
}

/// A BMC with every field decided.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedBmc {
    pub index: usize,
    pub name: String,
    pub vendor: Vendor,
    pub systems: usize,
    pub architecture: String,
    pub credentials: Credentials,
    pub accounts: Vec<AccountSpec>,
    pub latencies: LatencySpec,
    pub hardware: HardwareSpec,
    pub initial_power: PowerState,
    pub nics: usize,
    pub mac_prefix: String,
    pub faults: Vec<FaultSpec>,
}

impl FleetSpec {
    /// Parses a fleet file; errors name the line and column.
    pub fn from_yaml(s: &str) -> Result<Self, Error> {
        let spec: FleetSpec =
            serde_saphyr::from_str(s).map_err(|e| Error::FleetFile(e.to_string()))?;
        spec.resolve()?;
        Ok(spec)
    }

    /// A fleet of `count` default BMCs of one vendor.
    pub fn uniform(count: usize, vendor: Vendor, seed: u64) -> Self {
        Self {
            seed,
            count,
            name_prefix: default_prefix(),
            defaults: BmcSpec {
                vendor: Some(vendor),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Every BMC with defaults applied; rejects impossible fleets.
    pub fn resolve(&self) -> Result<Vec<ResolvedBmc>, Error> {
        let named = self.bmcs.iter().cloned();
        let generated = (0..self.count).map(|i| BmcSpec {
            name: Some(format!("{}{i}", self.name_prefix)),
            ..Default::default()
        });
        let mut out: Vec<ResolvedBmc> = Vec::new();
        for (index, spec) in named.chain(generated).enumerate() {
            let r = self.resolve_one(index, spec)?;
            if out.iter().any(|o| o.name == r.name) {
                return Err(Error::InvalidFleet(format!(
                    "duplicate BMC name {:?}",
                    r.name
                )));
            }
            out.push(r);
        }
        Ok(out)
    }

    fn resolve_one(&self, index: usize, spec: BmcSpec) -> Result<ResolvedBmc, Error> {
        let d = &self.defaults;
        let name = spec
            .name
            .ok_or_else(|| Error::InvalidFleet(format!("bmcs[{index}] has no name")))?;
        let architecture = spec
            .architecture
            .or(d.architecture.clone())
            .unwrap_or_else(|| "amd64".into());
        if !["amd64", "arm64"].contains(&architecture.as_str()) {
            return Err(Error::InvalidFleet(format!(
                "{name}: architecture must be amd64 or arm64, not {architecture:?}"
            )));
        }
        let systems = spec.systems.or(d.systems).unwrap_or(1);
        let nics = spec.nics.or(d.nics).unwrap_or(2);
        if systems == 0 || nics == 0 {
            return Err(Error::InvalidFleet(format!(
                "{name}: systems and nics must be at least 1"
            )));
        }
        let mac_prefix = spec
            .mac_prefix
            .or(d.mac_prefix.clone())
            .unwrap_or_else(|| "52:54:00".into());
        if mac_prefix.split(':').count() != 3
            || mac_prefix
                .split(':')
                .any(|o| u8::from_str_radix(o, 16).is_err())
        {
            return Err(Error::InvalidFleet(format!(
                "{name}: macPrefix must be three hex octets like 52:54:00"
            )));
        }
        let mut faults = d.faults.clone().unwrap_or_default();
        faults.extend(spec.faults.unwrap_or_default());
        crate::fault::validate_all(&faults)
            .map_err(|e| Error::InvalidFleet(format!("{name}: {e}")))?;
        Ok(ResolvedBmc {
            index,
            vendor: spec.vendor.or(d.vendor).unwrap_or_default(),
            systems,
            architecture,
            credentials: spec
                .credentials
                .or(d.credentials.clone())
                .unwrap_or(Credentials {
                    username: "admin".into(),
                    password: "password".into(),
                }),
            accounts: spec.accounts.or(d.accounts.clone()).unwrap_or_default(),
            latencies: spec.latencies.or(d.latencies).unwrap_or_default(),
            hardware: spec.hardware.or(d.hardware).unwrap_or_default(),
            initial_power: spec
                .initial_power
                .or(d.initial_power)
                .unwrap_or(PowerState::Off),
            nics,
            mac_prefix,
            faults,
            name,
        })
    }
}
