//! The firmware: [`Netboot`] implements `sim_bmc::boot::NetworkBoot`. PXE fetches and runs the iPXE script
//! named by the DHCP answer; UEFI HTTP boot fetches a UKI (directly or via a boot-operator `/httpboot`
//! answer). Every download is verified; then the OS comes up (see [`crate::os`]).

use std::sync::Arc;

use futures::future::BoxFuture;
use sim_bmc::boot::{ArtifactKind, BootOutcome, BootTarget, NetworkBoot, NetworkBootRequest};

use crate::ipxe::{self, Builtins, Download, Fetcher};
use crate::options::NetbootOptions;
use crate::os::{self, Kernel};
use crate::verify::{self, artifact, check_artifact, check_download};
use boot_image::{ArtifactHeader, LayerKind};
use http_client::HttpClient;

/// The firmware boot client for a fleet (`FleetOptions { network_boot: Some(Arc::new(Netboot::new(..))) }`).
#[derive(Clone)]
pub struct Netboot {
    options: Arc<NetbootOptions>,
}

impl Netboot {
    pub fn new(options: NetbootOptions) -> Self {
        Self {
            options: Arc::new(options),
        }
    }

    pub fn options(&self) -> &NetbootOptions {
        &self.options
    }
}

impl NetworkBoot for Netboot {
    fn boot(&self, req: NetworkBootRequest) -> BoxFuture<'static, BootOutcome> {
        let this = self.clone();
        Box::pin(async move {
            let result = match req.target {
                BootTarget::Pxe => this.pxe(&req).await,
                BootTarget::UefiHttp => this.http_boot(&req).await,
            };
            match result {
                Ok(os) => BootOutcome::Booted(os),
                Err(reason) => BootOutcome::Failed { reason },
            }
        })
    }
}

/// Downloads with the firmware's checks.
struct Downloader<'a> {
    http: &'a HttpClient,
}

impl Fetcher for Downloader<'_> {
    fn fetch<'b>(&'b self, url: &'b str) -> BoxFuture<'b, Result<Download, String>> {
        Box::pin(async move {
            let response = self.http.get(url).await?;
            check_download(url, &response)
        })
    }
}

fn ipxe_arch(architecture: &str) -> String {
    match architecture {
        "amd64" => "x86_64".into(),
        other => other.into(),
    }
}

impl Netboot {
    async fn pxe(&self, req: &NetworkBootRequest) -> Result<sim_bmc::boot::BootedOs, String> {
        let url = req
            .boot_url
            .as_deref()
            .ok_or("PXE-E51: no DHCP offer with a boot file received")?;
        let downloader = Downloader {
            http: &self.options.http,
        };
        let script = downloader
            .fetch(url)
            .await
            .map_err(|e| format!("PXE: fetching the boot script failed: {e}"))?;
        let builtins = Builtins {
            uuid: req.system_uuid.clone(),
            mac: req.macs.first().cloned().unwrap_or_default(),
            buildarch: ipxe_arch(&req.architecture),
            platform: "efi".into(),
        };
        let text = String::from_utf8_lossy(&script.bytes);
        let selection = ipxe::run(url, &text, &builtins, &downloader)
            .await
            .map_err(|e| format!("iPXE: {e}"))?;
        let booted = &selection.kernel;
        // `chain` runs any executable: a UKI (EFI application) or a kernel; `kernel` loads a kernel.
        let (what, role, kind) = match (selection.chained, ArtifactHeader::parse(&booted.bytes)) {
            (false, _) => ("kernel", LayerKind::Kernel, ArtifactKind::Kernel),
            (true, Some(h)) if h.kind() == Some(LayerKind::Kernel) => {
                ("kernel", LayerKind::Kernel, ArtifactKind::Kernel)
            }
            (true, _) => ("UKI", LayerKind::Uki, ArtifactKind::Uki),
        };
        let header = check_artifact(what, &booted.url, &booted.bytes, role, &req.architecture)?;
        let mut artifacts = vec![artifact(
            &booted.url,
            &booted.sha256,
            booted.bytes.len(),
            kind,
        )];
        if role == LayerKind::Kernel && selection.initrds.is_empty() {
            return Err(format!(
                "iPXE: kernel {} booted without an initrd: kernel panic, no root filesystem",
                booted.url
            ));
        }
        for initrd in &selection.initrds {
            check_artifact(
                "initrd",
                &initrd.url,
                &initrd.bytes,
                LayerKind::Initramfs,
                &req.architecture,
            )?;
            artifacts.push(artifact(
                &initrd.url,
                &initrd.sha256,
                initrd.bytes.len(),
                ArtifactKind::Initrd,
            ));
        }
        let mut args = booted.args.clone();
        if role == LayerKind::Uki && args.is_empty() {
            args = uki_cmdline(&booted.url, &booted.bytes, header.as_ref(), req);
        }
        let kernel = Kernel {
            image: header.map(|h| h.image).unwrap_or_default(),
            digest: booted.sha256.clone(),
            args,
            artifacts,
        };
        os::start(&self.options, req, kernel).await
    }

    async fn http_boot(&self, req: &NetworkBootRequest) -> Result<sim_bmc::boot::BootedOs, String> {
        let url = req
            .boot_url
            .as_deref()
            .ok_or("HTTP boot: no DHCP offer with a boot URI received")?;
        let downloader = Downloader {
            http: &self.options.http,
        };
        let first = downloader
            .fetch(url)
            .await
            .map_err(|e| format!("HTTP boot: {e}"))?;
        // A boot-operator `/httpboot` answer names the UKI; anything else is the UKI itself.
        let (uki_url, uki) = match serde_json::from_slice::<serde_json::Value>(&first.bytes) {
            Ok(answer) => {
                let uki_url = answer["UKIURL"]
                    .as_str()
                    .ok_or_else(|| format!("HTTP boot: {url} answered JSON without UKIURL"))?
                    .to_string();
                let bytes = downloader
                    .fetch(&uki_url)
                    .await
                    .map_err(|e| format!("HTTP boot: {e}"))?;
                (uki_url, bytes)
            }
            Err(_) => (url.to_string(), first),
        };
        let header = check_artifact(
            "UKI",
            &uki_url,
            &uki.bytes,
            LayerKind::Uki,
            &req.architecture,
        )?;
        let kernel = Kernel {
            args: uki_cmdline(&uki_url, &uki.bytes, header.as_ref(), req),
            image: header.map(|h| h.image).unwrap_or_default(),
            digest: uki.sha256.clone(),
            artifacts: vec![artifact(
                &uki_url,
                &uki.sha256,
                uki.bytes.len(),
                ArtifactKind::Uki,
            )],
        };
        os::start(&self.options, req, kernel).await
    }
}

/// A UKI's kernel command line: the generated header's `cmdline=`, or a real UKI's `.cmdline` section, with
/// `${uuid}` and `${boot-server}` (the UKI's origin) filled in.
fn uki_cmdline(
    url: &str,
    bytes: &[u8],
    header: Option<&ArtifactHeader>,
    req: &NetworkBootRequest,
) -> Vec<String> {
    let cmdline = match header {
        Some(h) => h.cmdline.clone().unwrap_or_default(),
        None => verify::pe_section(bytes, ".cmdline")
            .map(|s| {
                String::from_utf8_lossy(s)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .unwrap_or_default(),
    };
    let origin = url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let args = ipxe::expand(&cmdline, |name| match name {
        "uuid" => Some(req.system_uuid.clone()),
        "boot-server" => Some(origin.clone()),
        _ => None,
    });
    args.split_whitespace().map(str::to_string).collect()
}
