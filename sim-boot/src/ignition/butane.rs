//! Butane (Fedora CoreOS variant) → Ignition 3.x JSON.
//!
//! Covers what discovery and typical claim configs use: `passwd` (users, groups), `storage` (files with
//! inline/source contents and appends, directories, links), `systemd` (units, drop-ins), `kernel_arguments`
//! and `ignition` (config merge/replace, timeouts, proxy, TLS CAs). Sections this translator does not handle
//! (disks, raid, filesystems, luks, trees, `local` contents) are rejected with an error instead of dropped;
//! unknown fields are rejected, like Butane's strict mode. Inline contents are not gzip-compressed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Translates a Butane YAML document to Ignition JSON bytes.
pub fn translate(yaml: &str) -> Result<Vec<u8>, String> {
    // Butane (go-yaml) reads `mode: 0644` as octal, so legacy octal numbers are on.
    let options = serde_saphyr::options! { legacy_octal_numbers: true };
    let config: Config = serde_saphyr::from_str_with_options(yaml, options)
        .map_err(|e| format!("invalid Butane YAML: {e}"))?;
    if config.variant != "fcos" {
        return Err(format!(
            "unsupported Butane variant {:?} (only \"fcos\")",
            config.variant
        ));
    }
    let version = ignition_version(&config.version)?;
    let ignition = Ignition::from_butane(config, version)?;
    serde_json::to_vec(&ignition).map_err(|e| format!("cannot encode Ignition JSON: {e}"))
}

/// The Ignition spec version each fcos Butane version produces.
fn ignition_version(butane: &str) -> Result<&'static str, String> {
    Ok(match butane {
        "1.0.0" => "3.0.0",
        "1.1.0" => "3.1.0",
        "1.2.0" | "1.3.0" => "3.2.0",
        "1.4.0" => "3.3.0",
        "1.5.0" => "3.4.0",
        "1.6.0" => "3.5.0",
        other => {
            return Err(format!(
                "unsupported fcos Butane version {other:?} (supported: 1.0.0 to 1.6.0)"
            ));
        }
    })
}

