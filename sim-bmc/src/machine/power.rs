//! The power state machine: Reset handling, latencies and the transitions between phases.

use std::sync::Arc;

use tokio::time::Instant;

use super::{Machine, MachineEventKind, MachineHandle, Phase, PowerState, State};

/// Why a reset was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResetError {
    #[error("a power transition is still in progress")]
    InProgress,
    #[error("reset type {0} is not supported")]
    Unsupported(String),
}

/// Reset types that power a machine on or restart it: what a Server's boot looks like in a BMC's reset log.
pub const POWER_ON_RESETS: &[&str] = &[
    "On",
    "ForceOn",
    "GracefulRestart",
    "ForceRestart",
    "PowerCycle",
    "PushPowerButton",
];

impl MachineHandle {
    /// Performs a Redfish `ResetType` on the machine.
    pub fn reset(&self, reset_type: &str) -> Result<(), ResetError> {
        let m = &self.inner;
        m.settle();
        let mut state = m.lock();
        let power = state.phase.power_state();
        let requested = |accepted| MachineEventKind::ResetRequested {
            reset_type: reset_type.to_string(),
            accepted,
        };
        if power.in_transition() {
            m.record(&mut state, requested(false));
            return Err(ResetError::InProgress);
        }
        let on = power == PowerState::On;
        let known = matches!(
            reset_type,
            "On" | "ForceOn"
                | "ForceOff"
                | "GracefulShutdown"
                | "GracefulRestart"
                | "ForceRestart"
                | "PowerCycle"
                | "Nmi"
                | "PushPowerButton"
        );
        if !known {
            m.record(&mut state, requested(false));
            return Err(ResetError::Unsupported(reset_type.to_string()));
        }
        m.record(&mut state, requested(true));
        if m.faults.reset_ignored() {
            return Ok(()); // the BMC says yes, the machine does nothing: the log shows no transition
        }
        match (reset_type, on) {
            ("On" | "ForceOn" | "PushPowerButton" | "PowerCycle", false) => {
                m.begin_power_on(&mut state)
            }
            ("ForceOff", true) => m.begin_power_off(&mut state, false),
            ("GracefulShutdown" | "PushPowerButton", true) => m.begin_shutdown(&mut state, false),
            ("GracefulRestart", true) => m.begin_shutdown(&mut state, true),
            ("ForceRestart", true) => m.warm_reset(&mut state, "ForceRestart"),
            ("PowerCycle", true) => m.begin_power_off(&mut state, true),
            ("Nmi", true) => m.record(&mut state, MachineEventKind::NmiReceived),
            _ => {} // already in the requested state: accepted, nothing to do
        }
        drop(state);
        m.settle();
        Ok(())
    }
}

impl Machine {
    /// Applies every transition whose deadline has passed; readers call it so state is never stale.
    pub(crate) fn settle(self: &Arc<Self>) {
        let mut state = self.lock();
        let now = Instant::now();
        loop {
            match state.phase.clone() {
                Phase::PoweringOn { done_at }
                    if now >= done_at && !self.faults.stuck_powering_on() =>
                {
                    self.set_phase(&mut state, Phase::Firmware);
                    self.apply_pending_bios(&mut state);
                    self.start_boot(&mut state);
                }
                Phase::ShuttingDown {
                    done_at,
                    then_restart,
                } if now >= done_at => {
                    if then_restart {
                        self.warm_reset(&mut state, "GracefulRestart");
                    } else {
                        self.begin_power_off(&mut state, false);
                    }
                }
                Phase::PoweringOff { done_at, then_on } if now >= done_at => {
                    self.set_phase(&mut state, Phase::Off);
                    if then_on {
                        self.begin_power_on(&mut state);
                    }
                }
                _ => break,
            }
        }
    }

    /// Changes phase, logging a power state change when there is one.
    pub(crate) fn set_phase(&self, state: &mut State, phase: Phase) {
        let from = state.phase.power_state();
        let to = phase.power_state();
        state.phase = phase;
        if from != to {
            self.record(state, MachineEventKind::PowerStateChanged { from, to });
        }
    }

    fn schedule(self: &Arc<Self>, at: Instant) {
        let machine = Arc::downgrade(self);
        self.runtime.spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(machine) = machine.upgrade() {
                machine.settle();
            }
        });
    }

    fn begin_power_on(self: &Arc<Self>, state: &mut State) {
        state.generation += 1;
        let done_at = Instant::now() + self.cfg.latencies.power_on;
        self.set_phase(state, Phase::PoweringOn { done_at });
        self.schedule(done_at);
    }

    fn begin_power_off(self: &Arc<Self>, state: &mut State, then_on: bool) {
        self.stop_os(state, "power off");
        state.generation += 1;
        let done_at = Instant::now() + self.cfg.latencies.power_off;
        self.set_phase(state, Phase::PoweringOff { done_at, then_on });
        self.schedule(done_at);
    }

    /// ACPI power button: a running OS shuts down (or ignores it); firmware powers off at once.
    fn begin_shutdown(self: &Arc<Self>, state: &mut State, then_restart: bool) {
        let button = state
            .power_button
            .as_ref()
            .filter(|(generation, _)| *generation == state.generation)
            .map(|(_, button)| button.clone());
        match state.phase {
            // A real OS decides for itself; if it powers off, its driver reports it (`BootLog::os_exited`).
            Phase::OsRunning(_) if button.is_some() => {
                let kind = MachineEventKind::Console {
                    stage: "acpiPowerButton".into(),
                    detail: if then_restart {
                        "GracefulRestart"
                    } else {
                        "GracefulShutdown"
                    }
                    .into(),
                };
                self.record(state, kind);
                state.restart_after_os_off = then_restart;
                if let Some(button) = button {
                    button();
                }
            }
            Phase::OsRunning(_) if self.cfg.latencies.os_ignores_graceful_shutdown => {
                self.record(state, MachineEventKind::GracefulShutdownIgnored);
            }
            Phase::OsRunning(_) => {
                let done_at = Instant::now() + self.cfg.latencies.graceful_shutdown;
                state.phase = Phase::ShuttingDown {
                    done_at,
                    then_restart,
                };
                self.schedule(done_at);
            }
            Phase::ShuttingDown { .. } => {}
            _ if then_restart => self.warm_reset(state, "GracefulRestart"),
            _ => self.begin_power_off(state, false),
        }
    }

    /// Restarts the boot flow without a power transition.
    fn warm_reset(self: &Arc<Self>, state: &mut State, why: &str) {
        self.stop_os(state, why);
        self.apply_pending_bios(state);
        self.start_boot(state);
    }

    /// The OS powered the machine off by itself (a real VM that shut down).
    pub(crate) fn os_powered_off(self: &Arc<Self>, state: &mut State, why: &str) {
        let restart = std::mem::take(&mut state.restart_after_os_off);
        self.stop_os(state, why);
        // The OS is gone (still On, so no power event); the power-off below finds nothing left to stop.
        state.phase = Phase::Firmware;
        self.begin_power_off(state, restart);
    }

    /// Stops whatever runs on the machine (OS agent or firmware boot flow).
    pub(crate) fn stop_os(&self, state: &mut State, why: &str) {
        state.generation += 1;
        state.power_button = None;
        state.restart_after_os_off = false;
        if let Some(task) = state.os_task.take() {
            task.abort();
        }
        if matches!(
            state.phase,
            Phase::OsRunning(_) | Phase::ShuttingDown { .. }
        ) {
            self.record(
                state,
                MachineEventKind::OsStopped {
                    reason: why.to_string(),
                },
            );
        }
    }
}
