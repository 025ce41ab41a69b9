//! The `faults` section: what goes wrong, when, and for how long.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Dur;

/// One fault on the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultStep {
    /// Offset from the start of the run (not of the workload).
    pub at: Dur,
    /// How long the fault lasts; unset means until the end of the run (restarts are instantaneous).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    pub fault: Fault,
}

/// What goes wrong.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Fault {
    /// A misbehaving BMC (or several).
    Bmc { bmcs: BmcTarget, kind: BmcFault },
    /// The boot backend is stopped and started again (its state is rebuilt from the API).
    BackendRestart,
    /// The operator is stopped and started again.
    OperatorRestart,
    /// The API server restarts (embedded only: it keeps its data; clients reconnect).
    ApiServerRestart,
    /// Every open watch is closed; with `expire`, clients get 410 Gone and must relist.
    WatchDrop {
        #[serde(default)]
        expire: bool,
    },
    /// A share (0..1) of API requests fails with `code` (409, 429 or 500).
    ApiErrors {
        rate: f64,
        #[serde(default = "default_api_error_code")]
        code: u16,
    },
    /// Every API request is delayed.
    ApiLatency { latency: Dur },
}

fn default_api_error_code() -> u16 {
    500
}

/// Which BMCs a fault hits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BmcTarget {
    /// These BMCs by name.
    Names(Vec<String>),
    /// The first `n` BMCs.
    First(u32),
    /// A seeded random share (0..1) of the fleet.
    Share(f64),
    /// Every BMC.
    All,
}

/// How a BMC misbehaves (sim-bmc fault kinds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum BmcFault {
    /// Connections refused, or accepted and never answered (`blackHole: true`).
    Unreachable {
        #[serde(default)]
        black_hole: bool,
    },
    /// Every request answered this much later.
    Slow { latency: Dur },
    /// A share (0..1) of requests fails with `status` (default 503).
    ServerErrors {
        rate: f64,
        #[serde(default = "default_bmc_error_status")]
        status: u16,
    },
    /// Correct credentials are rejected with 401.
    AuthFailure,
    /// Reset actions answer success but nothing happens.
    ResetIgnored,
    /// Powering on never completes.
    StuckPoweringOn,
}

fn default_bmc_error_status() -> u16 {
    503
}

impl Fault {
    /// A short label for reports.
    pub fn label(&self) -> String {
        match self {
            Fault::Bmc { bmcs, kind } => format!("bmc {} {}", kind.label(), bmcs.label()),
            Fault::BackendRestart => "backend restart".into(),
            Fault::OperatorRestart => "operator restart".into(),
            Fault::ApiServerRestart => "API server restart".into(),
            Fault::WatchDrop { expire: false } => "watch drop".into(),
            Fault::WatchDrop { expire: true } => "watch expiry (410)".into(),
            Fault::ApiErrors { rate, code } => format!("API errors {code} at {rate}"),
            Fault::ApiLatency { latency } => format!("API latency {latency}"),
        }
    }

    /// Whether the fault is an instantaneous event (a restart or a drop) rather than a state.
    pub fn is_instant(&self) -> bool {
        matches!(
            self,
            Fault::BackendRestart
                | Fault::OperatorRestart
                | Fault::ApiServerRestart
                | Fault::WatchDrop { .. }
        )
    }
}

impl BmcFault {
    /// The sim-bmc fault this injects.
    pub fn sim_bmc_kind(&self) -> sim_bmc::fault::FaultKind {
        use sim_bmc::fault::{FaultKind as K, UnreachableMode};
        match self {
            BmcFault::Unreachable { black_hole } => K::Unreachable {
                mode: if *black_hole {
                    UnreachableMode::BlackHole
                } else {
                    UnreachableMode::Refuse
                },
            },
            BmcFault::Slow { latency } => K::Latency {
                ms: latency.as_millis(),
            },
            BmcFault::ServerErrors { rate, status } => K::ServerErrors {
                rate: *rate,
                status: *status,
            },
            BmcFault::AuthFailure => K::AuthFailure,
            BmcFault::ResetIgnored => K::ResetIgnored,
            BmcFault::StuckPoweringOn => K::StuckPoweringOn,
        }
    }

    pub fn label(&self) -> String {
        match self {
            BmcFault::Unreachable { black_hole: false } => "unreachable".into(),
            BmcFault::Unreachable { black_hole: true } => "black hole".into(),
            BmcFault::Slow { latency } => format!("slow {latency}"),
            BmcFault::ServerErrors { rate, status } => format!("{status} at {rate}"),
            BmcFault::AuthFailure => "auth failure".into(),
            BmcFault::ResetIgnored => "reset ignored".into(),
            BmcFault::StuckPoweringOn => "stuck powering on".into(),
        }
    }
}

impl BmcTarget {
    pub fn label(&self) -> String {
        match self {
            BmcTarget::Names(n) => n.join(","),
            BmcTarget::First(n) => format!("first {n}"),
            BmcTarget::Share(s) => format!("{:.0}% of BMCs", s * 100.0),
            BmcTarget::All => "all BMCs".into(),
        }
    }

    /// The BMC names hit, out of `all` (in fleet order); `Share` draws with `seed`.
    pub fn select(&self, all: &[String], seed: u64) -> Vec<String> {
        use rand::SeedableRng;
        use rand::seq::IndexedRandom;
        match self {
            BmcTarget::Names(names) => names.clone(),
            BmcTarget::First(n) => all.iter().take(*n as usize).cloned().collect(),
            BmcTarget::All => all.to_vec(),
            BmcTarget::Share(share) => {
                let n = ((all.len() as f64) * share.clamp(0.0, 1.0)).round() as usize;
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let mut chosen: Vec<String> = all.choose_multiple(&mut rng, n).cloned().collect();
                chosen.sort_by_key(|c| all.iter().position(|a| a == c));
                chosen
            }
        }
    }
}
