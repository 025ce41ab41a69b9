//! Power state machine and boot flow, observed through Redfish and the machine's event log.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, fleet, wait_for_event, wait_until};
use futures::FutureExt;
use futures::future::BoxFuture;
use http::StatusCode;
use sim_bmc::boot::{BootOutcome, BootTarget, BootedOs, NetworkBoot, NetworkBootRequest};
use sim_bmc::{FleetHandle, FleetOptions, MachineEventKind, MachineHandle, PowerState};

const FLEET: &str = r#"
seed: 7
bmcs:
  - name: r1
    vendor: dell
    latencies: {powerOnMs: 200, powerOffMs: 100, gracefulShutdownMs: 300, postMs: 50}
bootNetwork:
  ipxeUrlTemplate: "http://boot.invalid/ipxe?uuid={uuid}&mac={mac}"
"#;

const SYS: &str = "/redfish/v1/Systems/System.Embedded.1";
const RESET: &str = "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset";

/// Records requests and answers with a fixed image, as a boot server would.
struct RecordingBoot {
    seen: std::sync::Mutex<Vec<NetworkBootRequest>>,
}

impl NetworkBoot for RecordingBoot {
    fn boot(&self, req: NetworkBootRequest) -> BoxFuture<'static, BootOutcome> {
        self.seen.lock().unwrap().push(req);
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            BootOutcome::Booted(BootedOs {
                image: "ghcr.io/example/os:1.0".into(),
                image_digest: Some("sha256:abc".into()),
                ignition_sha256: None,
                artifacts: vec![],
                os_task: None,
            })
        }
        .boxed()
    }
}

#[tokio::test(start_paused = true)]
async fn power_on_takes_the_configured_latency_and_is_visible_immediately_after() {
    let fleet = fleet(FLEET, FleetOptions::default()).await;
    let c = Client::new(&fleet, "r1");
    let uuid = fleet.bmcs()[0].systems[0].uuid.clone();
    let machine = fleet.machine(&uuid).unwrap();
    assert_eq!(c.get(SYS).await.json["PowerState"], "Off");
    let mut events = machine.subscribe();
    let r = c.post(RESET, r#"{"ResetType":"On"}"#).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let first = events.recv().await.unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(
        first.kind,
        MachineEventKind::ResetRequested {
            reset_type: "On".into(),
            accepted: true
        }
    );
    assert_eq!(c.get(SYS).await.json["PowerState"], "PoweringOn");
    // A second reset while powering on is refused.
    let r = c.post(RESET, r#"{"ResetType":"ForceOff"}"#).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.message_id().ends_with("ResourceInUse"));
    tokio::time::advance(Duration::from_millis(199)).await;
    assert_eq!(c.get(SYS).await.json["PowerState"], "PoweringOn");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(c.get(SYS).await.json["PowerState"], "On");
    assert_eq!(machine.power_state(), PowerState::On);
    let kinds: Vec<_> = machine.events().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&MachineEventKind::PowerStateChanged {
        from: PowerState::Off,
        to: PowerState::PoweringOn
    }));
    assert!(kinds.contains(&MachineEventKind::PowerStateChanged {
        from: PowerState::PoweringOn,
        to: PowerState::On
    }));
    assert!(kinds.contains(&MachineEventKind::ResetRequested {
        reset_type: "ForceOff".into(),
        accepted: false
    }));
}

