//! The boot profile certifies a backend serving an image built from real files, with no harness headers: the
//! machine's own kernel package (`/boot/vmlinuz-*`, Debian's `linux-image-cloud-amd64`) and an initramfs of
//! `busybox-static` with an init script, generated here as a newc cpio archive. The oracle identifies the image
//! by the digests of what the machine downloaded; nothing reads a magic header.

use conformance::boot_net::network_boot;
use conformance::embedded::{BuiltinRegistries, EmbeddedEnv};
use conformance::outcome::Verdict;
use conformance::progress::Display;
use conformance::rules::Profile;
use conformance::runner::{Selection, run};
use conformance::simboot::InProcessSimBoot;
use conformance::target::{BackendControl, MachineBoot};
use conformance::timeouts::Timeouts;
use sim_boot::oci::catalog::{ImageSpec, LayerKind};
use sim_boot::{BootModes, Misbehaviour};
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const REAL_V1: &str = "real/debian-cloud:1.0";
const REAL_V2: &str = "real/debian-cloud:2.0";

/// The installed kernel and busybox, or why the test cannot run.
/// A newc initramfs: `/init` (a busybox shell script that mounts the API filesystems and prints the
/// release), `/bin/busybox`, `/etc/os-release` carrying `version`, and `/dev/console`.
fn initramfs(busybox: &[u8], version: &str) -> std::io::Result<Vec<u8>> {
    let init = String::from(
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t proc proc /proc\nmount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\ncat /etc/os-release\nexec sh\n",
    );
    let release = format!("NAME=\"metal-harness real image\"\nVERSION_ID={version}\n");
    let mut archive = qemu_machines::testos::Newc::new();
    for dir in [".", "bin", "dev", "etc", "proc", "sys"] {
        archive.dir(dir)?;
    }
    archive.console()?;
    archive.file("bin/busybox", 0o755, busybox)?;
    archive.file("etc/os-release", 0o644, release.as_bytes())?;
    archive.file("init", 0o755, init.as_bytes())?;
    archive.finish()
}

/// When the `cpio` tool is installed, it must list what the archive holds (an independent reader).
fn cross_check_with_cpio_tool(archive: &[u8]) {
    let mut child = match std::process::Command::new("cpio")
        .args(["-it", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("cpio tool not run ({e}); install cpio to cross-check the archive");
            return;
        }
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = archive.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let output = child.wait_with_output().expect("cpio runs");
    writer
        .join()
        .expect("writer thread")
        .expect("archive written");
    assert!(output.status.success(), "cpio -it failed: {output:?}");
    let listing = String::from_utf8_lossy(&output.stdout);
    let names: Vec<&str> = listing.lines().collect();
    for name in ["init", "bin/busybox", "dev/console", "etc/os-release"] {
        assert!(names.contains(&name), "cpio lists {names:?}, not {name}");
    }
}

fn split(reference: &str) -> (&str, &str) {
    reference.rsplit_once(':').expect("a tag")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_boot_profile_passes_with_a_real_kernel_and_initramfs() {
    // The same files the QEMU test OS is built from (newest Debian kernel, busybox-static).
    let (kernel_path, busybox_path) = match qemu_machines::testos::RealFiles::find() {
        Ok(files) => (files.kernel, files.busybox),
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let kernel = bytes::Bytes::from(std::fs::read(&kernel_path).expect("kernel readable"));
    let busybox = std::fs::read(&busybox_path).expect("busybox readable");
    let mut catalog = BuiltinRegistries::standard_catalog();
    let mut layers = Vec::new();
    for (reference, version) in [(REAL_V1, "1.0"), (REAL_V2, "2.0")] {
        let initrd = initramfs(&busybox, version).expect("initramfs");
        cross_check_with_cpio_tool(&initrd);
        let (repository, tag) = split(reference);
        let spec = ImageSpec::amd64_index(repository, tag);
        let blobs = vec![vec![
            (LayerKind::Kernel, kernel.clone()),
            (LayerKind::Initramfs, bytes::Bytes::from(initrd)),
        ]];
        catalog
            .add_image_from_blobs(&spec, blobs)
            .expect("image stored");
        layers.push(reference);
    }
    println!(
        "real image: kernel {} ({} bytes), busybox initramfs, images {layers:?}",
        kernel_path.display(),
        kernel.len()
    );

    let env = EmbeddedEnv::start_with(conformance::embedded::RegistryOptions::default(), catalog)
        .await
        .expect("embedded environment");
    // PXE only: the image has no UKI, so HTTP boot cannot be offered (boot-operator with only its iPXE
    // controllers behaves the same).
    let mut options = InProcessSimBoot::options(&env, Misbehaviour::None, Duration::ZERO);
    options.controller.boot_modes = BootModes {
        ipxe: true,
        http: false,
    };
    let backend = Arc::new(
        InProcessSimBoot::start_with(&env, options)
            .await
            .expect("sim-boot"),
    );
    let machine: Arc<dyn MachineBoot> =
        network_boot(&backend.boot_url_template(), None).expect("boot network");
    let mut target = env
        .target(
            Some(backend.clone() as Arc<dyn BackendControl>),
            Some(machine.clone()),
            Timeouts::default(),
            1,
            CancellationToken::new(),
        )
        .await
        .expect("target");
    let allowed = env.registries.allowed;
    target.images.valid = format!("{allowed}/{REAL_V1}");
    target.images.valid_alt = Some(format!("{allowed}/{REAL_V2}"));

    // The oracle sees the real image as its registry lists it: a kernel and an initramfs layer, no header.
    let expected = machine
        .expected(&target.images.valid)
        .await
        .expect("expected image");
    assert_eq!(expected.layers.len(), 2, "{expected:?}");
    assert!(
        expected
            .layers
            .iter()
            .any(|l| l.size == kernel.len() as u64),
        "{expected:?}"
    );

    let result = run(
        Arc::new(target),
        &Selection::profiles(&[Profile::Boot]),
        &Display::hidden(),
        8,
    )
    .await;
    backend.shutdown().await;
    env.api.shutdown().await;
    let verdicts: Vec<_> = result
        .rules
        .iter()
        .filter(|r| r.requested)
        .map(|r| (r.id.as_str(), r.verdict, r.reasons.clone()))
        .collect();
    println!("{verdicts:#?}");
    let not_passed: Vec<_> = verdicts
        .iter()
        .filter(|(_, verdict, _)| *verdict != Verdict::Pass)
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    let ids: Vec<_> = verdicts.iter().map(|(id, _, _)| *id).collect();
    for id in [
        "SBC-BOOT-001",
        "SBC-BOOT-002",
        "SBC-BOOT-003",
        "SBC-BOOT-004",
        "SBC-BOOT-005",
    ] {
        assert!(ids.contains(&id), "{id} was not run: {ids:?}");
    }
}
