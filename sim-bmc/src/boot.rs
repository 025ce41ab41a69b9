//! The seam between a simulated machine's firmware and the network boot (implemented in the `netboot` crate).

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// The DHCP answer the simulated network gives a booting machine (`{uuid}` and `{mac}` are filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootNetwork {
    pub ipxe_url_template: Option<String>,
    pub http_boot_url_template: Option<String>,
}

impl BootNetwork {
    /// The boot URL template DHCP offers for `target`, if the network answers that boot at all.
    pub fn url_template(&self, target: BootTarget) -> Option<&str> {
        match target {
            BootTarget::Pxe => self.ipxe_url_template.as_deref(),
            BootTarget::UefiHttp => self.http_boot_url_template.as_deref(),
        }
    }
}

/// Which network boot the firmware attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BootTarget {
    /// Legacy/UEFI PXE (DHCP + TFTP/iPXE chain).
    Pxe,
    /// UEFI HTTP boot.
    UefiHttp,
}

/// What the firmware knows when it starts a network boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkBootRequest {
    pub system_uuid: String,
    pub macs: Vec<String>,
    /// `"amd64"` or `"arm64"`.
    pub architecture: String,
    pub target: BootTarget,
    /// The DHCP answer, rendered from the fleet's `bootNetwork` template; `None` means no DHCP server answered.
    pub boot_url: Option<String>,
}

/// The result of a network boot.
#[derive(Debug)]
pub enum BootOutcome {
    Booted(BootedOs),
    Failed { reason: String },
}

/// What a downloaded boot artifact was used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    Kernel,
    Initrd,
    /// A root filesystem the booted initramfs fetched (GardenLinux `gl.url=`).
    Squashfs,
    Uki,
    Other,
}

impl ArtifactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Kernel => "kernel",
            ArtifactKind::Initrd => "initrd",
            ArtifactKind::Squashfs => "squashfs",
            ArtifactKind::Uki => "uki",
            ArtifactKind::Other => "other",
        }
    }
}

/// One artifact the machine downloaded while booting, as verified by its firmware or OS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootArtifact {
    pub url: String,
    pub kind: ArtifactKind,
    /// `sha256:<hex>` of the bytes received.
    pub sha256: String,
    pub size: u64,
}

/// An operating system that came up from the network.
#[derive(Debug)]
pub struct BootedOs {
    /// `repository:tag` the boot artifacts name in their header (generated images); empty for real images,
    /// whose identity is their digests (see `artifacts`).
    pub image: String,
    pub image_digest: Option<String>,
    pub ignition_sha256: Option<String>,
    /// Every boot artifact downloaded, in order.
    pub artifacts: Vec<BootArtifact>,
    /// The agent the OS runs (e.g. a discovery probe); aborted on power-off or reset.
    pub os_task: Option<tokio::task::JoinHandle<()>>,
}

/// Performs a network boot for a simulated machine.
pub trait NetworkBoot: Send + Sync + 'static {
    fn boot(&self, req: NetworkBootRequest) -> BoxFuture<'static, BootOutcome>;

    /// `boot` with a log for what a real machine's console and network show (see `machine::BootLog`);
    /// the simulated firmware has nothing more to say and ignores it.
    fn boot_logged(
        &self,
        req: NetworkBootRequest,
        // A circle kept on purpose: the machine calls the boot seam, and the seam's log is the machine's own
        // handle (it writes the machine's event log and power state), so it lives where that state lives.
        log: crate::machine::BootLog,
    ) -> BoxFuture<'static, BootOutcome> {
        let _ = log;
        self.boot(req)
    }
}
