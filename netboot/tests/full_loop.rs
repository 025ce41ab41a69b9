//! The whole loop in one process: embedded API server, metal-operator, a sim-bmc fleet whose machines
//! network-boot through netboot, and sim-boot as the boot backend. Discovery boots the probe OS, whose
//! probe registers the machine's NICs with the operator's registry; a claim boots the claimed image with the
//! claim's ignition.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::NS;
use http_client::HttpClient;
use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::Api;
use kube::api::PostParams;
use metal_api::{Server, ServerClaim, ServerClaimSpec};
use netboot::{Netboot, NetbootOptions, ProbeOptions};
use operator::config::{Config, ReadinessGate};
use operator::context::BmcConnector;
use operator::redfish::{ClientOptions, TlsVerification};
use sim_bmc::MachineEventKind;
use sim_bmc::fleet::{BindMode, Fleet, FleetHandle, FleetOptions, FleetSpec};
use sim_boot::Misbehaviour;
use sim_boot::oci::names;

const T: Duration = Duration::from_secs(40);
const REGISTRY_HOST: &str = "registry.test";

struct Loop {
    stack: common::Stack,
    fleet: FleetHandle,
    operator: operator::OperatorHandle,
}

async fn start(mode: Misbehaviour) -> Loop {
    start_with(mode, names::PROBE).await
}

async fn start_with(mode: Misbehaviour, probe_os_image: &str) -> Loop {
    let mut options = common::backend_options(mode);
    // Long enough that the operator powers the machine on while the lie lasts, even on a loaded machine.
    options.controller.misbehaviour_options.lie_window = Duration::from_secs(30);
    let stack = common::stack_with(options).await;
    let mut spec = FleetSpec::uniform(1, sim_bmc::vendor::Vendor::Dell, 11);
    spec.defaults.latencies = Some(sim_bmc::fleet::spec::LatencySpec::FAST);
    spec.boot_network.ipxe_url_template = Some(format!(
        "{}/ipxe?uuid={{uuid}}&mac={{mac}}",
        stack.backend.url()
    ));
    spec.boot_network.http_boot_url_template = Some(format!(
        "{}/httpboot/{{uuid}}/boot.efi",
        stack.backend.url()
    ));
    let config = Config {
        manager_namespace: NS.into(),
        probe_image: "ghcr.io/ironcore-dev/metalprobe:test".into(),
        probe_os_image: stack.backend.image(probe_os_image),
        registry_url: format!("http://{REGISTRY_HOST}"),
        discovery_timeout: Duration::from_secs(60),
        readiness_gate: ReadinessGate::Strict,
        ..Config::fast_polling()
    };
    // The operator's registry is served in-process; the machines' probe reaches it by host name.
    let mut options = operator::Options::new(config);
    options.connector = BmcConnector::sockets(TlsVerification::Skip, ClientOptions::default());
    let operator = operator::run(options, stack.client.clone())
        .await
        .expect("operator starts");
    let http = HttpClient::routed(
        vec![(
            REGISTRY_HOST.into(),
            HttpClient::from_service(operator.registry.router()),
        )],
        HttpClient::hyper(),
    );
    let probe = ProbeOptions {
        interval: Duration::from_secs(2),
        ..ProbeOptions::default()
    };
    let netboot = Netboot::new(NetbootOptions {
        http,
        probe,
        ..NetbootOptions::default()
    });
    let fleet_options = FleetOptions {
        network_boot: Some(Arc::new(netboot)),
        bind: BindMode::Loopback,
        ..FleetOptions::default()
    };
    let fleet = Fleet::start(spec, fleet_options)
        .await
        .expect("fleet starts");
    testbed::fleet::create_bmc_objects(&stack.client, &fleet)
        .await
        .expect("BMC objects created");
    Loop {
        stack,
        fleet,
        operator,
    }
}

impl Loop {
    fn uuid(&self) -> String {
        self.fleet.bmcs()[0].systems[0].uuid.clone()
    }

