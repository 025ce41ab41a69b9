//! The QEMU machine driver: a network boot that starts a real VM (iPXE firmware, the backend's kernel and
//! initramfs) and reports the boot done when the OS prints its marker line. The VM is the running OS: the
//! machine's power-off or reset ends it, a QMP power button stands in for ACPI, and the VM ending on its
//! own powers the machine off.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use sim_bmc::boot::{BootOutcome, BootTarget, BootedOs, NetworkBoot, NetworkBootRequest};
use sim_bmc::machine::BootLog;
use tokio::sync::{Semaphore, watch};

use crate::lock;
use crate::relay::{Fetch, Relay};
use crate::testos::{MARKER_PREFIX, Marker, USERLAND_LINE};
use crate::vm::{Accel, BootFrom, Firmware, Vm, VmSpec};

/// Which accelerator VMs use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccelChoice {
    #[default]
    Tcg,
    Kvm,
    /// KVM when a probe guest really boots under it, TCG otherwise.
    Auto,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcg" => Ok(AccelChoice::Tcg),
            "kvm" => Ok(AccelChoice::Kvm),
            "auto" => Ok(AccelChoice::Auto),
            other => Err(format!("accel {other:?} is not one of tcg, kvm, auto")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct QemuOptions {
    pub binary: PathBuf,
    /// SeaBIOS (default) or OVMF; under OVMF iPXE's own progress and errors reach the console and the event log.
    pub firmware: Firmware,
    pub memory_mib: u32,
    pub accel: AccelChoice,
    /// VMs running at once; a boot waits for a free slot (within the boot timeout).
    pub max_running: usize,
    /// Power-on to marker; a boot slower than this fails (sim-bmc gives up on any network boot at 120 s).
    pub boot_timeout: Duration,
    /// After a firmware fetch, how long without any further fetch or console line counts as iPXE stopped.
    pub stall_after_fetch: Duration,
}

impl Default for QemuOptions {
    fn default() -> Self {
        Self {
            binary: PathBuf::from("qemu-system-x86_64"),
            firmware: Firmware::Bios,
            memory_mib: 256,
            accel: AccelChoice::Tcg,
            max_running: 4,
            boot_timeout: Duration::from_secs(110),
            stall_after_fetch: Duration::from_secs(30),
        }
    }
}

/// Why QEMU machines cannot run here (binary or iPXE ROM missing), or `None` when they can.
pub fn unavailable(binary: &str) -> Option<String> {
    let found = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        return Some(format!("no {binary} (apt-get install qemu-system-x86)"));
    }
    if !std::path::Path::new("/usr/lib/ipxe/qemu/efi-virtio.rom").exists() {
        return Some("no iPXE ROM for virtio-net (apt-get install ipxe-qemu)".into());
    }
    None
}

/// Why OVMF (UEFI) machines cannot run here, or `None`.
pub fn uefi_unavailable() -> Option<String> {
    [crate::vm::OVMF_CODE, crate::vm::OVMF_VARS]
        .iter()
        .find(|p| !std::path::Path::new(p).exists())
        .map(|p| format!("no {p} (apt-get install ovmf)"))
}

/// What one boot measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BootFigure {
    pub uuid: String,
    /// VM start to marker.
    pub to_marker: Duration,
    /// VmRSS of the QEMU process when the marker appeared, in KiB.
    pub rss_kib: Option<u64>,
}

struct Inner {
    options: QemuOptions,
    relay: Relay,
    slots: Arc<Semaphore>,
    accel: tokio::sync::OnceCell<(Accel, String)>,
    counter: AtomicU64,
    figures: Mutex<Vec<BootFigure>>,
    used: Mutex<Vec<String>>,
    running: Arc<AtomicU64>,
    peak_running: AtomicU64,
    /// Per-machine memory (MiB) where it differs from the options.
    memory: Mutex<std::collections::HashMap<String, u32>>,
    /// The running VMs' OS tasks, so [`QemuMachines::stop_all`] can end them.
    live: Mutex<std::collections::HashMap<String, tokio::task::AbortHandle>>,
}

/// The driver; cheap to clone.
#[derive(Clone)]
pub struct QemuMachines {
    inner: Arc<Inner>,
}

