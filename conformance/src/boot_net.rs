//! The boot profile's machine: a simulated firmware (the `netboot` crate behind sim-bmc's `NetworkBoot` seam) that
//! boots from the backend's boot URL, plus the registry lookups that say what a correct boot of an image delivers:
//! the digest of every boot layer of the image's manifest for the machine's architecture.

use crate::target::{ArtifactKind, BootResult, ExpectedImage, ExpectedLayer, MachineBoot};
use anyhow::Context as _;
use base64::Engine as _;
use futures::future::BoxFuture;
use http_client::{Fetched, HttpClient};
use serde_json::Value;
use sim_bmc::boot::{BootOutcome, BootTarget, NetworkBoot, NetworkBootRequest};
use sim_boot::oci::LayerKind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Architecture the simulated machines report (every built-in image has it).
const ARCHITECTURE: &str = "amd64";
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Most platform manifests of one index the oracle reads (an index lists a handful of platforms).
const MAX_PLATFORM_MANIFESTS: usize = 16;

/// Credentials for a registry that asks for them.
#[derive(Clone)]
pub enum RegistryCredentials {
    /// Answers a `Basic` challenge, and authenticates at a `Bearer` challenge's token service.
    Basic { username: String, password: String },
    /// A token sent as `Authorization: Bearer` whenever the registry challenges.
    Token(String),
}

/// How the oracle reaches registries. The default is today's: plain `http://` over real sockets, anonymous.
#[derive(Clone)]
pub struct RegistryAccess {
    /// `http` or `https` (the client must then speak TLS and trust the registry's CA).
    pub scheme: String,
    pub client: HttpClient,
    pub credentials: Option<RegistryCredentials>,
}

impl Default for RegistryAccess {
    fn default() -> Self {
        RegistryAccess {
            scheme: "http".into(),
            client: HttpClient::hyper().with_timeout(HTTP_TIMEOUT),
            credentials: None,
        }
    }
}

/// A machine that boots through `boot` with its boot URL rendered from `template` (`{uuid}` substituted).
pub struct NetBoot {
    boot: Arc<dyn NetworkBoot>,
    template: String,
    registry: RegistryAccess,
    /// `Authorization` values that answered a registry's challenge, by `registry/repository`.
    authorizations: Mutex<HashMap<String, http::HeaderValue>>,
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
            registry,
            authorizations: Mutex::default(),
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

/// The standard machine, reading expected images through `registry`.
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

/// What the boot profile's machines are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Machines {
    /// netboot's simulated firmware.
    #[default]
    Simulated,
    /// QEMU VMs: real iPXE firmware, the backend's kernel and initramfs, the OS's marker line as evidence.
    Qemu,
}

/// The built-in registries' images for `machines`: the standard ones, and for QEMU machines the test OS (the
/// Debian kernel and a busybox initramfs) under the standard OS and probe names, so a real kernel boots them.
pub fn catalog_for(machines: Machines) -> anyhow::Result<sim_boot::oci::Catalog> {
    let mut catalog = testbed::registries::BuiltinRegistries::standard_catalog();
    if machines == Machines::Qemu {
        let files = qemu_machines::testos::RealFiles::find()
            .map_err(|why| anyhow::anyhow!("--machines qemu: {why}"))?;
        qemu_machines::testos::add_to_catalog(
            &mut catalog,
            &files,
            &qemu_machines::testos::standard_images(),
        )
        .map_err(|e| anyhow::anyhow!("--machines qemu: building the test OS: {e}"))?;
    }
    Ok(catalog)
}

/// The QEMU machines a run used, for its report.
pub struct MachinesUsed(qemu_machines::QemuMachines);

