//! Checks firmware applies to every download: HTTP status, Content-Length, the digest the URL or the
//! server names, and that the artifact can serve its role on this machine: the header (kind and
//! architecture) of generated artifacts, the file format (and PE machine type) of real ones.

use boot_image::digest::pinned_digest;
use boot_image::{ArtifactHeader, LayerKind, sha256_digest};

use sim_bmc::boot::{ArtifactKind, BootArtifact};

use crate::ipxe::Download;
use http_client::Fetched;

/// Status, length and digest checks of one download.
pub fn check_download(url: &str, response: &Fetched) -> Result<Download, String> {
    if !response.status.is_success() {
        let body = String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
            .trim()
            .to_string();
        return Err(format!("GET {url}: {} {body}", response.status));
    }
    if let Some(length) = response
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        && length.parse::<usize>().ok() != Some(response.body.len())
    {
        return Err(format!(
            "GET {url}: Content-Length {length} but {} bytes received",
            response.body.len()
        ));
    }
    let actual = sha256_digest(&response.body);
    if let Some(expected) = pinned_digest(url)
        && expected != actual
    {
        return Err(format!(
            "GET {url}: digest mismatch: the URL pins {expected}, the content is {actual}"
        ));
    }
    if let Some(announced) = response
        .headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        && announced != actual
    {
        return Err(format!(
            "GET {url}: digest mismatch: Docker-Content-Digest says {announced}, the content is {actual}"
        ));
    }
    Ok(Download {
        bytes: response.body.clone(),
        sha256: actual,
    })
}

/// The record of one verified download.
pub fn artifact(url: &str, sha256: &str, size: usize, kind: ArtifactKind) -> BootArtifact {
    BootArtifact {
        url: url.to_string(),
        kind,
        sha256: sha256.to_string(),
        size: size as u64,
    }
}

/// What a real (not generated) artifact of `kind` is, for error messages.
fn real_format(kind: LayerKind) -> &'static str {
    match kind {
        LayerKind::Kernel => "a Linux kernel",
        LayerKind::Initramfs => "an initramfs (cpio, optionally compressed)",
        LayerKind::Squashfs => "a squashfs image",
        LayerKind::Uki => "an EFI application",
    }
}

/// Checks that `bytes` can serve as `role` on an `architecture` machine: a generated artifact must carry
/// the role's magic and the machine's architecture (its header is returned: the image identity); a real
/// one must have the role's file format (a PE or bzImage/arm64 kernel for the machine, a cpio or
/// compressed initramfs, a squashfs, a PE UKI) — real firmware would not boot anything else.
pub fn check_artifact(
    what: &str,
    url: &str,
    bytes: &[u8],
    role: LayerKind,
    architecture: &str,
) -> Result<Option<ArtifactHeader>, String> {
    if let Some(header) = ArtifactHeader::parse(bytes) {
        if header.magic != role.magic() {
            return Err(format!(
                "{what} from {url} is a {} image, not a bootable {} image (bad magic)",
                header.magic,
                role.magic()
            ));
        }
        if header.architecture != architecture {
            return Err(format!(
                "{what} from {url} is built for {}, this machine is {architecture}",
                header.architecture
            ));
        }
        return Ok(Some(header));
    }
    let format_ok = match role {
        LayerKind::Kernel => {
            check_executable(what, url, bytes, architecture)?
                || (architecture == "amd64" && bytes.get(0x202..0x206) == Some(&b"HdrS"[..]))
                || (architecture == "arm64" && bytes.get(0x38..0x3c) == Some(&b"ARM\x64"[..]))
        }
        LayerKind::Uki => check_executable(what, url, bytes, architecture)?,
        LayerKind::Initramfs => is_initramfs(bytes),
        LayerKind::Squashfs => bytes.starts_with(b"hsqs"),
    };
    if !format_ok {
        let start = hex::encode(&bytes[..bytes.len().min(8)]);
        return Err(format!(
            "{what} from {url} is neither a generated {} image nor {} (starts with {start}, bad magic)",
            role.magic(),
            real_format(role)
        ));
    }
    Ok(None)
}

