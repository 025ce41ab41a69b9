//! The simulated machine behind a Redfish System: power state machine, boot flow and event log.

mod boot_flow;
mod driver;
mod power;
mod settings;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::boot::{BootNetwork, NetworkBoot};
use crate::fault::FaultHandle;
use clock::Clock;

pub use driver::{BootLog, ConsoleReader, PowerButton};
pub use power::{POWER_ON_RESETS, ResetError};
pub use settings::{
    BOOT_ENABLED, BOOT_MODES, BOOT_OPTIONS, BOOT_TARGETS, BootSettings, BootSettingsPatch,
    BootTargetName,
};

/// Redfish `PowerState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PowerState {
    On,
    Off,
    PoweringOn,
    PoweringOff,
}

impl PowerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "On",
            PowerState::Off => "Off",
            PowerState::PoweringOn => "PoweringOn",
            PowerState::PoweringOff => "PoweringOff",
        }
    }

    fn in_transition(self) -> bool {
        matches!(self, PowerState::PoweringOn | PowerState::PoweringOff)
    }
}

/// What booted, without the OS's running agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootedOsSummary {
    pub image: String,
    pub image_digest: Option<String>,
    pub ignition_sha256: Option<String>,
    /// The device it booted from: `Pxe`, `UefiHttp` or `Hdd`.
    pub booted_from: String,
}

/// One entry of a machine's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineEvent {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub system_uuid: String,
    pub kind: MachineEventKind,
}

/// What happened to a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum MachineEventKind {
    ResetRequested {
        reset_type: String,
        accepted: bool,
    },
    PowerStateChanged {
        from: PowerState,
        to: PowerState,
    },
    BootOverrideChanged {
        target: String,
        enabled: String,
    },
    BootOrderChanged {
        order: Vec<String>,
    },
    BootAttempt {
        target: String,
        via_override: bool,
    },
    BootSucceeded {
        os: BootedOsSummary,
    },
    BootFailed {
        reason: String,
    },
    NoBootDevice,
    /// The OS (or firmware) stopped: shut down, reset or powered off underneath.
    OsStopped {
        reason: String,
    },
    GracefulShutdownIgnored,
    NmiReceived,
    BiosSettingsApplied {
        attributes: BTreeMap<String, serde_json::Value>,
    },
    IndicatorChanged {
        state: String,
    },
    /// A stage a real machine's console or network showed (machine drivers other than the simulated one).
    Console {
        stage: String,
        detail: String,
    },
}

/// Fixed properties of a machine.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    pub uuid: String,
    pub macs: Vec<String>,
    pub architecture: String,
    pub latencies: Latencies,
    pub boot_network: BootNetwork,
    pub initial_power: PowerState,
    pub boot: BootSettings,
}

/// How long the machine takes for each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latencies {
    pub power_on: Duration,
    pub power_off: Duration,
    /// Time an OS needs to shut down after ACPI power-button.
    pub graceful_shutdown: Duration,
    /// Firmware POST before the first boot attempt.
    pub post: Duration,
    /// Whether a running OS ignores GracefulShutdown (as some do).
    pub os_ignores_graceful_shutdown: bool,
}

/// Where the machine is beyond its power state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Phase {
    Off,
    PoweringOn {
        done_at: tokio::time::Instant,
    },
    /// On; POST and boot attempts run in a task tagged with the generation.
    Firmware,
    OsRunning(BootedOsSummary),
    NoBootDevice,
    ShuttingDown {
        done_at: tokio::time::Instant,
        then_restart: bool,
    },
    PoweringOff {
        done_at: tokio::time::Instant,
        then_on: bool,
    },
}

pub(crate) struct State {
    pub(crate) phase: Phase,
    /// Bumped whenever power or boot flow is interrupted, so stale timers and boot tasks become no-ops.
    pub(crate) generation: u64,
    pub(crate) boot: BootSettings,
    pub(crate) installed: Option<BootedOsSummary>,
    pub(crate) os_task: Option<JoinHandle<()>>,
    pub(crate) bios: BTreeMap<String, serde_json::Value>,
    pub(crate) bios_pending: BTreeMap<String, serde_json::Value>,
    pub(crate) indicator: String,
    events: Vec<MachineEvent>,
    /// A real machine's console (see [`BootLog::set_console`]).
    pub(crate) console: Option<ConsoleReader>,
    /// The running OS's power button and the boot generation it belongs to (see [`BootLog`]).
    pub(crate) power_button: Option<(u64, PowerButton)>,
    /// A GracefulRestart pressed the button: when the OS powers off, the machine powers on again.
    pub(crate) restart_after_os_off: bool,
    /// Bumped on every change a Redfish payload could show (keys the rendered-payload cache).
    pub(crate) version: u64,
}

/// Events a slow subscriber may fall behind by before it sees `Lagged` (the full log stays in `events()`).
const SUBSCRIBER_BUFFER: usize = 1024;

