//! Real machines for sim-bmc: a machine driver that powers QEMU VMs which network-boot through real iPXE
//! firmware into a real kernel and busybox test OS built here, printing a marker the harness reads as evidence.
//! Its own crate above sim-bmc (it plugs into sim-bmc's `NetworkBoot` seam and needs sim-boot's OCI catalog).

pub mod driver;
pub mod harness;
pub mod relay;
pub mod testos;
pub mod vm;

pub use driver::{AccelChoice, BootFigure, DriverSwitch, QemuMachines, QemuOptions, unavailable};
pub use harness::RealMachines;

use std::sync::{Mutex, MutexGuard};

/// Locks `m` even if a task panicked while holding it: one failed VM must not wedge the bookkeeping of the others.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
