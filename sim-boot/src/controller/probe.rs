//! The self-probe: before Ready, fetch every URL a machine will fetch, over HTTP, from the boot server,
//! and check that each answers with exactly the prepared content.

use std::collections::HashSet;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::prepare::BootModes;
use crate::ignition;
use crate::oci::Layer;
use crate::records::BootRecord;
use crate::serve::script;
use http_client::HttpClient;

/// Digests whose bytes the boot server was already seen to serve intact. Later probes of the same digest
/// (1,000 machines booting one image) check status, Content-Length and `Docker-Content-Digest` with HEAD
/// instead of re-reading and re-hashing the bytes. Bounded: cleared when it grows past 100,000 entries.
#[derive(Debug, Default)]
pub struct VerifiedDigests(Mutex<HashSet<String>>);

impl VerifiedDigests {
    fn contains(&self, digest: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(digest)
    }

    fn insert(&self, digest: &str) {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if set.len() >= 100_000 {
            set.clear();
        }
        set.insert(digest.to_string());
    }
}

/// The HTTP client and what it has verified.
pub struct Prober<'a> {
    pub http: &'a HttpClient,
    pub verified: &'a VerifiedDigests,
    pub inflight: &'a crate::single_flight::SingleFlight<()>,
}

/// Fetches what a machine would, for the record's generation.
pub async fn self_probe(
    prober: &Prober<'_>,
    base: &str,
    record: &BootRecord,
    modes: BootModes,
) -> Result<(), String> {
    let http = prober.http;
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
            fetch_layer(prober, &url, layer).await?;
        }
        if let Some(squashfs) = &record.squashfs {
            fetch_layer(
                prober,
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
        fetch_layer(prober, &expected, uki).await?;
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

async fn fetch_layer(prober: &Prober<'_>, url: &str, layer: &Layer) -> Result<(), String> {
    if prober.verified.contains(&layer.digest) {
        return head_layer(prober.http, url, layer).await;
    }
    prober
        .inflight
        .run(&layer.digest, || read_layer(prober, url, layer))
        .await?;
    // Whoever shared another URL's full read still checks its own URL.
    head_layer(prober.http, url, layer).await
}

async fn read_layer(prober: &Prober<'_>, url: &str, layer: &Layer) -> Result<(), String> {
    let body = fetch_ok(prober.http, url).await?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    if body.len() as u64 != layer.size || digest != layer.digest {
        return Err(format!(
            "GET {url} returned {} bytes hashing to {digest}; expected {} bytes {}",
            body.len(),
            layer.size,
            layer.digest
        ));
    }
    prober.verified.insert(&layer.digest);
    Ok(())
}

async fn head_layer(http: &HttpClient, url: &str, layer: &Layer) -> Result<(), String> {
    let request = http::Request::head(url)
        .body(axum::body::Body::empty())
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let response = http.send(request).await?;
    let header = |name: &str| {
        response
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let length = header("content-length");
    let digest = header("docker-content-digest");
    if !response.status.is_success() || length != layer.size.to_string() || digest != layer.digest {
        return Err(format!(
            "HEAD {url} answered {} with Content-Length {length:?} and digest {digest:?}; expected {} bytes {}",
            response.status, layer.size, layer.digest
        ));
    }
    Ok(())
}