impl QemuMachines {
    pub async fn start(options: QemuOptions) -> Result<QemuMachines, String> {
        let relay = Relay::start()
            .await
            .map_err(|e| format!("starting the guest relay: {e}"))?;
        Ok(QemuMachines {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(options.max_running.max(1))),
                options,
                relay,
                accel: tokio::sync::OnceCell::new(),
                counter: AtomicU64::new(0),
                figures: Mutex::default(),
                used: Mutex::default(),
                running: Arc::default(),
                peak_running: AtomicU64::new(0),
                memory: Mutex::default(),
                live: Mutex::default(),
            }),
        })
    }

    /// Every boot's figures so far.
    pub fn figures(&self) -> Vec<BootFigure> {
        lock(&self.inner.figures).clone()
    }

    /// System UUIDs of the machines that started a VM, in first-start order.
    pub fn machines_used(&self) -> Vec<String> {
        lock(&self.inner.used).clone()
    }

    /// Gives one machine its own memory size.
    pub fn set_memory(&self, uuid: &str, mib: u32) {
        lock(&self.inner.memory).insert(uuid.to_string(), mib);
    }

    /// Ends every running VM (fleet shutdown); each machine sees its OS end.
    pub fn stop_all(&self) {
        let live: Vec<_> = lock(&self.inner.live).drain().collect();
        for (_, task) in live {
            task.abort();
        }
    }

    /// VMs running now.
    pub fn running(&self) -> u64 {
        self.inner.running.load(Ordering::Relaxed)
    }

    /// The most VMs that ran at once.
    pub fn peak_running(&self) -> u64 {
        self.inner.peak_running.load(Ordering::Relaxed)
    }

    /// The accelerator in use and why (resolved on first boot; `auto` runs its probe then).
    pub async fn accel(&self) -> (Accel, String) {
        self.inner
            .accel
            .get_or_init(|| resolve_accel(self.inner.options.clone()))
            .await
            .clone()
    }

    async fn boot_vm(self, req: NetworkBootRequest, log: BootLog) -> BootOutcome {
        let failed = |reason: String| BootOutcome::Failed { reason };
        if req.target != BootTarget::Pxe {
            return failed(
                "UEFI HTTP boot is not offered by QEMU machines (no OVMF HTTP boot set up)".into(),
            );
        }
        let Some(boot_url) = req.boot_url.clone() else {
            return failed("PXE-E18: no boot server answered (timeout)".into());
        };
        let started = Instant::now();
        let o = &self.inner.options;
        let permit =
            match tokio::time::timeout(o.boot_timeout, self.inner.slots.clone().acquire_owned())
                .await
            {
                Ok(Ok(p)) => p,
                _ => {
                    return failed(format!(
                        "no QEMU slot free within {:?}: {} VMs already run (maxRunning)",
                        o.boot_timeout, o.max_running
                    ));
                }
            };
        let (accel, _) = self.accel().await;
        {
            let mut used = lock(&self.inner.used);
            if !used.contains(&req.system_uuid) {
                used.push(req.system_uuid.clone());
            }
        }
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let vm_id = format!("vm{n}");
        let progress = Arc::new(Progress::default());
        let relay_log = log.clone();
        let relay_progress = progress.clone();
        self.inner.relay.register(
            &vm_id,
            Arc::new(move |fetch: Fetch| {
                let stage = match (fetch.script, fetch.status) {
                    (_, s) if s >= 400 => "fetchFailed",
                    (true, _) => "scriptFetched",
                    (false, _) => "artifactFetched",
                };
                let detail = format!("{} {} ({} bytes)", fetch.status, fetch.url, fetch.bytes);
                relay_log.note(stage, &detail);
                relay_progress.saw(fetch);
            }),
        );
        let _forget = Forget {
            relay: self.clone(),
            vm: vm_id.clone(),
        };
        let (marker_tx, mut marker_rx) = watch::channel::<Option<Marker>>(None);
        let line_log = log.clone();
        let line_progress = progress.clone();
        let hook = Arc::new(move |line: &str| {
            line_progress.touch();
            if line.contains(MARKER_PREFIX) {
                line_log.note("marker", line);
                if let Some(marker) = Marker::parse(line) {
                    let _ = marker_tx.send(Some(marker));
                }
            } else if line.contains(USERLAND_LINE) {
                line_log.note("userlandStarted", line);
            } else if line.contains("] Linux version ") {
                line_progress.kernel_booted.store(true, Ordering::Relaxed);
                line_log.note("kernelBooted", line);
            } else if line.contains("metal-harness-os:") || line.contains("Kernel panic") {
                line_log.note("os", line);
            } else if let Some(stage) = firmware_stage(line) {
                line_log.note(stage, line);
            }
        });
        let memory_mib = lock(&self.inner.memory)
            .get(&req.system_uuid)
            .copied()
            .unwrap_or(o.memory_mib);
        let macs = match req.macs.is_empty() {
            true => vec![mac_for(&req.system_uuid)],
            false => req.macs.clone(),
        };
        let spec = VmSpec {
            binary: o.binary.clone(),
            firmware: o.firmware,
            uuid: req.system_uuid.clone(),
            macs,
            memory_mib,
            accel,
            boot: BootFrom::Network {
                boot_file: self.inner.relay.guest_url(&vm_id, &boot_url),
            },
        };
        let vm = match Vm::start(&spec, hook).await {
            Ok(vm) => vm,
            Err(e) => return failed(e),
        };
        // Counted from the process start (a VM costs its cores and memory while it boots, too).
        let running = self.inner.running.clone();
        let now = running.fetch_add(1, Ordering::Relaxed) + 1;
        self.inner.peak_running.fetch_max(now, Ordering::Relaxed);
        let count = Decrement(running);
        let console = vm.console.clone();
        log.set_console(Arc::new(move || console.lines()));
        log.note(
            "firmwareStarted",
            &format!(
                "QEMU pid {} ({}, {} MiB), boot file {}",
                vm.pid().unwrap_or_default(),
                accel.as_str(),
                memory_mib,
                spec_boot_file(&spec)
            ),
        );
        let mut exited = vm.exited();
        let deadline =
            tokio::time::Instant::now() + o.boot_timeout.saturating_sub(started.elapsed());
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        let outcome = loop {
            tokio::select! {
                _ = marker_rx.changed() => {
                    if let Some(marker) = marker_rx.borrow().clone() { break Ok(marker); }
                }
                _ = exited.changed() => {
                    let why = exited.borrow().clone().unwrap_or_default();
                    break Err(format!("{why} before the OS came up; console: {}", vm.console.tail(5)));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    break Err(format!(
                        "no userland marker within {:?}; firmware fetched: {}; console: {}",
                        o.boot_timeout, progress.summary(), vm.console.tail(5)
                    ));
                }
                _ = poll.tick() => {
                    if let Some(what) = progress.stalled_after_fetch(o.stall_after_fetch) {
                        break Err(format!(
                            "the firmware fetched {what} and then did nothing for {:?} (iPXE stopped: \
                             a failed download or a script it cannot run); fetched: {}",
                            o.stall_after_fetch, progress.summary()
                        ));
                    }
                }
            }
        };
        let marker = match outcome {
            Ok(marker) => marker,
            Err(reason) => return failed(reason),
        };
        let ignition_sha256 = match marker.ignition_sha256 {
            // Plain hex, as the simulated firmware reports it and the invariants compare it.
            Ok(sha) => sha,
            Err(reason) => {
                return failed(format!(
                    "{reason} (marker: image {}); console: {}",
                    marker.image,
                    vm.console.tail(8)
                ));
            }
        };
        let figure = BootFigure {
            uuid: req.system_uuid.clone(),
            to_marker: started.elapsed(),
            rss_kib: vm.pid().and_then(rss_kib),
        };
        lock(&self.inner.figures).push(figure);
        let vm = Arc::new(vm);
        let button_vm = Arc::downgrade(&vm);
        let button_log = log.clone();
        log.set_power_button(Arc::new(move || {
            let Some(vm) = button_vm.upgrade() else {
                return;
            };
            let log = button_log.clone();
            tokio::spawn(async move {
                if let Err(e) = vm.qmp("system_powerdown").await {
                    log.note("qmpFailed", &e);
                }
            });
        }));
        let os_log = log.clone();
        let forget = _forget;
        let live = self.clone();
        let live_id = vm_id.clone();
        // The running OS: holds the VM and its slot; aborting it (power-off, reset) drops and kills the VM.
        let os_task = tokio::spawn(async move {
            let _permit = permit;
            let _forget = forget;
            let _count = count;
            let mut exited = vm.exited();
            let _ = exited.wait_for(Option::is_some).await;
            let why = exited.borrow().clone().unwrap_or_default();
            os_log.os_exited(&format!("the VM ended: {why}"));
        });
        lock(&live.inner.live).insert(live_id, os_task.abort_handle());
        BootOutcome::Booted(BootedOs {
            image: marker.image,
            image_digest: None,
            ignition_sha256,
            artifacts: lock(&progress.artifacts).clone(),
            os_task: Some(os_task),
        })
    }
}

