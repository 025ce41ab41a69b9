//! Real VMs: QEMU network-boots through its iPXE ROM from an HTTP server on the host's loopback into the
//! test OS built from the installed Debian kernel and busybox. Skips (saying why) without qemu, the iPXE
//! ROM, a kernel or busybox.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{get, post};
use qemu_machines::testos::{self, Flavour, RealFiles, TestImage};
use qemu_machines::{QemuMachines, QemuOptions};
use sha2::Digest as _;
use sim_bmc::MachineEventKind;
use sim_bmc::boot::{BootOutcome, BootTarget, NetworkBoot, NetworkBootRequest};

fn skip_reason() -> Option<String> {
    if let Some(why) = qemu_machines::unavailable("qemu-system-x86_64") {
        return Some(why);
    }
    RealFiles::find().err()
}

/// Whether the test is to be skipped for `reason` (said on stderr).
fn skipped(reason: Option<String>) -> bool {
    if let Some(why) = &reason {
        eprintln!("skipped: {why}");
    }
    reason.is_some()
}

/// Serves `script` at /boot.ipxe, the image's kernel and initramfs, an ignition, and a probe registry.
/// The ignition is read from `ignition` at each request; `BASE` in it is the server's own URL.
async fn serve(
    image: &TestImage,
    script: &'static str,
    ignition: Arc<Mutex<String>>,
) -> (String, (), Arc<Mutex<Vec<String>>>) {
    let built = testos::build(&RealFiles::find().expect("real files"), image).expect("test OS");
    let registered = Arc::new(Mutex::new(Vec::new()));
    let seen = registered.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let script = script.replace("BASE", &base);
    let ignition_base = base.clone();
    let app = axum::Router::new()
        .route("/boot.ipxe", get(move || async move { script.clone() }))
        .route("/kernel", get(move || async move { built.kernel }))
        .route("/initrd", get(move || async move { built.initramfs }))
        .route(
            "/ignition",
            get(move || async move { ignition.lock().unwrap().replace("BASE", &ignition_base) }),
        )
        .route(
            "/register",
            post(move |body: String| async move {
                seen.lock().unwrap().push(body);
                axum::http::StatusCode::CREATED
            }),
        )
        .route("/bootstate", post(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("{base}/boot.ipxe"), (), registered)
}

const BROKEN: &str = "5d0c7e2a-1f3b-4a6c-8e9d-7b6a5c4d3e2f";
const UEFI: &str = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a";

fn request(uuid: &str, boot_url: String) -> NetworkBootRequest {
    NetworkBootRequest {
        system_uuid: uuid.into(),
        macs: vec!["52:54:00:aa:bb:01".into(), "52:54:00:aa:bb:02".into()],
        architecture: "amd64".into(),
        target: BootTarget::Pxe,
        boot_url: Some(boot_url),
    }
}

fn test_image(reference: &str, flavour: Flavour) -> TestImage {
    TestImage {
        reference: reference.into(),
        flavour,
    }
}

const SCRIPT: &str = "#!ipxe\nset boot-server BASE\nkernel ${boot-server}/kernel initrd=initramfs console=ttyS0,115200 ignition.config.url=${boot-server}/ignition\ninitrd --name initramfs ${boot-server}/initrd\nboot\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bmc_powers_a_vm_that_boots_the_probe_os_registers_its_nics_and_powers_off_on_acpi() {
    if skipped(skip_reason()) {
        return;
    }
    let image = test_image("test/probe-os:1.0", Flavour::Probe);
    // The probe's registry is the same server (`BASE`), named in the ignition's metalprobe unit.
    let unit = "[Service]\\nExecStart=/usr/bin/ctr run img metalprobe ./launch.sh --registry-url=BASE/ --server-uuid=UUID\\n";
    let ignition = format!(
        "{{\"ignition\":{{\"version\":\"3.4.0\"}},\"systemd\":{{\"units\":[{{\"name\":\"metalprobe.service\",\"enabled\":true,\"contents\":\"{unit}\"}}]}}}}"
    );
    let machines = QemuMachines::start(QemuOptions::default())
        .await
        .expect("driver");
    let spec =
        sim_bmc::FleetSpec::from_yaml("seed: 3\nbmcs: [{name: q1, vendor: dell}]\n").unwrap();
    // The UUID is the fleet's; the ignition is served once it is known.
    let ignition_cell = Arc::new(Mutex::new(String::new()));
    let (url, _, registered) = serve(&image, SCRIPT, ignition_cell.clone()).await;
    let mut spec = spec;
    spec.boot_network.ipxe_url_template = Some(format!("{url}?uuid={{uuid}}&mac={{mac}}"));
    let options = sim_bmc::FleetOptions {
        network_boot: Some(Arc::new(machines.clone())),
        ..Default::default()
    };
    let fleet = sim_bmc::Fleet::start(spec, options).await.expect("fleet");
    let system = fleet.bmcs()[0].systems[0].clone();
    let machine = fleet.machine(&system.uuid).unwrap();
    let served = ignition.replace("UUID", &system.uuid);
    *ignition_cell.lock().unwrap() = served.clone();
    let expected_sha = hex::encode(sha2::Sha256::digest(served.replace("BASE", &base_of(&url))));

    let started = std::time::Instant::now();
    machine.reset("On").expect("power on");
    let os = wait(Duration::from_secs(150), || machine.running_os()).await;
    println!(
        "power-on to marker: {:?}, figures {:?}, accel {:?}",
        started.elapsed(),
        machines.figures(),
        machines.accel().await
    );
    assert_eq!(os.image, "test/probe-os:1.0");
    assert_eq!(os.ignition_sha256, Some(expected_sha));
    let stages: Vec<String> = machine
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            MachineEventKind::Console { stage, .. } => Some(stage),
            _ => None,
        })
        .collect();
    for stage in [
        "firmwareStarted",
        "scriptFetched",
        "kernelBooted",
        "userlandStarted",
        "marker",
    ] {
        assert!(
            stages.iter().any(|s| s == stage),
            "{stage} missing from {stages:?}"
        );
    }
    let console = machine.console().expect("a console");
    assert!(
        console.iter().any(|l| l.contains("Linux version")),
        "{console:?}"
    );

    let bodies = registered.lock().unwrap().clone();
    assert!(!bodies.is_empty(), "the probe registered nothing");
    let payload: metal_api::probe_registry::RegistrationPayload =
        serde_json::from_str(&bodies[0]).expect("the operator's payload type");
    assert_eq!(payload.system_uuid, system.uuid);
    let macs: Vec<_> = payload
        .data
        .network_interfaces
        .iter()
        .map(|n| n.mac_address.clone())
        .collect();
    assert_eq!(macs, system.macs, "the VM's NICs carry the System's MACs");

    // GracefulShutdown is the ACPI power button: the guest powers off, QEMU ends, the machine is Off.
    machine
        .reset("GracefulShutdown")
        .expect("graceful shutdown");
    let off = wait_or(Duration::from_secs(20), || {
        (machine.power_state() == sim_bmc::PowerState::Off).then_some(())
    })
    .await;
    assert!(
        off.is_some(),
        "still {:?} after the power button; console tail: {:#?}; events: {:#?}",
        machine.power_state(),
        machine
            .console()
            .unwrap_or_default()
            .iter()
            .rev()
            .take(15)
            .collect::<Vec<_>>(),
        machine.events().iter().rev().take(6).collect::<Vec<_>>()
    );
    wait(Duration::from_secs(10), || {
        qemu_gone(&system.uuid).then_some(())
    })
    .await;
    fleet.shutdown().await;
}