/// Whether `bytes` is a PE image; a PE for another machine type is an error.
fn check_executable(
    what: &str,
    url: &str,
    bytes: &[u8],
    architecture: &str,
) -> Result<bool, String> {
    let Some(machine) = pe_machine(bytes) else {
        return Ok(false);
    };
    let built_for = match machine {
        0x8664 => "amd64",
        0xaa64 => "arm64",
        0x014c => "386",
        0x01c4 => "arm",
        0x5064 => "riscv64",
        _ => "an unknown machine type",
    };
    if built_for != architecture {
        return Err(format!(
            "{what} from {url} is built for {built_for}, this machine is {architecture}"
        ));
    }
    Ok(true)
}

/// The COFF machine type of a PE image (`MZ`, then `PE\0\0` where `e_lfanew` points).
fn pe_machine(bytes: &[u8]) -> Option<u16> {
    if !bytes.starts_with(b"MZ") {
        return None;
    }
    let offset = u32::from_le_bytes(bytes.get(0x3c..0x40)?.try_into().ok()?) as usize;
    if bytes.get(offset..offset.checked_add(4)?)? != b"PE\0\0" {
        return None;
    }
    Some(u16::from_le_bytes(
        bytes.get(offset + 4..offset + 6)?.try_into().ok()?,
    ))
}

/// The raw data of the PE section `name` (e.g. a UKI's `.cmdline`). Hand-written: a dozen header fields
/// are all that is read, not worth a PE-parsing dependency.
pub fn pe_section<'a>(bytes: &'a [u8], name: &str) -> Option<&'a [u8]> {
    pe_machine(bytes)?;
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u32_at =
        |o: usize| Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?) as usize);
    let coff = u32_at(0x3c)? + 4;
    let sections = usize::from(u16_at(coff + 2)?);
    let table = coff + 20 + usize::from(u16_at(coff + 16)?);
    (0..sections.min(96)).find_map(|i| {
        let entry = table + i * 40;
        let raw_name = bytes.get(entry..entry + 8)?;
        let section_name = raw_name.split(|&b| b == 0).next()?;
        if section_name != name.as_bytes() {
            return None;
        }
        let size = u32_at(entry + 8)?.min(u32_at(entry + 16)?);
        let start = u32_at(entry + 20)?;
        bytes.get(start..start.checked_add(size)?)
    })
}

