//! The seam for machine drivers that run something real behind the simulated firmware (a QEMU VM): they
//! report what the console and network show, can take over the ACPI power button, and tell the machine
//! when the OS powered itself off. The simulated firmware ignores it.

use std::sync::{Arc, Weak};

use super::{Machine, MachineEventKind};

/// Reads a bounded copy of a machine's console (oldest line first).
pub type ConsoleReader = Arc<dyn Fn() -> Vec<String> + Send + Sync>;
/// Presses the ACPI power button of the running OS (QMP `system_powerdown`).
pub type PowerButton = Arc<dyn Fn() + Send + Sync>;

/// A handle to one boot of one machine; everything it reports is dropped once that boot is over
/// (power-off, reset or a newer boot), so a late console line never lands on the next boot.
#[derive(Clone)]
pub struct BootLog {
    machine: Weak<Machine>,
    generation: u64,
}

impl std::fmt::Debug for BootLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootLog")
            .field("generation", &self.generation)
            .finish()
    }
}

impl BootLog {
    pub(crate) fn new(machine: &Arc<Machine>, generation: u64) -> Self {
        Self {
            machine: Arc::downgrade(machine),
            generation,
        }
    }

    /// A log attached to no machine (for drivers run on their own, e.g. in tests).
    pub fn detached() -> Self {
        Self {
            machine: Weak::new(),
            generation: 0,
        }
    }

    /// Records a console or firmware stage (`firmwareStarted`, `scriptFetched`, `kernelBooted`, …) in the
    /// event log; false when this boot is over.
    pub fn note(&self, stage: &str, detail: &str) -> bool {
        let Some(machine) = self.machine.upgrade() else {
            return false;
        };
        let mut state = machine.lock();
        if state.generation != self.generation {
            return false;
        }
        let kind = MachineEventKind::Console {
            stage: stage.to_string(),
            detail: detail.to_string(),
        };
        machine.record(&mut state, kind);
        true
    }

    /// Makes the console readable through the machine (control API); kept after the boot ends.
    pub fn set_console(&self, reader: ConsoleReader) {
        if let Some(machine) = self.machine.upgrade() {
            machine.lock().console = Some(reader);
        }
    }

    /// From now on GracefulShutdown/GracefulRestart press this button instead of simulating the OS.
    pub fn set_power_button(&self, button: PowerButton) {
        if let Some(machine) = self.machine.upgrade() {
            let mut state = machine.lock();
            if state.generation == self.generation {
                state.power_button = Some((self.generation, button));
            }
        }
    }

    /// The OS ended on its own (the VM powered off): the machine goes Off.
    pub fn os_exited(&self, reason: &str) {
        let Some(machine) = self.machine.upgrade() else {
            return;
        };
        let mut state = machine.lock();
        if state.generation != self.generation {
            return;
        }
        machine.os_powered_off(&mut state, reason);
    }
}
