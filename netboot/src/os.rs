//! The booted OS: Ignition fetches its config from `ignition.config.url` on the kernel command line (a
//! failure stops the boot, as on a real machine), then the agents the config starts run in the background.

use sim_bmc::boot::{ArtifactKind, BootArtifact, BootedOs, NetworkBootRequest};

use crate::ipxe::Download;
use crate::options::NetbootOptions;
use crate::probe;
use crate::verify::{artifact, check_artifact, check_download};
use boot_image::LayerKind;

/// What the firmware handed over.
pub struct Kernel {
    /// `repository:tag` from the kernel (or UKI) header; empty for a real kernel, which has none.
    pub image: String,
    /// `sha256:` of the kernel (or UKI) bytes.
    pub digest: String,
    pub args: Vec<String>,
    /// What the firmware downloaded (kernel, initrds or UKI).
    pub artifacts: Vec<BootArtifact>,
}

/// Runs Ignition and starts the OS's agents.
pub async fn start(
    options: &NetbootOptions,
    req: &NetworkBootRequest,
    mut kernel: Kernel,
) -> Result<BootedOs, String> {
    // A GardenLinux live initramfs fetches its root filesystem from `gl.url=` before anything else runs.
    if let Some(url) = kernel.args.iter().find_map(|a| a.strip_prefix("gl.url=")) {
        let root = download(options, url, "live boot", "the root filesystem").await?;
        check_artifact(
            "root filesystem",
            url,
            &root.bytes,
            LayerKind::Squashfs,
            &req.architecture,
        )
        .map_err(|e| format!("live boot: {e}"))?;
        let size = root.bytes.len();
        kernel
            .artifacts
            .push(artifact(url, &root.sha256, size, ArtifactKind::Squashfs));
    }
    let ignition_url = kernel
        .args
        .iter()
        .find_map(|a| a.strip_prefix("ignition.config.url="))
        .map(str::to_string);
    let (ignition, ignition_sha256) = match &ignition_url {
        None => (None, None),
        Some(url) => {
            let fetched = download(options, url, "Ignition", "config").await?;
            let config = parse_ignition(&fetched.bytes)
                .map_err(|e| format!("Ignition: config from {url} is invalid: {e}"))?;
            let digest = fetched.sha256;
            (
                Some(config),
                Some(digest.trim_start_matches("sha256:").to_string()),
            )
        }
    };
    // A real image names nothing, so only an unrestricted probe list lets it run the probe.
    let runs_probe = options.probe_images.is_empty()
        || (!kernel.image.is_empty()
            && options
                .probe_images
                .iter()
                .any(|p| kernel.image.ends_with(p.as_str()) || p.ends_with(kernel.image.as_str())));
    let os_task = match ignition
        .as_ref()
        .and_then(probe::probe_command)
        .filter(|_| runs_probe)
    {
        Some(command) => {
            let facts = options.facts.network(&req.system_uuid, &req.macs);
            Some(tokio::spawn(probe::run(
                options.http.clone(),
                command,
                facts,
                options.probe,
                options.clock,
            )))
        }
        None => None,
    };
    Ok(BootedOs {
        image: kernel.image,
        image_digest: Some(kernel.digest),
        ignition_sha256,
        artifacts: kernel.artifacts,
        os_task,
    })
}

/// A GET with the firmware's download checks; errors start with `stage` and name `what` was fetched.
async fn download(
    options: &NetbootOptions,
    url: &str,
    stage: &str,
    what: &str,
) -> Result<Download, String> {
    let response = options
        .http
        .get(url)
        .await
        .map_err(|e| format!("{stage}: fetching {what} failed: {e}"))?;
    check_download(url, &response).map_err(|e| format!("{stage}: {e}"))
}

/// Ignition accepts spec 3.x JSON only.
fn parse_ignition(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let config: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    let version = config["ignition"]["version"]
        .as_str()
        .ok_or("no ignition.version")?;
    if !version.starts_with("3.") {
        return Err(format!(
            "unsupported ignition.version {version:?} (3.x required)"
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::parse_ignition;

    #[test]
    fn ignition_must_be_spec_3_json() {
        assert!(parse_ignition(br#"{"ignition":{"version":"3.2.0"}}"#).is_ok());
        assert!(
            parse_ignition(b"variant: fcos\nversion: 1.3.0\n")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            parse_ignition(br#"{"ignition":{"version":"2.2.0"}}"#)
                .unwrap_err()
                .contains("3.x required")
        );
        assert!(
            parse_ignition(b"{}")
                .unwrap_err()
                .contains("no ignition.version")
        );
    }
}
