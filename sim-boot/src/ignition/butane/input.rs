//! The Butane (fcos) document, as deserialised; unknown fields are rejected.

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Config {
    pub(super) variant: String,
    pub(super) version: String,
    #[serde(default)]
    pub(super) ignition: Option<IgnitionSection>,
    #[serde(default)]
    pub(super) passwd: Option<Passwd>,
    #[serde(default)]
    pub(super) storage: Option<Storage>,
    #[serde(default)]
    pub(super) systemd: Option<Systemd>,
    #[serde(default)]
    pub(super) kernel_arguments: Option<KernelArguments>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IgnitionSection {
    #[serde(default)]
    pub(super) config: Option<ConfigRefs>,
    #[serde(default)]
    pub(super) timeouts: Option<Timeouts>,
    #[serde(default)]
    pub(super) security: Option<Security>,
    #[serde(default)]
    pub(super) proxy: Option<Proxy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigRefs {
    #[serde(default)]
    pub(super) merge: Vec<Resource>,
    #[serde(default)]
    pub(super) replace: Option<Resource>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Timeouts {
    #[serde(
        default,
        rename(serialize = "httpResponseHeaders"),
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) http_response_headers: Option<i64>,
    #[serde(
        default,
        rename(serialize = "httpTotal"),
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) http_total: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Security {
    #[serde(default)]
    pub(super) tls: Option<Tls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Tls {
    #[serde(default)]
    pub(super) certificate_authorities: Vec<Resource>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Proxy {
    #[serde(
        default,
        rename(serialize = "httpProxy"),
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) http_proxy: Option<String>,
    #[serde(
        default,
        rename(serialize = "httpsProxy"),
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) https_proxy: Option<String>,
    #[serde(
        default,
        rename(serialize = "noProxy"),
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(super) no_proxy: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Resource {
    #[serde(default)]
    pub(super) source: Option<String>,
    #[serde(default)]
    pub(super) inline: Option<String>,
    #[serde(default)]
    pub(super) local: Option<String>,
    #[serde(default)]
    pub(super) compression: Option<String>,
    #[serde(default)]
    pub(super) http_headers: Vec<HttpHeader>,
    #[serde(default)]
    pub(super) verification: Option<Verification>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpHeader {
    pub(super) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) value: Option<String>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct Verification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Passwd {
    #[serde(default)]
    pub(super) users: Vec<User>,
    #[serde(default)]
    pub(super) groups: Vec<Group>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all(serialize = "camelCase"))]
pub(super) struct User {
    pub(super) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) ssh_authorized_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) uid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) gecos: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) home_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) no_create_home: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) primary_group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) no_user_group: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) no_log_init: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) shell: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) system: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) should_exist: Option<bool>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all(serialize = "camelCase"))]
pub(super) struct Group {
    pub(super) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) gid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) system: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) should_exist: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Storage {
    #[serde(default)]
    pub(super) files: Vec<File>,
    #[serde(default)]
    pub(super) directories: Vec<Directory>,
    #[serde(default)]
    pub(super) links: Vec<Link>,
    #[serde(default)]
    pub(super) disks: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub(super) raid: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub(super) filesystems: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub(super) luks: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub(super) trees: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct NodeUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) path: String,
    #[serde(default)]
    pub(super) overwrite: Option<bool>,
    #[serde(default)]
    pub(super) contents: Option<Resource>,
    #[serde(default)]
    pub(super) append: Vec<Resource>,
    #[serde(default)]
    pub(super) mode: Option<i64>,
    #[serde(default)]
    pub(super) user: Option<NodeUser>,
    #[serde(default)]
    pub(super) group: Option<NodeUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Directory {
    pub(super) path: String,
    #[serde(default)]
    pub(super) overwrite: Option<bool>,
    #[serde(default)]
    pub(super) mode: Option<i64>,
    #[serde(default)]
    pub(super) user: Option<NodeUser>,
    #[serde(default)]
    pub(super) group: Option<NodeUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Link {
    pub(super) path: String,
    pub(super) target: String,
    #[serde(default)]
    pub(super) hard: Option<bool>,
    #[serde(default)]
    pub(super) overwrite: Option<bool>,
    #[serde(default)]
    pub(super) user: Option<NodeUser>,
    #[serde(default)]
    pub(super) group: Option<NodeUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Systemd {
    #[serde(default)]
    pub(super) units: Vec<Unit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Unit {
    pub(super) name: String,
    #[serde(default)]
    pub(super) enabled: Option<bool>,
    #[serde(default)]
    pub(super) mask: Option<bool>,
    #[serde(default)]
    pub(super) contents: Option<String>,
    #[serde(default)]
    pub(super) contents_local: Option<String>,
    #[serde(default)]
    pub(super) dropins: Vec<Dropin>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Dropin {
    pub(super) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) contents: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all(serialize = "camelCase"))]
pub(super) struct KernelArguments {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) should_exist: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) should_not_exist: Vec<String>,
}
