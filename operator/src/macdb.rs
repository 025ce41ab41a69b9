//! The MAC prefix database (`--mac-prefixes-file`): which BMC, protocol and default credentials a
//! MAC address prefix stands for, as upstream's `macdb.yaml`. The Endpoint reconciler reads it.

use std::path::Path;

use serde::Deserialize;

/// The MAC prefix database (`--mac-prefixes-file`), upstream's `macdb.yaml` shape.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MacDb {
    #[serde(default)]
    pub mac_prefixes: Vec<MacPrefix>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MacPrefix {
    /// A string prefix of the colon-less MAC (YAML may give it as a number, e.g. `23`).
    #[serde(deserialize_with = "string_or_number")]
    pub mac_prefix: String,
    #[serde(default)]
    pub manufacturer: String,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub protocol_scheme: Option<String>,
    #[serde(default)]
    pub port: i32,
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub default_credentials: Vec<DefaultCredential>,
    #[serde(default)]
    pub console: Option<Console>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DefaultCredential {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Console {
    #[serde(rename = "type")]
    pub type_: String,
    pub port: i32,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        N(u64),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::S(s) => s,
        Raw::N(n) => n.to_string(),
    })
}

impl MacDb {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        serde_saphyr::from_str(&text)
            .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))
    }

    /// The first `type: bmc` entry whose prefix starts the colon-less MAC (case-insensitive).
    pub fn lookup(&self, mac: &str) -> Option<&MacPrefix> {
        let mac = mac.replace([':', '-'], "").to_lowercase();
        self.mac_prefixes
            .iter()
            .find(|p| p.type_ == "bmc" && mac.starts_with(&p.mac_prefix.to_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_macdb_parses_and_matches() {
        let db: MacDb = serde_saphyr::from_str(include_str!("../config/macdb.yaml")).unwrap();
        let entry = db.lookup("23:11:8a:33:cf:ea").expect("prefix 23 matches");
        assert_eq!(entry.protocol, "RedfishWithRegistryPatch");
        assert_eq!(entry.port, 8000);
        assert_eq!(entry.default_credentials[0].username, "foo");
        assert!(db.lookup("aa:bb:cc:dd:ee:ff").is_none());
    }
}
