//! `BMCSecret`: BMC credentials, shaped like a core Secret (no spec or status).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use macro_rules_attribute::apply;

use crate::kind::metal_kind;

/// The Secret-shaped top-level fields of a BMCSecret.
///
/// Credentials live under the keys [`crate::constants::BMC_SECRET_USERNAME_KEY`] and
/// [`crate::constants::BMC_SECRET_PASSWORD_KEY`], in `data` or, failing that, `stringData`.
#[apply(metal_kind!)]
#[kube(
    kind = "BMCSecret",
    shortname = "bmcsec",
    no_spec,
    derive = "Default",
    doc = "BMCSecret is the Schema for the bmcsecrets API"
)]
#[derive(Default)]
pub struct BMCSecretFields {
    /// Immutable, if true, ensures the data cannot be updated (only metadata can change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// Data contains the secret data, base64-encoded on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::byte_map")]
    pub data: Option<BTreeMap<String, ByteString>>,
    /// StringData is a write-only convenience merged into `data` by the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_data: Option<BTreeMap<String, String>>,
    /// Type is used to facilitate programmatic handling of secret data.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

impl BMCSecret {
    /// The value stored under `key`: from `data`, else from `stringData`.
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        let fields = &self.spec;
        fields
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .map(|bytes| bytes.0.clone())
            .or_else(|| {
                let string_data = fields.string_data.as_ref()?;
                string_data.get(key).map(|s| s.as_bytes().to_vec())
            })
    }

    /// The (username, password) pair, when both keys are present and valid UTF-8.
    pub fn credentials(&self) -> Option<(String, String)> {
        let username =
            String::from_utf8(self.value(crate::constants::BMC_SECRET_USERNAME_KEY)?).ok()?;
        let password =
            String::from_utf8(self.value(crate::constants::BMC_SECRET_PASSWORD_KEY)?).ok()?;
        Some((username, password))
    }
}
