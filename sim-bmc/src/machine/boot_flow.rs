//! The firmware's boot flow: POST, one-time override consumption, boot attempts in order, network boot.

use std::sync::Arc;
use std::time::Duration;

use super::settings::BootTargetName;
use super::{BootedOsSummary, Machine, MachineEventKind, Phase, State};
use crate::boot::{BootOutcome, BootTarget, NetworkBootRequest};

/// A network boot that has not finished after this long counts as failed (firmware gives up too).
const NETWORK_BOOT_TIMEOUT: Duration = Duration::from_secs(120);

impl Machine {
    /// Starts POST and the boot attempts in a task bound to a new generation.
    pub(crate) fn start_boot(self: &Arc<Self>, state: &mut State) {
        state.generation += 1;
        state.phase = Phase::Firmware;
        let generation = state.generation;
        let machine = self.clone();
        self.runtime
            .spawn(async move { machine.run_boot(generation).await });
    }

    async fn run_boot(self: Arc<Self>, generation: u64) {
        tokio::time::sleep(self.cfg.latencies.post).await;
        let Some(candidates) = self.boot_candidates(generation) else {
            return;
        };
        for (entry, via_override) in candidates {
            let device = BootTargetName::parse(&entry);
            {
                let mut state = self.lock();
                if state.generation != generation {
                    return;
                }
                let kind = MachineEventKind::BootAttempt {
                    target: device_label(&entry, device),
                    via_override,
                };
                self.record(&mut state, kind);
            }
            let outcome = self.attempt(device, generation).await;
            let mut state = self.lock();
            if state.generation != generation {
                if let Ok((_, Some(task))) = outcome {
                    task.abort();
                }
                return;
            }
            match outcome {
                Ok((os, task)) => {
                    if os.booted_from != "Hdd" {
                        state.installed = Some(BootedOsSummary {
                            booted_from: "Hdd".into(),
                            ..os.clone()
                        });
                    }
                    state.os_task = task;
                    state.phase = Phase::OsRunning(os.clone());
                    self.record(&mut state, MachineEventKind::BootSucceeded { os });
                    return;
                }
                Err(reason) => self.record(&mut state, MachineEventKind::BootFailed { reason }),
            }
        }
        let mut state = self.lock();
        if state.generation == generation {
            state.phase = Phase::NoBootDevice;
            self.record(&mut state, MachineEventKind::NoBootDevice);
        }
    }

    /// The override target (consuming a one-time override) followed by the boot order.
    fn boot_candidates(&self, generation: u64) -> Option<Vec<(String, bool)>> {
        let mut state = self.lock();
        if state.generation != generation {
            return None;
        }
        let mut out = Vec::new();
        let boot = state.boot.clone();
        if boot.override_enabled != "Disabled" && boot.override_target != "None" {
            out.push((boot.override_target.clone(), true));
            if boot.override_enabled == "Once" {
                state.boot.override_enabled = "Disabled".into();
                let kind = MachineEventKind::BootOverrideChanged {
                    target: boot.override_target.clone(),
                    enabled: "Disabled".into(),
                };
                self.record(&mut state, kind);
            }
        }
        out.extend(boot.boot_order.iter().map(|e| (e.clone(), false)));
        Some(out)
    }

    async fn attempt(
        self: &Arc<Self>,
        device: BootTargetName,
        generation: u64,
    ) -> Result<(BootedOsSummary, Option<tokio::task::JoinHandle<()>>), String> {
        let target = match device {
            BootTargetName::Hdd => {
                return self
                    .lock()
                    .installed
                    .clone()
                    .map(|os| (os, None))
                    .ok_or_else(|| "no bootable disk".to_string());
            }
            BootTargetName::Unbootable => return Err("no bootable media".into()),
            BootTargetName::Pxe => BootTarget::Pxe,
            BootTargetName::UefiHttp => BootTarget::UefiHttp,
        };
        let boot_url = self
            .cfg
            .boot_network
            .url_template(target)
            .map(|t| render_boot_url(t, &self.cfg.uuid, &self.cfg.macs));
        let (Some(network_boot), Some(_)) = (&self.network_boot, &boot_url) else {
            return Err(match target {
                BootTarget::Pxe => "PXE-E18: no boot server answered (timeout)".into(),
                BootTarget::UefiHttp => "HTTP boot: no boot server answered (timeout)".into(),
            });
        };
        let request = NetworkBootRequest {
            system_uuid: self.cfg.uuid.clone(),
            macs: self.cfg.macs.clone(),
            architecture: self.cfg.architecture.clone(),
            target,
            boot_url,
        };
        let log = super::BootLog::new(self, generation);
        let boot = network_boot.boot_logged(request, log);
        match tokio::time::timeout(NETWORK_BOOT_TIMEOUT, boot).await {
            Err(_) => Err(format!(
                "network boot did not finish within {NETWORK_BOOT_TIMEOUT:?}"
            )),
            Ok(BootOutcome::Failed { reason }) => Err(reason),
            Ok(BootOutcome::Booted(os)) => Ok((
                BootedOsSummary {
                    image: os.image,
                    image_digest: os.image_digest,
                    ignition_sha256: os.ignition_sha256,
                    booted_from: device.as_str().to_string(),
                },
                os.os_task,
            )),
        }
    }
}

fn device_label(entry: &str, device: BootTargetName) -> String {
    match device {
        BootTargetName::Unbootable => entry.to_string(),
        d => d.as_str().to_string(),
    }
}

/// Fills `{uuid}` and `{mac}` (first MAC) into a boot URL template.
pub fn render_boot_url(template: &str, uuid: &str, macs: &[String]) -> String {
    let mac = macs.first().map(String::as_str).unwrap_or("");
    template.replace("{uuid}", uuid).replace("{mac}", mac)
}
