//! Boot images: OCI image manifests and indexes over generated, deterministic blobs, or over given blobs
//! (images built from real files, see [`Catalog::add_image_from_blobs`]).
//!
//! Generated content is derived from a seed, so two registries built with the same seed serve byte-identical
//! images (and digests), which keeps tests deterministic. The broken images exist for the negative cases.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sha2::{Digest, Sha256};

use boot_image::{ArtifactHeader, media, sha256_digest};
// Named through the catalog by the images' builders (conformance's real-image test).
pub use boot_image::{LayerKind, MediaStyle};

/// One platform-specific manifest of an image.
#[derive(Clone, Debug)]
pub struct PlatformSpec {
    pub architecture: String,
    pub layers: Vec<LayerKind>,
    pub style: MediaStyle,
    /// Layers listed in the manifest whose blobs the registry does not hold (a broken push).
    pub missing_blobs: Vec<LayerKind>,
}

impl PlatformSpec {
    pub fn full(architecture: &str) -> Self {
        Self::with_layers(architecture, &LayerKind::ALL)
    }

    pub fn with_layers(architecture: &str, layers: &[LayerKind]) -> Self {
        Self {
            architecture: architecture.into(),
            layers: layers.to_vec(),
            style: MediaStyle::Ironcore,
            missing_blobs: vec![],
        }
    }
}

/// An image to generate: an index over its platforms, or a single flat manifest when `index` is false.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub repository: String,
    pub tag: String,
    pub platforms: Vec<PlatformSpec>,
    pub index: bool,
    /// Adds the legacy GardenLinux `cname`/`architecture` annotations to index entries.
    pub legacy_annotations: bool,
}

impl ImageSpec {
    /// A multi-arch (amd64 + arm64) image index with every layer kind.
    pub fn multi_arch(repository: &str, tag: &str) -> Self {
        Self {
            repository: repository.into(),
            tag: tag.into(),
            platforms: vec![PlatformSpec::full("amd64"), PlatformSpec::full("arm64")],
            index: true,
            legacy_annotations: false,
        }
    }

    /// An amd64-only image index whose layers the caller supplies ([`Catalog::add_image_from_blobs`]).
    pub fn amd64_index(repository: &str, tag: &str) -> Self {
        Self {
            repository: repository.into(),
            tag: tag.into(),
            platforms: vec![PlatformSpec::with_layers("amd64", &[])],
            index: true,
            legacy_annotations: false,
        }
    }
}

/// Sizes of generated blobs in bytes.
#[derive(Clone, Copy, Debug)]
pub struct BlobSizes {
    pub kernel: usize,
    pub initramfs: usize,
    pub squashfs: usize,
    pub uki: usize,
}

impl Default for BlobSizes {
    fn default() -> Self {
        Self {
            kernel: 8 << 10,
            initramfs: 16 << 10,
            squashfs: 32 << 10,
            uki: 24 << 10,
        }
    }
}

impl BlobSizes {
    pub fn uniform(bytes: usize) -> Self {
        Self {
            kernel: bytes,
            initramfs: bytes,
            squashfs: bytes,
            uki: bytes,
        }
    }

    fn of(&self, kind: LayerKind) -> usize {
        match kind {
            LayerKind::Kernel => self.kernel,
            LayerKind::Initramfs => self.initramfs,
            LayerKind::Squashfs => self.squashfs,
            LayerKind::Uki => self.uki,
        }
    }
}

/// A stored manifest or index.
#[derive(Clone, Debug)]
pub struct StoredManifest {
    pub media_type: String,
    pub bytes: Bytes,
    pub digest: String,
}

/// The content of a read-only registry: repositories → tags → manifest digests, plus manifests and blobs.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    seed: u64,
    sizes: BlobSizes,
    tags: BTreeMap<String, BTreeMap<String, String>>,
    manifests: HashMap<String, StoredManifest>,
    blobs: HashMap<String, Bytes>,
}

impl Catalog {
    pub fn new(seed: u64, sizes: BlobSizes) -> Self {
        Self {
            seed,
            sizes,
            ..Default::default()
        }
    }

    /// The images sim-boot serves by default; see the crate docs for what each one is for.
    pub fn standard(seed: u64, sizes: BlobSizes) -> Self {
        let mut catalog = Self::new(seed, sizes);
        for image in standard_images() {
            catalog.add_image(&image);
        }
        catalog
    }