/// iPXE's console lines worth an event (visible under OVMF): its banner, what it loaded, and its errors.
fn firmware_stage(line: &str) -> Option<&'static str> {
    if line.starts_with("iPXE ") && line.contains("Network Boot Firmware") {
        Some("firmwareBanner")
    } else if line.contains("Error 0x")
        || line.contains("Exec format error")
        || line.contains("(https://ipxe.org/")
        || line.contains("(http://ipxe.org/")
    {
        Some("firmwareError")
    } else if line.ends_with("[script]") || line.starts_with("Filename: ") {
        Some("firmwareScript")
    } else {
        None
    }
}

fn spec_boot_file(spec: &VmSpec) -> &str {
    match &spec.boot {
        BootFrom::Network { boot_file } => boot_file,
        BootFrom::Kernel { .. } => "",
    }
}

impl NetworkBoot for QemuMachines {
    fn boot(&self, req: NetworkBootRequest) -> BoxFuture<'static, BootOutcome> {
        self.clone().boot_vm(req, BootLog::detached()).boxed()
    }

    fn boot_logged(
        &self,
        req: NetworkBootRequest,
        log: BootLog,
    ) -> BoxFuture<'static, BootOutcome> {
        self.clone().boot_vm(req, log).boxed()
    }
}

/// Per-machine choice of driver: the listed System UUIDs boot QEMU VMs, every other machine the
/// simulated firmware. The UUIDs are known once the fleet is built, so they are set afterwards.
pub struct DriverSwitch {
    pub qemu: QemuMachines,
    pub simulated: Arc<dyn NetworkBoot>,
    qemu_uuids: OnceLock<HashSet<String>>,
}

