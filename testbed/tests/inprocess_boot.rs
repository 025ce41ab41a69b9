//! The whole boot path in one process with no socket (issue #16): API server, built-in registries, sim-boot,
//! an in-process fleet whose machines boot through netboot, and the operator, all reached as tower services by
//! host name. Discovery boots the probe OS, whose probe posts to the operator; a claim boots an image from the
//! built-in registry. On a paused clock, so the run costs virtual time, not wall time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::api::{Api, PostParams};
use metal_api::{Server, ServerClaim, ServerClaimSpec};
use netboot::{Netboot, NetbootOptions, ProbeOptions};
use operator::config::{Config, ReadinessGate};
use sim_bmc::MachineEventKind;
use sim_bmc::fleet::{BindMode, FleetOptions, FleetSpec};
use sim_boot::oci::names;
use testbed::registries::REGISTRY_HOST;
use testbed::{
    Backend, BuiltinRegistries, FleetSetup, OPERATOR_HOST, OperatorSetup, RegistryOptions, Testbed,
};

const NS: &str = "default";
/// Virtual time a phase may take before the test fails.
const PHASE: Duration = Duration::from_secs(30 * 60);

#[tokio::test(start_paused = true)]
async fn a_claimed_machine_boots_the_registry_image_with_no_socket() {
    let wall = std::time::Instant::now();
    // The check below sees a listener when there is one.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    assert_eq!(listening_sockets().len(), 1);
    drop(listener);
    let builder = Testbed::builder().socket_free();
    let net = builder.network();

    let mut spec = FleetSpec::uniform(1, sim_bmc::vendor::Vendor::Dell, 16);
    spec.defaults.latencies = Some(sim_bmc::fleet::spec::LatencySpec {
        power_on_ms: 2_000,
        power_off_ms: 2_000,
        graceful_shutdown_ms: 5_000,
        post_ms: 60_000,
        os_ignores_graceful_shutdown: false,
    });
    let machines = Netboot::new(NetbootOptions {
        http: net.client(),
        probe_images: vec![names::PROBE.to_string()],
        probe: ProbeOptions {
            interval: Duration::from_secs(30),
            ..ProbeOptions::default()
        },
        ..NetbootOptions::default()
    });
    let fleet = FleetSetup::new(
        spec,
        FleetOptions {
            network_boot: Some(Arc::new(machines)),
            bind: BindMode::InProcess,
            ..FleetOptions::default()
        },
    );
    let mut sim_boot =
        testbed::objects::quick_sim_boot(sim_boot::Misbehaviour::None, Duration::from_secs(60));
    sim_boot.controller.allowed_registries = vec![REGISTRY_HOST.to_string()];
    let config = Config {
        manager_namespace: NS.into(),
        probe_image: "ghcr.io/ironcore-dev/metalprobe:test".into(),
        probe_os_image: format!("{REGISTRY_HOST}/{}", names::PROBE),
        registry_url: format!("http://{OPERATOR_HOST}"),
        readiness_gate: ReadinessGate::Strict,
        ..Config::default()
    };
    let mut bed = builder
        .registries(
            RegistryOptions::default(),
            BuiltinRegistries::standard_catalog(),
        )
        .backend(Backend::InProcess(sim_boot.into()))
        .fleet(fleet)
        .bmc_objects()
        .operator(OperatorSetup::new(config))
        .start()
        .await
        .expect("the in-process stack starts");
    let virtual_start = tokio::time::Instant::now();

    // Nothing listens: not the API server, not sim-boot, not the registries, the fleet or the operator.
    assert!(!bed.api.handle().expect("embedded").is_listening());
    let sim_boot = bed.sim_boot().expect("in-process sim-boot");
    assert_eq!(sim_boot.url(), "http://boot.sim.invalid");
    assert_eq!(sim_boot.addr(), None);
    assert_eq!(
        bed.network().hosts(),
        [
            "boot.sim.invalid",
            "disallowed-registry.sim.invalid",
            OPERATOR_HOST,
            REGISTRY_HOST,
            "sim-boot-registry.sim.invalid",
        ]
    );
    assert_eq!(listening_sockets(), Vec::<u64>::new());

    // Discovery: the probe OS comes from the built-in registry through sim-boot, and its probe posts to the
    // operator.
    let server_name = format!("{}-system-0", bed.fleet().bmcs()[0].name);
    let uuid = bed.fleet().bmcs()[0].systems[0].uuid.clone();
    let machine = bed.fleet().machine(&uuid).expect("the machine");
    let servers = Api::<Server>::all(bed.client.clone());
    let deadline = tokio::time::Instant::now() + PHASE;
    while servers
        .get_opt(&server_name)
        .await
        .unwrap()
        .and_then(|s| s.status?.state)
        .is_none_or(|s| s.as_str() != "Available")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{server_name} not Available within {PHASE:?} of virtual time; machine events {:#?}",
            machine.events()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let discovered = servers.get(&server_name).await.unwrap();
    assert!(
        !discovered.status.unwrap().network_interfaces.is_empty(),
        "the probe registered the NICs with the operator"
    );

    // A claim for the OS image of the built-in registry.
    let image = format!("{REGISTRY_HOST}/{}", names::OS_V1);
    let claim = ServerClaim::new(
        "claim",
        ServerClaimSpec {
            power: "On".into(),
            server_ref: Some(LocalObjectReference {
                name: server_name.clone(),
            }),
            server_selector: None,
            ignition_secret_ref: None,
            image: image.clone(),
            user_data_ref: None,
            tolerations: vec![],
        },
    );
    let boots_before = booted(&machine).len();
    Api::<ServerClaim>::namespaced(bed.client.clone(), NS)
        .create(&PostParams::default(), &claim)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + PHASE;
    let os = loop {
        if let Some(os) = booted(&machine).into_iter().nth(boots_before) {
            break os;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the claimed machine did not boot within {PHASE:?} of virtual time: {:#?}",
            machine.events()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(os, names::OS_V1, "the machine booted the claimed image");
    assert_eq!(listening_sockets(), Vec::<u64>::new());

    // A restarted sim-boot takes its host back; a stopped operator leaves the network.
    bed.restart_backend().await.expect("sim-boot restarts");
    let answer = bed
        .network()
        .client()
        .get("http://boot.sim.invalid/ipxe")
        .await
        .expect("sim-boot answers again after its restart");
    assert!(answer.status.is_success(), "{answer:?}");
    bed.stop_operator().await;
    assert!(!bed.network().hosts().contains(&OPERATOR_HOST.to_string()));
    println!(
        "virtual {:?} in wall {:?}",
        virtual_start.elapsed(),
        wall.elapsed()
    );
    bed.shutdown().await;
}

/// Images the machine booted, in order; a failed boot fails the test.
fn booted(machine: &sim_bmc::MachineHandle) -> Vec<String> {
    machine
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            MachineEventKind::BootSucceeded { os } => Some(os.image),
            MachineEventKind::BootFailed { reason } => panic!("a boot failed: {reason}"),
            _ => None,
        })
        .collect()
}

/// Inodes of TCP sockets this process holds in the LISTEN state (this test binary runs only this test, so
/// they would be the stack's).
fn listening_sockets() -> Vec<u64> {
    let held: HashSet<u64> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    let mut listening = Vec::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // `st` is the fourth column (0A = LISTEN), `inode` the tenth.
            let (Some(state), Some(inode)) = (fields.get(3), fields.get(9)) else {
                continue;
            };
            if let Ok(inode) = inode.parse::<u64>()
                && *state == "0A"
                && held.contains(&inode)
            {
                listening.push(inode);
            }
        }
    }
    listening
}
