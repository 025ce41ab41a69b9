//! `real-boot.yaml` on real QEMU VMs: it passes from real boots, and the same file with sim-boot's
//! `ready-before-serving` misbehaviour fails with a `ready-sbc-boots` violation (the VMs' own failed
//! boots), not a harness error. Skips, saying why, without qemu, the iPXE ROM, a kernel or busybox.

mod common;

use common::{load, play};

use std::sync::{Mutex, MutexGuard};

use scenarios::spec::{self, Backend};

/// The runs share two cores with everything else: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the one-at-a-time lock for a run on real VMs, or says why this machine cannot run one.
fn real_vms() -> Option<MutexGuard<'static, ()>> {
    let options = qemu_machines::QemuOptions::default();
    if let Some(why) = qemu_machines::RealMachines::unavailable(&options) {
        eprintln!("skipped: {why}");
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

#[test]
fn real_boot_passes_from_real_vm_boots() {
    let Some(_serial) = real_vms() else {
        return;
    };
    let report = play(&load("real-boot.yaml"));
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
    let Some(_serial) = real_vms() else {
        return;
    };
    let mut scenario = load("real-boot.yaml");
    scenario.backend = Backend::SimBoot {
        mode: "ready-before-serving".into(),
        delay: None,
    };
    // Nothing can be discovered with this backend: end at a deadline past the first failed boots.
    scenario.expect.within = spec::Dur::from_secs(120);
    let report = play(&scenario);
    println!("{}", report.summary());
    assert!(!report.passed, "{}", report.summary());
    let caught = report.verdict("ready-sbc-boots").unwrap();
    assert!(caught.violations > 0, "{}", report.summary());
}
