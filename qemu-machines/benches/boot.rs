//! Real-machine boot figures on this machine: power-on to the userland marker for a network boot through the
//! iPXE ROM, against a baseline measured in the same run (the same kernel and initramfs given to QEMU directly,
//! no firmware network boot); then N VMs booting at once against one alone, with QEMU's RSS; then whether KVM
//! works (`auto`). `cargo bench -p qemu-machines --bench boot` (BOOT_BENCH_MAX=N: largest N, default 4).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use qemu_machines::testos::{self, Flavour, MARKER_PREFIX, RealFiles, TestImage};
use qemu_machines::vm::{Accel, BootFrom, Vm, VmSpec};
use qemu_machines::{AccelChoice, QemuMachines, QemuOptions};
use sim_bmc::boot::{BootOutcome, BootTarget, NetworkBoot, NetworkBootRequest};

const SCRIPT: &str = "#!ipxe\nset boot-server BASE\nkernel ${boot-server}/kernel initrd=initramfs console=ttyS0,115200 ignition.config.url=${boot-server}/ignition\ninitrd --name initramfs ${boot-server}/initrd\nboot\n";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    if let Some(why) = qemu_machines::RealMachines::unavailable(&QemuOptions::default()) {
        println!("skipped: {why}");
        return;
    }
    let files = RealFiles::find().unwrap();
    let image = TestImage {
        reference: "bench/os:1.0".into(),
        flavour: Flavour::Os,
    };
    let built = testos::build(&files, &image).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initramfs");
    std::fs::write(&initrd, &built.initramfs).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let script = SCRIPT.replace("BASE", &base);
    let (kernel, initramfs) = (built.kernel.clone(), built.initramfs.clone());
    let app = axum::Router::new()
        .route("/boot.ipxe", get(move || async move { script.clone() }))
        .route("/kernel", get(move || async move { kernel.clone() }))
        .route("/initrd", get(move || async move { initramfs.clone() }))
        .route(
            "/ignition",
            get(|| async { "{\"ignition\":{\"version\":\"3.4.0\"}}" }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let boot_url = format!("{base}/boot.ipxe");

    // Baseline: the same kernel and initramfs handed to QEMU directly (no firmware, no network boot).
    let mut direct = Vec::new();
    for i in 0..3 {
        direct.push(direct_boot(&files, &initrd, &base, i).await);
    }
    let direct_p50 = median(&mut direct);
    println!("baseline  direct kernel boot to marker: p50 {direct_p50:?} (runs {direct:?})");

    let max_n: usize = std::env::var("BOOT_BENCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut single = Duration::ZERO;
    for n in 1..=max_n {
        let machines = QemuMachines::start(QemuOptions {
            max_running: n,
            ..QemuOptions::default()
        })
        .await
        .unwrap();
        let started = Instant::now();
        let boots = (0..n).map(|i| {
            let machines = machines.clone();
            let request = NetworkBootRequest {
                system_uuid: format!("00000000-0000-4000-8000-{:012}", n * 100 + i),
                macs: vec![],
                architecture: "amd64".into(),
                target: BootTarget::Pxe,
                boot_url: Some(boot_url.clone()),
            };
            async move { machines.boot(request).await }
        });
        let outcomes = futures::future::join_all(boots).await;
        let wall = started.elapsed();
        let failed: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                BootOutcome::Failed { reason } => Some(reason.clone()),
                BootOutcome::Booted(_) => None,
            })
            .collect();
        let figures = machines.figures();
        let mut times: Vec<Duration> = figures.iter().map(|f| f.to_marker).collect();
        let p50 = median(&mut times);
        let max = times.iter().max().copied().unwrap_or_default();
        let rss_mib = figures
            .iter()
            .filter_map(|f| f.rss_kib)
            .max()
            .unwrap_or_default()
            / 1024;
        if n == 1 {
            single = p50;
        }
        println!(
            "network   {n} VM(s) at once: power-on to marker p50 {p50:?} max {max:?}, all {wall:?}; \
             p50 {:.2}x the direct boot, {:.2}x one VM alone; RSS max {rss_mib} MiB per VM; failed {}",
            p50.as_secs_f64() / direct_p50.as_secs_f64(),
            p50.as_secs_f64() / single.as_secs_f64().max(f64::EPSILON),
            failed.len()
        );
        for reason in failed {
            println!("          failure: {reason}");
        }
        drop(outcomes); // the OS tasks end, and with them the VMs
    }

    let auto = QemuMachines::start(QemuOptions {
        accel: AccelChoice::Auto,
        ..QemuOptions::default()
    })
    .await
    .unwrap();
    let (accel, why) = auto.accel().await;
    println!("accel auto: {} — {why}", accel.as_str());
}

/// Power-on to marker with `-kernel`/`-initrd` (the network settings as the guest expects them).
async fn direct_boot(
    files: &RealFiles,
    initrd: &std::path::Path,
    base: &str,
    i: usize,
) -> Duration {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let hook = Arc::new(move |line: &str| {
        if line.contains(MARKER_PREFIX) {
            let _ = tx.send(true);
        }
    });
    // The guest reaches the host's loopback as 10.0.2.2.
    let ignition = format!("{}/ignition", base.replace("127.0.0.1", "10.0.2.2"));
    let spec = VmSpec {
        binary: "qemu-system-x86_64".into(),
        firmware: qemu_machines::vm::Firmware::Bios,
        uuid: format!("00000000-0000-4000-8000-{i:012}"),
        macs: vec!["52:54:00:00:00:99".into()],
        memory_mib: 256,
        accel: Accel::Tcg,
        boot: BootFrom::Kernel {
            kernel: files.kernel.clone(),
            initrd: Some(initrd.to_path_buf()),
            append: format!("console=ttyS0,115200 ignition.config.url={ignition}"),
        },
    };
    let started = Instant::now();
    let vm = Vm::start(&spec, hook).await.unwrap();
    let marked = tokio::time::timeout(Duration::from_secs(120), rx.wait_for(|m| *m)).await;
    assert!(marked.is_ok(), "no marker; console: {}", vm.console.tail(8));
    started.elapsed()
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}