    /// Generates and stores an image; returns the digest its tag points at.
    pub fn add_image(&mut self, spec: &ImageSpec) -> String {
        let manifests: Vec<_> = spec
            .platforms
            .iter()
            .map(|p| {
                let layers = p
                    .layers
                    .iter()
                    .map(|&kind| {
                        let blob = self.generate_blob(spec, &p.architecture, kind);
                        (kind, blob, !p.missing_blobs.contains(&kind))
                    })
                    .collect();
                self.add_platform_manifest(&p.architecture, p.style, layers)
            })
            .collect();
        self.tag(spec, manifests)
    }

    /// Stores an image whose layers are the given blobs (say a real kernel and an initramfs built from real
    /// files) rather than generated ones: the blobs go in as they are, with no header, under `spec.tag`.
    /// `spec.platforms` gives each platform's architecture and media style; `blobs[i]` are platform `i`'s
    /// layers. Returns the digest the tag points at.
    pub fn add_image_from_blobs(
        &mut self,
        spec: &ImageSpec,
        blobs: Vec<Vec<(LayerKind, Bytes)>>,
    ) -> Result<String, String> {
        if blobs.len() != spec.platforms.len() {
            return Err(format!(
                "{}:{}: {} platforms but blobs for {}",
                spec.repository,
                spec.tag,
                spec.platforms.len(),
                blobs.len()
            ));
        }
        let manifests = spec
            .platforms
            .iter()
            .zip(blobs)
            .map(|(p, layers)| {
                let layers = layers.into_iter().map(|(k, b)| (k, b, true)).collect();
                self.add_platform_manifest(&p.architecture, p.style, layers)
            })
            .collect();
        Ok(self.tag(spec, manifests))
    }

    /// Points `spec`'s tag at its index (or its only manifest when it has none).
    fn tag(&mut self, spec: &ImageSpec, manifests: Vec<(String, StoredManifest)>) -> String {
        let top = if spec.index {
            self.add_index(spec, &manifests)
        } else {
            manifests
                .first()
                .map(|(_, m)| m.digest.clone())
                .unwrap_or_default()
        };
        self.tags
            .entry(spec.repository.clone())
            .or_default()
            .insert(spec.tag.clone(), top.clone());
        top
    }