/// Callback invoked for every event (the BMC uses it to push Redfish events to subscribers).
pub type EventHook = Arc<dyn Fn(&MachineEvent) + Send + Sync>;

pub(crate) struct Machine {
    pub(crate) cfg: MachineConfig,
    state: Mutex<State>,
    /// Created on first subscribe: a broadcast buffer per machine would dominate memory in big fleets.
    tx: OnceLock<broadcast::Sender<MachineEvent>>,
    clock: Clock,
    pub(crate) faults: FaultHandle,
    network_boot: Option<Arc<dyn NetworkBoot>>,
    hook: OnceLock<EventHook>,
    runtime: tokio::runtime::Handle,
}

/// A cheap handle to one simulated machine.
#[derive(Clone)]
pub struct MachineHandle {
    pub(crate) inner: Arc<Machine>,
}

impl std::fmt::Debug for MachineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineHandle")
            .field("uuid", &self.inner.cfg.uuid)
            .finish()
    }
}

impl MachineHandle {
    /// Creates a machine; must be called inside a tokio runtime.
    pub fn new(
        cfg: MachineConfig,
        clock: Clock,
        faults: FaultHandle,
        network_boot: Option<Arc<dyn NetworkBoot>>,
        bios_defaults: BTreeMap<String, serde_json::Value>,
    ) -> Self {
        let phase = match cfg.initial_power {
            PowerState::Off | PowerState::PoweringOff => Phase::Off,
            _ => Phase::NoBootDevice,
        };
        let state = State {
            phase,
            generation: 0,
            boot: cfg.boot.clone(),
            installed: None,
            os_task: None,
            bios: bios_defaults,
            bios_pending: BTreeMap::new(),
            indicator: "Off".to_string(),
            events: Vec::new(),
            console: None,
            power_button: None,
            restart_after_os_off: false,
            version: 0,
        };
        Self {
            inner: Arc::new(Machine {
                cfg,
                state: Mutex::new(state),
                tx: OnceLock::new(),
                clock,
                faults,
                network_boot,
                hook: OnceLock::new(),
                runtime: tokio::runtime::Handle::current(),
            }),
        }
    }

    pub fn uuid(&self) -> &str {
        &self.inner.cfg.uuid
    }

    pub fn macs(&self) -> &[String] {
        &self.inner.cfg.macs
    }

    /// The true power state (faults that misreport it apply only to Redfish payloads).
    pub fn power_state(&self) -> PowerState {
        self.inner.settle();
        self.inner.lock().phase.power_state()
    }

    /// Changes whenever anything a Redfish payload shows about this machine changes.
    pub fn version(&self) -> u64 {
        self.inner.settle();
        self.inner.lock().version
    }

    /// The full event log, in order.
    pub fn events(&self) -> Vec<MachineEvent> {
        self.inner.lock().events.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<MachineEvent> {
        self.inner
            .tx
            .get_or_init(|| broadcast::channel(SUBSCRIBER_BUFFER).0)
            .subscribe()
    }

    /// The OS that came up at the last successful boot, if it is still running.
    pub fn running_os(&self) -> Option<BootedOsSummary> {
        self.inner.settle();
        match &self.inner.lock().phase {
            Phase::OsRunning(os) => Some(os.clone()),
            _ => None,
        }
    }

    /// The image a network install left on disk, if any.
    pub fn installed_os(&self) -> Option<BootedOsSummary> {
        self.inner.lock().installed.clone()
    }

    pub fn boot_settings(&self) -> BootSettings {
        self.inner.lock().boot.clone()
    }

    /// The captured console of a real machine (oldest line first), if its driver keeps one.
    pub fn console(&self) -> Option<Vec<String>> {
        let reader = self.inner.lock().console.clone();
        reader.map(|read| read())
    }

    /// Sets the callback that sees every event (one per machine; later calls are ignored).
    pub fn set_event_hook(&self, hook: EventHook) {
        let _ = self.inner.hook.set(hook);
    }
}

impl Phase {
    pub(crate) fn power_state(&self) -> PowerState {
        match self {
            Phase::Off => PowerState::Off,
            Phase::PoweringOn { .. } => PowerState::PoweringOn,
            Phase::PoweringOff { .. } => PowerState::PoweringOff,
            Phase::Firmware
            | Phase::OsRunning(_)
            | Phase::NoBootDevice
            | Phase::ShuttingDown { .. } => PowerState::On,
        }
    }
}

impl Machine {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends an event while the state lock is held, so the log order matches the state order.
    pub(crate) fn record(&self, state: &mut State, kind: MachineEventKind) {
        state.version += 1;
        let event = MachineEvent {
            seq: state.events.len() as u64 + 1,
            at: self.clock.now_chrono(),
            system_uuid: self.cfg.uuid.clone(),
            kind,
        };
        state.events.push(event.clone());
        if let Some(hook) = self.hook.get() {
            hook(&event);
        }
        if let Some(tx) = self.tx.get() {
            let _ = tx.send(event);
        }
    }
}