fn base_of(url: &str) -> String {
    url.trim_end_matches("/boot.ipxe").to_string()
}

/// Polls `f` every 200 ms until it gives a value, failing after `limit`.
async fn wait<T>(limit: Duration, f: impl FnMut() -> Option<T>) -> T {
    match wait_or(limit, f).await {
        Some(v) => v,
        None => panic!("not within {limit:?}"),
    }
}

/// Polls `f` every 200 ms until it gives a value; `None` after `limit`.
async fn wait_or<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_real_ipxe_cannot_parse_fails_the_boot() {
    if skipped(skip_reason()) {
        return;
    }
    let image = test_image("test/os:1.0", Flavour::Os);
    // `kernal` is no iPXE command: real iPXE stops the script there.
    let broken = "#!ipxe\nset boot-server BASE\nkernal ${boot-server}/kernel console=ttyS0\ninitrd ${boot-server}/initrd\nboot\n";
    let (url, _, _) = serve(&image, broken, Arc::default()).await;
    let options = QemuOptions {
        stall_after_fetch: Duration::from_secs(20),
        ..QemuOptions::default()
    };
    let machines = QemuMachines::start(options).await.expect("driver");
    match machines.boot(request(BROKEN, url)).await {
        BootOutcome::Booted(os) => panic!("booted {} from a broken script", os.image),
        BootOutcome::Failed { reason } => {
            println!("failed as expected: {reason}");
            assert!(reason.contains("boot.ipxe (answered 200)"), "{reason}");
            assert!(reason.contains("did nothing"), "{reason}");
        }
    }
}

/// No QEMU started for `uuid` is left (matched by its command line).
fn qemu_gone(uuid: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    !dir.filter_map(Result::ok).any(|e| {
        std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("qemu-system") && c.contains(uuid)
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_uefi_the_same_network_boot_reaches_the_marker() {
    if skipped(skip_reason().or_else(qemu_machines::driver::uefi_unavailable)) {
        return;
    }
    let image = test_image("test/os:1.0", Flavour::Os);
    let (url, _, _) = serve(&image, SCRIPT, Arc::default()).await;
    let options = QemuOptions {
        firmware: qemu_machines::vm::Firmware::Uefi,
        ..QemuOptions::default()
    };
    let machines = QemuMachines::start(options).await.expect("driver");
    match machines.boot(request(UEFI, url)).await {
        BootOutcome::Booted(os) => {
            assert_eq!(os.image, "test/os:1.0");
            // The firmware's downloads are the boot's artifacts: a kernel and an initramfs.
            let kinds: Vec<_> = os.artifacts.iter().map(|a| a.kind.as_str()).collect();
            assert_eq!(kinds, vec!["kernel", "initrd"], "{:?}", os.artifacts);
            println!("UEFI power-on to marker: {:?}", machines.figures());
        }
        BootOutcome::Failed { reason } => panic!("UEFI boot failed: {reason}"),
    }
}
