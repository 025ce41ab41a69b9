//! OCI and boot-operator media types, and the boot artifact each layer media type denotes.

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

/// Which boot artifact a layer carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    Kernel,
    Initramfs,
    Squashfs,
    Uki,
}

impl LayerKind {
    pub const ALL: [LayerKind; 4] = [
        LayerKind::Kernel,
        LayerKind::Initramfs,
        LayerKind::Squashfs,
        LayerKind::Uki,
    ];
    pub const PXE: [LayerKind; 3] = [LayerKind::Kernel, LayerKind::Initramfs, LayerKind::Squashfs];

    /// The magic word that starts a generated artifact of this kind (see [`crate::header`]).
    pub fn magic(self) -> &'static str {
        match self {
            LayerKind::Kernel => "SIMKERNEL",
            LayerKind::Initramfs => "SIMINITRD",
            LayerKind::Squashfs => "SIMSQUASHFS",
            LayerKind::Uki => "SIMUKI",
        }
    }

    /// The kind whose magic word is `magic`.
    pub fn from_magic(magic: &str) -> Option<LayerKind> {
        LayerKind::ALL.into_iter().find(|k| k.magic() == magic)
    }
}

/// Which family of media types the layers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaStyle {
    /// `application/vnd.ironcore.image.*` (current boot-operator).
    Ironcore,
    /// `application/io.gardenlinux.*` (legacy; no UKI type exists, so UKI layers use the ironcore type).
    GardenLinux,
}

/// The media type a layer of `kind` gets in `style`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_and_magic_words_round_trip() {
        for kind in LayerKind::ALL {
            for style in [MediaStyle::Ironcore, MediaStyle::GardenLinux] {
                assert_eq!(layer_kind(for_layer(kind, style)), Some(kind));
            }
            assert_eq!(LayerKind::from_magic(kind.magic()), Some(kind));
        }
        assert_eq!(layer_kind(OCI_CONFIG), None);
        assert_eq!(LayerKind::from_magic("SIMFOO"), None);
    }
}
