//! OCI and boot-operator media types.

use super::catalog::{LayerKind, MediaStyle};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

pub const KERNEL: &str = "application/vnd.ironcore.image.kernel";
pub const INITRAMFS: &str = "application/vnd.ironcore.image.initramfs";
pub const SQUASHFS: &str = "application/vnd.ironcore.image.squashfs";
pub const UKI: &str = "application/vnd.ironcore.image.uki";
pub const LEGACY_KERNEL: &str = "application/io.gardenlinux.kernel";
pub const LEGACY_INITRD: &str = "application/io.gardenlinux.initrd";
pub const LEGACY_SQUASHFS: &str = "application/io.gardenlinux.squashfs";

/// The media type a generated layer of `kind` gets in `style`.
pub fn for_layer(kind: LayerKind, style: MediaStyle) -> &'static str {
    match (kind, style) {
        (LayerKind::Kernel, MediaStyle::Ironcore) => KERNEL,
        (LayerKind::Initramfs, MediaStyle::Ironcore) => INITRAMFS,
        (LayerKind::Squashfs, MediaStyle::Ironcore) => SQUASHFS,
        (LayerKind::Kernel, MediaStyle::GardenLinux) => LEGACY_KERNEL,
        (LayerKind::Initramfs, MediaStyle::GardenLinux) => LEGACY_INITRD,
        (LayerKind::Squashfs, MediaStyle::GardenLinux) => LEGACY_SQUASHFS,
        (LayerKind::Uki, _) => UKI,
    }
}

/// The layer kind a media type denotes, accepting both the current and the legacy names.
pub fn layer_kind(media_type: &str) -> Option<LayerKind> {
    match media_type {
        KERNEL | LEGACY_KERNEL => Some(LayerKind::Kernel),
        INITRAMFS | LEGACY_INITRD => Some(LayerKind::Initramfs),
        SQUASHFS | LEGACY_SQUASHFS => Some(LayerKind::Squashfs),
        UKI => Some(LayerKind::Uki),
        _ => None,
    }
}