// ---- Butane input -------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    variant: String,
    version: String,
    #[serde(default)]
    ignition: Option<IgnitionSection>,
    #[serde(default)]
    passwd: Option<Passwd>,
    #[serde(default)]
    storage: Option<Storage>,
    #[serde(default)]
    systemd: Option<Systemd>,
    #[serde(default)]
    kernel_arguments: Option<KernelArguments>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IgnitionSection {
    #[serde(default)]
    config: Option<ConfigRefs>,
    #[serde(default)]
    timeouts: Option<Timeouts>,
    #[serde(default)]
    security: Option<Security>,
    #[serde(default)]
    proxy: Option<Proxy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigRefs {
    #[serde(default)]
    merge: Vec<Resource>,
    #[serde(default)]
    replace: Option<Resource>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Timeouts {
    #[serde(
        default,
        rename(serialize = "httpResponseHeaders"),
        skip_serializing_if = "Option::is_none"
    )]
    http_response_headers: Option<i64>,
    #[serde(
        default,
        rename(serialize = "httpTotal"),
        skip_serializing_if = "Option::is_none"
    )]
    http_total: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Security {
    #[serde(default)]
    tls: Option<Tls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tls {
    #[serde(default)]
    certificate_authorities: Vec<Resource>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Proxy {
    #[serde(
        default,
        rename(serialize = "httpProxy"),
        skip_serializing_if = "Option::is_none"
    )]
    http_proxy: Option<String>,
    #[serde(
        default,
        rename(serialize = "httpsProxy"),
        skip_serializing_if = "Option::is_none"
    )]
    https_proxy: Option<String>,
    #[serde(
        default,
        rename(serialize = "noProxy"),
        skip_serializing_if = "Vec::is_empty"
    )]
    no_proxy: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resource {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    inline: Option<String>,
    #[serde(default)]
    local: Option<String>,
    #[serde(default)]
    compression: Option<String>,
    #[serde(default)]
    http_headers: Vec<HttpHeader>,
    #[serde(default)]
    verification: Option<Verification>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
struct HttpHeader {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
struct Verification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Passwd {
    #[serde(default)]
    users: Vec<User>,
    #[serde(default)]
    groups: Vec<Group>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all(serialize = "camelCase"))]
struct User {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ssh_authorized_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gecos: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    home_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    no_create_home: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    primary_group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    no_user_group: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    no_log_init: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shell: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    system: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    should_exist: Option<bool>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all(serialize = "camelCase"))]
struct Group {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    system: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    should_exist: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Storage {
    #[serde(default)]
    files: Vec<File>,
    #[serde(default)]
    directories: Vec<Directory>,
    #[serde(default)]
    links: Vec<Link>,
    #[serde(default)]
    disks: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    raid: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    filesystems: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    luks: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    trees: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
struct NodeUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    path: String,
    #[serde(default)]
    overwrite: Option<bool>,
    #[serde(default)]
    contents: Option<Resource>,
    #[serde(default)]
    append: Vec<Resource>,
    #[serde(default)]
    mode: Option<i64>,
    #[serde(default)]
    user: Option<NodeUser>,
    #[serde(default)]
    group: Option<NodeUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Directory {
    path: String,
    #[serde(default)]
    overwrite: Option<bool>,
    #[serde(default)]
    mode: Option<i64>,
    #[serde(default)]
    user: Option<NodeUser>,
    #[serde(default)]
    group: Option<NodeUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    path: String,
    target: String,
    #[serde(default)]
    hard: Option<bool>,
    #[serde(default)]
    overwrite: Option<bool>,
    #[serde(default)]
    user: Option<NodeUser>,
    #[serde(default)]
    group: Option<NodeUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Systemd {
    #[serde(default)]
    units: Vec<Unit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unit {
    name: String,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    mask: Option<bool>,
    #[serde(default)]
    contents: Option<String>,
    #[serde(default)]
    contents_local: Option<String>,
    #[serde(default)]
    dropins: Vec<Dropin>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Dropin {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contents: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all(serialize = "camelCase"))]
struct KernelArguments {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    should_exist: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    should_not_exist: Vec<String>,
}

// ---- Ignition output ----------------------------------------------------------------------------

#[derive(Serialize)]
struct Ignition {
    ignition: IgnitionMeta,
    #[serde(skip_serializing_if = "Option::is_none", rename = "kernelArguments")]
    kernel_arguments: Option<KernelArguments>,
    #[serde(skip_serializing_if = "Option::is_none")]
    passwd: Option<IgnPasswd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<IgnStorage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    systemd: Option<IgnSystemd>,
}

#[derive(Serialize)]
struct IgnitionMeta {
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<IgnConfigRefs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeouts: Option<Timeouts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security: Option<IgnSecurity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy: Option<Proxy>,
}

#[derive(Serialize)]
struct IgnConfigRefs {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    merge: Vec<IgnResource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replace: Option<IgnResource>,
}

#[derive(Serialize)]
struct IgnSecurity {
    tls: IgnTls,
}

#[derive(Serialize)]
struct IgnTls {
    #[serde(rename = "certificateAuthorities")]
    certificate_authorities: Vec<IgnResource>,
}

#[derive(Serialize)]
struct IgnResource {
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compression: Option<String>,
    #[serde(rename = "httpHeaders", skip_serializing_if = "Vec::is_empty")]
    http_headers: Vec<HttpHeader>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<Verification>,
}

#[derive(Serialize)]
struct IgnPasswd {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    users: Vec<User>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<Group>,
}

#[derive(Serialize)]
struct IgnStorage {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<IgnFile>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    directories: Vec<IgnNode>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<IgnLink>,
}

#[derive(Serialize)]
struct IgnNode {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    overwrite: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<NodeUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<NodeUser>,
}

#[derive(Serialize)]
struct IgnFile {
    #[serde(flatten)]
    node: IgnNode,
    #[serde(skip_serializing_if = "Option::is_none")]
    contents: Option<IgnResource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    append: Vec<IgnResource>,
}

#[derive(Serialize)]
struct IgnLink {
    path: String,
    target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hard: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    overwrite: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<NodeUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<NodeUser>,
}

#[derive(Serialize)]
struct IgnSystemd {
    units: Vec<IgnUnit>,
}

#[derive(Serialize)]
struct IgnUnit {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mask: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contents: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dropins: Vec<Dropin>,
}

// ---- Translation --------------------------------------------------------------------------------

impl Ignition {
    fn from_butane(config: Config, version: &'static str) -> Result<Self, String> {
        let meta = match config.ignition {
            None => IgnitionMeta {
                version,
                config: None,
                timeouts: None,
                security: None,
                proxy: None,
            },
            Some(section) => translate_meta(section, version)?,
        };
        let passwd = config
            .passwd
            .filter(|p| !p.users.is_empty() || !p.groups.is_empty())
            .map(|p| IgnPasswd {
                users: p.users,
                groups: p.groups,
            });
        let storage = config.storage.map(translate_storage).transpose()?.flatten();
        let systemd = config.systemd.map(translate_systemd).transpose()?.flatten();
        Ok(Ignition {
            ignition: meta,
            kernel_arguments: config.kernel_arguments,
            passwd,
            storage,
            systemd,
        })
    }
}

fn translate_meta(section: IgnitionSection, version: &'static str) -> Result<IgnitionMeta, String> {
    let config = section
        .config
        .map(|c| -> Result<_, String> {
            Ok(IgnConfigRefs {
                merge: c
                    .merge
                    .into_iter()
                    .map(|r| resource(r, "ignition.config.merge"))
                    .collect::<Result<_, _>>()?,
                replace: c
                    .replace
                    .map(|r| resource(r, "ignition.config.replace"))
                    .transpose()?,
            })
        })
        .transpose()?;
    let security = section
        .security
        .and_then(|s| s.tls)
        .map(|tls| -> Result<_, String> {
            let cas = tls
                .certificate_authorities
                .into_iter()
                .map(|r| resource(r, "ignition.security.tls"))
                .collect::<Result<_, _>>()?;
            Ok(IgnSecurity {
                tls: IgnTls {
                    certificate_authorities: cas,
                },
            })
        })
        .transpose()?;
    Ok(IgnitionMeta {
        version,
        config,
        timeouts: section.timeouts,
        security,
        proxy: section.proxy,
    })
}

fn resource(r: Resource, at: &str) -> Result<IgnResource, String> {
    if r.local.is_some() {
        return Err(format!(
            "{at}: `local` contents need a files directory, which is not available when serving"
        ));
    }
    let source = match (r.source, r.inline) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{at}: `source` and `inline` are mutually exclusive"
            ));
        }
        (Some(source), None) => Some(source),
        (None, Some(inline)) => Some(data_url(inline.as_bytes())),
        (None, None) => None,
    };
    Ok(IgnResource {
        source,
        compression: r.compression,
        http_headers: r.http_headers,
        verification: r.verification,
    })
}

