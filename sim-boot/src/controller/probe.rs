//! The self-probe: before Ready, fetch every URL a machine will fetch, over HTTP, from the boot server,
//! and check that each answers with exactly the prepared content.

use sha2::{Digest, Sha256};

use super::prepare::BootModes;
use crate::http_client::HttpClient;
use crate::ignition;
use crate::oci::Layer;
use crate::records::BootRecord;
use crate::serve::script;

/// Fetches what a machine would, for the record's generation.
pub async fn self_probe(
    http: &HttpClient,
    base: &str,
    record: &BootRecord,
    modes: BootModes,
) -> Result<(), String> {
    let uuid = &record.system_uuid;
    if modes.ipxe {
        let script_url = format!("{base}/ipxe/{uuid}");
        let body = fetch_ok(http, &script_url).await?;
        let text = String::from_utf8_lossy(&body);
        for layer in [&record.kernel, &record.initramfs].into_iter().flatten() {
            let url = script::artifact_url(base, record, layer);
            if !text.contains(&url) {
                return Err(format!(
                    "{script_url} does not reference {url} (it serves another generation)"
                ));
            }
            fetch_layer(http, &url, layer).await?;
        }
        if let Some(squashfs) = &record.squashfs {
            fetch_layer(
                http,
                &script::artifact_url(base, record, squashfs),
                squashfs,
            )
            .await?;
        }
    }
    if let Some(expected) = &record.ignition {
        let url = format!("{base}/ignition/{uuid}");
        let body = fetch_ok(http, &url).await?;
        if ignition::hash(&body) != ignition::hash(expected) {
            return Err(format!(
                "{url} serves {} instead of the prepared ignition {}",
                ignition::hash(&body),
                ignition::hash(expected)
            ));
        }
    }
    if modes.http
        && let Some(uki) = &record.uki
    {
        let lookup = format!("{base}/httpboot?uuid={uuid}");
        let body = fetch_ok(http, &lookup).await?;
        let answer: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("{lookup}: not JSON: {e}"))?;
        let expected = script::uki_url(base, record, uki);
        if answer["UKIURL"].as_str() != Some(expected.as_str()) {
            return Err(format!(
                "{lookup} names UKI {} instead of {expected}",
                answer["UKIURL"]
            ));
        }
        fetch_layer(http, &expected, uki).await?;
    }
    Ok(())
}

async fn fetch_ok(http: &HttpClient, url: &str) -> Result<bytes::Bytes, String> {
    let response = http.get(url).await?;
    if !response.status.is_success() {
        let body = String::from_utf8_lossy(&response.body);
        return Err(format!(
            "GET {url} answered {}: {}",
            response.status,
            body.trim()
        ));
    }
    Ok(response.body)
}

async fn fetch_layer(http: &HttpClient, url: &str, layer: &Layer) -> Result<(), String> {
    let body = fetch_ok(http, url).await?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    if body.len() as u64 != layer.size || digest != layer.digest {
        return Err(format!(
            "GET {url} returned {} bytes hashing to {digest}; expected {} bytes {}",
            body.len(),
            layer.size,
            layer.digest
        ));
    }
    Ok(())
}
