//! Ignition for a ServerBootConfiguration: the Secret's `ignition` key, translated from Butane when
//! `format: fcos`, served as Ignition JSON.

pub mod butane;

use sha2::{Digest, Sha256};

/// Secret key holding the ignition data.
pub const IGNITION_KEY: &str = "ignition";
/// Secret key naming the data format.
pub const FORMAT_KEY: &str = "format";
/// `format` value meaning Butane YAML (Fedora CoreOS variant).
pub const FORMAT_FCOS: &str = "fcos";

/// Produces the bytes to serve for a Secret's `ignition` and optional `format` values.
pub fn render(ignition: &[u8], format: Option<&[u8]>) -> Result<Vec<u8>, String> {
    match format.map(|f| String::from_utf8_lossy(f).trim().to_string()) {
        Some(f) if f == FORMAT_FCOS => {
            let yaml = std::str::from_utf8(ignition)
                .map_err(|e| format!("Butane config is not UTF-8: {e}"))?;
            butane::translate(yaml).map_err(|e| format!("Butane translation failed: {e}"))
        }
        _ => Ok(ignition.to_vec()),
    }
}

/// `sha256:<hex>` of served ignition bytes (what netboot records as the booted ignition).
pub fn hash(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
