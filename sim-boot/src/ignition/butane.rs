//! Butane (Fedora CoreOS variant) → Ignition 3.x JSON.
//!
//! Covers what discovery and typical claim configs use: `passwd` (users, groups), `storage` (files with
//! inline/source contents and appends, directories, links), `systemd` (units, drop-ins), `kernel_arguments`
//! and `ignition` (config merge/replace, timeouts, proxy, TLS CAs). Sections this translator does not handle
//! (disks, raid, filesystems, luks, trees, `local` contents) are rejected with an error instead of dropped;
//! unknown fields are rejected, like Butane's strict mode. Inline contents are not gzip-compressed.

use std::collections::BTreeSet;

mod input;
mod output;

use input::*;
use output::*;

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
