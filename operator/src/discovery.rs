//! The discovery boot: the discovery ServerBootConfiguration and its ignition and SSH Secrets,
//! built as upstream does (SBC named after the Server in the manager namespace, annotated
//! `metal.ironcore.dev/type: Internal`; Secrets owned by the SBC).

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource as _;
use metal_api::{ServerBootConfiguration, ServerBootConfigurationSpec};
use rand::Rng as _;
use sha2::{Digest, Sha512};

use crate::keys;

/// Upstream's default ignition template (`config/ignition-template.yaml`, Apache-2.0).
pub const DEFAULT_IGNITION_TEMPLATE: &str = include_str!("../config/ignition-template.yaml");

/// Generated login material for the discovery OS.
pub struct SshMaterial {
    pub private_pem: String,
    pub public_line: String,
    pub password: String,
    pub password_hash: String,
}

impl SshMaterial {
    /// A fresh Ed25519 key and a 20-character password, as upstream regenerates on every Initial.
    /// (Upstream uses RSA-2048 and bcrypt; Ed25519 and SHA-512-crypt need no extra crates and are
    /// accepted by Butane/OpenSSH alike.)
    pub fn generate() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("system RNG available");
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .expect("freshly generated key parses");
        let public = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        let mut blob = Vec::new();
        for part in [b"ssh-ed25519".as_slice(), public.as_slice()] {
            blob.extend_from_slice(&u32::try_from(part.len()).expect("short").to_be_bytes());
            blob.extend_from_slice(part);
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let public_line = format!("ssh-ed25519 {} metal@metal-operator", b64.encode(blob));
        let body = b64.encode(pkcs8.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        let private_pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let password: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(20)
            .map(char::from)
            .collect();
        let salt: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(16)
            .map(char::from)
            .collect();
        let password_hash = sha512_crypt(password.as_bytes(), &salt);
        Self {
            private_pem,
            public_line,
            password,
            password_hash,
        }
    }
}

/// Renders upstream's Go-template ignition (`{{.Image}}`, `{{.Flags}}`, `{{.SSHPublicKey}}`, `{{.PasswordHash}}`).
pub fn render_ignition(
    template: &str,
    probe_image: &str,
    registry_url: &str,
    system_uuid: &str,
    ssh: &SshMaterial,
) -> String {
    let flags = format!("--registry-url={registry_url} --server-uuid={system_uuid}");
    template
        .replace("{{.Image}}", probe_image)
        .replace("{{.Flags}}", &flags)
        .replace("{{.SSHPublicKey}}", &ssh.public_line)
        .replace("{{.PasswordHash}}", &ssh.password_hash)
}

/// Digest of the ignition's inputs other than the SSH material (see
/// [`keys::DISCOVERY_IGNITION_INPUTS_ANNOTATION`]).
pub fn ignition_inputs_digest(
    template: &str,
    probe_image: &str,
    registry_url: &str,
    system_uuid: &str,
) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for part in [template, probe_image, registry_url, system_uuid] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// The discovery SBC for a Server (no owner reference, as upstream).
pub fn boot_configuration(
    server_name: &str,
    namespace: &str,
    probe_os_image: &str,
) -> ServerBootConfiguration {
    let mut sbc = ServerBootConfiguration::new(
        server_name,
        ServerBootConfigurationSpec {
            server_ref: LocalObjectReference {
                name: server_name.into(),
            },
            image: Some(probe_os_image.into()),
            ignition_secret_ref: Some(LocalObjectReference {
                name: server_name.into(),
            }),
        },
    );
    sbc.metadata.namespace = Some(namespace.into());
    sbc.metadata.annotations = Some(BTreeMap::from([
        (
            keys::TYPE_ANNOTATION.to_owned(),
            keys::TYPE_INTERNAL.to_owned(),
        ),
        (
            keys::IS_DEFAULT_OS_IMAGE_ANNOTATION.to_owned(),
            keys::ANNOTATION_TRUE.to_owned(),
        ),
    ]));
    sbc
}

/// The ignition Secret `<server>` and the `<server>-ssh` Secret, controller-owned by the SBC.
pub fn secrets(
    sbc: &ServerBootConfiguration,
    ignition: String,
    inputs_digest: &str,
    ssh: &SshMaterial,
) -> [Secret; 2] {
    let name = sbc.metadata.name.clone().unwrap_or_default();
    let owner = OwnerReference {
        api_version: ServerBootConfiguration::api_version(&()).into_owned(),
        kind: ServerBootConfiguration::kind(&()).into_owned(),
        name: name.clone(),
        uid: sbc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let secret = |secret_name: String, data: Vec<(&str, String)>| Secret {
        metadata: ObjectMeta {
            name: Some(secret_name),
            namespace: sbc.metadata.namespace.clone(),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    };
    let mut ignition_secret = secret(
        name.clone(),
        vec![
            (keys::IGNITION_KEY, ignition),
            (keys::IGNITION_FORMAT_KEY, keys::IGNITION_FORMAT_FCOS.into()),
        ],
    );
    ignition_secret.metadata.annotations = Some(
        [(
            keys::DISCOVERY_IGNITION_INPUTS_ANNOTATION.to_owned(),
            inputs_digest.to_owned(),
        )]
        .into(),
    );
    [
        ignition_secret,
        secret(
            format!("{name}-ssh"),
            vec![
                (keys::SSH_SECRET_PRIVATE_KEY, ssh.private_pem.clone()),
                (keys::SSH_SECRET_PUBLIC_KEY, ssh.public_line.clone()),
                (keys::SSH_SECRET_PASSWORD_KEY, ssh.password.clone()),
            ],
        ),
    ]
}

/// SHA-512-crypt (`$6$`, 5000 rounds) as specified by Drepper's "Unix crypt using SHA-256 and SHA-512".
pub fn sha512_crypt(password: &[u8], salt: &str) -> String {
    let salt = &salt.as_bytes()[..salt.len().min(16)];
    let p = password;
    let b = Sha512::new()
        .chain_update(p)
        .chain_update(salt)
        .chain_update(p)
        .finalize();
    let mut a = Sha512::new().chain_update(p).chain_update(salt);
    let mut remaining = p.len();
    while remaining > 64 {
        a.update(b);
        remaining -= 64;
    }
    a.update(&b[..remaining]);
    let mut bits = p.len();
    while bits > 0 {
        if bits & 1 == 1 {
            a.update(b);
        } else {
            a.update(p);
        }
        bits >>= 1;
    }
    let a = a.finalize();
    let mut dp = Sha512::new();
    for _ in 0..p.len() {
        dp.update(p);
    }
    let dp = dp.finalize();
    let p_seq: Vec<u8> = dp.iter().cycle().take(p.len()).copied().collect();
    let mut ds = Sha512::new();
    for _ in 0..(16 + usize::from(a[0])) {
        ds.update(salt);
    }
    let ds = ds.finalize();
    let s_seq = &ds[..salt.len()];
    let mut c = a.to_vec();
    for round in 0..5000 {
        let mut ctx = Sha512::new();
        if round % 2 == 1 {
            ctx.update(&p_seq);
        } else {
            ctx.update(&c);
        }
        if round % 3 != 0 {
            ctx.update(s_seq);
        }
        if round % 7 != 0 {
            ctx.update(&p_seq);
        }
        if round % 2 == 1 {
            ctx.update(&c);
        } else {
            ctx.update(&p_seq);
        }
        c = ctx.finalize().to_vec();
    }
    const ORDER: [(usize, usize, usize); 21] = [
        (0, 21, 42),
        (22, 43, 1),
        (44, 2, 23),
        (3, 24, 45),
        (25, 46, 4),
        (47, 5, 26),
        (6, 27, 48),
        (28, 49, 7),
        (50, 8, 29),
        (9, 30, 51),
        (31, 52, 10),
        (53, 11, 32),
        (12, 33, 54),
        (34, 55, 13),
        (56, 14, 35),
        (15, 36, 57),
        (37, 58, 16),
        (59, 17, 38),
        (18, 39, 60),
        (40, 61, 19),
        (62, 20, 41),
    ];
    const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = format!("$6${}$", String::from_utf8_lossy(salt));
    let mut emit = |b2: u8, b1: u8, b0: u8, n: usize| {
        let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
        for _ in 0..n {
            out.push(char::from(ITOA64[(w & 0x3f) as usize]));
            w >>= 6;
        }
    };
    for (x, y, z) in ORDER {
        emit(c[x], c[y], c[z], 4);
    }
    emit(0, 0, c[63], 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_crypt_matches_the_reference_vector() {
        // Test vector from the specification (also `openssl passwd -6 -salt saltstring 'Hello world!'`).
        assert_eq!(
            sha512_crypt(b"Hello world!", "saltstring"),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
    }

    #[test]
    fn ignition_renders_all_placeholders() {
        let ssh = SshMaterial::generate();
        let text = render_ignition(
            DEFAULT_IGNITION_TEMPLATE,
            "probe:1",
            "http://reg:10000",
            "uuid-1",
            &ssh,
        );
        assert!(!text.contains("{{"), "unrendered placeholder in {text}");
        assert!(text.contains("--registry-url=http://reg:10000 --server-uuid=uuid-1"));
        assert!(text.contains(&ssh.password_hash));
        assert_eq!(ssh.password.len(), 20);
        assert!(ssh.public_line.starts_with("ssh-ed25519 "));
    }
}