fn check_path(path: &str, seen: &mut BTreeSet<String>) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("storage path {path:?} must be absolute"));
    }
    if !seen.insert(path.to_string()) {
        return Err(format!("storage path {path:?} is declared more than once"));
    }
    Ok(())
}

fn check_mode(mode: Option<i64>, path: &str) -> Result<(), String> {
    match mode {
        Some(m) if !(0..=0o7777).contains(&m) => {
            Err(format!("{path}: mode {m} is out of range (0 to 07777)"))
        }
        _ => Ok(()),
    }
}

fn translate_storage(storage: Storage) -> Result<Option<IgnStorage>, String> {
    let unsupported = [
        ("disks", storage.disks.is_some()),
        ("raid", storage.raid.is_some()),
        ("filesystems", storage.filesystems.is_some()),
        ("luks", storage.luks.is_some()),
        ("trees", storage.trees.is_some()),
    ];
    if let Some((name, _)) = unsupported.iter().find(|(_, present)| *present) {
        return Err(format!(
            "storage.{name} is not supported by this translator"
        ));
    }
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    for f in storage.files {
        check_path(&f.path, &mut seen)?;
        check_mode(f.mode, &f.path)?;
        let at = format!("storage.files[{}]", f.path);
        files.push(IgnFile {
            contents: f.contents.map(|r| resource(r, &at)).transpose()?,
            append: f
                .append
                .into_iter()
                .map(|r| resource(r, &at))
                .collect::<Result<_, _>>()?,
            node: IgnNode {
                path: f.path,
                overwrite: f.overwrite,
                mode: f.mode,
                user: f.user,
                group: f.group,
            },
        });
    }
    let mut directories = Vec::new();
    for d in storage.directories {
        check_path(&d.path, &mut seen)?;
        check_mode(d.mode, &d.path)?;
        directories.push(IgnNode {
            path: d.path,
            overwrite: d.overwrite,
            mode: d.mode,
            user: d.user,
            group: d.group,
        });
    }
    let mut links = Vec::new();
    for l in storage.links {
        check_path(&l.path, &mut seen)?;
        links.push(IgnLink {
            path: l.path,
            target: l.target,
            hard: l.hard,
            overwrite: l.overwrite,
            user: l.user,
            group: l.group,
        });
    }
    let empty = files.is_empty() && directories.is_empty() && links.is_empty();
    Ok((!empty).then_some(IgnStorage {
        files,
        directories,
        links,
    }))
}

const UNIT_SUFFIXES: [&str; 11] = [
    ".service",
    ".socket",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".target",
    ".path",
    ".timer",
    ".slice",
    ".scope",
];

fn translate_systemd(systemd: Systemd) -> Result<Option<IgnSystemd>, String> {
    let mut names = BTreeSet::new();
    let mut units = Vec::new();
    for u in systemd.units {
        if !UNIT_SUFFIXES.iter().any(|s| u.name.ends_with(s)) {
            return Err(format!(
                "systemd unit {:?} has no valid unit type suffix",
                u.name
            ));
        }
        if !names.insert(u.name.clone()) {
            return Err(format!(
                "systemd unit {:?} is declared more than once",
                u.name
            ));
        }
        if u.contents_local.is_some() {
            return Err(format!(
                "systemd unit {:?}: `contents_local` needs a files directory",
                u.name
            ));
        }
        for d in &u.dropins {
            if !d.name.ends_with(".conf") {
                return Err(format!(
                    "drop-in {:?} of unit {:?} must end in .conf",
                    d.name, u.name
                ));
            }
        }
        units.push(IgnUnit {
            name: u.name,
            enabled: u.enabled,
            mask: u.mask,
            contents: u.contents,
            dropins: u.dropins,
        });
    }
    Ok((!units.is_empty()).then_some(IgnSystemd { units }))
}

/// RFC 2397 data URL, percent-encoded or base64, whichever is shorter (as Butane does).
fn data_url(data: &[u8]) -> String {
    use base64::Engine;
    let mut escaped = String::from("data:,");
    for &b in data {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            escaped.push(b as char);
        } else {
            escaped.push_str(&format!("%{b:02X}"));
        }
    }
    let base64 = format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(data)
    );
    if base64.len() < escaped.len() {
        base64
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests;