/// cpio (newc, crc or odc) or a stream in a compression the kernel can unpack.
fn is_initramfs(bytes: &[u8]) -> bool {
    const MAGICS: [&[u8]; 9] = [
        b"070701",
        b"070702",
        b"070707",
        &[0x1f, 0x8b],
        &[0xfd, b'7', b'z', b'X', b'Z', 0],
        &[0x28, 0xb5, 0x2f, 0xfd],
        &[0x02, 0x21, 0x4c, 0x18],
        b"BZh",
        &[0x5d, 0, 0],
    ];
    MAGICS.iter().any(|m| bytes.starts_with(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        // Parsing the header itself is boot-image's (its `headers_render_and_parse`); here, what firmware does with it.
        assert!(
            check_artifact(
                "kernel",
                "u",
                b"SIMKERNEL v1 arch=amd64 image=a:1\n",
                LayerKind::Kernel,
                "arm64"
            )
            .unwrap_err()
            .contains("built for amd64")
        );
        assert!(
            check_artifact("kernel", "u", b"\x7fELF", LayerKind::Kernel, "amd64")
                .unwrap_err()
                .contains("bad magic")
        );
        assert!(
            check_artifact(
                "initrd",
                "u",
                b"SIMKERNEL v1 arch=amd64 image=a:1\n",
                LayerKind::Initramfs,
                "amd64"
            )
            .unwrap_err()
            .contains("is a SIMKERNEL image, not a bootable SIMINITRD image")
        );
    }

    /// A minimal PE header: `MZ`, `e_lfanew` = 0x40, `PE\0\0`, then the machine type.
    fn pe(machine: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; 0x48];
        bytes[..2].copy_from_slice(b"MZ");
        bytes[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        bytes[0x40..0x44].copy_from_slice(b"PE\0\0");
        bytes[0x44..0x46].copy_from_slice(&machine.to_le_bytes());
        bytes
    }

    #[test]
    fn pe_sections_are_found_by_name() {
        let mut uki = pe(0x8664);
        // COFF header after the signature: one section, no optional header.
        uki.extend_from_slice(&[0u8; 16]);
        uki[0x46..0x48].copy_from_slice(&1u16.to_le_bytes());
        let table = uki.len();
        assert_eq!(table, 0x44 + 20);
        let mut entry = [0u8; 40];
        entry[..8].copy_from_slice(b".cmdline");
        let data_at = (table + 40) as u32;
        entry[8..12].copy_from_slice(&9u32.to_le_bytes());
        entry[16..20].copy_from_slice(&16u32.to_le_bytes());
        entry[20..24].copy_from_slice(&data_at.to_le_bytes());
        uki.extend_from_slice(&entry);
        uki.extend_from_slice(b"quiet a=b\0\0\0\0\0\0\0");
        assert_eq!(pe_section(&uki, ".cmdline"), Some(&b"quiet a=b"[..]));
        assert_eq!(pe_section(&uki, ".linux"), None);
        assert_eq!(pe_section(b"SIMUKI", ".cmdline"), None);
    }

    #[test]
    fn real_artifacts_are_checked_by_format_and_architecture() {
        let check = |bytes: &[u8], role, arch| check_artifact("x", "u", bytes, role, arch);
        assert_eq!(check(&pe(0x8664), LayerKind::Kernel, "amd64"), Ok(None));
        assert_eq!(check(&pe(0xaa64), LayerKind::Uki, "arm64"), Ok(None));
        assert!(
            check(&pe(0xaa64), LayerKind::Kernel, "amd64")
                .unwrap_err()
                .contains("built for arm64, this machine is amd64")
        );
        let mut bzimage = vec![0u8; 0x300];
        bzimage[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(check(&bzimage, LayerKind::Kernel, "amd64"), Ok(None));
        assert!(check(&bzimage, LayerKind::Kernel, "arm64").is_err());
        assert_eq!(
            check(b"07070100000001", LayerKind::Initramfs, "amd64"),
            Ok(None)
        );
        assert_eq!(
            check(&[0x1f, 0x8b, 8, 0], LayerKind::Initramfs, "amd64"),
            Ok(None)
        );
        assert_eq!(
            check(&[0x28, 0xb5, 0x2f, 0xfd, 0], LayerKind::Initramfs, "amd64"),
            Ok(None)
        );
        assert_eq!(check(b"hsqs\0\0", LayerKind::Squashfs, "amd64"), Ok(None));
        let error = check(b"<html>", LayerKind::Initramfs, "amd64").unwrap_err();
        assert!(
            error.contains("neither a generated SIMINITRD image nor an initramfs"),
            "{error}"
        );
        assert!(error.contains("starts with 3c68746d6c3e"), "{error}");
        assert!(
            check(b"MZ", LayerKind::Uki, "amd64").is_err(),
            "a truncated PE is not an EFI application"
        );
    }

    /// The machine's own kernel package, when installed (`linux-image-cloud-amd64`), passes as a kernel.
    #[test]
    fn the_installed_kernel_is_a_kernel() {
        let Some(path) = std::fs::read_dir("/boot").ok().and_then(|dir| {
            dir.filter_map(Result::ok).map(|e| e.path()).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
        }) else {
            eprintln!("skipped: no /boot/vmlinuz-* (install linux-image-cloud-amd64)");
            return;
        };
        let bytes = std::fs::read(&path).expect("readable kernel");
        assert_eq!(
            check_artifact("kernel", "file", &bytes, LayerKind::Kernel, "amd64"),
            Ok(None)
        );
        assert!(check_artifact("kernel", "file", &bytes, LayerKind::Kernel, "arm64").is_err());
    }
}