    fn server_name(&self) -> String {
        format!("{}-system-0", self.fleet.bmcs()[0].name)
    }

    async fn wait_server(&self, what: &str, check: impl Fn(&Server) -> bool) -> Server {
        let api = Api::<Server>::all(self.stack.client.clone());
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let server = api.get_opt(&self.server_name()).await.unwrap();
            if let Some(server) = server.as_ref().filter(|s| check(s)) {
                return server.clone();
            }
            if tokio::time::Instant::now() >= deadline {
                let sbcs = self.stack.sbcs().list(&Default::default()).await.unwrap();
                let sbcs: Vec<_> = sbcs
                    .items
                    .iter()
                    .map(|s| (s.metadata.name.clone(), s.status.clone()))
                    .collect();
                panic!(
                    "timed out waiting for {what}: server status {:#?}\nSBCs {sbcs:#?}\nmachine {:#?}",
                    server.and_then(|s| s.status),
                    self.fleet.machine(&self.uuid()).map(|m| m.events())
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn boots(&self) -> Vec<MachineEventKind> {
        let machine = self.fleet.machine(&self.uuid()).expect("machine");
        machine
            .events()
            .into_iter()
            .map(|e| e.kind)
            .filter(|k| {
                matches!(
                    k,
                    MachineEventKind::BootSucceeded { .. } | MachineEventKind::BootFailed { .. }
                )
            })
            .collect()
    }

    async fn shutdown(self) {
        self.operator.shutdown().await;
        self.fleet.shutdown().await;
        self.stack.backend.shutdown().await;
    }
}

fn state(server: &Server) -> String {
    server
        .status
        .as_ref()
        .and_then(|s| s.state.as_ref())
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn discovery_then_claim_boot_what_was_asked_for() {
    let l = start(Misbehaviour::None).await;
    // Discovery: the probe OS boots from sim-boot, registers NICs and LLDP; the Server becomes Available.
    let server = l
        .wait_server("Available", |s| state(s) == "Available")
        .await;
    let nics = &server.status.as_ref().unwrap().network_interfaces;
    let macs = &l.fleet.bmcs()[0].systems[0].macs;
    assert_eq!(nics.len(), macs.len(), "{nics:#?}");
    assert!(
        nics.iter()
            .all(|n| macs.iter().any(|m| m.eq_ignore_ascii_case(&n.mac_address))),
        "{nics:#?}"
    );
    assert!(nics[0].ips[0].starts_with("198.51.100."), "{nics:#?}");
    assert!(
        nics[0].neighbors[0]
            .system_name
            .as_deref()
            .unwrap_or_default()
            .starts_with("leaf-"),
        "{nics:#?}"
    );
    let first = l.boots();
    assert!(
        matches!(first.first(), Some(MachineEventKind::BootSucceeded { os }) if os.image == "ironcore/probe-os:1.0" && os.ignition_sha256.is_some()),
        "{first:#?}"
    );
    // Claim: the claimed image boots with the claim's ignition.
    l.stack.secret("claim-ignition", "claimant").await;
    let claim = ServerClaim::new(
        "claim",
        ServerClaimSpec {
            power: "On".into(),
            server_ref: Some(LocalObjectReference {
                name: l.server_name(),
            }),
            server_selector: None,
            ignition_secret_ref: Some(LocalObjectReference {
                name: "claim-ignition".into(),
            }),
            image: l.stack.backend.image(names::OS_V1),
            user_data_ref: None,
            tolerations: vec![],
        },
    );
    Api::<ServerClaim>::namespaced(l.stack.client.clone(), NS)
        .create(&PostParams::default(), &claim)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + T;
    let os = loop {
        let claimed = l
            .boots()
            .into_iter()
            .skip(first.len())
            .find_map(|k| match k {
                MachineEventKind::BootSucceeded { os } => Some(os),
                MachineEventKind::BootFailed { reason } => panic!("claim boot failed: {reason}"),
                _ => None,
            });
        if let Some(os) = claimed {
            break os;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the claimed machine never booted: {:#?}",
            l.boots()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(os.image, "ironcore/os:1.0");
    let record = l
        .stack
        .backend
        .records()
        .get(&sim_boot::records::SbcKey::new(NS, "claim"))
        .expect("claim record");
    let expected = sim_boot::ignition::hash(record.ignition.as_ref().unwrap());
    assert_eq!(
        os.ignition_sha256.as_deref(),
        Some(expected.trim_start_matches("sha256:"))
    );
    assert!(String::from_utf8_lossy(record.ignition.as_ref().unwrap()).contains("claimant"));
    l.shutdown().await;
}

impl Loop {
    /// The first boot failure in the machine's event log (what its console would show).
    async fn first_boot_failure(&self) -> String {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            match self.boots().into_iter().next() {
                Some(MachineEventKind::BootFailed { reason }) => return reason,
                Some(other) => panic!("expected a boot failure, got {other:#?}"),
                None => {}
            }
            assert!(tokio::time::Instant::now() < deadline, "no boot recorded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn ready_before_serving_leaves_the_machine_in_a_boot_failure() {
    let l = start(Misbehaviour::ReadyBeforeServing).await;
    let reason = l.first_boot_failure().await;
    assert!(reason.contains("404"), "{reason}");
    l.shutdown().await;
}

#[tokio::test]
async fn wrong_ignition_fails_the_discovery_boot_in_ignition() {
    let l = start(Misbehaviour::WrongIgnition).await;
    let reason = l.first_boot_failure().await;
    assert!(
        reason.starts_with("Ignition:") && reason.contains("not JSON"),
        "{reason}"
    );
    l.shutdown().await;
}

#[tokio::test]
async fn ready_on_bad_image_powers_the_machine_into_a_boot_failure() {
    let l = start_with(Misbehaviour::ReadyOnBadImage, names::NO_KERNEL).await;
    let reason = l.first_boot_failure().await;
    assert!(reason.contains("has no kernel layer"), "{reason}");
    l.shutdown().await;
}

/// The honest counterpart: the same broken image is an Error and the machine is never powered on.
#[tokio::test]
async fn honest_backend_keeps_a_bad_image_from_booting() {
    let l = start_with(Misbehaviour::None, names::NO_KERNEL).await;
    let server = l.server_name();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let sbc = l.stack.sbcs().get_opt(&server).await.unwrap();
        let state = sbc
            .and_then(|s| s.status)
            .and_then(|s| s.state)
            .map(|s| s.as_str().to_string());
        if state.as_deref() == Some("Error") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "discovery SBC never became Error"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Positive witness: the operator's gate has judged the Error (its verdict is on the Server). The gate
    // powers on in the same reconcile, before it writes the verdict, and the BMC logs a reset request
    // synchronously, so a power-on it allowed would already be in the machine's log.
    let judged = l
        .wait_server("the gate's verdict on the Error", |s| {
            s.status.as_ref().is_some_and(|status| {
                status.conditions.iter().any(|c| {
                    c.type_ == "BootConfigurationReady"
                        && c.status == "False"
                        && c.message.contains("lacks layers")
                })
            })
        })
        .await;
    assert_ne!(state(&judged), "Available");
    let events = l.fleet.machine(&l.uuid()).unwrap().events();
    let powering_on = events.iter().find(|e| match &e.kind {
        MachineEventKind::ResetRequested { reset_type, .. } => matches!(
            reset_type.as_str(),
            "On" | "ForceOn" | "PowerCycle" | "ForceRestart" | "GracefulRestart"
        ),
        MachineEventKind::BootAttempt { .. } => true,
        _ => false,
    });
    assert!(
        powering_on.is_none(),
        "no power-on or boot attempt while the SBC is Error: {events:#?}"
    );
    l.shutdown().await;
}
