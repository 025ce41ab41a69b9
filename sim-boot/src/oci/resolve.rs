//! Resolving an image reference to the layers a machine boots: manifest (or index → per-architecture
//! manifest) selection, layer selection by media type, and verified blob download.
//!
//! [`ImageResolver`] is the seam: [`OciClientResolver`] drives the `oci-client` crate, whose transport is a
//! private `reqwest` client and cannot be replaced by a tower `Service`, so it always uses real sockets.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

use super::reference::ImageRef;
use boot_image::{LayerKind, media, sha256_digest};

/// One selected layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub kind: LayerKind,
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// The result of resolving a reference for one architecture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImage {
    pub image: ImageRef,
    pub architecture: String,
    /// The digest the reference points at (an index or a manifest).
    pub top_digest: String,
    /// The platform manifest's digest.
    pub manifest_digest: String,
    pub layers: BTreeMap<LayerKey, Layer>,
}

/// `LayerKind` ordered, for map keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LayerKey {
    Kernel,
    Initramfs,
    Squashfs,
    Uki,
}

impl From<LayerKind> for LayerKey {
    fn from(kind: LayerKind) -> Self {
        match kind {
            LayerKind::Kernel => LayerKey::Kernel,
            LayerKind::Initramfs => LayerKey::Initramfs,
            LayerKind::Squashfs => LayerKey::Squashfs,
            LayerKind::Uki => LayerKey::Uki,
        }
    }
}

impl ResolvedImage {
    pub fn layer(&self, kind: LayerKind) -> Option<&Layer> {
        self.layers.get(&kind.into())
    }
}

/// Why resolution failed; each kind maps to a stable condition reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("image {image} was not found in its registry: {detail}")]
    NotFound { image: String, detail: String },
    #[error("registry for {image} could not be reached or answered an error: {detail}")]
    Registry { image: String, detail: String },
    #[error(
        "image {image} has no manifest for architecture {architecture} (it offers: {available})"
    )]
    NoManifestForArchitecture {
        image: String,
        architecture: String,
        available: String,
    },
    #[error("image {image} ({architecture}) has a malformed manifest: {detail}")]
    Malformed {
        image: String,
        architecture: String,
        detail: String,
    },
    #[error("blob {digest} of {image} could not be downloaded: {detail}")]
    BlobUnavailable {
        image: String,
        digest: String,
        detail: String,
    },
    #[error("blob {digest} of {image} does not match its digest or size: {detail}")]
    BlobCorrupt {
        image: String,
        digest: String,
        detail: String,
    },
}

impl ResolveError {
    /// [`ResolveError::Registry`] for `image`.
    pub(super) fn registry(image: &ImageRef, detail: impl Into<String>) -> Self {
        Self::Registry {
            image: image.canonical().to_string(),
            detail: detail.into(),
        }
    }

    /// [`ResolveError::NotFound`] for `image`.
    pub(super) fn not_found(image: &ImageRef, detail: impl Into<String>) -> Self {
        Self::NotFound {
            image: image.canonical().to_string(),
            detail: detail.into(),
        }
    }
}

/// A manifest's JSON, paired with the digest its bytes were checked against.
pub(super) fn parse_manifest(
    image: &ImageRef,
    bytes: &[u8],
    digest: String,
) -> Result<(Value, String), ResolveError> {
    let value = serde_json::from_slice(bytes)
        .map_err(|e| ResolveError::registry(image, format!("manifest is not JSON: {e}")))?;
    Ok((value, digest))
}

/// Resolves references and downloads blobs.
pub trait ImageResolver: Send + Sync + 'static {
    fn resolve(
        &self,
        image: ImageRef,
        architecture: String,
    ) -> BoxFuture<'static, Result<ResolvedImage, ResolveError>>;
    fn fetch_blob(
        &self,
        image: ImageRef,
        layer: Layer,
    ) -> BoxFuture<'static, Result<Bytes, ResolveError>>;
}

/// A resolver's two steps on an owned handle (a cheap clone), so that their futures are `'static`;
/// the one [`ImageResolver`] impl boxes them for every resolver.
pub(crate) trait OwnedResolver: Clone + Send + Sync + 'static {
    fn resolve_owned(
        self,
        image: ImageRef,
        architecture: String,
    ) -> impl Future<Output = Result<ResolvedImage, ResolveError>> + Send;
    fn fetch_owned(
        self,
        image: ImageRef,
        layer: Layer,
    ) -> impl Future<Output = Result<Bytes, ResolveError>> + Send;
}

