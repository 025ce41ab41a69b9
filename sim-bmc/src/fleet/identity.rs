//! Deterministic identities (UUIDs, MACs, serial numbers) derived from the fleet seed.

use sha2::{Digest, Sha256};

use crate::vendor::Vendor;

fn bytes(seed: u64, parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

/// A version-4-shaped UUID that depends only on the seed and `parts`.
pub fn uuid(seed: u64, parts: &[&str]) -> String {
    let b = bytes(seed, parts);
    let mut u = [0u8; 16];
    u.copy_from_slice(&b[..16]);
    uuid::Builder::from_random_bytes(u).into_uuid().to_string()
}

/// A MAC under `prefix` (three octets); the other three come from the seed.
pub fn mac(seed: u64, prefix: &str, parts: &[&str]) -> String {
    let b = bytes(seed, parts);
    format!("{prefix}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2]).to_ascii_lowercase()
}

/// A serial number in the vendor's usual shape (Dell: 7-character service tag).
pub fn serial(seed: u64, vendor: Vendor, parts: &[&str]) -> String {
    const ALNUM: &[u8] = b"0123456789BCDFGHJKLMNPQRSTVWXYZ";
    let b = bytes(seed, parts);
    let tag = |n: usize| {
        b.iter()
            .take(n)
            .map(|x| ALNUM[*x as usize % ALNUM.len()] as char)
            .collect::<String>()
    };
    match vendor {
        Vendor::Dell => tag(7),
        Vendor::Hpe => format!("CZ{}", tag(8)),
        Vendor::Lenovo => format!("J30{}", tag(5)),
        Vendor::Supermicro => format!("S{}", tag(9)),
        Vendor::Ami => format!("AMI{}", tag(8)),
    }
}