    /// Stores a platform manifest over `layers` (kind, blob, whether the registry holds the blob).
    fn add_platform_manifest(
        &mut self,
        architecture: &str,
        style: MediaStyle,
        layers: Vec<(LayerKind, Bytes, bool)>,
    ) -> (String, StoredManifest) {
        let config = Bytes::from(
            serde_json::to_vec(&json!({
                "architecture": architecture,
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
            }))
            .expect("static JSON"),
        );
        let config_digest = sha256_digest(&config);
        self.blobs.insert(config_digest.clone(), config.clone());
        let mut entries = Vec::new();
        for (kind, blob, stored) in layers {
            let digest = sha256_digest(&blob);
            entries.push(json!({
                "mediaType": media::for_layer(kind, style),
                "digest": digest,
                "size": blob.len(),
            }));
            if stored {
                self.blobs.insert(digest, blob);
            }
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": entries,
        });
        let stored = self.store_manifest(media::OCI_MANIFEST, &manifest);
        (architecture.to_string(), stored)
    }

    fn add_index(&mut self, image: &ImageSpec, manifests: &[(String, StoredManifest)]) -> String {
        let entries: Vec<_> = manifests
            .iter()
            .map(|(arch, m)| {
                let mut entry = json!({
                    "mediaType": m.media_type,
                    "digest": m.digest,
                    "size": m.bytes.len(),
                    "platform": {"architecture": arch, "os": "linux"},
                });
                if image.legacy_annotations {
                    entry["annotations"] =
                        json!({"cname": format!("metal_pxe-{arch}"), "architecture": arch});
                }
                entry
            })
            .collect();
        let index =
            json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": entries});
        self.store_manifest(media::OCI_INDEX, &index).digest
    }

    fn store_manifest(&mut self, media_type: &str, value: &serde_json::Value) -> StoredManifest {
        let bytes = Bytes::from(serde_json::to_vec(value).expect("JSON value serialises"));
        let stored = StoredManifest {
            media_type: media_type.into(),
            digest: sha256_digest(&bytes),
            bytes,
        };
        self.manifests.insert(stored.digest.clone(), stored.clone());
        stored
    }

    /// A blob is a one-line text header (kind, architecture, image, kernel command line for UKIs) followed by
    /// pseudo-random bytes from the seed, so firmware can check what it got and digests differ per image.
    fn generate_blob(&self, image: &ImageSpec, arch: &str, kind: LayerKind) -> Bytes {
        let reference = format!("{}:{}", image.repository, image.tag);
        let cmdline = (kind == LayerKind::Uki).then_some(
            "ignition.platform.id=metal ignition.config.url=${boot-server}/ignition/${uuid}",
        );
        let header = ArtifactHeader::new(kind, arch, &reference, cmdline).render();
        let size = self.sizes.of(kind).max(header.len());
        let mut bytes = Vec::with_capacity(size);
        bytes.extend_from_slice(header.as_bytes());
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ u64_of(&Sha256::digest(header.as_bytes())));
        let mut rest = vec![0u8; size - header.len()];
        rng.fill_bytes(&mut rest);
        bytes.extend_from_slice(&rest);
        Bytes::from(bytes)
    }

    /// The manifest for `reference` (a tag or a digest) in `repository`.
    pub fn manifest(&self, repository: &str, reference: &str) -> Option<&StoredManifest> {
        let digest = if reference.starts_with("sha256:") {
            reference.to_string()
        } else {
            self.tags.get(repository)?.get(reference)?.clone()
        };
        // A digest must belong to the repository: reachable from one of its tags.
        self.repository_digests(repository)
            .contains(&digest)
            .then(|| self.manifests.get(&digest))
            .flatten()
    }

    fn repository_digests(&self, repository: &str) -> Vec<String> {
        let mut digests = Vec::new();
        for top in self
            .tags
            .get(repository)
            .into_iter()
            .flat_map(|t| t.values())
        {
            digests.push(top.clone());
            if let Some(index) = self
                .manifests
                .get(top)
                .filter(|m| m.media_type == media::OCI_INDEX)
            {
                let value: serde_json::Value =
                    serde_json::from_slice(&index.bytes).unwrap_or_default();
                for entry in value["manifests"].as_array().into_iter().flatten() {
                    if let Some(d) = entry["digest"].as_str() {
                        digests.push(d.to_string());
                    }
                }
            }
        }
        digests
    }

    pub fn has_repository(&self, repository: &str) -> bool {
        self.tags.contains_key(repository)
    }

    pub fn tags(&self, repository: &str) -> Option<Vec<String>> {
        self.tags
            .get(repository)
            .map(|t| t.keys().cloned().collect())
    }

    /// A blob by digest. Blobs are content-addressed and shared across repositories, like in a real registry
    /// with cross-repository mounts; repository membership is still checked.
    pub fn blob(&self, repository: &str, digest: &str) -> Option<&Bytes> {
        if !self.has_repository(repository) {
            return None;
        }
        self.blobs.get(digest)
    }

    /// Every repository:tag held, for listings.
    pub fn references(&self) -> Vec<String> {
        self.tags
            .iter()
            .flat_map(|(r, tags)| tags.keys().map(move |t| format!("{r}:{t}")))
            .collect()
    }
}