impl<R: OwnedResolver> ImageResolver for R {
    fn resolve(
        &self,
        image: ImageRef,
        architecture: String,
    ) -> BoxFuture<'static, Result<ResolvedImage, ResolveError>> {
        Box::pin(self.clone().resolve_owned(image, architecture))
    }

    fn fetch_blob(
        &self,
        image: ImageRef,
        layer: Layer,
    ) -> BoxFuture<'static, Result<Bytes, ResolveError>> {
        Box::pin(self.clone().fetch_owned(image, layer))
    }
}

/// The `oci-client` implementation; anonymous access, plain HTTP for the listed insecure registries.
#[derive(Clone)]
pub struct OciClientResolver {
    client: Arc<Client>,
}

pub(super) const ACCEPTED: [&str; 4] = [
    media::OCI_INDEX,
    media::OCI_MANIFEST,
    media::DOCKER_MANIFEST_LIST,
    media::DOCKER_MANIFEST,
];

impl OciClientResolver {
    /// `insecure_registries` are `host:port` values reached over plain HTTP; all others use HTTPS, verified
    /// against the system roots (`SSL_CERT_FILE` is honoured).
    pub fn new(insecure_registries: Vec<String>) -> Self {
        Self::with_extra_roots(insecure_registries, Vec::new())
    }

    /// [`OciClientResolver::new`] that also trusts these PEM certificates (e.g. a test registry's CA).
    pub fn with_extra_roots(insecure_registries: Vec<String>, ca_pems: Vec<String>) -> Self {
        // reqwest is built without a bundled provider; ring is the workspace's choice.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let extra_root_certificates = ca_pems
            .into_iter()
            .map(|pem| oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data: pem.into_bytes(),
            })
            .collect();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure_registries),
            extra_root_certificates,
            connect_timeout: Some(std::time::Duration::from_secs(5)),
            read_timeout: Some(std::time::Duration::from_secs(30)),
            ..Default::default()
        };
        Self {
            client: Arc::new(Client::new(config)),
        }
    }

    fn reference(image: &ImageRef) -> Result<Reference, ResolveError> {
        image
            .oci()
            .cloned()
            .ok_or_else(|| ResolveError::not_found(image, "not a valid OCI reference"))
    }

    async fn pull_json(
        &self,
        image: &ImageRef,
        reference: &Reference,
    ) -> Result<(Value, String), ResolveError> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(reference, &RegistryAuth::Anonymous, &ACCEPTED)
            .await
            .map_err(|e| classify(image, e))?;
        if sha256_digest(&bytes) != digest {
            return Err(ResolveError::registry(
                image,
                format!("manifest bytes do not hash to {digest}"),
            ));
        }
        parse_manifest(image, &bytes, digest)
    }
}

impl OwnedResolver for OciClientResolver {
    async fn resolve_owned(
        self,
        image: ImageRef,
        architecture: String,
    ) -> Result<ResolvedImage, ResolveError> {
        let reference = Self::reference(&image)?;
        let (this, image_ref, reference) = (&self, &image, &reference);
        let pull = move |digest: Option<String>| async move {
            match digest {
                None => this.pull_json(image_ref, reference).await,
                Some(digest) => {
                    let by_digest = Reference::with_digest(
                        reference.registry().into(),
                        reference.repository().into(),
                        digest,
                    );
                    this.pull_json(image_ref, &by_digest).await
                }
            }
        };
        resolve_with(image_ref, &architecture, pull).await
    }

    async fn fetch_owned(self, image: ImageRef, layer: Layer) -> Result<Bytes, ResolveError> {
        let reference = Self::reference(&image)?;
        let mut out: Vec<u8> = Vec::with_capacity(layer.size as usize);
        self.client
            .pull_blob(&reference, layer.digest.as_str(), &mut out)
            .await
            .map_err(|e| ResolveError::BlobUnavailable {
                image: image.canonical().to_string(),
                digest: layer.digest.clone(),
                detail: describe(&e),
            })?;
        check_blob(&image, layer, Bytes::from(out))
    }
}

fn describe(error: &OciDistributionError) -> String {
    match error {
        OciDistributionError::RegistryError { envelope, url } => {
            let codes: Vec<_> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect();
            format!("{} ({url})", codes.join("; "))
        }
        other => other.to_string(),
    }
}

