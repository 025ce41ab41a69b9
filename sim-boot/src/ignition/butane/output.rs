//! The Ignition 3.x document, as serialised.

use serde::Serialize;

use super::input::{
    Dropin, Group, HttpHeader, KernelArguments, NodeUser, Proxy, Timeouts, User, Verification,
};

#[derive(Serialize)]
pub(super) struct Ignition {
    pub(super) ignition: IgnitionMeta,
    #[serde(skip_serializing_if = "Option::is_none", rename = "kernelArguments")]
    pub(super) kernel_arguments: Option<KernelArguments>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) passwd: Option<IgnPasswd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) storage: Option<IgnStorage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) systemd: Option<IgnSystemd>,
}

#[derive(Serialize)]
pub(super) struct IgnitionMeta {
    pub(super) version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) config: Option<IgnConfigRefs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) timeouts: Option<Timeouts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) security: Option<IgnSecurity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) proxy: Option<Proxy>,
}

#[derive(Serialize)]
pub(super) struct IgnConfigRefs {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) merge: Vec<IgnResource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) replace: Option<IgnResource>,
}

#[derive(Serialize)]
pub(super) struct IgnSecurity {
    pub(super) tls: IgnTls,
}

#[derive(Serialize)]
pub(super) struct IgnTls {
    #[serde(rename = "certificateAuthorities")]
    pub(super) certificate_authorities: Vec<IgnResource>,
}

#[derive(Serialize)]
pub(super) struct IgnResource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) compression: Option<String>,
    #[serde(rename = "httpHeaders", skip_serializing_if = "Vec::is_empty")]
    pub(super) http_headers: Vec<HttpHeader>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) verification: Option<Verification>,
}

#[derive(Serialize)]
pub(super) struct IgnPasswd {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) users: Vec<User>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) groups: Vec<Group>,
}

#[derive(Serialize)]
pub(super) struct IgnStorage {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) files: Vec<IgnFile>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) directories: Vec<IgnNode>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) links: Vec<IgnLink>,
}

#[derive(Serialize)]
pub(super) struct IgnNode {
    pub(super) path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) overwrite: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) mode: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) user: Option<NodeUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) group: Option<NodeUser>,
}

#[derive(Serialize)]
pub(super) struct IgnFile {
    #[serde(flatten)]
    pub(super) node: IgnNode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) contents: Option<IgnResource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) append: Vec<IgnResource>,
}

#[derive(Serialize)]
pub(super) struct IgnLink {
    pub(super) path: String,
    pub(super) target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) hard: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) overwrite: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) user: Option<NodeUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) group: Option<NodeUser>,
}

#[derive(Serialize)]
pub(super) struct IgnSystemd {
    pub(super) units: Vec<IgnUnit>,
}

#[derive(Serialize)]
pub(super) struct IgnUnit {
    pub(super) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) mask: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) contents: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) dropins: Vec<Dropin>,
}
