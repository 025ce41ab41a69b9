//! The discovery probe (metalprobe) as the booted OS runs it: register the machine's NICs and LLDP
//! neighbours with the operator's registry, optionally post the boot state, and re-register periodically.

use clock::Clock;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use metal_api::probe_registry::{
    BOOTSTATE_PATH, BootstatePayload, REGISTER_PATH, RegistrationPayload, ServerData,
    SystemInformation,
};

use crate::facts::NetworkFacts;
use http_client::HttpClient;

/// Where the probe reports, taken from its command line in the ignition's systemd unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeCommand {
    pub registry_url: String,
    pub server_uuid: String,
}

/// Finds `--registry-url=` and `--server-uuid=` on an `ExecStart=` line that runs metalprobe.
pub fn probe_command(ignition: &serde_json::Value) -> Option<ProbeCommand> {
    let units = ignition["systemd"]["units"].as_array()?;
    units
        .iter()
        .filter(|u| u["enabled"].as_bool() != Some(false))
        .find_map(|unit| {
            let contents = unit["contents"].as_str()?;
            contents
                .lines()
                .filter_map(|l| l.trim().strip_prefix("ExecStart="))
                .filter(|l| l.contains("metalprobe"))
                .find_map(|line| {
                    let flag = |name: &str| {
                        line.split_whitespace()
                            .find_map(|w| w.strip_prefix(name))
                            .map(|v| v.trim_matches('"').to_string())
                    };
                    Some(ProbeCommand {
                        registry_url: flag("--registry-url=")?.trim_end_matches('/').to_string(),
                        server_uuid: flag("--server-uuid=")?,
                    })
                })
        })
}

/// Probe behaviour.
#[derive(Clone, Copy, Debug)]
pub struct ProbeOptions {
    /// How often LLDP is refreshed and the machine re-registered (metalprobe: 30 s).
    pub interval: Duration,
    /// Whether to `POST /bootstate` after the first registration.
    pub post_bootstate: bool,
    /// Retry delay after a failed registration.
    pub retry: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            post_bootstate: true,
            retry: Duration::from_secs(1),
        }
    }
}

/// The timestamp the probe reports (the registry checks its age), in whole seconds as the real agent sends it.
fn timestamp(clock: &Clock) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(clock.now().as_second()).unwrap_or_default())
}

pub fn payload(command: &ProbeCommand, facts: &NetworkFacts, clock: &Clock) -> RegistrationPayload {
    RegistrationPayload {
        system_uuid: command.server_uuid.clone(),
        data: ServerData {
            timestamp: Some(timestamp(clock)),
            system_info: metal_api::probe_registry::Dmi {
                system_information: SystemInformation {
                    uuid: command.server_uuid.clone(),
                    ..Default::default()
                },
                ..Default::default()
            },
            network_interfaces: facts.interfaces.clone(),
            lldp: facts.lldp.clone(),
            ..Default::default()
        },
    }
}

/// Runs until aborted (the machine powers off): register, post boot state once, re-register every interval.
/// Failed registrations are retried; the loop never ends on its own, like the real agent.
pub async fn run(
    http: HttpClient,
    command: ProbeCommand,
    facts: NetworkFacts,
    options: ProbeOptions,
    clock: Clock,
) {
    let mut bootstate_posted = !options.post_bootstate;
    loop {
        // Serialising these plain structs cannot fail; an empty body would be refused and retried.
        let body = serde_json::to_vec(&payload(&command, &facts, &clock)).unwrap_or_default();
        let url = format!("{}{REGISTER_PATH}", command.registry_url);
        let registered = match http.post_json(&url, body).await {
            Ok(response) if response.status.is_success() => true,
            Ok(response) => {
                tracing::warn!(%url, status = %response.status, "probe registration refused");
                false
            }
            Err(error) => {
                tracing::warn!(%url, %error, "probe registration failed");
                false
            }
        };
        if registered && !bootstate_posted {
            let state = BootstatePayload {
                system_uuid: command.server_uuid.clone(),
                booted: true,
            };
            let url = format!("{}{BOOTSTATE_PATH}", command.registry_url);
            bootstate_posted = http
                .post_json(&url, serde_json::to_vec(&state).unwrap_or_default())
                .await
                .is_ok();
        }
        tokio::time::sleep(if registered {
            options.interval
        } else {
            options.retry
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_probe_command_in_the_discovery_units() {
        let ignition = json!({"systemd": {"units": [
            {"name": "containerd.service", "enabled": true},
            {"name": "metalprobe.service", "enabled": true, "contents":
                "[Service]\nExecStartPre=/usr/bin/ctr images pull x\nExecStart=/usr/bin/ctr run --rm --net-host --privileged img metalprobe ./launch.sh --registry-url=http://127.0.0.1:10000/ --server-uuid=abc\n"},
        ]}});
        assert_eq!(
            probe_command(&ignition),
            Some(ProbeCommand {
                registry_url: "http://127.0.0.1:10000".into(),
                server_uuid: "abc".into()
            })
        );
        assert_eq!(
            probe_command(&json!({"ignition": {"version": "3.2.0"}})),
            None
        );
    }
}
