//! Machines network-boot from sim-boot's real HTTP server: what they boot is what the SBC asked for,
//! and every failure has a precise reason.

mod common;

use std::time::Duration;

use common::*;
use sim_bmc::boot::{BootTarget, NetworkBoot};
use sim_boot::Misbehaviour;
use sim_boot::oci::names;

const UUID: &str = "6a1c0f4e-0000-4000-8000-00000000a001";

/// Machine `m` configured with the v1 image and its ignition Secret, and the backend Ready.
async fn configured_with_ignition(stack: &Stack) {
    stack.secret("m", "core").await;
    stack
        .configure("m", UUID, &stack.backend.image(names::OS_V1), Some("m"))
        .await;
    stack
        .ready("m", Duration::from_secs(20))
        .await
        .expect("Ready");
}

#[tokio::test]
async fn pxe_boots_the_configured_image_with_its_ignition() {
    let stack = stack(Misbehaviour::None).await;
    configured_with_ignition(&stack).await;
    let os = booted(stack.boot(UUID).await);
    assert_eq!(os.image, "ironcore/os:1.0");
    let record = stack
        .backend
        .records()
        .get(&sim_boot::records::SbcKey::new(NS, "m"))
        .unwrap();
    assert_eq!(
        os.image_digest.as_deref(),
        Some(record.kernel.as_ref().unwrap().digest.as_str())
    );
    let downloaded: Vec<_> = os
        .artifacts
        .iter()
        .map(|a| (a.kind, a.sha256.as_str()))
        .collect();
    use sim_bmc::boot::ArtifactKind;
    assert_eq!(
        downloaded,
        vec![
            (
                ArtifactKind::Kernel,
                record.kernel.as_ref().unwrap().digest.as_str()
            ),
            (
                ArtifactKind::Initrd,
                record.initramfs.as_ref().unwrap().digest.as_str()
            ),
            (
                ArtifactKind::Squashfs,
                record.squashfs.as_ref().unwrap().digest.as_str()
            ),
        ],
        "kernel and initrd from the script, the squashfs from gl.url"
    );
    let ignition = record.ignition.as_ref().unwrap();
    assert_eq!(
        os.ignition_sha256.unwrap(),
        sim_boot::ignition::hash(ignition).trim_start_matches("sha256:")
    );
    assert!(os.os_task.is_none(), "no probe in a regular OS");
}

#[tokio::test]
async fn uefi_http_boot_fetches_the_uki_by_identity_and_arm64_gets_its_own_build() {
    let stack = stack(Misbehaviour::None).await;
    configured_with_ignition(&stack).await;
    let os = booted(
        stack
            .netboot
            .boot(stack.request(UUID, "amd64", BootTarget::UefiHttp))
            .await,
    );
    assert_eq!(os.image, "ironcore/os:1.0");
    assert!(
        os.ignition_sha256.is_some(),
        "the UKI command line carries the ignition URL"
    );
    let mut direct = stack.request(UUID, "amd64", BootTarget::UefiHttp);
    direct.boot_url = Some(format!("{}/httpboot/{UUID}/boot.efi", stack.backend.url()));
    assert_eq!(
        booted(stack.netboot.boot(direct).await).image,
        "ironcore/os:1.0"
    );
    // The record was prepared for amd64: an arm64 machine refuses the kernel.
    let reason = failed(
        stack
            .netboot
            .boot(stack.request(UUID, "arm64", BootTarget::Pxe))
            .await,
    );
    assert!(
        reason.contains("built for amd64, this machine is arm64"),
        "{reason}"
    );
}

#[tokio::test]
async fn unknown_machines_and_missing_dhcp_answers_fail_like_firmware() {
    let stack = stack(Misbehaviour::None).await;
    let reason = failed(stack.boot("00000000-0000-0000-0000-000000000000").await);
    assert!(
        reason.contains("404") && reason.contains("no Server has system UUID"),
        "{reason}"
    );
    let mut request = stack.request(UUID, "amd64", BootTarget::Pxe);
    request.boot_url = None;
    assert!(failed(stack.netboot.boot(request).await).contains("PXE-E51"));
    let mut request = stack.request(UUID, "amd64", BootTarget::Pxe);
    request.boot_url = Some("http://127.0.0.1:1/ipxe".into());
    assert!(failed(stack.netboot.boot(request).await).contains("fetching the boot script failed"));
}

