//! The driver seam (`NetworkBoot::boot_logged`, `BootLog`): what a real machine's driver reports lands in
//! the event log and the control API, the ACPI power button goes to the real OS, and an OS that ends
//! powers the machine off. Also: a stale boot's reports are dropped.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Client, fleet, wait_until};
use futures::FutureExt;
use futures::future::BoxFuture;
use sim_bmc::boot::{BootOutcome, BootedOs, NetworkBoot, NetworkBootRequest};
use sim_bmc::machine::BootLog;
use sim_bmc::{FleetOptions, MachineEventKind, PowerState};

const FLEET: &str = r#"
seed: 7
bmcs:
  - name: r1
    vendor: dell
    latencies: {powerOnMs: 10, powerOffMs: 10, gracefulShutdownMs: 10, postMs: 10}
bootNetwork:
  ipxeUrlTemplate: "http://boot.invalid/ipxe?uuid={uuid}&mac={mac}"
"#;

const SYS: &str = "/redfish/v1/Systems/System.Embedded.1";
const RESET: &str = "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset";

/// A driver that logs a console stage, keeps a console, and takes the power button.
#[derive(Default)]
struct FakeVm {
    logs: Mutex<Vec<BootLog>>,
    pressed: Arc<Mutex<u32>>,
}

impl NetworkBoot for FakeVm {
    fn boot(&self, _req: NetworkBootRequest) -> BoxFuture<'static, BootOutcome> {
        unreachable!("the machine calls boot_logged")
    }

    fn boot_logged(
        &self,
        _req: NetworkBootRequest,
        log: BootLog,
    ) -> BoxFuture<'static, BootOutcome> {
        self.logs.lock().unwrap().push(log.clone());
        let pressed = self.pressed.clone();
        async move {
            assert!(log.note("kernelBooted", "Linux version 6.1"));
            log.set_console(Arc::new(|| vec!["line 1".into(), "line 2".into()]));
            log.set_power_button(Arc::new(move || *pressed.lock().unwrap() += 1));
            BootOutcome::Booted(BootedOs {
                image: "test/os:1.0".into(),
                image_digest: None,
                ignition_sha256: None,
                artifacts: vec![],
                os_task: None,
            })
        }
        .boxed()
    }
}

#[tokio::test]
async fn a_real_machine_reports_stages_owns_the_power_button_and_powers_off_when_its_os_ends() {
    let driver = Arc::new(FakeVm::default());
    let options = FleetOptions {
        network_boot: Some(driver.clone()),
        ..Default::default()
    };
    let fleet = fleet(FLEET, options).await;
    let c = Client::new(&fleet, "r1");
    let uuid = fleet.bmcs()[0].systems[0].uuid.clone();
    let machine = fleet.machine(&uuid).unwrap();
    assert_eq!(machine.console(), None, "no console before a real boot");
    // Every boot a network boot (a real machine has no simulated disk to fall back on).
    let r = c
        .patch(
            SYS,
            r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Continuous"}}"#,
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.json);
    c.post(RESET, r#"{"ResetType":"On"}"#).await;
    wait_until(|| machine.running_os().is_some()).await;
    let stage = |name: &str| {
        machine
            .events()
            .iter()
            .any(|e| matches!(&e.kind, MachineEventKind::Console { stage, .. } if stage == name))
    };
    assert!(stage("kernelBooted"));
    assert_eq!(machine.console().unwrap(), vec!["line 1", "line 2"]);

    // GracefulShutdown goes to the OS: it ignores it here, so the machine stays on.
    c.post(RESET, r#"{"ResetType":"GracefulShutdown"}"#).await;
    assert_eq!(*driver.pressed.lock().unwrap(), 1);
    assert!(stage("acpiPowerButton"));
    tokio::time::sleep(Duration::from_millis(100)).await; // longer than the simulated shutdown latency
    assert_eq!(machine.power_state(), PowerState::On);

    // The OS ends (the VM powered off): the machine goes Off.
    let log = driver.logs.lock().unwrap()[0].clone();
    log.os_exited("the VM ended");
    wait_until(|| machine.power_state() == PowerState::Off).await;
    assert!(machine.events().iter().any(|e| matches!(
        &e.kind,
        MachineEventKind::OsStopped { reason } if reason == "the VM ended"
    )));
    // That boot is over: its log no longer writes.
    assert!(!log.note("marker", "late"));
    assert!(!stage("marker"));

    // GracefulRestart: the button again; when the OS powers off, the machine comes back and boots anew.
    c.post(RESET, r#"{"ResetType":"On"}"#).await;
    wait_until(|| machine.running_os().is_some()).await;
    let r = c.post(RESET, r#"{"ResetType":"GracefulRestart"}"#).await;
    assert!(r.status.is_success(), "{:?}", r.json);
    assert_eq!(
        *driver.pressed.lock().unwrap(),
        2,
        "{:#?}",
        machine.events().iter().rev().take(8).collect::<Vec<_>>()
    );
    let second = driver.logs.lock().unwrap()[1].clone();
    second.os_exited("the VM ended");
    wait_until(|| driver.logs.lock().unwrap().len() == 3 && machine.running_os().is_some()).await;
    assert_eq!(machine.power_state(), PowerState::On);
}
