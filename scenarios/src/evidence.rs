//! Evidence: what independent observers saw, as one stream ordered by arrival. Sources are the API
//! server's watch history (object snapshots), sim-bmc's machine event logs, the components' exits and
//! panics, and the harness's own actions (the workload and faults it applied).

use serde::{Deserialize, Serialize};

/// One observation, stamped with milliseconds since the run started (tokio clock, arrival time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub at_ms: u64,
    pub event: Event,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "camelCase")]
pub enum Event {
    /// An object as a watch delivered it (`deleted` for DELETED events).
    Api { object: Snapshot, deleted: bool },
    /// A machine event from sim-bmc's log.
    Machine { uuid: String, what: MachineObs },
    /// A component stopped, restarted or panicked.
    Component(ComponentEvent),
    /// The harness did something (workload step or fault).
    Harness(HarnessEvent),
}

/// The parts of API objects the invariants need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Snapshot {
    Server(ServerSnap),
    ServerClaim(ClaimSnap),
    ServerBootConfiguration(SbcSnap),
    #[serde(rename = "BMC")]
    Bmc {
        name: String,
    },
    Secret(SecretSnap),
}

/// A namespaced name.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Key {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSnap {
    pub name: String,
    /// `spec.systemUUID`: the machine this Server manages.
    pub uuid: Option<String>,
    pub state: Option<String>,
    pub power: Option<String>,
    pub claim_ref: Option<Key>,
    pub boot_config_ref: Option<Key>,
    /// Name of the owning BMC, if owned by one.
    pub bmc: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimSnap {
    pub key: Key,
    pub server_ref: Option<String>,
    pub bound: bool,
    pub image: String,
    pub ignition_secret: Option<String>,
    pub power_on: bool,
    pub selector: std::collections::BTreeMap<String, String>,
    pub deleting: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SbcSnap {
    pub key: Key,
    pub server: String,
    pub image: Option<String>,
    pub ignition_secret: Option<String>,
    pub generation: i64,
    pub state: Option<String>,
    /// `Ready` and no stamped condition lags the generation (`is_ready_for_current_generation`).
    pub ready_current: bool,
    /// Operator-internal (the discovery SBC).
    pub internal: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretSnap {
    pub key: Key,
    /// SHA-256 of the ignition as the backend serves it, when that can be computed from the Secret
    /// alone (plain Ignition JSON); `None` for Butane (`format: fcos`) or a missing key.
    pub served_ignition_sha256: Option<String>,
}

/// Machine events (sim-bmc's `MachineEventKind`, reduced).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum MachineObs {
    ResetRequested {
        reset_type: String,
        accepted: bool,
    },
    PowerChanged {
        to: String,
    },
    BootAttempt {
        target: String,
    },
    BootSucceeded {
        image: String,
        ignition_sha256: Option<String>,
    },
    BootFailed {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ComponentEvent {
    /// A component's task ended; `expected` when the harness stopped it (a restart fault, the end).
    Exited {
        component: String,
        expected: bool,
        detail: String,
    },
    /// A thread panicked.
    Panicked { thread: String, message: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum HarnessEvent {
    /// The Servers the fleet will produce, and their BMCs.
    FleetDeclared {
        servers: Vec<(String, String)>,
    },
    ClaimCreated {
        key: Key,
    },
    ClaimDeleted {
        key: Key,
    },
    ServerDeleted {
        server: String,
    },
    BmcDeleted {
        bmc: String,
    },
    /// A reset-type operation was requested through the annotation on a Server.
    OperationRequested {
        server: String,
        operation: String,
    },
    FaultInjected {
        label: String,
    },
    FaultCleared {
        label: String,
    },
    StepDone {
        label: String,
    },
}

/// Reset types that power a machine on or restart it (sim-bmc's definition).
pub use sim_bmc::machine::POWER_ON_RESETS;
