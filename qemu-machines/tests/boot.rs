//! Real VMs: QEMU network-boots through its iPXE ROM from an HTTP server on the host's loopback into the
//! test OS built from the installed Debian kernel and busybox. Skips (saying why) without qemu, the iPXE
//! ROM, a kernel or busybox.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{get, post};
use bytes::Bytes;
use qemu_machines::testos::{self, Flavour, RealFiles, TestImage};
use qemu_machines::{QemuMachines, QemuOptions};
use sha2::Digest as _;
use sim_bmc::boot::{BootOutcome, BootTarget, NetworkBoot, NetworkBootRequest};

fn skip_reason() -> Option<String> {
    if let Some(why) = qemu_machines::unavailable("qemu-system-x86_64") {
        return Some(why);
    }
    RealFiles::find().err()
}

/// Serves `script` at /boot.ipxe, the image's kernel and initramfs, an ignition, and a probe registry.
/// `ignition` may name `BASE`, replaced by the server's own URL (the probe's registry is this server).
async fn serve(
    image: &TestImage,
    script: &'static str,
    ignition: &str,
) -> (String, Bytes, Arc<Mutex<Vec<String>>>) {
    let built = testos::build(&RealFiles::find().expect("real files"), image).expect("test OS");
    let registered = Arc::new(Mutex::new(Vec::new()));
    let seen = registered.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let script = script.replace("BASE", &base);
    let ignition = Bytes::from(ignition.replace("BASE", &base));
    let served = ignition.clone();
    let app = axum::Router::new()
        .route("/boot.ipxe", get(move || async move { script }))
        .route("/kernel", get(move || async move { built.kernel }))
        .route("/initrd", get(move || async move { built.initramfs }))
        .route("/ignition", get(move || async move { ignition }))
        .route(
            "/register",
            post(move |body: String| async move {
                seen.lock().unwrap().push(body);
                axum::http::StatusCode::CREATED
            }),
        )
        .route("/bootstate", post(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("{base}/boot.ipxe"), served, registered)
}

const PROBED: &str = "8c6b4b1e-7a34-4c5e-9d2f-0a1b2c3d4e5f";
const BROKEN: &str = "5d0c7e2a-1f3b-4a6c-8e9d-7b6a5c4d3e2f";

fn request(uuid: &str, boot_url: String) -> NetworkBootRequest {
    NetworkBootRequest {
        system_uuid: uuid.into(),
        macs: vec!["52:54:00:aa:bb:01".into(), "52:54:00:aa:bb:02".into()],
        architecture: "amd64".into(),
        target: BootTarget::Pxe,
        boot_url: Some(boot_url),
    }
}

const SCRIPT: &str = "#!ipxe\nset boot-server BASE\nkernel ${boot-server}/kernel initrd=initramfs console=ttyS0,115200 ignition.config.url=${boot-server}/ignition\ninitrd --name initramfs ${boot-server}/initrd\nboot\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_network_boots_the_probe_os_which_registers_its_nics_and_prints_the_marker() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let image = TestImage {
        reference: "test/probe-os:1.0".into(),
        flavour: Flavour::Probe,
    };
    let unit = "[Service]\\nExecStart=/usr/bin/ctr run img metalprobe ./launch.sh --registry-url=BASE/ --server-uuid=8c6b4b1e-7a34-4c5e-9d2f-0a1b2c3d4e5f\\n";
    let ignition = format!(
        "{{\"ignition\":{{\"version\":\"3.4.0\"}},\"systemd\":{{\"units\":[{{\"name\":\"metalprobe.service\",\"enabled\":true,\"contents\":\"{unit}\"}}]}}}}"
    );
    let (url, ignition, registered) = serve(&image, SCRIPT, &ignition).await;
    let expected_sha = hex::encode(sha2::Sha256::digest(&ignition));

    let machines = QemuMachines::start(QemuOptions::default())
        .await
        .expect("driver");
    let started = std::time::Instant::now();
    let outcome = machines.boot(request(PROBED, url)).await;
    let os = match outcome {
        BootOutcome::Booted(os) => os,
        BootOutcome::Failed { reason } => panic!("boot failed: {reason}"),
    };
    println!(
        "power-on to marker: {:?}, figures {:?}, accel {:?}",
        started.elapsed(),
        machines.figures(),
        machines.accel().await
    );
    assert_eq!(os.image, "test/probe-os:1.0");
    assert_eq!(os.ignition_sha256, Some(format!("sha256:{expected_sha}")));
    let bodies = registered.lock().unwrap().clone();
    assert!(!bodies.is_empty(), "the probe registered nothing");
    let payload: serde_json::Value = serde_json::from_str(&bodies[0]).expect("JSON");
    let payload: metal_api::registry::RegistrationPayload =
        serde_json::from_value(payload).expect("the operator's payload type");
    assert_eq!(payload.system_uuid, "8c6b4b1e-7a34-4c5e-9d2f-0a1b2c3d4e5f");
    let macs: Vec<_> = payload
        .data
        .network_interfaces
        .iter()
        .map(|n| n.mac_address.as_str())
        .collect();
    assert!(macs.contains(&"52:54:00:aa:bb:01"), "{macs:?}");
    assert!(macs.contains(&"52:54:00:aa:bb:02"), "{macs:?}");
    // The VM is the OS task: aborting it (power-off) ends QEMU.
    let task = os.os_task.expect("the VM runs as the OS task");
    task.abort();
    let _ = task.await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !qemu_processes_gone() {
        assert!(
            std::time::Instant::now() < deadline,
            "QEMU outlived its power-off"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_real_ipxe_cannot_parse_fails_the_boot() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let image = TestImage {
        reference: "test/os:1.0".into(),
        flavour: Flavour::Os,
    };
    // `kernal` is no iPXE command: real iPXE stops the script there.
    let broken = "#!ipxe\nset boot-server BASE\nkernal ${boot-server}/kernel console=ttyS0\ninitrd ${boot-server}/initrd\nboot\n";
    let (url, _, _) = serve(&image, broken, "").await;
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

/// No QEMU started for the probed machine is left (matched by its command line).
fn qemu_processes_gone() -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    !dir.filter_map(Result::ok).any(|e| {
        std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("qemu-system") && c.contains(PROBED)
        })
    })
}