/// A boot server whose script pins a digest its artifact does not have.
#[tokio::test]
async fn digest_and_length_mismatches_are_boot_failures() {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let wrong = format!("sha256:{}", "0".repeat(64));
    let script =
        format!("#!ipxe\nkernel {base}/image?layerDigest={wrong}\ninitrd {base}/initrd\nboot\n");
    let router = axum::Router::new()
        .route("/ipxe", get(move || async move { script }))
        .route(
            "/image",
            get(|| async { "SIMKERNEL v1 arch=amd64 image=x:1\n" }),
        )
        .route(
            "/initrd",
            get(|| async { "SIMINITRD v1 arch=amd64 image=x:1\n" }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let netboot = netboot::Netboot::new(netboot::NetbootOptions::default());
    let request = boot_request(UUID, "amd64", BootTarget::Pxe, format!("{base}/ipxe"));
    let reason = failed(netboot.boot(request).await);
    assert!(
        reason.contains("digest mismatch: the URL pins sha256:0000"),
        "{reason}"
    );
}

#[tokio::test]
async fn spec_change_boots_the_new_image_once_ready_again() {
    let stack = stack(Misbehaviour::None).await;
    stack
        .configure("m", UUID, &stack.backend.image(names::OS_V1), None)
        .await;
    stack
        .ready("m", Duration::from_secs(20))
        .await
        .expect("Ready");
    assert_eq!(booted(stack.boot(UUID).await).image, "ironcore/os:1.0");
    stack
        .set_image("m", &stack.backend.image(names::OS_V2))
        .await;
    stack
        .ready("m", Duration::from_secs(20))
        .await
        .expect("Ready at generation 2");
    assert_eq!(booted(stack.boot(UUID).await).image, "ironcore/os:2.0");
}

/// A minimal amd64 PE image (what an EFI-stub kernel starts with): `MZ`, `e_lfanew`, `PE\0\0`, machine 0x8664.
fn pe_kernel() -> Vec<u8> {
    let mut bytes = vec![0u8; 4096];
    bytes[..2].copy_from_slice(b"MZ");
    bytes[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    bytes[0x80..0x84].copy_from_slice(b"PE\0\0");
    bytes[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
    bytes
}

/// boot-operator's two templates as its server renders them (`ipxe-chainload.tpl` at `/ipxe/`, then
/// `ipxe-script.tpl` per machine, with a squashfs), serving artifacts without harness headers: the machine
/// boots, the live initramfs fetches `gl.url`, and every download is reported with its digest.
#[tokio::test]
async fn boot_operator_scripts_boot_real_format_artifacts_and_report_every_download() {
    use axum::extract::Query;
    use axum::routing::get;
    use std::collections::HashMap;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let kernel = pe_kernel();
    let initrd = b"070701 a cpio archive".to_vec();
    let squashfs = b"hsqs a squashfs".to_vec();
    let digest = |b: &[u8]| boot_image::sha256_digest(b);
    let url = |d: &str| {
        format!(
            "{base}/image?imageName=ghcr.io%2Fironcore-dev%2Fos&version=1.0&layerDigest={}",
            d.replace(':', "%3A")
        )
    };
    let (kd, id, sd) = (digest(&kernel), digest(&initrd), digest(&squashfs));
    let chainload = format!(
        "#!ipxe\n\nset ipxe-svc {base}\n\nset base-url ${{ipxe-svc}}/ipxe\nchain --replace --autofree ${{base-url}}/${{uuid}}"
    );
    let script = format!(
        "#!ipxe\n\nset ipxe-svc {base}\nset kernel-url {}\nset initrd-url {}\nset squashfs-url {}\n\necho Loading kernel...\nkernel ${{kernel-url}} initrd=initrd gl.ovl=/:tmpfs gl.url=${{squashfs-url}} gl.live=1 ip=any ignition.firstboot=1 ignition.config.url=${{ipxe-svc}}/ignition/${{uuid}} ignition.platform.id=metal console=ttyS0,115200 console=tty0 console=ttyAMA0 earlyprintk=ttyS0,115200 consoleblank=0\necho Loading initrd...\ninitrd ${{initrd-url}}\necho Booting...\nboot\n",
        url(&kd),
        url(&id),
        url(&sd)
    );
    let blobs: HashMap<String, Vec<u8>> = [
        (kd.clone(), kernel.clone()),
        (id.clone(), initrd.clone()),
        (sd.clone(), squashfs.clone()),
    ]
    .into();
    let router = axum::Router::new()
        .route("/ipxe/", get(move || async move { chainload }))
        .route(&format!("/ipxe/{UUID}"), get(move || async move { script }))
        .route(
            &format!("/ignition/{UUID}"),
            get(|| async { r#"{"ignition":{"version":"3.4.0"}}"# }),
        )
        .route(
            "/image",
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                blobs[&q["layerDigest"]].clone()
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let netboot = netboot::Netboot::new(netboot::NetbootOptions::default());
    let request = boot_request(UUID, "amd64", BootTarget::Pxe, format!("{base}/ipxe/"));
    let os = booted(netboot.boot(request.clone()).await);
    assert_eq!(os.image, "", "real artifacts name no image");
    assert_eq!(os.image_digest.as_deref(), Some(kd.as_str()));
    assert!(os.ignition_sha256.is_some());
    let got: Vec<_> = os
        .artifacts
        .iter()
        .map(|a| (a.kind, a.sha256.clone(), a.size))
        .collect();
    use sim_bmc::boot::ArtifactKind::*;
    assert_eq!(
        got,
        vec![
            (Kernel, kd.clone(), kernel.len() as u64),
            (Initrd, id.clone(), initrd.len() as u64),
            (Squashfs, sd.clone(), squashfs.len() as u64),
        ]
    );
    // The same script on an arm64 machine: the PE says amd64.
    let mut arm = request;
    arm.architecture = "arm64".into();
    let reason = failed(netboot.boot(arm).await);
    assert!(
        reason.contains("built for amd64, this machine is arm64"),
        "{reason}"
    );
}
