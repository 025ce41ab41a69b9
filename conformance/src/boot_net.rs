//! The boot profile's machine: a simulated firmware (the `netboot` crate behind sim-bmc's `NetworkBoot` seam) that
//! boots from the backend's boot URL, plus the registry lookups that say what a correct boot of an image delivers.

use crate::target::{BootResult, ExpectedImage, MachineBoot};
use anyhow::Context as _;
use futures::future::BoxFuture;
use http_client::HttpClient;
use serde_json::Value;
use sim_bmc::boot::{BootOutcome, BootTarget, NetworkBoot, NetworkBootRequest};
use std::sync::Arc;
use std::time::Duration;

/// Architecture the simulated machines report (every built-in image has it).
const ARCHITECTURE: &str = "amd64";
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
const KERNEL_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.ironcore.image.kernel",
    "application/io.gardenlinux.kernel",
];
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How the oracle reaches registries: scheme and client (e.g. one trusting a per-run CA).
#[derive(Clone)]
pub struct RegistryAccess {
    pub scheme: String,
    pub client: HttpClient,
}

impl Default for RegistryAccess {
    /// Plain HTTP over sockets.
    fn default() -> Self {
        RegistryAccess {
            scheme: "http".into(),
            client: HttpClient::hyper(),
        }
    }
}

/// A machine that boots through `boot` with its boot URL rendered from `template` (`{uuid}` substituted).
pub struct NetBoot {
    boot: Arc<dyn NetworkBoot>,
    template: String,
    registry: RegistryAccess,
}

impl NetBoot {
    pub fn new(boot: Arc<dyn NetworkBoot>, template: &str) -> Self {
        Self::with_registry(boot, template, RegistryAccess::default())
    }

    pub fn with_registry(
        boot: Arc<dyn NetworkBoot>,
        template: &str,
        registry: RegistryAccess,
    ) -> Self {
        NetBoot {
            boot,
            template: template.into(),
            registry: RegistryAccess {
                client: registry.client.with_timeout(HTTP_TIMEOUT),
                ..registry
            },
        }
    }
}

/// The standard machine: netboot's firmware over real HTTP.
pub fn network_boot(
    template: &str,
    _registry: Option<std::net::SocketAddr>,
) -> anyhow::Result<Arc<dyn MachineBoot>> {
    network_boot_with(template, RegistryAccess::default())
}

/// [`network_boot`] reading images from registries through `registry`.
pub fn network_boot_with(
    template: &str,
    registry: RegistryAccess,
) -> anyhow::Result<Arc<dyn MachineBoot>> {
    anyhow::ensure!(
        template.contains("{uuid}"),
        "the boot URL template {template:?} has no {{uuid}} placeholder"
    );
    let firmware: Arc<dyn NetworkBoot> =
        Arc::new(netboot::Netboot::new(netboot::NetbootOptions::default()));
    Ok(Arc::new(NetBoot::with_registry(
        firmware, template, registry,
    )))
}

/// `registry/repository`, tag, digest of an OCI reference (the registry may carry a port).
pub fn split_reference(reference: &str) -> (String, Option<String>, Option<String>) {
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => (r, Some(d.to_string())),
        None => (reference, None),
    };
    let slash = rest.rfind('/').unwrap_or(0);
    match rest[slash..].rfind(':') {
        Some(i) => (
            rest[..slash + i].to_string(),
            Some(rest[slash + i + 1..].to_string()),
            digest,
        ),
        None => (rest.to_string(), None, digest),
    }
}

impl NetBoot {
    async fn manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
    ) -> anyhow::Result<(String, Value)> {
        let scheme = &self.registry.scheme;
        let url = format!("{scheme}://{registry}/v2/{repository}/manifests/{reference}");
        let request = http::Request::get(&url)
            .header(http::header::ACCEPT, MANIFEST_ACCEPT)
            .body(Default::default())?;
        let fetched = self
            .registry
            .client
            .send(request)
            .await
            .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
        anyhow::ensure!(
            fetched.status.is_success(),
            "GET {url}: HTTP {}",
            fetched.status
        );
        let digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&fetched.body))
        );
        Ok((
            digest,
            serde_json::from_slice(&fetched.body)
                .with_context(|| format!("GET {url}: not JSON"))?,
        ))
    }
}

impl MachineBoot for NetBoot {
    fn boot<'a>(&'a self, system_uuid: &'a str) -> BoxFuture<'a, anyhow::Result<BootResult>> {
        Box::pin(async move {
            let request = NetworkBootRequest {
                system_uuid: system_uuid.into(),
                macs: vec![],
                architecture: ARCHITECTURE.into(),
                target: BootTarget::Pxe,
                boot_url: Some(self.template.replace("{uuid}", system_uuid)),
            };
            Ok(match self.boot.boot(request).await {
                BootOutcome::Booted(os) => {
                    if let Some(task) = &os.os_task {
                        task.abort();
                    }
                    BootResult::Booted {
                        image: os.image,
                        image_digest: os.image_digest,
                        ignition_sha256: os.ignition_sha256,
                    }
                }
                BootOutcome::Failed { reason } => BootResult::Failed { reason },
            })
        })
    }

    fn expected<'a>(&'a self, image: &'a str) -> BoxFuture<'a, anyhow::Result<ExpectedImage>> {
        Box::pin(async move {
            let (name, tag, digest) = split_reference(image);
            let (registry, repository) = name
                .split_once('/')
                .with_context(|| format!("{image}: no registry host"))?;
            let reference = digest
                .clone()
                .or(tag.clone())
                .unwrap_or_else(|| "latest".into());
            let (top_digest, top) = self.manifest(registry, repository, &reference).await?;
            let mut digests = vec![top_digest];
            let manifest = match top.get("manifests").and_then(Value::as_array) {
                Some(entries) => {
                    let entry = entries
                        .iter()
                        .find(|m| m["platform"]["architecture"] == ARCHITECTURE)
                        .with_context(|| {
                            format!("{image}: no {ARCHITECTURE} manifest in the index")
                        })?;
                    let d = entry["digest"].as_str().unwrap_or_default().to_string();
                    digests.push(d.clone());
                    self.manifest(registry, repository, &d).await?.1
                }
                None => top,
            };
            for layer in manifest["layers"].as_array().into_iter().flatten() {
                if KERNEL_MEDIA_TYPES.contains(&layer["mediaType"].as_str().unwrap_or_default()) {
                    digests.extend(layer["digest"].as_str().map(String::from));
                }
            }
            Ok(ExpectedImage { name, tag, digests })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references_split_with_ports() {
        let s = |r: &str| split_reference(r);
        assert_eq!(
            s("127.0.0.1:5000/ironcore/os:1.0"),
            (
                "127.0.0.1:5000/ironcore/os".into(),
                Some("1.0".into()),
                None
            )
        );
        assert_eq!(
            s("127.0.0.1:5000/ironcore/os"),
            ("127.0.0.1:5000/ironcore/os".into(), None, None)
        );
        assert_eq!(
            s("ghcr.io/a/b:2@sha256:ff"),
            (
                "ghcr.io/a/b".into(),
                Some("2".into()),
                Some("sha256:ff".into())
            )
        );
    }
}