impl DriverSwitch {
    pub fn new(qemu: QemuMachines, simulated: Arc<dyn NetworkBoot>) -> Self {
        Self {
            qemu,
            simulated,
            qemu_uuids: OnceLock::new(),
        }
    }

    /// Assigns the QEMU machines (once; later calls are ignored).
    pub fn set_qemu_machines(&self, uuids: impl IntoIterator<Item = String>) {
        let _ = self.qemu_uuids.set(uuids.into_iter().collect());
    }

    fn is_qemu(&self, uuid: &str) -> Option<bool> {
        self.qemu_uuids.get().map(|set| set.contains(uuid))
    }
}

impl NetworkBoot for DriverSwitch {
    fn boot(&self, req: NetworkBootRequest) -> BoxFuture<'static, BootOutcome> {
        self.boot_logged(req, BootLog::detached())
    }

    fn boot_logged(
        &self,
        req: NetworkBootRequest,
        log: BootLog,
    ) -> BoxFuture<'static, BootOutcome> {
        match self.is_qemu(&req.system_uuid) {
            Some(true) => self.qemu.boot_logged(req, log),
            Some(false) => self.simulated.boot_logged(req, log),
            None => futures::future::ready(BootOutcome::Failed {
                reason: "machine drivers not assigned yet (harness set-up incomplete)".into(),
            })
            .boxed(),
        }
    }
}

struct Forget {
    relay: QemuMachines,
    vm: String,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.relay.inner.relay.forget(&self.vm);
        lock(&self.relay.inner.live).remove(&self.vm);
    }
}

