//! `real-boot.yaml` on real QEMU VMs: it passes from real boots, and the same file with sim-boot's
//! `ready-before-serving` misbehaviour fails with a `ready-sbc-boots` violation (the VMs' own failed
//! boots), not a harness error. Skips, saying why, without qemu, the iPXE ROM, a kernel or busybox.

use std::path::PathBuf;
use std::sync::Mutex;

use scenarios::runner::{RunOptions, run};
use scenarios::spec::{self, Backend, Scenario};

/// The runs share two cores with everything else: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn skip_reason() -> Option<String> {
    qemu_machines::RealMachines::unavailable(&qemu_machines::QemuOptions::default())
}

fn load() -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("real-boot.yaml");
    spec::load_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn play(scenario: &Scenario) -> scenarios::report::Report {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let options = RunOptions {
        seed: scenario.effective_seed(None),
        kubeconfig: None,
        progress: false,
        bmcs_in_process: false,
    };
    runtime
        .block_on(run(scenario, options))
        .unwrap_or_else(|e| panic!("harness error: {e:#}"))
        .report
}

#[test]
fn real_boot_passes_from_real_vm_boots() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let report = play(&load());
    println!("{}", report.summary());
    assert!(report.passed, "{}", report.summary());
    // Three probe boots and two OS boots, every one a VM that printed its marker.
    let boots = report.figures.get("qemu.boots").copied().unwrap_or(0.0);
    assert!(boots >= 5.0, "{:?}", report.figures);
    for key in [
        "qemu.powerOnToMarkerP50Ms",
        "qemu.powerOnToMarkerMaxMs",
        "qemu.rssMaxKiB",
    ] {
        println!("{key}: {:?}", report.figures.get(key));
    }
}

#[test]
fn real_boot_with_a_backend_ready_before_serving_is_a_violation() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut scenario = load();
    scenario.backend = Backend::SimBoot {
        mode: "ready-before-serving".into(),
        delay: None,
    };
    // Nothing can be discovered with this backend: end at a deadline past the first failed boots.
    scenario.expect.within = spec::Dur::from_secs(120);
    let report = play(&scenario);
    println!("{}", report.summary());
    assert!(!report.passed, "{}", report.summary());
    let caught = report
        .invariants
        .iter()
        .find(|v| v.invariant == "ready-sbc-boots")
        .unwrap();
    assert!(caught.violations > 0, "{}", report.summary());
}