fn classify(image: &ImageRef, error: OciDistributionError) -> ResolveError {
    let detail = describe(&error);
    let not_found = matches!(&error, OciDistributionError::ImageManifestNotFoundError(_))
        || matches!(&error, OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| matches!(format!("{:?}", e.code).as_str(), "ManifestUnknown" | "NameUnknown")));
    if not_found {
        ResolveError::not_found(image, detail)
    } else {
        ResolveError::registry(image, detail)
    }
}

/// The resolution both resolvers share: the reference's manifest or index (`pull(None)`), from an index the
/// architecture's manifest (`pull(Some(digest))`), then its boot layers.
pub(super) async fn resolve_with<F, Fut>(
    image: &ImageRef,
    architecture: &str,
    pull: F,
) -> Result<ResolvedImage, ResolveError>
where
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Value, String), ResolveError>>,
{
    let (top, top_digest) = pull(None).await?;
    let (manifest, manifest_digest) = if is_index(&top) {
        let digest = select_manifest(image, &top, architecture)?;
        pull(Some(digest)).await?
    } else {
        (top, top_digest.clone())
    };
    let layers = select_layers(image, architecture, &manifest)?;
    Ok(ResolvedImage {
        image: image.clone(),
        architecture: architecture.to_string(),
        top_digest,
        manifest_digest,
        layers,
    })
}

/// A downloaded blob must be the manifest's: its digest and its size.
pub(super) fn check_blob(
    image: &ImageRef,
    layer: Layer,
    bytes: Bytes,
) -> Result<Bytes, ResolveError> {
    let actual = sha256_digest(&bytes);
    if actual != layer.digest || bytes.len() as u64 != layer.size {
        return Err(ResolveError::BlobCorrupt {
            image: image.canonical().to_string(),
            digest: layer.digest,
            detail: format!(
                "got {} bytes hashing to {actual}, manifest says {} bytes",
                bytes.len(),
                layer.size
            ),
        });
    }
    Ok(bytes)
}

pub(super) fn is_index(value: &Value) -> bool {
    value.get("manifests").is_some()
        || matches!(
            value["mediaType"].as_str(),
            Some(media::OCI_INDEX | media::DOCKER_MANIFEST_LIST)
        )
}

/// boot-operator's order: the legacy GardenLinux `cname`/`architecture` annotations first, then
/// `platform.architecture`.
pub(super) fn select_manifest(
    image: &ImageRef,
    index: &Value,
    architecture: &str,
) -> Result<String, ResolveError> {
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let legacy = entries.iter().find(|e| {
        e["annotations"]["cname"]
            .as_str()
            .is_some_and(|c| c.starts_with("metal_pxe"))
            && e["annotations"]["architecture"].as_str() == Some(architecture)
    });
    let by_platform = || {
        entries
            .iter()
            .find(|e| e["platform"]["architecture"].as_str() == Some(architecture))
    };
    match legacy
        .or_else(by_platform)
        .and_then(|e| e["digest"].as_str())
    {
        Some(digest) => Ok(digest.to_string()),
        None => {
            let available: Vec<_> = entries
                .iter()
                .filter_map(|e| e["platform"]["architecture"].as_str())
                .collect();
            Err(ResolveError::NoManifestForArchitecture {
                image: image.canonical().to_string(),
                architecture: architecture.into(),
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available.join(", ")
                },
            })
        }
    }
}

pub(super) fn select_layers(
    image: &ImageRef,
    architecture: &str,
    manifest: &Value,
) -> Result<BTreeMap<LayerKey, Layer>, ResolveError> {
    let malformed = |detail: String| ResolveError::Malformed {
        image: image.canonical().to_string(),
        architecture: architecture.into(),
        detail,
    };
    let layers = manifest["layers"]
        .as_array()
        .ok_or_else(|| malformed("no layers array".into()))?;
    let mut selected = BTreeMap::new();
    for layer in layers {
        let media_type = layer["mediaType"].as_str().unwrap_or_default();
        let Some(kind) = media::layer_kind(media_type) else {
            continue;
        };
        let digest = layer["digest"]
            .as_str()
            .ok_or_else(|| malformed(format!("{media_type} layer has no digest")))?;
        let size = layer["size"]
            .as_u64()
            .ok_or_else(|| malformed(format!("{media_type} layer has no size")))?;
        // The first layer of a kind wins, as in boot-operator.
        selected.entry(kind.into()).or_insert(Layer {
            kind,
            media_type: media_type.into(),
            digest: digest.into(),
            size,
        });
    }
    Ok(selected)
}