impl MachinesUsed {
    /// One line: driver, accelerator, VMs and their System UUIDs, boot figures.
    pub async fn summary(&self) -> String {
        let (accel, why) = self.0.accel().await;
        let figures = self.0.figures();
        let mut ms: Vec<u128> = figures.iter().map(|f| f.to_marker.as_millis()).collect();
        ms.sort_unstable();
        let p50 = ms.get(ms.len() / 2).copied().unwrap_or_default();
        let max = ms.last().copied().unwrap_or_default();
        format!(
            "machines: qemu ({} — {why}), {} VMs booted to their marker (power-on to marker p50 {p50} ms, max {max} ms, \
             at most {} at once): {}",
            accel.as_str(),
            figures.len(),
            self.0.peak_running(),
            self.0.machines_used().join(", ")
        )
    }

    /// Writes `machines.json` next to the reports: every VM's System UUID and figures.
    pub async fn write(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        let (accel, why) = self.0.accel().await;
        let boots: Vec<Value> = self
            .0
            .figures()
            .iter()
            .map(|f| {
                serde_json::json!({
                    "systemUUID": f.uuid,
                    "powerOnToMarkerMs": f.to_marker.as_millis() as u64,
                    "rssKiB": f.rss_kib,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "driver": "qemu",
            "accel": accel.as_str(),
            "accelReason": why,
            "machines": self.0.machines_used(),
            "peakRunning": self.0.peak_running(),
            "boots": boots,
        });
        std::fs::write(dir.join("machines.json"), serde_json::to_vec_pretty(&doc)?)?;
        Ok(())
    }
}

/// The boot profile's machine for `machines`, reading expected images through `registry`.
pub async fn machine_for(
    machines: Machines,
    template: &str,
    registry: RegistryAccess,
) -> anyhow::Result<(Arc<dyn MachineBoot>, Option<MachinesUsed>)> {
    match machines {
        Machines::Simulated => Ok((network_boot_with(template, registry)?, None)),
        Machines::Qemu => {
            anyhow::ensure!(
                template.contains("{uuid}"),
                "the boot URL template {template:?} has no {{uuid}} placeholder"
            );
            let options = qemu_machines::QemuOptions::default();
            if let Some(why) = qemu_machines::RealMachines::unavailable(&options) {
                anyhow::bail!("--machines qemu: {why}");
            }
            let driver = qemu_machines::QemuMachines::start(options)
                .await
                .map_err(anyhow::Error::msg)?;
            let boot = NetBoot::with_registry(Arc::new(driver.clone()), template, registry);
            Ok((Arc::new(boot), Some(MachinesUsed(driver))))
        }
    }
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

/// Registry host and repository of a reference name, normalised as `distribution/reference` does (a name
/// without a host is on Docker Hub; one-part Hub names are under `library/`).
fn registry_and_repository(name: &str) -> (String, String) {
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let is_host = first.contains('.') || first.contains(':') || first == "localhost";
    let (host, repository) = match (is_host, rest.contains('/') || !first.is_empty()) {
        (true, _) => (first.to_string(), rest.to_string()),
        (false, true) => ("docker.io".to_string(), name.to_string()),
        (false, false) => ("docker.io".to_string(), format!("library/{name}")),
    };
    match host.as_str() {
        "docker.io" | "index.docker.io" => ("registry-1.docker.io".into(), repository),
        _ => (host, repository),
    }
}

fn artifact_kind(kind: LayerKind) -> ArtifactKind {
    match kind {
        LayerKind::Kernel => ArtifactKind::Kernel,
        LayerKind::Initramfs => ArtifactKind::Initrd,
        LayerKind::Squashfs => ArtifactKind::Squashfs,
        LayerKind::Uki => ArtifactKind::Uki,
    }
}

/// `key="value"` parameters of a `WWW-Authenticate` challenge.
fn challenge_params(params: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = params.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((v, t)) => (v, t),
                None => (quoted, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        out.insert(key, value.to_string());
        rest = tail.trim_start().trim_start_matches(',');
    }
    out
}

impl NetBoot {
    /// Sends `request` through the registry client; a transport failure is reported as `what` failing.
    async fn send(&self, request: http::request::Builder, what: &str) -> anyhow::Result<Fetched> {
        self.registry
            .client
            .send(request.body(Default::default())?)
            .await
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))
    }

    /// GETs `url` with the authorization cached for `scope_key`, answering one 401 challenge.
    async fn get_authorized(
        &self,
        url: &str,
        repository: &str,
        scope_key: &str,
    ) -> anyhow::Result<Fetched> {
        let cached = self
            .authorizations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope_key)
            .cloned();
        let mut authorization = cached;
        for attempt in 0..2 {
            let mut request = http::Request::get(url).header(http::header::ACCEPT, MANIFEST_ACCEPT);
            if let Some(value) = &authorization {
                request = request.header(http::header::AUTHORIZATION, value.clone());
            }
            let fetched = self.send(request, &format!("GET {url}")).await?;
            if fetched.status != http::StatusCode::UNAUTHORIZED || attempt == 1 {
                return Ok(fetched);
            }
            let challenge = fetched
                .headers
                .get(http::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .with_context(|| format!("GET {url}: 401 without a WWW-Authenticate challenge"))?
                .to_string();
            let value = self
                .answer(&challenge, repository)
                .await
                .with_context(|| format!("GET {url}: answering the challenge {challenge:?}"))?;
            self.authorizations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(scope_key.to_string(), value.clone());
            authorization = Some(value);
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// The `Authorization` value answering a `Basic` or `Bearer` challenge.
    async fn answer(&self, challenge: &str, repository: &str) -> anyhow::Result<http::HeaderValue> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let basic = match &self.registry.credentials {
            Some(RegistryCredentials::Basic { username, password }) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            _ => None,
        };
        let value = match (
            scheme.to_ascii_lowercase().as_str(),
            &self.registry.credentials,
        ) {
            (_, Some(RegistryCredentials::Token(token))) => format!("Bearer {token}"),
            ("basic", _) => {
                basic.context("the registry asks for Basic credentials and none were given")?
            }
            ("bearer", _) => {
                let params = challenge_params(params);
                let realm = params
                    .get("realm")
                    .context("a Bearer challenge without realm")?;
                let mut url = url::Url::parse(realm).with_context(|| format!("realm {realm:?}"))?;
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = params.get("service") {
                        query.append_pair("service", service);
                    }
                    let scope = params
                        .get("scope")
                        .cloned()
                        .unwrap_or_else(|| format!("repository:{repository}:pull"));
                    query.append_pair("scope", &scope);
                }
                let mut request = http::Request::get(url.as_str());
                if let Some(basic) = &basic {
                    request = request.header(http::header::AUTHORIZATION, basic);
                }
                let fetched = self.send(request, "token service").await?;
                anyhow::ensure!(
                    fetched.status.is_success(),
                    "token service {url}: HTTP {}",
                    fetched.status
                );
                let body: Value = serde_json::from_slice(&fetched.body)
                    .with_context(|| format!("token service {url}: not JSON"))?;
                let token = body["token"]
                    .as_str()
                    .or(body["access_token"].as_str())
                    .with_context(|| format!("token service {url}: no token in the answer"))?;
                format!("Bearer {token}")
            }
            (other, _) => anyhow::bail!("unsupported authentication scheme {other:?}"),
        };
        Ok(http::HeaderValue::from_str(&value)?)
    }

    async fn manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
    ) -> anyhow::Result<(String, Value)> {
        let scheme = &self.registry.scheme;
        let url = format!("{scheme}://{registry}/v2/{repository}/manifests/{reference}");
        let fetched = self
            .get_authorized(&url, repository, &format!("{registry}/{repository}"))
            .await?;
        anyhow::ensure!(
            fetched.status.is_success(),
            "GET {url}: HTTP {}",
            fetched.status
        );
        let digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&fetched.body))
        );
        anyhow::ensure!(
            !reference.starts_with("sha256:") || reference == digest,
            "GET {url}: the registry answered content with digest {digest}"
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
                        image: Some(os.image).filter(|i| !i.is_empty()),
                        image_digest: os.image_digest,
                        ignition_sha256: os.ignition_sha256,
                        artifacts: os.artifacts,
                    }
                }
                BootOutcome::Failed { reason } => BootResult::Failed { reason },
            })
        })
    }

    fn expected<'a>(&'a self, image: &'a str) -> BoxFuture<'a, anyhow::Result<ExpectedImage>> {
        Box::pin(async move {
            let (name, tag, digest) = split_reference(image);
            let (registry, repository) = registry_and_repository(&name);
            let reference = digest
                .clone()
                .or(tag.clone())
                .unwrap_or_else(|| "latest".into());
            let (top_digest, top) = self.manifest(&registry, &repository, &reference).await?;
            let mut digests = vec![top_digest];
            let manifests = match top.get("manifests").and_then(Value::as_array) {
                Some(entries) => {
                    // boot-operator takes the platform's manifest, or (PXE, legacy GardenLinux) the one whose
                    // annotations name the architecture: either is a correct pick.
                    let chosen: Vec<&str> = entries
                        .iter()
                        .filter(|m| {
                            m["platform"]["architecture"] == ARCHITECTURE
                                || m["annotations"]["architecture"] == ARCHITECTURE
                        })
                        .filter_map(|m| m["digest"].as_str())
                        .take(MAX_PLATFORM_MANIFESTS)
                        .collect();
                    anyhow::ensure!(
                        !chosen.is_empty(),
                        "{image}: no {ARCHITECTURE} manifest in the index"
                    );
                    let mut manifests = Vec::new();
                    for d in chosen {
                        digests.push(d.to_string());
                        manifests.push(self.manifest(&registry, &repository, d).await?.1);
                    }
                    manifests
                }
                None => vec![top],
            };
            let mut layers = Vec::new();
            for manifest in &manifests {
                for layer in manifest["layers"].as_array().into_iter().flatten() {
                    let media_type = layer["mediaType"].as_str().unwrap_or_default();
                    let (Some(kind), Some(digest)) = (
                        sim_boot::oci::media::layer_kind(media_type),
                        layer["digest"].as_str(),
                    ) else {
                        continue;
                    };
                    layers.push(ExpectedLayer {
                        media_type: media_type.into(),
                        kind: artifact_kind(kind),
                        digest: digest.into(),
                        size: layer["size"].as_u64().unwrap_or_default(),
                    });
                }
            }
            Ok(ExpectedImage {
                name,
                tag,
                architecture: ARCHITECTURE.into(),
                digests,
                layers,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Request;
    use axum::middleware::{self, Next};
    use axum::response::{IntoResponse, Response};
    use sim_boot::oci::catalog::{BlobSizes, Catalog, names};
    use sim_boot::oci::registry_server::Registry;

    /// sim-boot's registry behind `challenge`: requests without `accepted` as Authorization get a 401 with it.
    /// `/token` hands out `t0k` for `user:secret` (a Bearer challenge's token service).
    fn guarded_registry(challenge: &'static str, accepted: &'static str) -> HttpClient {
        let registry = Registry::new(Catalog::standard(3, BlobSizes::uniform(64)));
        let guard = move |request: Request, next: Next| async move {
            let authorization = request.headers().get(http::header::AUTHORIZATION).cloned();
            if request.uri().path() == "/token" {
                let basic = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("user:secret")
                );
                let query = request.uri().query().unwrap_or_default().to_string();
                return match authorization {
                    Some(v)
                        if v == basic.as_str()
                            && query.contains("scope=repository%3Aironcore%2Fos%3Apull") =>
                    {
                        r#"{"token":"t0k"}"#.into_response()
                    }
                    _ => http::StatusCode::FORBIDDEN.into_response(),
                };
            }
            if authorization.as_ref().is_some_and(|v| v == accepted) {
                return next.run(request).await;
            }
            Response::builder()
                .status(http::StatusCode::UNAUTHORIZED)
                .header(http::header::WWW_AUTHENTICATE, challenge)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        HttpClient::from_service(registry.router().layer(middleware::from_fn(guard)))
    }

    fn machine(client: HttpClient, credentials: Option<RegistryCredentials>) -> NetBoot {
        let firmware: Arc<dyn NetworkBoot> =
            Arc::new(netboot::Netboot::new(netboot::NetbootOptions::default()));
        let access = RegistryAccess {
            scheme: "http".into(),
            client,
            credentials,
        };
        NetBoot::with_registry(firmware, "http://boot/ipxe/{uuid}", access)
    }

    fn user() -> Option<RegistryCredentials> {
        Some(RegistryCredentials::Basic {
            username: "user".into(),
            password: "secret".into(),
        })
    }

    #[tokio::test]
    async fn expected_images_list_every_boot_layer_through_bearer_and_basic_challenges() {
        let image = format!("registry.test/{}", names::OS_V1);
        let bearer = guarded_registry(
            r#"Bearer realm="http://registry.test/token",service="registry.test",scope="repository:ironcore/os:pull""#,
            "Bearer t0k",
        );
        let expected = machine(bearer.clone(), user())
            .expected(&image)
            .await
            .unwrap();
        let kinds: Vec<_> = expected.layers.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                ArtifactKind::Kernel,
                ArtifactKind::Initrd,
                ArtifactKind::Squashfs,
                ArtifactKind::Uki
            ]
        );
        assert_eq!(
            expected.digests.len(),
            2,
            "the index and its amd64 manifest"
        );
        assert_eq!(expected.reference(), image);
        let error = machine(bearer, None).expected(&image).await.unwrap_err();
        assert!(format!("{error:#}").contains("token service"), "{error:#}");

        let basic_value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("user:secret")
        );
        let basic = guarded_registry(
            r#"Basic realm="registry""#,
            Box::leak(basic_value.into_boxed_str()),
        );
        let again = machine(basic.clone(), user())
            .expected(&image)
            .await
            .unwrap();
        assert_eq!(again.layers, expected.layers);
        let error = machine(basic, None).expected(&image).await.unwrap_err();
        assert!(
            format!("{error:#}").contains("asks for Basic credentials"),
            "{error:#}"
        );
    }

    #[tokio::test]
    async fn legacy_images_and_flat_manifests_resolve_their_layers() {
        let open = HttpClient::from_service(
            Registry::new(Catalog::standard(3, BlobSizes::uniform(64))).router(),
        );
        let boot = machine(open, None);
        let legacy = boot
            .expected(&format!("registry.test/{}", names::LEGACY_GARDENLINUX))
            .await
            .unwrap();
        assert_eq!(
            legacy.layers[0].media_type,
            "application/io.gardenlinux.kernel"
        );
        assert_eq!(legacy.layers[1].kind, ArtifactKind::Initrd);
        let flat = boot
            .expected(&format!("registry.test/{}", names::FLAT_AMD64))
            .await
            .unwrap();
        assert_eq!((flat.digests.len(), flat.layers.len()), (1, 4));
        let error = boot
            .expected("registry.test/ironcore/os:0.0-missing")
            .await
            .unwrap_err();
        assert!(error.to_string().contains("HTTP 404"), "{error}");
    }

    #[test]
    fn challenges_and_hub_names_parse() {
        let p = challenge_params(
            r#"realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "reg.example");
        assert_eq!(p["scope"], "repository:a/b:pull");
        assert_eq!(challenge_params("realm=x, service=y")["service"], "y");
        for (reference, registry, repository) in [
            ("ghcr.io/ironcore-dev/os", "ghcr.io", "ironcore-dev/os"),
            ("127.0.0.1:5000/os", "127.0.0.1:5000", "os"),
            ("ubuntu", "registry-1.docker.io", "library/ubuntu"),
            (
                "docker.io/gardenlinux/metal",
                "registry-1.docker.io",
                "gardenlinux/metal",
            ),
        ] {
            assert_eq!(
                registry_and_repository(reference),
                (registry.into(), repository.into()),
                "{reference}"
            );
        }
    }

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