#[tokio::test(start_paused = true)]
async fn without_a_boot_server_the_machine_ends_with_no_boot_device() {
    let fleet = fleet(FLEET, FleetOptions::default()).await;
    let c = Client::new(&fleet, "r1");
    let machine = fleet.machine(&fleet.bmcs()[0].systems[0].uuid).unwrap();
    c.post(RESET, r#"{"ResetType":"On"}"#).await;
    wait_for_event(&machine, MachineEventKind::NoBootDevice).await;
    let failures: Vec<_> = machine
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            MachineEventKind::BootFailed { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures.len(),
        3,
        "Hdd, Pxe, UefiHttp all fail: {failures:?}"
    );
    assert!(failures[1].contains("no boot server answered"));
}

#[tokio::test(start_paused = true)]
async fn pxe_once_override_is_consumed_and_the_install_boots_from_disk_afterwards() {
    let boot = Arc::new(RecordingBoot {
        seen: Default::default(),
    });
    let opts = FleetOptions {
        network_boot: Some(boot.clone()),
        ..Default::default()
    };
    let fleet = fleet(FLEET, opts).await;
    let c = Client::new(&fleet, "r1");
    let info = fleet.bmcs()[0].clone();
    let machine = fleet.machine(&info.systems[0].uuid).unwrap();

    let r = c
        .patch(SYS, r#"{"Boot":{"BootSourceOverrideEnabled":"Once","BootSourceOverrideTarget":"Pxe","BootSourceOverrideMode":"UEFI"}}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["Boot"]["BootSourceOverrideEnabled"], "Once");
    c.post(RESET, r#"{"ResetType":"On"}"#).await;
    wait_until(|| machine.running_os().is_some()).await;

    let os = machine.running_os().unwrap();
    assert_eq!(os.booted_from, "Pxe");
    let seen = boot.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, BootTarget::Pxe);
    assert_eq!(seen[0].system_uuid, info.systems[0].uuid);
    let expected_url = format!(
        "http://boot.invalid/ipxe?uuid={}&mac={}",
        info.systems[0].uuid, info.systems[0].macs[0]
    );
    assert_eq!(seen[0].boot_url.as_deref(), Some(expected_url.as_str()));
    assert_eq!(
        c.get(SYS).await.json["Boot"]["BootSourceOverrideEnabled"],
        "Disabled"
    );

    // A restart now boots the installed image from disk, without the network.
    c.post(RESET, r#"{"ResetType":"ForceRestart"}"#).await;
    tokio::time::advance(Duration::from_millis(1)).await;
    wait_until(|| {
        machine
            .running_os()
            .is_some_and(|os| os.booted_from == "Hdd")
    })
    .await;
    assert_eq!(boot.seen.lock().unwrap().len(), 1);
    let attempts: Vec<_> = machine
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            MachineEventKind::BootAttempt {
                target,
                via_override,
            } => Some((target, via_override)),
            _ => None,
        })
        .collect();
    assert_eq!(
        attempts,
        vec![("Pxe".to_string(), true), ("Hdd".to_string(), false)]
    );
}

/// Powers on a fleet's machine whose OS honours ACPI shutdown or not, and waits until the OS runs.
async fn running_os(ignores_graceful_shutdown: bool) -> (FleetHandle, Client, MachineHandle) {
    let boot = Arc::new(RecordingBoot {
        seen: Default::default(),
    });
    let yaml = FLEET.replace(
        "postMs: 50}",
        &format!("postMs: 50, osIgnoresGracefulShutdown: {ignores_graceful_shutdown}}}"),
    );
    let fleet = fleet(
        &yaml,
        FleetOptions {
            network_boot: Some(boot),
            ..Default::default()
        },
    )
    .await;
    let c = Client::new(&fleet, "r1");
    let machine = fleet.machine(&fleet.bmcs()[0].systems[0].uuid).unwrap();
    c.post(RESET, r#"{"ResetType":"On"}"#).await;
    wait_until(|| machine.running_os().is_some()).await;
    (fleet, c, machine)
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_waits_for_the_os_and_can_be_ignored() {
    let (_fleet, c, machine) = running_os(false).await;
    c.post(RESET, r#"{"ResetType":"GracefulShutdown"}"#).await;
    assert_eq!(
        machine.power_state(),
        PowerState::On,
        "the OS needs time to shut down"
    );
    tokio::time::advance(Duration::from_millis(300)).await;
    assert_eq!(machine.power_state(), PowerState::PoweringOff);
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(machine.power_state(), PowerState::Off);

    // An OS that ignores ACPI power-button presses stays up; ForceOff still works.
    let (_ignoring, c, machine) = running_os(true).await;
    c.post(RESET, r#"{"ResetType":"GracefulShutdown"}"#).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(machine.power_state(), PowerState::On);
    assert!(
        machine
            .events()
            .iter()
            .any(|e| e.kind == MachineEventKind::GracefulShutdownIgnored)
    );
    c.post(RESET, r#"{"ResetType":"ForceOff"}"#).await;
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(machine.power_state(), PowerState::Off);
    assert!(machine.running_os().is_none());
}

#[tokio::test]
async fn fleet_file_errors_name_line_and_column() {
    let err = sim_bmc::FleetSpec::from_yaml("seed: 1\nbmcs:\n  - name: a\n    vendor: nokia\n")
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("line 4") || text.contains("4:"), "{text}");
    let err = sim_bmc::FleetSpec::from_yaml("bmcs:\n  - {name: a}\n  - {name: a}\n").unwrap_err();
    assert!(err.to_string().contains("duplicate BMC name"), "{err}");
}