struct Decrement(Arc<AtomicU64>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the firmware and OS did so far, to tell progress from a stall.
#[derive(Default)]
struct Progress {
    fetches: Mutex<Vec<Fetch>>,
    /// Set at the kernel's first console line: later fetches are the OS's (ignition, registry), not firmware
    /// downloads.
    kernel_booted: std::sync::atomic::AtomicBool,
    /// What the firmware downloaded, as the simulated firmware reports it.
    artifacts: Mutex<Vec<sim_bmc::boot::BootArtifact>>,
    /// When anything last happened, and the fetch it was when no console line came after it.
    last: Mutex<Option<(Instant, Option<String>)>>,
}

impl Progress {
    fn touch(&self) {
        *lock(&self.last) = Some((Instant::now(), None));
    }

    fn saw(&self, fetch: Fetch) {
        if let Some(sha256) = &fetch.sha256
            && !self.kernel_booted.load(Ordering::Relaxed)
        {
            use sim_bmc::boot::ArtifactKind;
            let kind = match fetch.content {
                "kernel" => ArtifactKind::Kernel,
                "initrd" => ArtifactKind::Initrd,
                _ => ArtifactKind::Other,
            };
            let mut artifacts = lock(&self.artifacts);
            if artifacts.len() < 64 {
                artifacts.push(sim_bmc::boot::BootArtifact {
                    url: fetch.url.clone(),
                    kind,
                    sha256: sha256.clone(),
                    size: fetch.bytes as u64,
                });
            }
        }
        let what = format!("{} (answered {})", fetch.url, fetch.status);
        *lock(&self.last) = Some((Instant::now(), Some(what)));
        let mut fetches = lock(&self.fetches);
        if fetches.len() < 64 {
            fetches.push(fetch);
        }
    }

    /// The last fetch, when the firmware did nothing after it for `after` (no fetch, no console line):
    /// iPXE stopped there (a failed download, or a script it could not run).
    fn stalled_after_fetch(&self, after: Duration) -> Option<String> {
        let last = lock(&self.last).clone();
        match last {
            Some((at, Some(what))) if at.elapsed() >= after => Some(what),
            _ => None,
        }
    }

    fn summary(&self) -> String {
        let fetches = lock(&self.fetches);
        if fetches.is_empty() {
            return "nothing".into();
        }
        fetches
            .iter()
            .map(|f| format!("{} {}", f.status, f.url))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A stable locally administered MAC (QEMU's 52:54:00 prefix) for a machine that names none.
fn mac_for(uuid: &str) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(uuid.as_bytes());
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        digest[0], digest[1], digest[2]
    )
}

fn rss_kib(pid: u32) -> Option<u64> {
    // setpriv execs QEMU in place, so the pid is QEMU's.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// `auto`: a kernel booted under KVM must reach its root-mount panic within 30 s, or TCG is used.
async fn resolve_accel(options: QemuOptions) -> (Accel, String) {
    match options.accel {
        AccelChoice::Tcg => (Accel::Tcg, "tcg (configured)".into()),
        AccelChoice::Kvm => (Accel::Kvm, "kvm (configured)".into()),
        AccelChoice::Auto => match probe_kvm(&options).await {
            Ok(took) => (Accel::Kvm, format!("kvm (probe guest booted in {took:?})")),
            Err(why) => (Accel::Tcg, format!("tcg (KVM probe failed: {why})")),
        },
    }
}

async fn probe_kvm(options: &QemuOptions) -> Result<Duration, String> {
    if !std::path::Path::new("/dev/kvm").exists() {
        return Err("no /dev/kvm".into());
    }
    let files = crate::testos::RealFiles::find()?;
    let (tx, mut rx) = watch::channel(false);
    let hook = Arc::new(move |line: &str| {
        if line.contains("VFS: Unable to mount root") || line.contains("Kernel panic") {
            let _ = tx.send(true);
        }
    });
    let spec = VmSpec {
        binary: options.binary.clone(),
        firmware: Firmware::Bios,
        uuid: "00000000-0000-0000-0000-000000000000".into(),
        macs: Vec::new(),
        memory_mib: options.memory_mib,
        accel: Accel::Kvm,
        boot: BootFrom::Kernel {
            kernel: files.kernel,
            initrd: None,
            append: "console=ttyS0 panic=-1".into(),
        },
    };
    let started = Instant::now();
    let vm = Vm::start(&spec, hook).await?;
    let limit = Duration::from_secs(30);
    match tokio::time::timeout(limit, rx.wait_for(|done| *done)).await {
        Ok(Ok(_)) => Ok(started.elapsed()),
        _ => Err(format!(
            "the probe kernel did not reach userland's root mount within {limit:?}; console: {}",
            vm.console.tail(3)
        )),
    }
}
