//! The per-machine iPXE script and the artifact URLs it points at.

use std::fmt::Write;

use crate::oci::Layer;
use crate::records::BootRecord;

/// The artifact URL of `layer` for `record`'s image (boot-operator's `/image?…&layerDigest=…`).
pub fn artifact_url(base: &str, record: &BootRecord, layer: &Layer) -> String {
    boot_image::digest::artifact_url(base, &record.image, &layer.digest)
}

/// The HTTP-boot URL of `record`'s UKI `layer` (boot-operator's `/httpboot/…/sha256-<hex>.efi`).
pub fn uki_url(base: &str, record: &BootRecord, layer: &Layer) -> String {
    boot_image::digest::uki_url(base, &record.image, &layer.digest)
}

pub fn ignition_url(base: &str) -> String {
    // `${uuid}` is expanded by iPXE itself, as in boot-operator's template.
    format!("{base}/ignition/${{uuid}}")
}

/// Renders the script, or explains which layer is missing.
pub fn ipxe_script(base: &str, record: &BootRecord) -> Result<String, String> {
    let kernel = record
        .kernel
        .as_ref()
        .ok_or_else(|| format!("image {} has no kernel layer", record.image.canonical()))?;
    let initrd = record
        .initramfs
        .as_ref()
        .ok_or_else(|| format!("image {} has no initramfs layer", record.image.canonical()))?;
    let mut script = String::from("#!ipxe\n\n");
    let _ = writeln!(
        script,
        "# {} generation {}: {}",
        record.sbc,
        record.generation,
        record.image.canonical()
    );
    let _ = writeln!(script, "set boot-server {base}");
    let _ = writeln!(
        script,
        "set kernel-url {}",
        artifact_url(base, record, kernel)
    );
    let _ = writeln!(
        script,
        "set initrd-url {}",
        artifact_url(base, record, initrd)
    );
    script.push_str("echo Booting ${uuid} (${buildarch}) from ${boot-server}\n");
    let mut args = String::from("initrd=initramfs console=ttyS0,115200");
    if record.ignition.is_some() || record.advertise_missing_ignition {
        args.push_str(" ignition.firstboot=1 ignition.platform.id=metal ignition.config.url=");
        args.push_str(&ignition_url("${boot-server}"));
    }
    if let Some(squashfs) = &record.squashfs {
        let _ = write!(
            args,
            " gl.ovl=/:tmpfs gl.url={} gl.live=1 ip=dhcp",
            artifact_url(base, record, squashfs)
        );
    }
    let _ = writeln!(script, "kernel ${{kernel-url}} {args}");
    script.push_str("initrd --name initramfs ${initrd-url}\n");
    script.push_str("boot\n");
    Ok(script)
}

/// The script served at `/ipxe` (no UUID): chain-load the per-machine script.
pub fn chain_script(base: &str) -> String {
    format!("#!ipxe\n\nchain {base}/ipxe/${{uuid}}\n")
}