fn u64_of(digest: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// Repositories of the standard catalog (relative to the registry host).
pub mod names {
    /// A regular OS image, amd64 + arm64, every layer.
    pub const OS_V1: &str = "ironcore/os:1.0";
    /// The same OS, a later version (for spec-change tests).
    pub const OS_V2: &str = "ironcore/os:2.0";
    /// The discovery (probe) OS image.
    pub const PROBE: &str = "ironcore/probe-os:1.0";
    /// Legacy GardenLinux media types with `cname` annotations.
    pub const LEGACY_GARDENLINUX: &str = "gardenlinux/metal:1592.0";
    /// A flat (non-index) amd64 manifest.
    pub const FLAT_AMD64: &str = "ironcore/flat:1.0";
    /// An index whose manifests lack the kernel layer.
    pub const NO_KERNEL: &str = "broken/no-kernel:1.0";
    /// An index with only an amd64 manifest.
    pub const AMD64_ONLY: &str = "broken/amd64-only:1.0";
    /// PXE layers only, no UKI.
    pub const PXE_ONLY: &str = "broken/pxe-only:1.0";
    /// A manifest that lists an initramfs layer whose blob is absent from the registry.
    pub const MISSING_BLOB: &str = "broken/missing-blob:1.0";
}

fn split(reference: &str) -> (&str, &str) {
    reference.rsplit_once(':').expect("names carry a tag")
}

fn standard_images() -> Vec<ImageSpec> {
    let image = |reference: &str| {
        let (repository, tag) = split(reference);
        ImageSpec::multi_arch(repository, tag)
    };
    let mut legacy = image(names::LEGACY_GARDENLINUX);
    legacy.legacy_annotations = true;
    for platform in &mut legacy.platforms {
        platform.style = MediaStyle::GardenLinux;
    }
    let mut flat = image(names::FLAT_AMD64);
    flat.index = false;
    flat.platforms.truncate(1);
    let mut no_kernel = image(names::NO_KERNEL);
    for platform in &mut no_kernel.platforms {
        platform.layers.retain(|&k| k != LayerKind::Kernel);
    }
    let mut amd64_only = image(names::AMD64_ONLY);
    amd64_only.platforms.truncate(1);
    let mut pxe_only = image(names::PXE_ONLY);
    for platform in &mut pxe_only.platforms {
        platform.layers = LayerKind::PXE.to_vec();
    }
    let mut missing_blob = image(names::MISSING_BLOB);
    for platform in &mut missing_blob.platforms {
        platform.missing_blobs = vec![LayerKind::Initramfs];
    }
    vec![
        image(names::OS_V1),
        image(names::OS_V2),
        image(names::PROBE),
        legacy,
        flat,
        no_kernel,
        amd64_only,
        pxe_only,
        missing_blob,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_per_seed() {
        let a = Catalog::standard(7, BlobSizes::default());
        let b = Catalog::standard(7, BlobSizes::default());
        let c = Catalog::standard(8, BlobSizes::default());
        let (repo, tag) = split(names::OS_V1);
        let digest = |cat: &Catalog| cat.manifest(repo, tag).unwrap().digest.clone();
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&c));
    }

    #[test]
    fn manifests_by_digest_are_scoped_to_their_repository() {
        let cat = Catalog::standard(1, BlobSizes::default());
        let (repo, tag) = split(names::OS_V1);
        let digest = cat.manifest(repo, tag).unwrap().digest.clone();
        assert!(cat.manifest(repo, &digest).is_some());
        let (other, _) = split(names::PROBE);
        assert!(cat.manifest(other, &digest).is_none());
    }

    #[test]
    fn images_from_given_blobs_store_the_blobs_unchanged() {
        let mut cat = Catalog::standard(1, BlobSizes::default());
        let spec = ImageSpec {
            repository: "real/os".into(),
            tag: "1.0".into(),
            platforms: vec![PlatformSpec::with_layers("amd64", &[])],
            index: true,
            legacy_annotations: false,
        };
        let kernel = Bytes::from_static(b"MZ real kernel");
        let initrd = Bytes::from_static(b"070701 real initramfs");
        let blobs = vec![vec![
            (LayerKind::Kernel, kernel.clone()),
            (LayerKind::Initramfs, initrd.clone()),
        ]];
        let top = cat.add_image_from_blobs(&spec, blobs).unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&cat.manifest("real/os", "1.0").unwrap().bytes).unwrap();
        assert_eq!(cat.manifest("real/os", "1.0").unwrap().digest, top);
        assert_eq!(index["manifests"][0]["platform"]["architecture"], "amd64");
        let amd64 = index["manifests"][0]["digest"].as_str().unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&cat.manifest("real/os", amd64).unwrap().bytes).unwrap();
        let layers: Vec<_> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["mediaType"].as_str().unwrap().to_string(),
                    l["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            layers,
            vec![
                (media::KERNEL.to_string(), sha256_digest(&kernel)),
                (media::INITRAMFS.to_string(), sha256_digest(&initrd)),
            ]
        );
        assert_eq!(cat.blob("real/os", &sha256_digest(&kernel)), Some(&kernel));
        assert!(
            cat.add_image_from_blobs(&spec, vec![])
                .unwrap_err()
                .contains("1 platforms but blobs for 0")
        );
    }

    #[test]
    fn missing_blob_image_lists_a_layer_the_registry_lacks() {
        let cat = Catalog::standard(1, BlobSizes::default());
        let (repo, tag) = split(names::MISSING_BLOB);
        let index: serde_json::Value =
            serde_json::from_slice(&cat.manifest(repo, tag).unwrap().bytes).unwrap();
        let amd64 = index["manifests"][0]["digest"].as_str().unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&cat.manifest(repo, amd64).unwrap().bytes).unwrap();
        let missing: Vec<_> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| cat.blob(repo, l["digest"].as_str().unwrap()).is_none())
            .map(|l| l["mediaType"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(missing, vec![media::INITRAMFS.to_string()]);
    }
}
